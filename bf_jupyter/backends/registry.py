"""The GPU backends by name, and which ones a cluster offers (discovered from its Node objects)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bf_jupyter.backends.base import GpuBackend, quantity_int
from bf_jupyter.backends.bitfusion import BitfusionBackend
from bf_jupyter.backends.dra import DEFAULT_DRIVER, DraBackend
from bf_jupyter.backends.hami import REGISTER_ANNOTATION, HamiBackend
from bf_jupyter.backends.nvidia import (
    LABEL_SHARING,
    MIG_PREFIX,
    RESOURCE_GPU,
    RESOURCE_SHARED,
    NvidiaBackend,
)
from bf_jupyter.contract import QUOTA_RESOURCE

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_BACKEND",
    "UnknownBackend",
    "discover",
    "discover_dra",
    "get_backend",
]

DEFAULT_BACKEND = "bitfusion"
_FACTORIES: dict[str, Callable[[], GpuBackend]] = {
    "bitfusion": BitfusionBackend,
    "hami": HamiBackend,
    "nvidia": NvidiaBackend,
    "nvidia-time-slicing": lambda: NvidiaBackend("time-slicing"),
    "nvidia-time-slicing-renamed": lambda: NvidiaBackend("time-slicing", rename_shared=True),
    "nvidia-mps": lambda: NvidiaBackend("mps"),
    "nvidia-mps-renamed": lambda: NvidiaBackend("mps", rename_shared=True),
    "dra": DraBackend,
    "dra-consumable-capacity": lambda: DraBackend(consumable_capacity=True),
}
BACKEND_NAMES = tuple(_FACTORIES)


class UnknownBackend(ValueError):
    """A backend name that is not one of ``BACKEND_NAMES``."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"backend {name!r} is not known: use one of {', '.join(BACKEND_NAMES)}")


def get_backend(name: str) -> GpuBackend:
    """The backend called ``name`` (see ``BACKEND_NAMES``). Raises ``UnknownBackend``."""
    factory = _FACTORIES.get(name.strip().lower())
    if factory is None:
        raise UnknownBackend(name)
    backend = factory()
    backend.name = name.strip().lower()  # the renamed variants keep their registered name
    return backend


def discover(nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """The backends the nodes offer, most specific first (pure):

    - ``hami`` where a node carries HAMi's registration annotation (HAMi also advertises
      ``nvidia.com/gpu``, so its nodes count for HAMi only);
    - ``bitfusion`` where a node advertises ``bitfusion.io/gpu``;
    - ``nvidia`` where a node advertises ``nvidia.com/gpu`` or a MIG profile;
      with GFD's ``nvidia.com/gpu.sharing-strategy`` label ``time-slicing`` or ``mps`` (and
      ``-renamed`` when the node advertises ``nvidia.com/gpu.shared``) the matching variant.
    """
    found: list[str] = []
    for node in nodes:
        metadata = node.get("metadata") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        offered = {k for k, v in allocatable.items() if quantity_int(v) > 0}
        names = []
        if REGISTER_ANNOTATION in (metadata.get("annotations") or {}):
            names.append("hami")
        elif offered & {RESOURCE_GPU, RESOURCE_SHARED} or any(
            k.startswith(MIG_PREFIX) for k in offered
        ):
            sharing = str((metadata.get("labels") or {}).get(LABEL_SHARING) or "none")
            if sharing in ("time-slicing", "mps"):
                renamed = "-renamed" if RESOURCE_SHARED in offered else ""
                names.append(f"nvidia-{sharing}{renamed}")
            else:
                names.append("nvidia")
        if QUOTA_RESOURCE in offered:
            names.append("bitfusion")
        found += [n for n in names if n not in found]
    order = {name: i for i, name in enumerate(BACKEND_NAMES)}
    return sorted(found, key=order.__getitem__)


def discover_dra(slices: Iterable[Mapping[str, Any]]) -> list[str]:
    """The DRA backends the ResourceSlices offer (pure): ``dra`` where NVIDIA's driver publishes
    devices, and ``dra-consumable-capacity`` where some of them allow multiple allocations (the
    scheduler then accounts their memory per claim)."""
    found: set[str] = set()
    for item in slices:
        spec = item.get("spec") or {}
        if spec.get("driver") != DEFAULT_DRIVER:
            continue
        for device in spec.get("devices") or []:
            found.add(
                "dra-consumable-capacity" if device.get("allowMultipleAllocations") else "dra"
            )
    return [name for name in BACKEND_NAMES if name in found]
