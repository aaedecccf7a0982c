"""The ``%bitfusion`` magic (being built: see issue 7); registers an overview for now."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    def bitfusion(line: str = "") -> None:
        print(
            "%bitfusion: GPU slices for this kernel. Subcommands arrive with the magic's release."
        )

    ipython.register_magic_function(bitfusion, "line", "bitfusion")
