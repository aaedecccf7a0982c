"""train.py end to end on the offline digits: split, training, test evaluation, saved outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.integration.vgg19.conftest import RunScript, TrainedRun

PARTS = ("train", "validation", "test")


def manifest_parts(manifest: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    return {part: [(str(f), int(label)) for f, label in manifest[part]] for part in PARTS}


@pytest.mark.tensorflow
def test_training_saves_the_model_the_history_and_the_manifest(trained: TrainedRun) -> None:
    # given the shared run: digits, 32 px, 2 epochs, random weights
    # then it succeeded and left its three outputs, and nothing half-written
    assert trained.result.returncode == 0, (
        trained.result.stdout[-3000:] + trained.result.stderr[-3000:]
    )
    assert sorted(p.name for p in trained.output.iterdir()) == [
        "history.json",
        "model.keras",
        "split.json",
    ]
    history = trained.json("history.json")
    assert history["epochs_run"] == 2
    assert set(history["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in history["history"].values())
    assert history["options"]["weights"] == "none"
    assert history["classes"] == ["digit_0", "digit_1", "digit_2", "digit_3"]


@pytest.mark.tensorflow
def test_training_ran_on_a_half_gpu_lease_that_was_released(trained: TrainedRun) -> None:
    # given the shared run, started as bitfusion-sim run -n 1 -p 0.5 -- python train.py ...
    # then the client leased half a GPU, ran train.py under it and released the lease at the end
    client = trained.result.stderr
    assert "Locked 1 GPUs with partial memory 0.5" in client
    assert client.index("Locked 1 GPUs") < client.index("Released GPUs")
    assert "[vgg19] saved" in trained.result.stdout


@pytest.mark.tensorflow
def test_the_test_split_is_evaluated_with_a_confusion_matrix(trained: TrainedRun) -> None:
    # given the shared run
    history, manifest = trained.json("history.json"), trained.json("split.json")
    # then the test part was evaluated once per image, and the log says so
    test = history["test"]
    assert test["images"] == len(manifest["test"]) == manifest["counts"]["test"]
    assert 0.0 <= test["accuracy"] <= 1.0 and test["loss"] > 0
    matrix = test["confusion_matrix"]
    assert len(matrix) == 4 and sum(map(sum, matrix)) == test["images"]
    # per-class row sums are the true labels of the test part
    labels = [label for _, label in manifest["test"]]
    assert [sum(row) for row in matrix] == [labels.count(k) for k in range(4)]
    assert f"test split: {test['images']} images" in trained.result.stdout


@pytest.mark.tensorflow
def test_the_split_is_disjoint_and_covers_every_image(
    trained: TrainedRun, digits_dir: Path
) -> None:
    # given the manifest of the shared run
    parts = manifest_parts(trained.json("split.json"))
    files = {part: {f for f, _ in pairs} for part, pairs in parts.items()}
    # then no image is in two parts, all images are somewhere, and labels follow the folders
    assert not files["train"] & files["validation"]
    assert not files["train"] & files["test"]
    assert not files["validation"] & files["test"]
    on_disk = {f"{p.parent.name}/{p.name}" for p in digits_dir.glob("*/*.jpg")}
    assert files["train"] | files["validation"] | files["test"] == on_disk
    assert all(f.startswith(f"digit_{label}/") for pairs in parts.values() for f, label in pairs)
    # 70/15/15 per class: 20 images a class → 14/3/3
    assert [len(parts[p]) for p in PARTS] == [56, 12, 12]


@pytest.mark.tensorflow
def test_the_saved_model_classifies_plain_uint8_rgb_images(
    trained: TrainedRun, digits_dir: Path
) -> None:
    # given the saved model and one test image, read as RGB bytes with no preprocessing
    image = digits_dir / trained.json("split.json")["test"][0][0]
    code = (
        "import sys, numpy as np, keras; from PIL import Image\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "pixels = np.asarray(Image.open(sys.argv[2]).convert('RGB'))[None]\n"
        "p = model.predict(pixels, verbose=0)\n"
        "print(p.shape, round(float(p.sum()), 3))\n"
    )
    # when it predicts, then it gives one probability per class
    result = subprocess.run(
        [sys.executable, "-c", code, str(trained.output / "model.keras"), str(image)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(1, 4) 1.0"


def test_the_split_is_reproducible_for_a_seed_and_changes_with_it(
    run_script: RunScript, digits_dir: Path, tmp_path: Path
) -> None:
    # when the split is planned twice with seed 7 and once with seed 8
    def plan(seed: int, name: str) -> dict[str, list[tuple[str, int]]]:
        out = tmp_path / name
        result = run_script(
            "train.py",
            "--data-dir",
            digits_dir,
            "--output-dir",
            out,
            "--seed",
            str(seed),
            "--dry-run",
        )
        assert result.returncode == 0, result.stderr
        return manifest_parts(json.loads((out / "split.json").read_text()))

    first, again, other = plan(7, "a"), plan(7, "b"), plan(8, "c")
    # then the same seed gives the same parts in the same order, another seed another split
    assert first == again
    assert {f for f, _ in first["test"]} != {f for f, _ in other["test"]}


def test_a_dry_run_names_classes_and_split_sizes_without_loading_keras(
    run_script: RunScript, digits_dir: Path, tmp_path: Path
) -> None:
    result = run_script("train.py", "--data-dir", digits_dir, "--output-dir", tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "[vgg19] 4 classes: digit_0" in result.stdout
    assert "56 train, 12 validation, 12 test" in result.stdout
    assert "Keras" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "{tmp}/absent"], "--data-dir {tmp}/absent is not a directory"),
        (
            ["--data-dir", "{digits}", "--weights", "{tmp}/absent.h5"],
            "--weights {tmp}/absent.h5: no readable file there",
        ),
        (
            ["--data-dir", "{digits}", "--image-size", "16"],
            "--image-size 16 is too small: use an integer ≥ 32",
        ),
        (
            ["--data-dir", "{digits}", "--learning-rate", "0"],
            "--learning-rate 0.0 must be a positive number",
        ),
        (["--data-dir", "{empty}"], "class folder {empty}/b holds no images"),
    ],
    ids=[
        "missing-data-dir",
        "unreadable-weights",
        "image-too-small",
        "zero-learning-rate",
        "empty-class",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run_script: RunScript, digits_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    # given a data folder whose second class is empty
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "x.jpg").write_bytes(b"\xff\xd8")
    (empty / "b").mkdir()
    values = {"tmp": str(tmp_path), "digits": str(digits_dir), "empty": str(empty)}
    # when train.py runs with the bad option
    result = run_script(
        "train.py", *(a.format(**values) for a in args), "--output-dir", tmp_path / "out"
    )
    # then it says what is wrong in one line and exits 2
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("train.py: error: " + message.format(**values))


@pytest.mark.tensorflow
def test_the_python_loader_and_a_local_weights_file_train_too(
    run_script: RunScript, digits_dir: Path, tmp_path: Path
) -> None:
    # given VGG19 no-top weights saved to a local file (as an air-gapped cluster would have)
    weights = tmp_path / "vgg19_notop.weights.h5"
    code = (
        "import sys, keras\n"
        "keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3))"
        ".save_weights(sys.argv[1])\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", code, str(weights)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    # when train.py uses them with the Pillow loader (what runs where TensorFlow is absent)
    out = tmp_path / "out"
    result = run_script(
        "train.py", "--data-dir", digits_dir, "--output-dir", out, "--image-size", "32", "--epochs", "1",
        "--weights", weights, "--loader", "python", "--no-live-curves",
    )  # fmt: skip
    # then it trains, evaluates and saves like the tf.data run
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "loader python" in result.stdout
    history = json.loads((out / "history.json").read_text())
    assert history["options"]["loader"] == "python" and history["test"]["images"] == 12


@pytest.mark.tensorflow
def test_an_image_that_cannot_be_decoded_is_named_in_one_line(
    run_script: RunScript, digits_dir: Path, tmp_path: Path
) -> None:
    # given the digits with one file that is not an image
    data = tmp_path / "data"
    shutil.copytree(digits_dir, data)
    broken = data / "digit_2" / "digit_2_0005.jpg"
    broken.write_text("not a JPEG\n")
    # when train.py meets it, then it names the file in one line and exits 2
    result = run_script(
        "train.py",
        "--data-dir",
        data,
        "--output-dir",
        tmp_path / "out",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--weights",
        "none",
        "--no-live-curves",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    # (TensorFlow's own start-up lines may come first on stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"train.py: error: image {broken} cannot be decoded (Unknown image file format"
    )
    assert result.stderr.count("train.py: error:") == 1
    assert not (tmp_path / "out" / "model.keras").exists()
