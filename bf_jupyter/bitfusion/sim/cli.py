"""``bitfusion-sim``: argument handling, help texts and exit codes; the work is in the modules.

The hot path (``run``) imports only what it needs: no argparse, yaml or platformdirs.
Slice flags are parsed by ``GpuSlice.from_client_args``, the one owner of that syntax; this module
only splits off ``--wait`` and the ``--`` before the command.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from bf_jupyter.argv import option_words
from bf_jupyter.bitfusion.sim.errors import EXIT_USAGE, SimError, UsageError
from bf_jupyter.slice import GpuSlice, SliceError
from bf_jupyter.version import __version__

__all__ = ["main", "split_run_args", "split_wait"]

PROG = "bitfusion-sim"
SLICE_FLAGS = "-n N (-p FRACTION | -m MIB) [--filter KEY=VALUE]..."
USAGES = {
    "run": f"run {SLICE_FLAGS} [--wait SECONDS] -- CMD [ARGS...]",
    "request_gpus": f"request_gpus {SLICE_FLAGS} [--wait SECONDS]",
    "release_gpus": "release_gpus [LEASE_ID... | --all]",
    "list_gpus": "list_gpus",
    "smi": "smi",
    "health": "health",
    "reset": "reset [--force]",
}
SUMMARIES = {
    "run": "lease a slice for the life of CMD, run CMD on it, release it when CMD ends",
    "request_gpus": "lease a slice with no command behind it; prints the lease ID on stdout",
    "release_gpus": "release leases taken by request_gpus (the only one there is, by ID, or --all)",
    "list_gpus": "servers, GPUs, free memory and leases (the real client's list_gpus shape)",
    "smi": "the same as a table for people",
    "health": "check configuration, state directory and database; exit 0 when healthy",
    "reset": "move the state database aside (never deleted) and start an empty pool",
}
DETAILS = {
    "run": """\
The command runs as a child (argv, no shell) with the lease in its environment:
  CUDA_VISIBLE_DEVICES   the leased GPU indexes (empty for simulated GPUs)
  BF_GPU_MEMORY_MIB      MiB leased per GPU
  XLA_PYTHON_CLIENT_MEM_FRACTION, TF_FORCE_GPU_ALLOW_GROWTH=true   so frameworks stay in the slice
  BF_SIM_LEASE_ID, BF_SIM_SLICE (e.g. 1x50%), BF_SIM_SERVER, BF_SIM_LEASED_GPUS
INT, TERM, HUP, QUIT, USR1 and USR2 are forwarded to the command; the lease is released however it
ends, and the command is killed if bitfusion-sim is killed. A lease whose bitfusion-sim died is
freed by the next command that touches the pool.
Without --wait a slice that does not fit now fails at once (exit 1, one line: what was asked, what is
free). --wait SECONDS polls for capacity (20 ms backoff doubling to 250 ms) until then.
All GPUs of one slice come from one server; -p F takes F × each GPU's memory, -m MIB takes MIB.""",
    "request_gpus": """\
The lease belongs to no process and is never reaped: give it back with
'bitfusion-sim release_gpus ID' (or reset). Its ID is printed alone on stdout, e.g.
  id=$(bitfusion-sim request_gpus -n 1 -p 0.5) && ... && bitfusion-sim release_gpus "$id\"""",
    "release_gpus": """\
Without an ID, releases the only requested lease (an error when there are several). Leases of
'run' cannot be released here: they end with their command.""",
    "reset": """\
Renames state.db (and its -wal/-shm files) to state.db.<UTC time>.bak in $BF_SIM_HOME and removes
the lease files. Refused while leases are active, unless --force. Use it when the database is
reported corrupt.""",
}
CONFIGURATION = """\
configuration (environment variables override the file):
{environment}
  BF_SIM_DEBUG       set to 1 to get a traceback instead of one line on an internal error

  Pool file (YAML, or JSON when its name ends in .json), every key optional:
    pool: auto          # auto: this machine's GPUs (nvidia-smi) when that works, else virtual
                        # local: nvidia-smi or fail; virtual: the servers below, labelled simulated
    servers: 1          # a count of identical servers, or a list of servers such as
                        #  - hostname: gpu-a              (default sim-<index>)
                        #    address: 10.0.0.1:56001      (default: the hostname)
                        #    cuda_version: "12.4"
                        #    driver_version: "550.54.15"
                        #    has_rdma: true
                        #    gpus: [{{name: Tesla V100-PCIE-16GB, memory: 16160Mi}}]  (or a count)
    gpus: 2             # GPUs per server where a server does not list its own
    gpu_memory: 16Gi    # a quantity; a bare number is MiB
    gpu_name: Simulated GPU 16Gi

  Filters (--filter KEY=VALUE, all must match): server.addr (with or without port), server.hostname,
  server.has-rdma (true/false), server.cuda-version and server.driver-version (12 matches 12.4),
  device.id (GPU index), device.name (part of the name, any case), device.phy-memory (MiB as
  list_gpus shows it, or a quantity such as 16Gi).

exit codes:
  0 success (run: the command's own code, or 128+N when it died of signal N)
  1 runtime failure: the pool cannot serve, the state directory or database is unusable
  2 usage or configuration error
  126, 127 run: the command is not executable, or not found"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``bitfusion-sim`` command and return its exit code (see ``--help``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else ""
    env = os.environ
    try:
        return _dispatch(args, env)
    except SimError as error:
        _write(sys.stderr, f"{PROG} {name}: {' '.join(str(error).split())}\n")
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1  # the reader went away (e.g. `| head`): nothing more to say
    except Exception as error:
        if env.get("BF_SIM_DEBUG"):
            raise
        _write(
            sys.stderr,
            f"{PROG} {name}: internal error {type(error).__name__}: {error} (set BF_SIM_DEBUG=1 for a traceback, and please report it)\n",
        )
        return 1


def _dispatch(args: list[str], env: Mapping[str, str]) -> int:
    if not args or args[0] in {"-h", "--help", "help"}:
        _write(sys.stdout if args else sys.stderr, _overview())
        return 0 if args else EXIT_USAGE
    if args[0] == "--version":
        return _print(f"{PROG} {__version__}\n")
    name, rest = args[0], args[1:]
    handler = _COMMANDS.get(name)
    if handler is None:
        raise UsageError(f"{name!r} is not a command: use {', '.join(USAGES)} (see --help)")
    if _asks_help(name, rest):
        return _print(_command_help(name))
    return handler(rest, env)


def split_run_args(args: Sequence[str]) -> tuple[list[str], float | None, list[str]]:
    """``run``'s arguments → (slice flags, --wait seconds or None, command). Raises ``UsageError``."""
    if "--" not in args:
        raise UsageError(f"'--' is missing before the command: use {PROG} {USAGES['run']}")
    cut = list(args).index("--")
    command = list(args[cut + 1 :])
    if not command:
        raise UsageError(f"no command after '--': use {PROG} {USAGES['run']}")
    flags, wait = split_wait(args[:cut])
    return flags, wait, command


def split_wait(args: Sequence[str]) -> tuple[list[str], float | None]:
    """Take ``--wait SECONDS`` (or ``--wait=SECONDS``) out of ``args``. Raises ``UsageError``."""
    rest: list[str] = []
    wait: float | None = None
    for word in option_words(list(args), {"--wait": True}):
        if word.flag is None:
            rest.extend(word.words)
        elif word.value is None:
            raise UsageError("--wait needs a value: use --wait SECONDS, e.g. --wait 30")
        else:
            wait = _seconds(word.value)
    return rest, wait


def parse_slice(flags: Sequence[str]) -> GpuSlice:
    """The slice of ``-n N (-p F | -m MIB) --filter ...``, via the contract. Raises ``UsageError``."""
    from bf_jupyter.bitfusion.sim.placement import check_filters

    try:
        gpu_slice = GpuSlice.from_client_args(flags)
    except SliceError as error:
        raise UsageError(str(error)) from None
    check_filters(gpu_slice.filters)
    return gpu_slice


# ----- commands ------------------------------------------------------------------------------------


def _run(args: list[str], env: Mapping[str, str]) -> int:
    from bf_jupyter.bitfusion.sim.runner import run_on_slice

    flags, wait, command = split_run_args(args)
    return run_on_slice(parse_slice(flags), command, wait_s=wait, env=env)


def _request_gpus(args: list[str], env: Mapping[str, str]) -> int:
    from bf_jupyter.bitfusion.sim.leasing import request_gpus

    if "--" in args:
        raise UsageError(f"request_gpus takes no command: use {PROG} run ... -- CMD to run one")
    flags, wait = split_wait(args)
    gpu_slice = parse_slice(flags)
    return _with_pool(
        env,
        lambda pool, store: request_gpus(store, pool, gpu_slice, wait_s=wait, stdout=sys.stdout),
    )


def _release_gpus(args: list[str], env: Mapping[str, str]) -> int:
    from bf_jupyter.bitfusion.sim.config import state_home
    from bf_jupyter.bitfusion.sim.leasing import release_gpus
    from bf_jupyter.bitfusion.sim.store import Store

    release_all = "--all" in args
    ids = [a for a in args if a != "--all"]
    if release_all and ids:
        raise UsageError("give lease IDs or --all, not both")
    if any(not a.isdigit() for a in ids):
        bad = next(a for a in ids if not a.isdigit())
        raise UsageError(f"{bad!r} is not a lease ID: use the number list_gpus shows, or --all")
    store = Store.open(state_home(env))
    try:
        return release_gpus(store, [int(a) for a in ids], release_all=release_all)
    finally:
        store.close()


def _list_gpus(args: list[str], env: Mapping[str, str]) -> int:
    from bf_jupyter.bitfusion.sim.reports import render_list_gpus

    _no_arguments("list_gpus", args)
    return _with_pool(
        env, lambda pool, store: _print(render_list_gpus(pool, store.leases(), store.usage()))
    )


def _smi(args: list[str], env: Mapping[str, str]) -> int:
    from bf_jupyter.bitfusion.sim.reports import render_smi

    _no_arguments("smi", args)
    return _with_pool(
        env, lambda pool, store: _print(render_smi(pool, store.leases(), store.usage()))
    )


def _health(args: list[str], env: Mapping[str, str]) -> int:
    from bf_jupyter.bitfusion.sim.health import check_health

    _no_arguments("health", args)
    return check_health(env, sys.stdout)


def _reset(args: list[str], env: Mapping[str, str]) -> int:
    from bf_jupyter.bitfusion.sim.config import state_home
    from bf_jupyter.bitfusion.sim.health import reset_state

    unknown = [a for a in args if a != "--force"]
    if unknown:
        raise UsageError(f"{unknown[0]!r} is not an option of reset: use {PROG} {USAGES['reset']}")
    return reset_state(state_home(env), force="--force" in args, out=sys.stdout)


_COMMANDS: dict[str, Callable[[list[str], Mapping[str, str]], int]] = {
    "run": _run,
    "request_gpus": _request_gpus,
    "release_gpus": _release_gpus,
    "list_gpus": _list_gpus,
    "smi": _smi,
    "health": _health,
    "reset": _reset,
}


# ----- helpers of this module ----------------------------------------------------------------------


def _with_pool(env: Mapping[str, str], action: Callable[..., int]) -> int:
    """Load the pool, open the state (reaping dead holders), run ``action(pool, store)``."""
    from bf_jupyter.bitfusion.sim.config import load_pool, state_home
    from bf_jupyter.bitfusion.sim.store import Store

    home = state_home(env)
    pool = load_pool(env, home)
    store = Store.open(home)
    try:
        store.reap()
        return action(pool, store)
    finally:
        store.close()


def _print(text: str) -> int:
    _write(sys.stdout, text)
    return 0


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


def _no_arguments(name: str, args: list[str]) -> None:
    if args:
        raise UsageError(f"{args[0]!r} is not an argument of {name}: use {PROG} {USAGES[name]}")


def _asks_help(name: str, args: list[str]) -> bool:
    head = args[: args.index("--")] if name == "run" and "--" in args else args
    return any(a in {"-h", "--help"} for a in head)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--wait {text} is not a number of seconds: use 0 or more, e.g. --wait 30")
    return value


def _overview() -> str:
    from bf_jupyter.bitfusion.sim.config import environment_help

    commands = "\n".join(f"  {USAGES[n]}\n      {SUMMARIES[n]}" for n in USAGES)
    return (
        f"usage: {PROG} COMMAND [ARGS...]\n\n"
        f"{PROG} {__version__}: the embedded stand-in for the VMware Bitfusion client. It accepts the\n"
        "real client's syntax and keeps a real pool: leases in SQLite, GPUs from nvidia-smi when there\n"
        "are any, else a virtual pool that every listing labels simulated.\n\n"
        f"commands:\n{commands}\n\nRun '{PROG} COMMAND --help' for one command.\n\n"
        + CONFIGURATION.format(environment=environment_help())
        + "\n"
    )


def _command_help(name: str) -> str:
    from bf_jupyter.bitfusion.sim.config import environment_help

    details = f"\n{DETAILS[name]}\n" if name in DETAILS else ""
    return (
        f"usage: {PROG} {USAGES[name]}\n\n{SUMMARIES[name][0].upper()}{SUMMARIES[name][1:]}.\n"
        f"{details}\n" + CONFIGURATION.format(environment=environment_help()) + "\n"
    )
