"""Fixtures for the VGG19 example: its scripts run as a user runs them, in fresh processes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "vgg19"
SEED_SYNSETS = ("n01440764", "n01514668", "n02119022", "n02489166")
# Two classes the example must leave alone, as the real tar holds 996 others.
OTHER_SYNSETS = ("n01443537", "n09999999")
IMAGES_PER_CLASS = 6

RunScript = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class TrainedRun:
    """One finished ``train.py`` run: its output folder, exit status and printed output."""

    output: Path
    result: subprocess.CompletedProcess[str]

    def json(self, name: str) -> Any:
        return json.loads((self.output / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def run_script() -> RunScript:
    """Run an example script (``train.py``, ``prepare_data.py``) with this interpreter."""

    def run(
        script: str, *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(EXAMPLE / script), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory, run_script: RunScript) -> Path:
    """The offline digits dataset, 20 images a class at 32 px, built by prepare_data.py."""
    out = tmp_path_factory.mktemp("digits")
    result = run_script(
        "prepare_data.py", "--digits", "--per-class", "20", "--digit-size", "32", "--out", out
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, digits_dir: Path) -> TrainedRun:
    """train.py on the digits (32 px, 2 epochs, random weights, seed 7) on half a GPU of the
    embedded pool, as ``bitfusion-sim run -n 1 -p 0.5 -- python train.py ...``; shared by tests."""
    output = tmp_path_factory.mktemp("trained")
    sim = Path(sys.executable).with_name("bitfusion-sim")
    train = [
        sys.executable, str(EXAMPLE / "train.py"), "--data-dir", str(digits_dir),
        "--output-dir", str(output), "--image-size", "32", "--epochs", "2", "--weights", "none",
        "--seed", "7",
    ]  # fmt: skip
    result = subprocess.run(
        [str(sim), "run", "-n", "1", "-p", "0.5", "--", *train],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "BF_SIM_HOME": str(tmp_path_factory.mktemp("sim")),
            "BF_SIM_POOL": "virtual",
        },
        check=False,
    )
    return TrainedRun(output, result)


def _tar_bytes(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def class_images(synset: str, count: int = IMAGES_PER_CLASS) -> dict[str, bytes]:
    """Distinct stand-in image files as the class tars name them (content is never decoded)."""
    return {f"{synset}_{n}.JPEG": f"{synset} image {n} ".encode() * (n + 1) for n in range(count)}


@pytest.fixture
def imagenet_tar(tmp_path: Path) -> Path:
    """An ILSVRC2012_img_train.tar look-alike: a tar of per-class tars, six images each."""
    members = {f"{s}.tar": _tar_bytes(class_images(s)) for s in (*OTHER_SYNSETS, *SEED_SYNSETS)}
    path = tmp_path / "ILSVRC2012_img_train.tar"
    path.write_bytes(_tar_bytes(members))
    return path


@pytest.fixture
def make_class_tar() -> Callable[[Path, str, Mapping[str, bytes]], Path]:
    """Write one per-class tar ``<folder>/<synset>.tar`` holding the given members."""

    def make(folder: Path, synset: str, members: Mapping[str, bytes]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{synset}.tar"
        path.write_bytes(_tar_bytes(members))
        return path

    return make
