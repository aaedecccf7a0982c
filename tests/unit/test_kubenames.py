"""Kubernetes' naming rules: one owner for label values and DNS labels."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bf_jupyter.kubenames import is_dns_label, label_value

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def test_label_values_keep_what_is_allowed_and_replace_the_rest() -> None:
    assert label_value("ada@example.org") == "ada-example.org"
    assert label_value("---") == "unknown"
    assert len(label_value("u" * 100)) == 63


@given(st.text())
def test_a_label_value_is_valid_for_any_input(text: str) -> None:
    value = label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value)


def test_dns_labels_are_lowercase_alphanumeric_with_inner_dashes_up_to_63() -> None:
    assert is_dns_label("train-1")
    assert is_dns_label("a" * 63)
    assert not is_dns_label("a" * 64)
    assert not is_dns_label("Train_1")
    assert not is_dns_label("-train")
    assert not is_dns_label("")
