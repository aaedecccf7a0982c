"""A scriptable stand-in for the ``bitfusion`` client: a real executable whose pool a test edits.

The script prints ``list_gpus`` and ``health`` in the shapes ``bf_jupyter.bitfusion.records``
parses, from a JSON state file beside it, so tests can resize the pool, make ``health`` fail or make
``list_gpus`` fail between two probes, and count how often each command ran. Point the adapter at
it with ``BF_BITFUSION_BIN=<client.path>`` (``client.env()``). Only ``list_gpus``, ``health`` and
``smi`` are understood; anything else exits 2.

    client = FakeBitfusionClient(tmp_path, servers=[2])   # one server with two GPUs
    client.set_pool([2, 4])                               # a second server with four GPUs joins
    client.set_health(False)                              # `health` now reports a failed check
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["FakeBitfusionClient"]

_SCRIPT = """\
#!{python} -IS
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
command = sys.argv[1] if len(sys.argv) > 1 else ""
with open(os.path.join(here, "calls.log"), "a") as log:
    log.write(command + "\\n")
def load():
    with open(os.path.join(here, "state.json")) as f:
        return json.load(f)
state = load()
while command == "list_gpus" and state["listing_blocked"]:
    time.sleep(0.01)
    state = load()
servers = [("10.0.0.%d:56001" % (i + 1), gpus) for i, gpus in enumerate(state["servers"])]
if command == "list_gpus":
    if state["listing_error"]:
        print(state["listing_error"], file=sys.stderr)
        sys.exit(1)
    for index, (address, gpus) in enumerate(servers):
        print(" - server %d [%s]: running 0 tasks" % (index, address))
        for gpu in range(gpus):
            print("   |- GPU %d: free memory %d MiB / %d MiB (Fake GPU)" % (gpu, state["memory"], state["memory"]))
elif command == "health":
    verdict = "OK" if state["healthy"] else "FAIL"
    for address, _ in servers:
        print("server %s reachable: %s" % (address, verdict))
    sys.exit(0 if state["healthy"] else 1)
elif command == "smi":
    print("fake smi")
else:
    print("fake bitfusion: unknown command %r" % command, file=sys.stderr)
    sys.exit(2)
"""


class FakeBitfusionClient:
    """An executable ``bitfusion`` stand-in in ``directory`` (which it owns), driven by its methods."""

    def __init__(
        self, directory: Path, *, servers: Sequence[int] = (2,), gpu_memory_mib: int = 16384
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / "bitfusion"
        self._state: dict[str, object] = {
            "servers": list(servers),
            "memory": gpu_memory_mib,
            "healthy": True,
            "listing_error": None,
            "listing_blocked": False,
        }
        self._save()
        self.path.write_text(_SCRIPT.format(python=sys.executable))
        self.path.chmod(0o755)

    def env(self) -> dict[str, str]:
        """The environment that makes ``resolve_client`` pick this client."""
        return {**os.environ, "BF_BITFUSION_BIN": str(self.path)}

    def set_pool(self, servers: Sequence[int]) -> None:
        """The pool becomes ``len(servers)`` servers with ``servers[i]`` GPUs each."""
        self._update(servers=list(servers))

    def set_health(self, healthy: bool) -> None:
        """``health`` passes (exit 0, every check OK) or fails (exit 1, every check FAIL)."""
        self._update(healthy=healthy)

    def fail_listing(self, message: str | None = "none of the servers responded correctly") -> None:
        """``list_gpus`` exits 1 printing ``message``; None makes it answer again."""
        self._update(listing_error=message)

    def block_listing(self, blocked: bool = True) -> None:
        """``list_gpus`` hangs (a slow or unreachable server) until called with False."""
        self._update(listing_blocked=blocked)

    def calls(self, command: str) -> int:
        """How many times ``command`` ran so far."""
        log = self.directory / "calls.log"
        if not log.exists():
            return 0
        return log.read_text().splitlines().count(command)

    def _update(self, **changes: object) -> None:
        self._state.update(changes)
        self._save()

    def _save(self) -> None:
        # Atomic: a probe running right now reads either the old state or the new one.
        partial = self.directory / "state.json.partial"
        partial.write_text(json.dumps(self._state))
        partial.replace(self.directory / "state.json")
