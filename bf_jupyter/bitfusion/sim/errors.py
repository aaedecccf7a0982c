"""What can go wrong in ``bitfusion-sim``, each with the exit code the command ends with.

Every failure the simulator reports is one of these, printed as ONE line without a traceback:
2 for usage and configuration (the caller can fix the invocation), 1 for runtime failures (the pool
cannot serve, the state directory or database is unusable).
"""

from __future__ import annotations

__all__ = [
    "EXIT_NOT_EXECUTABLE",
    "EXIT_NOT_FOUND",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "CannotServe",
    "CommandNotStarted",
    "SimError",
    "UsageError",
]

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126  # as shells report a command that cannot run
EXIT_NOT_FOUND = 127


class SimError(Exception):
    """A runtime failure (exit code 1); the message is one line that says what to do."""

    exit_code = EXIT_RUNTIME


class UsageError(SimError):
    """Bad arguments or configuration (exit code 2)."""

    exit_code = EXIT_USAGE


class CannotServe(SimError):
    """The pool cannot serve the slice. ``permanent`` when it never could, even with every GPU free
    (too many GPUs asked of one server, more memory than a GPU has, filters that match nothing)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class CommandNotStarted(SimError):
    """The command of ``run`` could not be started (exit 127 when missing, 126 when not executable)."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
