"""This machine's GPUs, from ``nvidia-smi``, for a real local pool (one server, not simulated).

``nvidia-smi`` can take a second when the driver is not kept loaded, and it runs on every
``bitfusion-sim`` start, so its answer is cached in ``$BF_SIM_HOME/local-gpus.json`` under a key that
changes when the GPUs or the driver do (boot id, the GPUs the driver lists in /proc, driver version).
Where that key cannot be read (no /proc/driver/nvidia), nothing is cached.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bf_jupyter.bitfusion.sim.placement import Gpu, Pool, Server
from bf_jupyter.bitfusion.sim.processes import find_program

__all__ = ["QUERY", "LocalGpusUnavailable", "local_pool", "parse_query"]

QUERY = ("--query-gpu=index,name,memory.total", "--format=csv,noheader")
CACHE_NAME = "local-gpus.json"
_TIMEOUT_S = 20
_DRIVER = Path("/proc/driver/nvidia")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class LocalGpusUnavailable(Exception):
    """``nvidia-smi`` is missing, failed or reported no GPUs; the message says which."""


def local_pool(home: Path) -> Pool:
    """This machine as one server with its GPUs. Raises ``LocalGpusUnavailable``."""
    gpus = _cached(home) or _query_and_cache(home)
    hostname = os.uname().nodename or "localhost"
    server = Server(0, hostname, hostname, gpus)
    return Pool((server,), simulated=False, source="this machine's GPUs (nvidia-smi)")


def parse_query(text: str) -> tuple[Gpu, ...]:
    """Parse ``nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader`` lines such as
    ``0, NVIDIA H100 80GB HBM3, 81559 MiB``. Raises ``LocalGpusUnavailable`` on anything else."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        memory = fields[-1].removesuffix("MiB").strip() if len(fields) >= 3 else ""
        if not fields[0].isdigit() or not memory.isdigit():
            raise LocalGpusUnavailable(
                f"nvidia-smi printed {line.strip()!r}, not 'INDEX, NAME, MiB'"
            )
        gpus.append(Gpu(int(fields[0]), ", ".join(fields[1:-1]), int(memory)))
    if not gpus:
        raise LocalGpusUnavailable("nvidia-smi reports no GPUs")
    return tuple(gpus)


def _query() -> tuple[Gpu, ...]:
    program = find_program("nvidia-smi")
    if program is None:
        raise LocalGpusUnavailable("nvidia-smi is not on PATH")
    try:
        result = subprocess.run(
            [program, *QUERY],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LocalGpusUnavailable(f"nvidia-smi did not answer ({error})") from None
    if result.returncode != 0:
        said = " ".join((result.stderr or result.stdout).split())[:200] or "no output"
        raise LocalGpusUnavailable(f"nvidia-smi failed with exit code {result.returncode}: {said}")
    return parse_query(result.stdout)


def _cache_key() -> str | None:
    try:
        boot = _BOOT_ID.read_text(encoding="ascii").strip()
        devices = sorted(p.name for p in (_DRIVER / "gpus").iterdir())
        driver = (_DRIVER / "version").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return json.dumps([boot, devices, driver, find_program("nvidia-smi")])


def _cached(home: Path) -> tuple[Gpu, ...] | None:
    key = _cache_key()
    if key is None:
        return None
    try:
        data = json.loads((home / CACHE_NAME).read_text(encoding="utf-8"))
        if data["key"] != key:
            return None
        return tuple(Gpu(int(i), str(name), int(mib)) for i, name, mib in data["gpus"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or one from another version: ask nvidia-smi


def _query_and_cache(home: Path) -> tuple[Gpu, ...]:
    gpus = _query()
    key = _cache_key()
    if key is not None:
        payload = json.dumps({"key": key, "gpus": [[g.index, g.name, g.memory_mib] for g in gpus]})
        temporary = home / f".{CACHE_NAME}.{os.getpid()}"
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary.write_text(payload, encoding="utf-8")
            temporary.replace(home / CACHE_NAME)
        except OSError:
            temporary.unlink(missing_ok=True)  # the cache is an optimisation: never fail for it
    return gpus
