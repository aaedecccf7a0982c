"""Start the Bitfusion client of a local kernel so that it stops when the notebook server dies.

A plain local kernel notices a dead server by itself (ipykernel watches its parent process). A kernel
under ``bitfusion run`` cannot: its parent is the client, which would live on, holding the GPU slice,
after a server that was killed (SIGKILL, out of memory, Ctrl-C without a terminal). So the
``bitfusion-local`` provisioner starts the client through this module, which asks Linux to send it
SIGTERM when the server exits (``PR_SET_PDEATHSIG``, kept across ``exec``), checks that the server
has not exited already, and then becomes the client (``exec``): no process is added. The client
forwards SIGTERM to the kernel and releases the slice once the kernel has ended.

    python -m bf_jupyter.kernels.exit_with_server SERVER_PID -- bitfusion run -n 1 -p 0.5 -- KERNEL...

Exit codes when it cannot become the command: 1 the server has exited, 2 usage, 126/127 the
command cannot be run / is not found. Elsewhere than on Linux it only runs the command.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["guarded_argv", "main"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def guarded_argv(command: Sequence[str], *, python: str = sys.executable) -> list[str]:
    """``command`` started through this module on behalf of this process (the server)."""
    return [python, "-m", __name__, str(os.getpid()), "--", *command]


def main(argv: Sequence[str] | None = None) -> int:
    """Become ``COMMAND`` (does not return) or return an exit code saying why it could not."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or not args[0].isdigit() or args[1] != "--":
        print("usage: python -m bf_jupyter.kernels.exit_with_server SERVER_PID -- COMMAND...",
              file=sys.stderr)  # fmt: skip
        return 2
    server_pid, command = int(args[0]), args[2:]
    _stop_when_parent_exits(signal.SIGTERM)
    # Checked after asking: a server that died in between would otherwise never send the signal.
    if os.getppid() != server_pid:
        print(f"the notebook server (pid {server_pid}) has exited: not starting the kernel",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"{command[0]}: {error.strerror or error}", file=sys.stderr)
        return 127 if isinstance(error, FileNotFoundError) else 126


def _stop_when_parent_exits(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        # Not fatal: the kernel still runs, it only outlives a server that is killed.
        errno = ctypes.get_errno()
        print(f"exit_with_server: prctl failed ({os.strerror(errno)})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
