"""The shortcuts the admission hot path takes in the slice contract give the same answers as the
general code they skip."""

from __future__ import annotations

import re
import shlex
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from bf_jupyter.quantity import parse_quantity
from bf_jupyter.slice import _split


@settings(max_examples=500, derandomize=True, database=None)
@given(st.text(alphabet=" \t\r\n\x0b\x0c\xa0\u2003ab=.-_", max_size=16))
def test_splitting_without_quotes_matches_shlex(text: str) -> None:
    assert _split(text) == shlex.split(text)


@settings(max_examples=300, derandomize=True, database=None)
@given(st.from_regex(re.compile(r"[0-9]{1,20}"), fullmatch=True))
def test_plain_digits_parse_like_any_quantity(digits: str) -> None:
    assert parse_quantity(digits) == Fraction(int(digits)) == parse_quantity(digits + "e0")
