"""The in-pod kernel launcher: ``python -m bf_jupyter.kernels.launcher``.

It is the kernel container's ``command`` (so the webhook wraps it in ``bitfusion run``) and starts
an IPython kernel in this process, bound to the pod's own address on the fixed ports the provisioner
chose, signing messages with the key from the kernel's Secret, with the ``%bitfusion`` magic loaded.

Inputs, none of them secret in the pod spec:
- ``$BF_KERNEL_KEY`` (or ``--key-env NAME``): the HMAC key, from a ``secretKeyRef``; removed from the
  environment before the kernel starts, so subprocesses of user code do not inherit it;
- ``$BF_KERNEL_CURVE_SECRETKEY``/``$BF_KERNEL_CURVE_PUBLICKEY`` when the server asked for
  encrypted channels (CurveZMQ): from the same Secret, removed the same way;
- ``--ip`` or ``$BF_KERNEL_IP``: the address to bind, from the Downward API (``status.podIP``);
- ``--ports shell=P,iopub=P,stdin=P,control=P,hb=P`` and ``--signature-scheme``.

The kernel answers the server's GPU meter (``bf_gpu_request``) on its control channel
(``gpu_report``): the server cannot see the pod's processes, and no port is added.

SIGTERM (pod deletion) stops the kernel cleanly, interrupting a running cell, and exits 0 so the
Bitfusion client around it releases the slice at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["PORT_NAMES", "format_ports", "main", "parse_ports"]

PORT_NAMES = ("shell", "iopub", "stdin", "control", "hb")
KEY_ENV = "BF_KERNEL_KEY"
IP_ENV = "BF_KERNEL_IP"
CURVE_ENV = {
    "curve_secretkey": "BF_KERNEL_CURVE_SECRETKEY",
    "curve_publickey": "BF_KERNEL_CURVE_PUBLICKEY",
}
EXTENSION = "bf_jupyter"


class LaunchError(Exception):
    """The launcher cannot start the kernel; the message says which input is wrong."""


def format_ports(ports: dict[str, int]) -> str:
    """``shell=52700,iopub=52701,...`` for ``--ports``."""
    return ",".join(f"{name}={ports[name]}" for name in PORT_NAMES)


def parse_ports(text: str) -> dict[str, int]:
    """Read ``--ports``; every channel must be named once with a port 1–65535."""
    ports: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in PORT_NAMES or not value.isdigit() or not 0 < int(value) < 65536:
            raise LaunchError(
                f"--ports item {item!r} is not CHANNEL=PORT: use {format_ports(_EXAMPLE)}"
            )
        ports[name] = int(value)
    missing = [name for name in PORT_NAMES if name not in ports]
    if missing:
        raise LaunchError(f"--ports lacks {', '.join(missing)}: use {format_ports(_EXAMPLE)}")
    return ports


_EXAMPLE = {name: 52700 + i for i, name in enumerate(PORT_NAMES)}


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bf_jupyter.kernels.launcher",
        description="Start an IPython kernel on this pod's address (bf-jupyter kernel pods).",
    )
    parser.add_argument("--ip", default=None, help=f"address to bind (default ${IP_ENV})")
    parser.add_argument("--ports", default=format_ports(_EXAMPLE), help="CHANNEL=PORT,...")
    parser.add_argument("--signature-scheme", default="hmac-sha256")
    parser.add_argument("--key-env", default=KEY_ENV, help="variable holding the HMAC key")
    parser.add_argument(
        "--no-extension", action="store_true", help="do not load the %%bitfusion magic"
    )
    return parser.parse_args(argv)


def connection_file_content(
    options: argparse.Namespace, environ: dict[str, str] | os._Environ[str]
) -> dict[str, Any]:
    """The connection info for ipykernel; takes the key out of ``environ``. Raises LaunchError."""
    key = environ.pop(options.key_env, "")
    if not key:
        raise LaunchError(
            f"${options.key_env} is empty: the kernel's key comes from its Secret (secretKeyRef)"
        )
    ip = options.ip or environ.get(IP_ENV, "")
    if not ip:
        raise LaunchError(f"no address to bind: pass --ip or set ${IP_ENV} (status.podIP)")
    curve = {field: environ.pop(name, "") for field, name in CURVE_ENV.items()}
    if any(curve.values()) and not all(curve.values()):
        raise LaunchError("encrypted channels need both CurveZMQ keys from the kernel's Secret")
    return {
        "ip": ip,
        "transport": "tcp",
        "key": key,
        "signature_scheme": options.signature_scheme,
        **{f"{name}_port": port for name, port in parse_ports(options.ports).items()},
        **(curve if all(curve.values()) else {}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = _arguments(argv)
    try:
        content = connection_file_content(options, os.environ)
        if "curve_secretkey" in content:
            _require_curve_support()
    except LaunchError as error:
        print(f"bf-jupyter launcher: {error}", file=sys.stderr, flush=True)
        return 2
    private = Path(tempfile.mkdtemp(prefix="bf-kernel-"))  # mode 0700: the file holds the key
    connection_file = private / "kernel.json"
    connection_file.write_text(json.dumps(content))
    connection_file.chmod(0o600)
    try:
        return _run_kernel(connection_file, load_extension=not options.no_extension)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _require_curve_support() -> None:
    """Refuse to serve in plain text when encryption was asked for and this ipykernel cannot."""
    from ipykernel.kernelapp import IPKernelApp

    if not IPKernelApp.class_traits().get("curve_secretkey"):
        raise LaunchError(
            "encrypted channels were asked for but this image's ipykernel has no CurveZMQ "
            "support: install ipykernel 7.2 or later in the kernel image"
        )


def _run_kernel(connection_file: Path, *, load_extension: bool) -> int:
    from ipykernel.kernelapp import IPKernelApp
    from traitlets.config import Config

    config = Config()
    config.IPKernelApp.connection_file = str(connection_file)
    if load_extension:
        config.InteractiveShellApp.extensions = [EXTENSION]
    app: Any = IPKernelApp.instance(config=config)
    app.initialize([])
    # The server cannot see a pod's processes: the kernel reports its GPU use itself, on the
    # control channel the server already talks to (also with --no-extension).
    from bf_jupyter.kernels.gpu_report import install_gpu_report

    install_gpu_report(app.kernel)
    # The kernel has read (and rewritten) its connection file and bound its sockets: the file,
    # which holds the key, is not needed any more, and a SIGKILL must not leave it behind.
    shutil.rmtree(connection_file.parent, ignore_errors=True)
    stopping: list[int] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if stopping:
            return
        stopping.append(signum)
        print("bf-jupyter launcher: SIGTERM, stopping the kernel", file=sys.__stderr__, flush=True)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        # Ends a running cell (as an interrupt would) or the loop's wait, whichever is under way.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    print(
        f"bf-jupyter launcher: kernel listening on {app.ip} "
        f"(shell {app.shell_port}, pid {os.getpid()})",
        file=sys.__stderr__,
        flush=True,
    )
    try:
        app.start()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
