"""Fixtures of the notebook side, shared by the unit and integration tests (a plugin of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def shell() -> Iterator[Any]:
    """An IPython shell (no kernel, so curves print as epoch lines) with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "bf_jupyter")
    yield ipython
    ipython.run_line_magic("unload_ext", "bf_jupyter")
    InteractiveShell.clear_instance()
