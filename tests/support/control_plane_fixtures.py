"""Fixtures of the test cluster, a pytest plugin that ``tests/conftest.py`` registers so that every
test folder sees them and one session starts at most one control plane.

- ``control_plane`` (session): a started ``ControlPlane`` of the pinned release, stopped at the end.
  Fails (never skips) with a one-line hint when the binaries are not built: ``make cluster-binaries``.
- ``namespace`` (per test): a fresh namespace on it whose ``default`` ServiceAccount exists,
  deleted (and awaited) afterwards (``fresh_namespace`` makes one for a wider scope). ``tests/e2e``
  has its own ``namespace``, on the deployed cluster side.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.cluster.control_plane import ControlPlane


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane")).start()
    try:
        yield plane
    finally:
        plane.stop()


@contextmanager
def fresh_namespace(plane: ControlPlane) -> Iterator[str]:
    """A new namespace whose ``default`` ServiceAccount exists; deleted (and awaited) on exit."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    created = plane.kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    deadline = time.monotonic() + 60
    while plane.kubectl("-n", name, "get", "serviceaccount", "default").returncode != 0:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 60s"
        time.sleep(0.1)
    try:
        yield name
    finally:
        deleted = plane.kubectl("delete", "namespace", name, "--wait=true", "--timeout=60s")
        assert deleted.returncode == 0, deleted.stderr


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    with fresh_namespace(control_plane) as name:
        yield name
