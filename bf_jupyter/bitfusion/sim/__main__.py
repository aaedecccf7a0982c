"""``python -m bf_jupyter.bitfusion.sim`` is ``bitfusion-sim`` (the adapter's fallback when the
script is not installed on PATH)."""

import sys

from bf_jupyter.bitfusion.sim.cli import main

sys.exit(main())
