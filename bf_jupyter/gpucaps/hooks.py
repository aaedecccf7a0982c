"""Post-import hooks that cap TensorFlow and PyTorch at the slice's share of each GPU.

``install()`` adds a finder that wraps the loader of ``tensorflow`` and ``torch``: once the module
has run, the cap is applied — before user code can allocate. It reads ``$BF_GPU_MEMORY_MIB`` and
``$BF_GPU_MEMORY_FRACTION`` (``gpucaps.cap_environment``) and does nothing without them. A cap that
cannot be applied (no GPU, another framework version) is reported on stderr, never raised: the
import must still work.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

__all__ = ["apply_tensorflow", "apply_torch", "install"]

Apply = Callable[[ModuleType, Mapping[str, str]], None]


def apply_tensorflow(tf: Any, environ: Mapping[str, str]) -> None:
    """One logical device per GPU, limited to the slice's memory."""
    limit = int(environ["BF_GPU_MEMORY_MIB"])
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.set_logical_device_configuration(
            gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)]
        )


def apply_torch(torch: Any, environ: Mapping[str, str]) -> None:
    """The caching allocator refuses to grow past the slice's fraction of each GPU."""
    fraction = float(environ["BF_GPU_MEMORY_FRACTION"])
    if not torch.cuda.is_available():
        return
    for index in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(fraction, index)


_CAPS: dict[str, Apply] = {"tensorflow": apply_tensorflow, "torch": apply_torch}


class _CappingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, apply: Apply, environ: Mapping[str, str]) -> None:
        self._loader = loader
        self._apply = apply
        self._environ = environ

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            self._apply(module, self._environ)
        except Exception as error:  # the import must work even when the cap cannot be set
            print(
                f"bf-jupyter: could not cap {module.__name__} at the GPU slice: {error}",
                file=sys.stderr,
            )

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self._loader, name)


class _CappingFinder(importlib.abc.MetaPathFinder):
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        apply = _CAPS.get(fullname)
        if apply is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _CappingLoader(spec.loader, apply, self._environ)
                return spec
        return None


def install(environ: Mapping[str, str] | None = None) -> bool:
    """Cap frameworks imported from now on; False (nothing done) outside a capped lease."""
    environ = dict(os.environ if environ is None else environ)
    if not environ.get("BF_GPU_MEMORY_FRACTION") or not environ.get("BF_GPU_MEMORY_MIB"):
        return False
    if any(isinstance(finder, _CappingFinder) for finder in sys.meta_path):
        return True
    sys.meta_path.insert(0, _CappingFinder(environ))
    return True
