"""Fixtures for the magic's integration tests: a Bitfusion pool of our own, real kernels.

The pool is ``bitfusion-sim`` with a private state directory and a virtual 2-GPU pool, driven
through ``$BF_BITFUSION_BIN`` exactly as users' kernels resolve it.
"""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bf_jupyter.bitfusion.client import BitfusionClient, resolve_client

SIM_SCRIPT = Path(sys.executable).with_name("bitfusion-sim")


@dataclass
class Pool:
    client: BitfusionClient
    home: Path

    def leases(self) -> int:
        return sum(len(server.leases) for server in self.client.list_gpus().servers)


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pool:
    """A private pool; ``resolve_client()`` (here and in kernels started by the test) finds it."""
    home = tmp_path / "pool"
    for name in [n for n in os.environ if n.startswith("BF_SIM_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("BF_SLICE", raising=False)
    monkeypatch.setenv("BF_SIM_HOME", str(home))
    monkeypatch.setenv("BF_SIM_POOL", "virtual")
    monkeypatch.setenv("BF_BITFUSION_BIN", str(SIM_SCRIPT))
    return Pool(resolve_client(), home)


@pytest.fixture
def script(tmp_path: Path) -> Any:
    """Write a Python script into the test's directory and return its path."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write
