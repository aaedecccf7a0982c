"""Kubernetes' rules for names and label values, in one place. Pure: no I/O, no client.

A label value is at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends; a DNS label (names
of namespaces, pods, jobs) at most 63 lowercase letters, digits and ``-``, alphanumeric at both ends.
"""

from __future__ import annotations

import re

__all__ = ["MAX_LABEL_LENGTH", "is_dns_label", "label_value"]

MAX_LABEL_LENGTH = 63
_NOT_IN_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def label_value(text: str) -> str:
    """``text`` as a valid label value: other characters become ``-``, cut to 63 characters,
    alphanumeric at both ends; ``unknown`` when nothing is left."""
    cleaned = _NOT_IN_LABEL_VALUE.sub("-", text)[:MAX_LABEL_LENGTH].strip("-_.")
    return cleaned or "unknown"


def is_dns_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 label (what a namespace, pod or job name must be)."""
    return len(name) <= MAX_LABEL_LENGTH and _DNS_LABEL.match(name) is not None
