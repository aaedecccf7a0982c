"""GPU backends: how a GPU slice is served by one GPU-sharing stack (one module per stack).

``get_backend(name)`` gives one; each renders a ``GpuSlice`` into pod fields, prices it against
ResourceQuota keys, reads its pool from Node and Pod objects, and says which slice forms it
honours and what isolation it gives (``base.GpuBackend``). Pure: no I/O, no Jupyter, no
Kubernetes client; only the slice contract below it.
"""

from __future__ import annotations

from bf_jupyter.backends.base import (
    NO_OFFER,
    Charge,
    GpuBackend,
    Isolation,
    Offer,
    Pool,
    PoolGpu,
    PoolResource,
    Rendering,
    SliceRefused,
)
from bf_jupyter.backends.registry import (
    BACKEND_NAMES,
    DEFAULT_BACKEND,
    UnknownBackend,
    discover,
    get_backend,
)

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_BACKEND",
    "NO_OFFER",
    "Charge",
    "GpuBackend",
    "Isolation",
    "Offer",
    "Pool",
    "PoolGpu",
    "PoolResource",
    "Rendering",
    "SliceRefused",
    "UnknownBackend",
    "discover",
    "get_backend",
]
