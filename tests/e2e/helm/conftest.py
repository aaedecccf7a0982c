"""Fixtures of the Helm e2e: ``helm_stack`` (module), the chart installed on a control plane of the
module's own (see ``release.py`` for why not the session's), uninstalled and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.helm.release import HelmStack


@pytest.fixture(scope="module")
def helm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmStack]:
    from tests.cluster.control_plane import ControlPlane

    plane = ControlPlane(tmp_path_factory.mktemp("helm-control-plane")).start()
    try:
        stack = HelmStack(plane)
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        plane.stop()
