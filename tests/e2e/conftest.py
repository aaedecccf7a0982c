"""Fixtures for end-to-end tests.

- ``cluster`` and ``bitfusion_stack`` (session) come from ``tests/support/cluster_fixtures.py``, so
  that every folder shares one deployed cluster.
- ``namespace`` (per test): a fresh namespace on ``cluster``, deleted (and awaited) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle


@pytest.fixture
def namespace(cluster: ClusterHandle) -> Iterator[str]:
    """A fresh namespace on ``cluster``, deleted (and awaited) afterwards."""
    name = cluster.create_namespace("e2e")
    try:
        yield name
    finally:
        cluster.delete_namespace(name)
