"""The Bitfusion client adapter: which client to use, its ``run`` argv, and its reports as records.

Resolution order: ``$BF_BITFUSION_BIN``, else a real ``bitfusion`` on PATH, else the embedded
``bitfusion-sim``. Commands are always argv lists, never shell strings. Calls are blocking; async
callers wrap them in ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bf_jupyter.bitfusion.records import HealthReport, PoolListing, parse_health, parse_list_gpus

if TYPE_CHECKING:
    from bf_jupyter.slice import GpuSlice

__all__ = [
    "CLIENT_ENV",
    "BitfusionClient",
    "BitfusionClientError",
    "pool_report",
    "resolve_client",
]

CLIENT_ENV = "BF_BITFUSION_BIN"
REAL_CLIENT = "bitfusion"
SIM_CLIENT = "bitfusion-sim"
_SIM_MODULE = "bf_jupyter.bitfusion.sim"
ClientSource = Literal["environment", "path", "embedded"]


class BitfusionClientError(RuntimeError):
    """The client could not be found or a client command failed; the message says which and why."""


@dataclass(frozen=True)
class BitfusionClient:
    """A resolved Bitfusion client: ``argv`` is the command prefix (one path, or the interpreter and
    module of the embedded simulator when its script is not on PATH)."""

    argv: tuple[str, ...]
    source: ClientSource
    simulated: bool

    @property
    def name(self) -> str:
        return SIM_CLIENT if self.argv[-1] == _SIM_MODULE else Path(self.argv[0]).name

    def describe(self) -> str:
        """For people: ``bitfusion-sim (embedded, simulated pool)`` or ``/usr/bin/bitfusion (PATH)``."""
        where = {"environment": f"from ${CLIENT_ENV}", "path": "on PATH", "embedded": "embedded"}[
            self.source
        ]
        kind = "simulator" if self.simulated else "Bitfusion client"
        return f"{' '.join(self.argv)} ({kind}, {where})"

    def to_dict(self) -> dict[str, object]:
        """JSON-able: what ``bf-jupyter pool --json`` and the server extension report."""
        return {
            "name": self.name,
            "argv": list(self.argv),
            "source": self.source,
            "simulator": self.simulated,
            "description": self.describe(),
        }

    def run_argv(
        self, gpu_slice: GpuSlice, command: Sequence[str], *, wait_seconds: float | None = None
    ) -> list[str]:
        """``[client, "run", -n N, -p F | -m MIB, --filter..., [--wait S], "--", *command]``."""
        if not command:
            raise BitfusionClientError("run needs a command after '--'")
        wait = ["--wait", _seconds(wait_seconds)] if wait_seconds is not None else []
        return [*self.argv, "run", *gpu_slice.client_args(), *wait, "--", *command]

    def list_gpus(self, *, timeout: float = 15) -> PoolListing:
        """The pool as ``list_gpus`` reports it. Raises ``BitfusionClientError`` when the command fails."""
        result = self._call(["list_gpus"], timeout=timeout)
        if result.returncode != 0:
            raise BitfusionClientError(_failure("list_gpus", result))
        return parse_list_gpus(result.stdout)

    def smi(self, *, timeout: float = 15) -> str:
        """``smi`` output, as text for people. Raises ``BitfusionClientError`` when the command fails."""
        result = self._call(["smi"], timeout=timeout)
        if result.returncode != 0:
            raise BitfusionClientError(_failure("smi", result))
        return result.stdout

    def health(self, *, timeout: float = 15) -> HealthReport:
        """``health`` as a report; a failing command is an unhealthy report, not an exception."""
        try:
            result = self._call(["health"], timeout=timeout)
        except BitfusionClientError as error:
            return HealthReport(False, (), str(error))
        return parse_health(result.stdout + result.stderr, result.returncode)

    def _call(self, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        argv = [*self.argv, *args]
        try:
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            raise BitfusionClientError(f"Bitfusion client {self.argv[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise BitfusionClientError(
                f"'{self.name} {args[0]}' did not answer within {timeout:g} s"
            ) from None


def resolve_client(env: Mapping[str, str] | None = None) -> BitfusionClient:
    """Find the client: ``$BF_BITFUSION_BIN``, else ``bitfusion`` on PATH, else ``bitfusion-sim``.

    Raises ``BitfusionClientError`` when ``$BF_BITFUSION_BIN`` names something that cannot run.
    """
    env = os.environ if env is None else env
    path = env.get("PATH", os.defpath)
    configured = env.get(CLIENT_ENV, "").strip()
    if configured:
        found = shutil.which(configured, path=path)
        if found is None:
            raise BitfusionClientError(
                f"${CLIENT_ENV}={configured} is not an executable file: point it at the bitfusion client, or unset it"
            )
        return BitfusionClient((found,), "environment", Path(found).name == SIM_CLIENT)
    real = shutil.which(REAL_CLIENT, path=path)
    if real is not None:
        return BitfusionClient((real,), "path", False)
    sim = shutil.which(SIM_CLIENT, path=path) or _sibling_script(SIM_CLIENT)
    if sim is not None:
        return BitfusionClient((sim,), "embedded", True)
    return BitfusionClient((sys.executable, "-m", _SIM_MODULE), "embedded", True)


def pool_report(client: BitfusionClient, listing: PoolListing) -> dict[str, object]:
    """``{"client": …, "pool": …}``: what ``bf-jupyter pool --json`` prints and the server
    extension serves (JSON-able)."""
    return {"client": client.to_dict(), "pool": listing.to_dict()}


def _sibling_script(name: str) -> str | None:
    """The script installed beside this interpreter (a venv that is not on PATH)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _seconds(value: float) -> str:
    if value < 0:
        raise BitfusionClientError(f"--wait {value:g} is negative: use 0 or more seconds")
    return f"{value:g}"


def _failure(command: str, result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    reason = lines[-1].strip() if lines else "no output"
    return f"'{command}' failed with exit code {result.returncode}: {reason}"
