"""Errors of the REST API: an HTTP status, one sentence for people, and the request field at fault.

Managers raise ``ApiError``; the handlers' base class renders it as ``{"message", "field"?}``, the
body jupyter_server's own API uses (plus ``field``), so the sidebar shows ``message`` as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado import web

if TYPE_CHECKING:
    from bf_jupyter.slice import SliceError

__all__ = ["ApiError", "BackendUnavailable", "from_slice_error"]


class ApiError(web.HTTPError):
    """A refusal with ``status``, a ``message`` naming what and why, and optionally the ``field``."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        # log_message is %-formatted by tornado when args are given; we give none, so escape nothing.
        super().__init__(status, message.replace("%", "%%"))
        self.message = message
        self.field = field


class BackendUnavailable(ApiError):
    """The pool or the Kubernetes API could not be reached (503); the message says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


def from_slice_error(error: SliceError, *, field: str = "slice") -> ApiError:
    """A 400 for a slice the contract refused; ``field`` is the request field that carried it."""
    return ApiError(400, str(error), field=field)
