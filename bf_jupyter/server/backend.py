"""Which backend runs GPU kernels, and in which namespace: decided from configuration, never a request.

``local``: kernels run on this machine, wrapped by the Bitfusion client (or ``bitfusion-sim``).
``kubernetes``: kernels run as pods. When the setting is empty, a server inside a pod that has a
service account uses ``kubernetes``; anything else uses ``local``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

__all__ = ["BACKENDS", "SERVICE_ACCOUNT_DIR", "Backend", "detect_backend", "pod_namespace"]

Backend = Literal["local", "kubernetes"]
BACKENDS: tuple[Backend, ...] = ("local", "kubernetes")
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def detect_backend(
    env: Mapping[str, str] | None = None, *, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> Backend:
    """``kubernetes`` in a pod with a mounted service-account token, else ``local``."""
    env = os.environ if env is None else env
    in_pod = bool(env.get("KUBERNETES_SERVICE_HOST"))
    return "kubernetes" if in_pod and (service_account_dir / "token").is_file() else "local"


def pod_namespace(*, service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> str | None:
    """The namespace of the pod this server runs in, or None outside a pod."""
    try:
        return (service_account_dir / "namespace").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
