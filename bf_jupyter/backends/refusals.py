"""Refusing a slice a backend cannot honour: one sentence naming the field, the value and what
this backend can do instead. The one place that decides which form of a slice is "used"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bf_jupyter.backends.base import (
    FORM_CORES,
    FORM_FILTERS,
    FORM_MEMORY,
    FORM_MIG,
    FORM_PERCENT,
    FORM_SHARED,
    FORM_WHOLE,
    SliceForm,
    SliceRefused,
)

if TYPE_CHECKING:
    from bf_jupyter.backends.base import GpuBackend
    from bf_jupyter.slice import GpuSlice

__all__ = ["refuse", "refuse_unless", "slice_forms"]

# What to offer instead, per form a backend lacks: the nearest forms it may have, in order.
_FORM_EXAMPLES: dict[SliceForm, str] = {
    FORM_WHOLE: "whole GPUs such as 1",
    FORM_PERCENT: "a percent such as 1x50%",
    FORM_MEMORY: "a memory share such as 1x8Gi",
    FORM_MIG: "a MIG profile such as mig-1g.10gb",
    FORM_SHARED: "one shared replica, 1xshared",
}
_FIELD: dict[SliceForm, str] = {
    FORM_WHOLE: "gpu-amount",
    FORM_PERCENT: "gpu-percent",
    FORM_MEMORY: "gpu-memory",
    FORM_CORES: "cores",
    FORM_MIG: "mig-profile",
    FORM_SHARED: "shared",
    FORM_FILTERS: "filter",
}


def slice_forms(gpu_slice: GpuSlice) -> set[SliceForm]:
    """The forms ``gpu_slice`` uses: its share (whole, percent, memory, mig or shared), plus
    ``cores`` and ``filters`` when present."""
    kind = gpu_slice.kind
    forms: set[SliceForm] = {FORM_WHOLE if kind == "percent" and gpu_slice.percent == 100 else kind}
    if gpu_slice.cores is not None:
        forms.add(FORM_CORES)
    if gpu_slice.filters:
        forms.add(FORM_FILTERS)
    return forms


def alternatives(backend: GpuBackend) -> str:
    """What this backend honours, as the end of a refusal: "ask for … or …"."""
    offered = [text for form, text in _FORM_EXAMPLES.items() if form in backend.forms]
    if len(offered) > 1:
        return "ask for " + ", ".join(offered[:-1]) + " or " + offered[-1]
    return "ask for " + (offered[0] if offered else "another backend")


def refuse(field: str, value: str, problem: str, instead: str) -> SliceRefused:
    """A refusal to raise: ``<field> <value> <problem>: <instead>``."""
    return SliceRefused(field, value, problem, instead)


def refuse_unless(backend: GpuBackend, gpu_slice: GpuSlice) -> None:
    """Raise ``SliceRefused`` for the first form of ``gpu_slice`` that ``backend`` lacks."""
    missing = sorted(slice_forms(gpu_slice) - backend.forms)
    if not missing:
        return
    form = missing[0]
    value = {
        FORM_WHOLE: f"{gpu_slice.amount} (whole GPUs)",
        FORM_CORES: f"cores={gpu_slice.cores}",
        FORM_FILTERS: gpu_slice.filter_annotation(),
    }.get(form, gpu_slice.share_text())
    if form == FORM_CORES:
        instead = f"drop cores=, or use the hami backend; {alternatives(backend)}"
    elif form == FORM_FILTERS:
        instead = "drop the filters"
    else:
        instead = alternatives(backend)
    raise refuse(_FIELD[form], value, f"cannot be honoured by {backend.title}", instead)
