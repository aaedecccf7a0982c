"""A stand-in for ``bitfusion-sim`` until it lands: ``run`` leases (a file per lease), runs the
command with the lease in its environment, forwards SIGINT/SIGTERM, and releases on every exit;
``list_gpus`` shows the leases; ``smi`` prints a line. Used only when the real simulator is absent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

GPUS = 2


def main() -> int:
    home = Path(os.environ["BF_FAKE_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    args = sys.argv[1:]
    if args[:1] == ["list_gpus"]:
        print(" - server 0 [127.0.0.1:56001]: running 0 tasks (simulated)")
        for gpu in range(GPUS):
            print(f"   |- GPU {gpu}: free memory 16384 MiB / 16384 MiB (Simulated GPU 16Gi)")
        for lease in sorted(home.glob("lease-*")):
            print(
                f"   |- lease {lease.name[6:]}: {lease.read_text()} on GPUs [0] held by pid 1 (x) since 2026-01-01T00:00:00Z"
            )
        return 0
    if args[:1] == ["smi"]:
        print("GPU 0  Simulated GPU 16Gi  0 MiB / 16384 MiB")
        return 0
    if args[:1] != ["run"] or "--" not in args:
        print("fake: usage: run -n N -p F -- CMD", file=sys.stderr)
        return 2
    options, command = args[1 : args.index("--")], args[args.index("--") + 1 :]
    amount = int(options[options.index("-n") + 1])
    if amount > GPUS:
        print(
            f"[ERROR] 2026-01-01T00:00:00Z none of the servers has {amount} GPUs", file=sys.stderr
        )
        return 1
    lease = home / f"lease-{os.getpid()}"
    lease.write_text(f"{amount} GPUs")
    try:
        print(
            f"[INFO] 2026-01-01T00:00:00Z Locked {amount} GPUs with partial memory 0.5, configuration saved to '/tmp/x'",
            file=sys.stderr,
            flush=True,
        )
        env = dict(
            os.environ, BF_SIM_SLICE=os.environ.get("BF_SLICE", ""), BF_GPU_MEMORY_MIB="8192"
        )
        child = subprocess.Popen(command, env=env, start_new_session=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda s, f: os.killpg(child.pid, s))
        code = child.wait()
        return code if code >= 0 else 128 - code
    finally:
        lease.unlink()
        print("[INFO] 2026-01-01T00:00:01Z Released GPUs on 1 servers", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
