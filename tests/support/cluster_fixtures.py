"""The session's test cluster control plane, shared by every test that needs one (a pytest plugin
registered in ``tests/conftest.py``): ``tests/cluster`` (the control plane and the process-kubelet),
the webhook's defaulting checks and the e2e stack all use this one, started on first use.

It fails (never skips) with a one-line hint when the binaries are not built: ``make cluster-binaries``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    from tests.cluster.control_plane import ControlPlane

    plane = ControlPlane(tmp_path_factory.mktemp("control-plane")).start()
    try:
        yield plane
    finally:
        plane.stop()
