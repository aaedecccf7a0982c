"""Kubernetes resource quantities (``8Gi``, ``8000Mi``, ``1.5G``, ``500m``) as exact numbers.

Pure and dependency-free so that the slice contract can use it; the ``kubernetes`` client's own
parser returns floats through ``Decimal`` and lives behind a heavy import.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["MIB", "QuantityError", "format_bytes", "parse_quantity"]

MIB = 1 << 20

_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exponent>[+-]?\d+))?$"
)
# Render with the largest unit that keeps the value exact; binary units first (memory).
_RENDER_UNITS = [
    ("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20),
    ("Ki", 1 << 10), ("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6),
    ("k", 10**3),
]  # fmt: skip


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(value: str | int) -> Fraction:
    """Return the exact value of a Kubernetes quantity such as ``8Gi``, ``1.5G``, ``500m`` or ``1e3``.

    Raises ``QuantityError`` for anything else (including booleans and floats, which the Kubernetes
    API never returns and which would hide rounding).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if value.isascii() and value.isdigit():  # the common case, "1" or "50": no regex, no parsing
        return Fraction(int(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise QuantityError(f"{value!r} is not a quantity")
    number = Fraction(match["number"])
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > 30:
            raise QuantityError(f"{value!r} has an exponent beyond ±30")
        return number * Fraction(10) ** exponent
    suffix = match["suffix"] or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def format_bytes(count: int) -> str:
    """Render a byte count as the shortest exact quantity: ``8589934592`` → ``8Gi``, ``8e9`` → ``8G``."""
    if count <= 0:
        return str(count)
    for suffix, unit in _RENDER_UNITS:
        if count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)
