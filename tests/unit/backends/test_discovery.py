"""Which GPU backends a cluster offers, from its nodes' allocatable, labels and annotations."""

from __future__ import annotations

import pytest

from bf_jupyter.backends import BACKEND_NAMES, UnknownBackend, discover, get_backend
from bf_jupyter.backends.hami import REGISTER_ANNOTATION
from tests.unit.backends.conftest import hami_register, node


def test_discovery_reads_each_stacks_own_marks() -> None:
    nodes = [
        node("bf", allocatable={"bitfusion.io/gpu": "200"}),
        node(
            "hami",
            allocatable={"nvidia.com/gpu": "10"},
            annotations={REGISTER_ANNOTATION: hami_register([])},
        ),
        node("mig", allocatable={"nvidia.com/mig-1g.10gb": "7"}),
        node(
            "ts",
            allocatable={"nvidia.com/gpu.shared": "40"},
            labels={"nvidia.com/gpu.sharing-strategy": "time-slicing"},
        ),
        node("cpu"),
    ]
    assert discover(nodes) == ["bitfusion", "hami", "nvidia", "nvidia-time-slicing-renamed"]


def test_discovery_of_no_gpu_nodes_is_empty() -> None:
    assert discover([node("cpu", allocatable={"nvidia.com/gpu": "0"})]) == []


def test_every_registered_backend_describes_itself() -> None:
    for name in BACKEND_NAMES:
        described = get_backend(name).describe()
        assert described["name"] == name
        assert described["forms"] and described["isolation"]["label"]


def test_an_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(UnknownBackend, match=r"use one of bitfusion, hami, nvidia.*, dra"):
        get_backend("drax")
