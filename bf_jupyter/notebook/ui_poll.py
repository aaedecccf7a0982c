"""Front-end messages for one widget while the kernel's main thread is busy running a cell.

While ``model.fit()`` blocks the cell, ipykernel does not read the shell channel, so the click on a
widget's Stop button (a ``comm_msg``) waits until training is over — too late. ``KernelEventPump``
is called between batches (at most every 100 ms) and reads, without blocking, the messages waiting
for the main shell: messages for its own comm are handled at once; every other message (a queued
cell, a completion request, other widgets) is handed back to ipykernel's own receive callback in
the order it arrived, exactly where the kernel would have put it had it read the socket itself, so
it runs after the cell as usual. The approach is the one of ``jupyter_ui_poll``, narrowed to one
comm so that no other code runs in the middle of the user's cell.

This depends on ipykernel internals, named in ``_main_shell_stream``: with ipykernel ≥ 7 the shell
channel thread forwards main-shell messages over an in-process socket pair; before that the main
thread reads the shell socket itself. When neither is found (another kernel, an embedded shell) the
pump is unavailable and the widget says that Stop needs a kernel interrupt instead.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

__all__ = ["KernelEventPump"]

_log = logging.getLogger(__name__)


class KernelEventPump:
    """Handles the pending front-end messages of one comm from inside a running cell."""

    def __init__(self, kernel: Any, stream: Any, comm: Any) -> None:
        self._kernel = kernel
        self._stream = stream
        self._comm = comm

    @classmethod
    def for_comm(cls, comm: Any) -> KernelEventPump | None:
        """A pump for ``comm`` in the current IPython kernel, or None when there is none."""
        kernel = _current_kernel()
        if kernel is None or comm is None or getattr(kernel, "session", None) is None:
            return None
        stream = _main_shell_stream(kernel)
        if stream is None or getattr(stream, "_recv_callback", None) is None:
            return None
        return cls(kernel, stream, comm)

    def poll(self) -> int:
        """Handle what is waiting for this comm now; returns how many of its messages ran.

        Only the main thread may read the main shell's socket; elsewhere this does nothing (and the
        kernel, whose main thread is then free, handles the messages itself).
        """
        if threading.current_thread() is not threading.main_thread():
            return 0
        import zmq

        socket = getattr(self._stream, "socket", None)
        if socket is None or socket.closed:
            return 0
        handled = 0
        while True:
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            except zmq.ZMQError:
                _log.debug("shell socket unreadable while polling", exc_info=True)
                break
            message = self._own_message(frames)
            if message is None:
                self._hand_back(frames)
                continue
            try:
                self._comm.handle_msg(message)
            except Exception:
                _log.exception("widget message handler failed")
            handled += 1
        return handled

    def _own_message(self, frames: list[Any]) -> dict[str, Any] | None:
        """The deserialized message when it is a ``comm_msg`` for our comm, else None (untouched:
        peeking at the header does not record its signature, so the kernel can still accept it)."""
        session = self._kernel.session
        try:
            _, parts = session.feed_identities(frames, copy=False)
            peek = session.deserialize(parts, content=False, copy=False)
            if peek["header"].get("msg_type") != "comm_msg":
                return None
            content = session.unpack(peek["content"])
            if content.get("comm_id") != self._comm.comm_id:
                return None
            message: dict[str, Any] = session.deserialize(parts, content=True, copy=False)
        except Exception:
            return None
        return message

    def _hand_back(self, frames: list[Any]) -> None:
        """Give a message to ipykernel's own receive callback, as if its stream had read it."""
        stream = self._stream
        try:
            stream._run_callback(stream._recv_callback, frames)
        except Exception:
            _log.exception("could not hand a shell message back to the kernel")


def _current_kernel() -> Any | None:
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return getattr(shell, "kernel", None) if shell is not None else None


def _main_shell_stream(kernel: Any) -> Any | None:
    """The ZMQStream from which the kernel's main thread receives shell messages."""
    channel_thread = getattr(kernel, "shell_channel_thread", None)
    if channel_thread is not None:  # ipykernel >= 7
        try:
            return channel_thread.manager.get_shell_channel_to_subshell_pair(None).to_stream
        except Exception:
            return None
    return getattr(kernel, "shell_stream", None)  # ipykernel 6
