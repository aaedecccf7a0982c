"""The two Bitfusion kernelspecs, and installing one with a chosen slice, image and namespace.

The templates live in the repository's ``kernelspecs/`` (kernel.json + logos); a wheel carries them
as data in ``share/bf-jupyter/kernelspecs`` and installs the local one into ``share/jupyter/kernels`` so that
``pip install bf-jupyter`` alone makes "Python 3 (Bitfusion GPU, local)" appear. Installing goes
through jupyter_client's ``KernelSpecManager``, so ``--user`` honours ``JUPYTER_DATA_DIR`` exactly
like ``jupyter kernelspec install``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bf_jupyter.backends import DEFAULT_BACKEND, UnknownBackend, get_backend
from bf_jupyter.kernels.encryption import ipykernel_supports_curve
from bf_jupyter.kubenames import is_dns_label
from bf_jupyter.slice import GpuSlice, SliceError

__all__ = [
    "BACKENDS",
    "KernelspecError",
    "KernelspecRequest",
    "install_kernelspec",
    "kernelspec_source",
    "render_kernel_json",
]

Backend = Literal["kubernetes", "local"]
BACKENDS: tuple[Backend, ...] = ("kubernetes", "local")
_TEMPLATE_DIR = {"kubernetes": "bitfusion-kubernetes", "local": "bitfusion-local"}
# The backend-neutral name of the Kubernetes provisioner (same class as bitfusion-kubernetes).
NEUTRAL_PROVISIONER = "gpu-kubernetes"
# jupyter_client accepts these kernel names (its own rule, repeated so the error is ours and clear)
_NAME = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)


class KernelspecError(ValueError):
    """A kernelspec request was refused; the message names the option, the value and what works."""


@dataclass(frozen=True)
class KernelspecRequest:
    """What ``bf-jupyter kernelspec install`` was asked for (None = keep the template's value)."""

    backend: Backend = "local"
    name: str | None = None
    display_name: str | None = None
    slice_text: str | None = None
    image: str | None = None
    namespace: str | None = None
    gpu_backend: str | None = None  # kubernetes: the GPU backend its kernels always run on

    @property
    def kernel_name(self) -> str:
        if self.name:
            return self.name
        if self.backend == "kubernetes" and self._tied_elsewhere:
            return f"{NEUTRAL_PROVISIONER}-{str(self.gpu_backend).strip().lower()}"
        return _TEMPLATE_DIR[self.backend]

    @property
    def _tied_elsewhere(self) -> bool:
        """Tied to a GPU backend other than Bitfusion (so named and titled for it)."""
        return bool(self.gpu_backend) and self.gpu_backend != DEFAULT_BACKEND


def kernelspec_source(backend: Backend) -> Path:
    """The template directory of a backend: the source tree's (a checkout), else the copy the
    wheel installed under ``<data>/share/bf-jupyter/kernelspecs``."""
    candidates = [
        Path(__file__).resolve().parents[2] / "kernelspecs",
        Path(sysconfig.get_paths()["data"]) / "share" / "bf-jupyter" / "kernelspecs",
        Path(sys.prefix) / "share" / "bf-jupyter" / "kernelspecs",
    ]
    for candidate in candidates:
        if (candidate / _TEMPLATE_DIR[backend] / "kernel.json").is_file():
            return candidate / _TEMPLATE_DIR[backend]
    looked = ", ".join(str(c) for c in candidates)
    raise KernelspecError(
        f"the {backend} kernelspec template is missing (looked in {looked}): reinstall bf-jupyter"
    )


def render_kernel_json(request: KernelspecRequest) -> dict[str, Any]:
    """The template's kernel.json with the request applied. Raises ``KernelspecError``."""
    _check(request)
    spec: dict[str, Any] = json.loads(
        (kernelspec_source(request.backend) / "kernel.json").read_text()
    )
    if request.display_name:
        spec["display_name"] = request.display_name
    config = spec["metadata"]["kernel_provisioner"]["config"]
    # A local kernel runs this environment's ipykernel: declare CurveZMQ when it serves it, so
    # that the server's transport_encryption=auto encrypts its traffic (kernels/encryption.py).
    if request.backend == "local" and ipykernel_supports_curve():
        spec["metadata"]["supported_encryption"] = ["curve"]
    if request.slice_text is not None:
        config["default_slice"] = GpuSlice.parse(request.slice_text).to_text()
    if request.image:
        config["image"] = request.image
    if request.namespace:
        config["namespace"] = request.namespace
    if request.gpu_backend:
        backend = get_backend(request.gpu_backend)
        config["gpu_backend"] = backend.name
        if backend.name != DEFAULT_BACKEND:
            provisioner = spec["metadata"]["kernel_provisioner"]
            provisioner["provisioner_name"] = NEUTRAL_PROVISIONER
            if not request.display_name:
                spec["display_name"] = f"Python 3 (GPU on {backend.title}, Kubernetes)"
    return spec


def install_kernelspec(
    request: KernelspecRequest, *, user: bool = False, prefix: str | None = None
) -> Path:
    """Install (or replace) the kernelspec; return the directory it now lives in.

    ``user`` installs into the Jupyter data dir (``$JUPYTER_DATA_DIR`` if set), ``prefix`` into
    ``PREFIX/share/jupyter/kernels``, neither into the system-wide Jupyter path.
    Raises ``KernelspecError`` for a bad request and ``OSError`` when the target is not writable.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    spec = render_kernel_json(request)
    with tempfile.TemporaryDirectory(prefix="bf-kernelspec-") as staging:
        staged = Path(staging) / request.kernel_name
        shutil.copytree(kernelspec_source(request.backend), staged)
        (staged / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        target = KernelSpecManager().install_kernel_spec(
            str(staged), kernel_name=request.kernel_name, user=user, prefix=prefix
        )
    return Path(target)


def _check(request: KernelspecRequest) -> None:
    if request.backend not in BACKENDS:
        raise KernelspecError(
            f"--backend {request.backend} is not a backend: use {' or '.join(BACKENDS)}"
        )
    if request.name is not None and not _NAME.match(request.name):
        raise KernelspecError(
            f"--name {request.name!r} is not a kernel name: use letters, digits, '.', '_' and '-'"
        )
    if request.display_name is not None and not request.display_name.strip():
        raise KernelspecError("--display-name is empty: give the name people pick the kernel by")
    if request.slice_text is not None:
        try:
            GpuSlice.parse(request.slice_text)
        except SliceError as error:
            raise KernelspecError(f"--slice: {error}") from None
    if request.backend == "local" and (request.image or request.namespace):
        option = "--image" if request.image else "--namespace"
        raise KernelspecError(f"{option} applies to --backend kubernetes only")
    if request.gpu_backend is not None:
        try:
            name = get_backend(request.gpu_backend).name
        except UnknownBackend as error:
            raise KernelspecError(f"--gpu-backend: {error}") from None
        if request.backend == "local" and name != DEFAULT_BACKEND:
            raise KernelspecError(
                f"--gpu-backend {name} applies to --backend kubernetes only: a local kernel runs "
                "under bitfusion run, on the bitfusion backend"
            )
    if request.namespace is not None and not is_dns_label(request.namespace):
        raise KernelspecError(
            f"--namespace {request.namespace!r} is not a namespace name: use lower-case letters, "
            "digits and '-', at most 63 characters"
        )
    if request.image is not None and (
        not request.image.strip() or any(c.isspace() for c in request.image)
    ):
        raise KernelspecError(
            f"--image {request.image!r} is not an image reference: e.g. registry/kernel:1.0"
        )
