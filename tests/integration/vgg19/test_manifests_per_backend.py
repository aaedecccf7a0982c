"""workload-<backend>.yaml: workload.yaml's pod with the GPU part rendered by that GPU backend.

Each file must be exactly what the backend renders for its slice (the one ``bf-jupyter slice
explain`` shows in the file's header) on workload.yaml's pod without Bitfusion's keys and
annotations; nothing else may drift from workload.yaml.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from bf_jupyter.backends import get_backend
from bf_jupyter.slice import GpuSlice
from tests.integration.vgg19.conftest import EXAMPLE

# file → (GPU backend, slice): one per backend that is not Bitfusion (workload.yaml is Bitfusion's)
PER_BACKEND = {
    "workload-hami.yaml": ("hami", "1x16Gi cores=50"),
    "workload-nvidia-mig.yaml": ("nvidia", "mig-3g.40gb"),
    "workload-nvidia-mps.yaml": ("nvidia-mps", "1xshared"),
}


def documents(name: str) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((EXAMPLE / name).read_text())}


def rendered_from_workload(backend: str, slice_text: str) -> dict[str, Any]:
    """workload.yaml's Pod, Bitfusion's part taken out and ``slice_text`` rendered by ``backend``."""
    pod = copy.deepcopy(documents("workload.yaml")["Pod"])
    metadata, spec = pod["metadata"], pod["spec"]
    del metadata["annotations"]  # all of them are the Bitfusion webhook's
    (container,) = spec["containers"]
    limits = container["resources"]["limits"]
    for key in [k for k in limits if k.startswith("bitfusion.io/")]:
        del limits[key]
    get_backend(backend).render(GpuSlice.parse(slice_text)).apply(spec, metadata, container)
    return pod


@pytest.mark.parametrize(
    ("name", "backend", "slice_text"), [(n, *v) for n, v in PER_BACKEND.items()]
)
def test_the_pod_is_workload_yaml_rendered_by_its_backend(
    name: str, backend: str, slice_text: str
) -> None:
    assert documents(name)["Pod"] == rendered_from_workload(backend, slice_text)
    assert f"--backend {backend}" in (EXAMPLE / name).read_text().split("apiVersion")[0]


@pytest.mark.parametrize("name", PER_BACKEND)
def test_the_output_claim_is_workload_yamls(name: str) -> None:
    claim = documents(name)["PersistentVolumeClaim"]
    assert claim == documents("workload.yaml")["PersistentVolumeClaim"]


@pytest.mark.parametrize("name", PER_BACKEND)
def test_nothing_of_bitfusion_is_left(name: str) -> None:
    text = (EXAMPLE / name).read_text().split("apiVersion", 1)[1]
    assert "bitfusion.io/" not in text
    assert "auto-management/bitfusion" not in text


@pytest.mark.parametrize("name", PER_BACKEND)
def test_the_manifest_passes_the_kubernetes_schemas(name: str) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    for document in yaml.safe_load_all((EXAMPLE / name).read_text()):
        validate.validate(document, "1.33", strict=True)
