"""Transport encryption of kernel traffic (CurveZMQ), where the installed Jupyter stack offers it.

jupyter_client 8.9 and later give ``KernelManager`` a ``transport_encryption`` policy: with
``auto`` the manager writes CurveZMQ keys into the connection file of every kernel whose
kernelspec declares ``metadata.supported_encryption: ["curve"]`` (ipykernel declares it in its
own kernelspec once it can serve encrypted sockets), and kernel and client encrypt every message.
Older jupyter_client, a pyzmq without libsodium, or a kernelspec that does not declare it: the
traffic stays as before, signed (HMAC) but readable, which the README explains.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ENCRYPTION_DEFAULT", "encryption_policy", "ipykernel_supports_curve"]

ENCRYPTION_DEFAULT = "auto"
_TRAIT = "transport_encryption"


def encryption_policy(kernel_manager_class: type[Any], configured: bool) -> str | None:
    """The ``transport_encryption`` policy to set on the server's kernel managers: ``auto``
    when ``kernel_manager_class`` has that trait, CurveZMQ is available and the user did not
    choose a policy (``configured``); None when nothing is to be set."""
    if configured or not _has_trait(kernel_manager_class):
        return None
    try:
        import zmq
    except ImportError:
        return None
    return ENCRYPTION_DEFAULT if zmq.has("curve") else None


def ipykernel_supports_curve() -> bool:
    """Whether the installed ipykernel declares CurveZMQ support in its own kernelspec."""
    try:
        from ipykernel.kernelspec import get_kernel_dict
    except ImportError:
        return False
    declared = (get_kernel_dict().get("metadata") or {}).get("supported_encryption") or []
    if isinstance(declared, str):
        declared = [declared]
    return "curve" in {str(item).strip().lower() for item in declared}


def _has_trait(cls: type[Any]) -> bool:
    has_trait = getattr(cls, "class_traits", None)
    return callable(has_trait) and _TRAIT in has_trait()
