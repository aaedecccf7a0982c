"""Where the simulator keeps its state and which pool it serves, from the environment and a file.

Resolution, each step documented in ``bitfusion-sim --help``:

* state directory: ``$BF_SIM_HOME``, else the user data directory of bf-jupyter + ``/sim``;
* configuration file: ``$BF_SIM_CONFIG``, else ``$BF_SIM_HOME/pool.yaml`` (or ``pool.json``) if present;
* pool: ``BF_SIM_POOL`` / ``pool:`` = ``auto`` (this machine's GPUs from ``nvidia-smi`` when that
  works, else the virtual pool), ``local`` (``nvidia-smi`` or fail) or ``virtual``;
* virtual pool: the file's ``servers``, ``gpus``, ``gpu_memory``, ``gpu_name``, each overridden by
  ``BF_SIM_SERVERS``, ``BF_SIM_GPUS``, ``BF_SIM_GPU_MEMORY``, ``BF_SIM_GPU_NAME``; default one
  server with 2 × 16 GiB GPUs.

Heavy or rarely needed modules (yaml, platformdirs) load only when used: this runs on every
``bitfusion-sim`` start.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from bf_jupyter.bitfusion.sim.errors import SimError, UsageError
from bf_jupyter.bitfusion.sim.placement import Gpu, Pool, Server
from bf_jupyter.quantity import MIB, QuantityError, format_bytes, parse_quantity
from bf_jupyter.slice import MAX_AMOUNT

__all__ = [
    "DEFAULT_GPUS",
    "DEFAULT_GPU_MEMORY_MIB",
    "ENV_VARS",
    "POOL_MODES",
    "config_file",
    "environment_help",
    "load_pool",
    "state_home",
]

POOL_MODES = ("auto", "local", "virtual")
DEFAULT_SERVERS = 1
DEFAULT_GPUS = 2
DEFAULT_GPU_MEMORY_MIB = 16 * 1024
# Environment variable → what it sets (shown by --help).
ENV_VARS = {
    "BF_SIM_HOME": "state directory (SQLite database, lease files), local to one machine since leases belong to its processes; default ~/.local/share/bf-jupyter/sim",
    "BF_SIM_CONFIG": "pool configuration file (YAML or JSON); default $BF_SIM_HOME/pool.yaml if present",
    "BF_SIM_POOL": "auto (nvidia-smi, else virtual) | local (nvidia-smi or fail) | virtual",
    "BF_SIM_SERVERS": f"number of virtual servers (default {DEFAULT_SERVERS})",
    "BF_SIM_GPUS": f"GPUs per virtual server (default {DEFAULT_GPUS})",
    "BF_SIM_GPU_MEMORY": "memory of each virtual GPU, a quantity such as 16Gi or 40000Mi (default 16Gi)",
    "BF_SIM_GPU_NAME": "name of each virtual GPU (default 'Simulated GPU <memory>')",
}
_FILE_KEYS = ("pool", "servers", "gpus", "gpu_memory", "gpu_name")
_SERVER_KEYS = (
    "address",
    "hostname",
    "gpus",
    "gpu_memory",
    "gpu_name",
    "cuda_version",
    "driver_version",
    "has_rdma",
)
_GPU_KEYS = ("name", "memory")
_SHAPE_VARS = ("BF_SIM_SERVERS", "BF_SIM_GPUS", "BF_SIM_GPU_MEMORY", "BF_SIM_GPU_NAME")
_ON_LINUX = sys.platform.startswith("linux")
_FAKE_CUDA, _FAKE_DRIVER = "12.4", "550.54.15"


def state_home(env: Mapping[str, str]) -> Path:
    """``$BF_SIM_HOME``, else the platform's user data directory for bf-jupyter, subdirectory ``sim``."""
    configured = env.get("BF_SIM_HOME", "").strip()
    if configured:
        return Path(configured).expanduser()
    if _ON_LINUX:
        # What platformdirs answers on Linux, without its import cost on every start.
        base = env.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
        return Path(base) / "bf-jupyter" / "sim"
    import platformdirs

    return Path(platformdirs.user_data_dir("bf-jupyter", appauthor=False)) / "sim"


def config_file(env: Mapping[str, str], home: Path) -> Path | None:
    """The configuration file in use, or None. Raises ``UsageError`` if ``$BF_SIM_CONFIG`` is missing."""
    configured = env.get("BF_SIM_CONFIG", "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise UsageError(
                f"BF_SIM_CONFIG={configured} is not a file: point it at a pool.yaml, or unset it"
            )
        return path
    for name in ("pool.yaml", "pool.yml", "pool.json"):
        if (home / name).is_file():
            return home / name
    return None


def load_pool(env: Mapping[str, str], home: Path) -> Pool:
    """The pool to serve. Raises ``UsageError`` for a bad setting (naming it, the value and what is
    accepted) and ``SimError`` when ``local`` was asked for and ``nvidia-smi`` does not work."""
    path = config_file(env, home)
    settings = _read_file(path) if path else {}
    mode = _mode(env, settings, path)
    fallback = ""
    if mode in {"auto", "local"}:
        from bf_jupyter.bitfusion.sim.discovery import LocalGpusUnavailable, local_pool

        try:
            return local_pool(home)
        except LocalGpusUnavailable as reason:
            if mode == "local":
                raise SimError(
                    f"BF_SIM_POOL=local but {reason}: install the NVIDIA driver, or use BF_SIM_POOL=virtual"
                ) from None
            fallback = str(reason)  # said in every listing: why this pool is simulated
    return _virtual_pool(env, settings, path, fallback=fallback)


def _mode(env: Mapping[str, str], settings: Mapping[str, object], path: Path | None) -> str:
    if env.get("BF_SIM_POOL", "").strip():
        where, value = "BF_SIM_POOL", env["BF_SIM_POOL"].strip()
    else:
        where, value = f"{path}: pool", str(settings.get("pool", "auto"))
    if value not in POOL_MODES:
        raise UsageError(f"{where} {value!r} is not a pool mode: use {', '.join(POOL_MODES)}")
    return value


def _read_file(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the pool configuration {path}: {error}") from None
    if path.suffix == ".json":
        import json

        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as error:
            raise UsageError(f"{path} is not valid JSON: {error}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            where = " ".join(str(error).split())
            raise UsageError(f"{path} is not valid YAML: {where}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{path} holds {type(data).__name__}, not a mapping: use keys {', '.join(_FILE_KEYS)}"
        )
    _refuse_unknown(data, _FILE_KEYS, str(path))
    return data


def _virtual_pool(
    env: Mapping[str, str], settings: Mapping[str, object], path: Path | None, *, fallback: str
) -> Pool:
    where = str(path) if path else "defaults"
    gpus = _count(*_setting(env, settings, "BF_SIM_GPUS", "gpus", path), default=DEFAULT_GPUS)
    memory = _memory(*_setting(env, settings, "BF_SIM_GPU_MEMORY", "gpu_memory", path))
    name = _text(*_setting(env, settings, "BF_SIM_GPU_NAME", "gpu_name", path))
    source, servers_value = _setting(env, settings, "BF_SIM_SERVERS", "servers", path)
    if isinstance(servers_value, list):
        servers = tuple(
            _server(
                index,
                entry,
                where=f"{source}[{index}]",
                default_gpus=gpus,
                default_memory=memory,
                default_name=name,
            )
            for index, entry in enumerate(servers_value)
        )
        if not servers:
            raise UsageError(
                f"{source} is an empty list: list at least one server, or give a count"
            )
    else:
        count = _count(source, servers_value, default=DEFAULT_SERVERS)
        servers = tuple(
            _server(
                i,
                {},
                where=f"server {i}",
                default_gpus=gpus,
                default_memory=memory,
                default_name=name,
            )
            for i in range(count)
        )
    overridden = [var for var in _SHAPE_VARS if env.get(var, "").strip()]
    if overridden:
        where += " + " + ", ".join(overridden)
    if fallback:
        where += f"; {fallback}"
    return Pool(servers, simulated=True, source=f"virtual pool ({where})")


def _setting(
    env: Mapping[str, str], settings: Mapping[str, object], var: str, key: str, path: Path | None
) -> tuple[str, object]:
    """(where the value came from, value): the environment variable wins over the file's key."""
    if env.get(var, "").strip():
        return var, env[var].strip()
    return f"{path}: {key}", settings.get(key)


def _server(
    index: int,
    entry: object,
    *,
    where: str,
    default_gpus: int,
    default_memory: int | None,
    default_name: str | None,
) -> Server:
    if not isinstance(entry, dict):
        raise UsageError(f"{where} is not a mapping: use keys {', '.join(_SERVER_KEYS)}")
    _refuse_unknown(entry, _SERVER_KEYS, where)
    memory = _memory(f"{where}.gpu_memory", entry.get("gpu_memory")) or default_memory
    name = _text(f"{where}.gpu_name", entry.get("gpu_name")) or default_name
    listed = entry.get("gpus")
    if isinstance(listed, list):
        gpus = tuple(_gpu(i, g, f"{where}.gpus[{i}]", memory, name) for i, g in enumerate(listed))
        if not gpus:
            raise UsageError(
                f"{where}.gpus is an empty list: list at least one GPU, or give a count"
            )
    else:
        count = _count(f"{where}.gpus", listed, default=default_gpus)
        gpus = tuple(_gpu(i, {}, f"{where}.gpus[{i}]", memory, name) for i in range(count))
    hostname = _text(f"{where}.hostname", entry.get("hostname")) or f"sim-{index}"
    return Server(
        index=index,
        address=_text(f"{where}.address", entry.get("address")) or hostname,
        hostname=hostname,
        gpus=gpus,
        cuda_version=_text(f"{where}.cuda_version", entry.get("cuda_version")) or _FAKE_CUDA,
        driver_version=_text(f"{where}.driver_version", entry.get("driver_version"))
        or _FAKE_DRIVER,
        has_rdma=_flag(f"{where}.has_rdma", entry.get("has_rdma")),
    )


def _gpu(index: int, entry: object, where: str, memory: int | None, name: str | None) -> Gpu:
    if not isinstance(entry, dict):
        raise UsageError(f"{where} is not a mapping: use keys {', '.join(_GPU_KEYS)}")
    _refuse_unknown(entry, _GPU_KEYS, where)
    mib = _memory(f"{where}.memory", entry.get("memory")) or memory or DEFAULT_GPU_MEMORY_MIB
    label = (
        _text(f"{where}.name", entry.get("name"))
        or name
        or f"Simulated GPU {format_bytes(mib * MIB)}"
    )
    return Gpu(index, label, mib)


def _refuse_unknown(data: Mapping[object, object], known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            raise UsageError(f"{where}: {key!r} is not a setting: use {', '.join(known)}")


def _count(where: str, value: object, *, default: int) -> int:
    if value is None:
        return default
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_AMOUNT:
        raise UsageError(f"{where} {value!r} is not a count: use a whole number 1–{MAX_AMOUNT}")
    return int(text)


def _memory(where: str, value: object) -> int | None:
    """A memory quantity (``16Gi``, ``40000Mi``; a bare number is MiB) → whole MiB."""
    if value is None:
        return None
    accepted = "use a quantity such as 16Gi or 40000Mi (a bare number is MiB)"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UsageError(f"{where} {value!r} is not a memory size: {accepted}")
    text = str(value).strip()
    try:
        number = parse_quantity(int(text) * MIB if text.isdigit() else text)
    except QuantityError:
        raise UsageError(f"{where} {value!r} is not a memory size: {accepted}") from None
    mib = int(number // MIB)
    if mib < 1:
        raise UsageError(f"{where} {value!r} is less than 1 MiB: {accepted}")
    return mib


def _text(where: str, value: object) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str | int | float)
        or isinstance(value, bool)
        or not str(value).strip()
    ):
        raise UsageError(f"{where} {value!r} is not a text value: use a non-empty string")
    return str(value).strip()


def _flag(where: str, value: object) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise UsageError(f"{where} {value!r} is not true or false")


def environment_help() -> str:
    """The environment variables, one per line, for ``--help``."""
    return "\n".join(f"  {name:<18} {meaning}" for name, meaning in ENV_VARS.items())
