"""Run at start-up of every Python process of a capped lease (``bf_jupyter.gpucaps``): install
the framework caps, then the ``sitecustomize`` this one hides, if there is one."""

import importlib.util
import sys
from pathlib import Path


def _install_caps() -> None:
    try:
        from bf_jupyter.gpucaps.hooks import install
    except ImportError:  # a Python without bf-jupyter (another venv run by the lease): no caps
        return
    install()


def _chain() -> None:
    here = str(Path(__file__).parent)
    for entry in sys.path:
        if entry == here or not entry:
            continue
        candidate = Path(entry) / "sitecustomize.py"
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("_bf_chained_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_install_caps()
_chain()
