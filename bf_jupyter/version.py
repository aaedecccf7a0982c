"""The package's version: one place, imported by the ground floor without loading anything else.

``pyproject.toml`` reads it from here (hatch's version source), so the wheel and the code agree.
"""

__version__ = "0.1.0"
