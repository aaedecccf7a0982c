"""``python -m bf_jupyter`` is ``bf-jupyter``."""

import sys

from bf_jupyter.cli import main

sys.exit(main())
