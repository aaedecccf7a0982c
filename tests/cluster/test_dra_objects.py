"""What the dra backends render is valid for the pinned release: the real API server accepts the
ResourceClaimTemplate and the kernel pod claiming it (``kubectl create --dry-run=server``, so every
field is checked against the served ``resource.k8s.io/v1`` schema and its validation)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from bf_jupyter.backends import Offer, get_backend
from bf_jupyter.kernels.kubernetes.pod_builder import (
    KernelPodBuilder,
    KernelPodSettings,
    PodLaunch,
)
from bf_jupyter.kernels.remote_start import kernel_ports
from bf_jupyter.slice import GpuSlice

if TYPE_CHECKING:
    from tests.cluster.control_plane import ControlPlane

pytestmark = pytest.mark.slow

SLICES = [
    ("dra", "1"),
    ("dra", "2 device.name=NVIDIA-A100-SXM4-40GB device.uuid!=GPU-0"),
    ("dra", "2x8Gi cores=30"),
    ("dra", "1x25%"),
    ("dra", "1xshared"),
    ("dra", "2xmig-1g.10gb"),
    ("dra-consumable-capacity", "1x8Gi"),
    ("dra-consumable-capacity", "2x25% cores=50"),
]


def objects_for(backend: str, text: str, namespace: str) -> list[dict[str, object]]:
    settings = KernelPodSettings(
        namespace=namespace,
        image="bf-jupyter/kernel:0.1.0",
        gpu_backend=get_backend(backend),
        gpu_offer=Offer(per_gpu_memory_bytes=40 << 30),
    )
    launch = PodLaunch(
        kernel_id="0b5e7f9a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        generation=1,
        gpu_slice=GpuSlice.parse(text),
        user="ada",
        server_id="jupyter-ada",
        command=["python", "-m", "bf_jupyter.kernels.launcher"],
        ports=kernel_ports(52700, 1),
        signature_scheme="hmac-sha256",
        environment={},
    )
    builder = KernelPodBuilder(settings)
    return [*builder.slice_objects(launch), builder.pod(launch)]


@pytest.mark.parametrize(("backend", "text"), SLICES, ids=[f"{b}:{t}" for b, t in SLICES])
def test_the_api_server_accepts_the_rendered_template_and_pod(
    control_plane: ControlPlane, namespace: str, backend: str, text: str
) -> None:
    for obj in objects_for(backend, text, namespace):
        created = control_plane.kubectl(
            # strict: an unknown or misspelt field is an error, not silently dropped
            "create",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
            input=json.dumps(obj),
        )
        assert created.returncode == 0, f"{obj['kind']}: {created.stderr}"


def test_the_check_would_catch_a_misspelt_field(
    control_plane: ControlPlane, namespace: str
) -> None:
    (template, _pod) = objects_for("dra", "1", namespace)
    template["spec"]["spec"]["devices"]["requests"][0]["exactly"]["cuont"] = 1  # type: ignore[index]
    created = control_plane.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(template)
    )
    assert created.returncode != 0
    assert 'unknown field "spec.spec.devices.requests[0].exactly.cuont"' in created.stderr
