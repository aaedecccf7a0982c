"""Bitfusion: network-attached GPUs, a whole-percent or memory share of each, through the webhook.

A slice becomes the contract's ``bitfusion.io/gpu-*`` resource keys (and its filters the
``bitfusion-client/filter`` annotation) on a pod that asks the webhook to manage it
(``auto-management/bitfusion: all``); the webhook wraps the command in ``bitfusion run`` and turns
the keys into ``bitfusion.io/gpu`` quota units (1 unit = 1 % of one GPU), which the bf device
plugin advertises on the nodes. This is the project's original behaviour, moved behind the
interface unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from bf_jupyter.backends.base import (
    FORM_FILTERS,
    FORM_MEMORY,
    FORM_PERCENT,
    FORM_WHOLE,
    NO_OFFER,
    Charge,
    GpuBackend,
    Isolation,
    Json,
    Offer,
    Pool,
    Rendering,
    node_resources,
)
from bf_jupyter.backends.refusals import refuse, refuse_unless
from bf_jupyter.contract import (
    ANNOTATION_FILTER,
    ANNOTATION_MANAGEMENT,
    QUOTA_RESOURCE,
    UNITS_PER_GPU,
    ManagementMode,
)
from bf_jupyter.slice import BITFUSION_FILTER_KEYS, GpuSlice

__all__ = ["BitfusionBackend"]

QUOTA_KEYS = (f"requests.{QUOTA_RESOURCE}", QUOTA_RESOURCE)


class BitfusionBackend(GpuBackend):
    name = "bitfusion"
    title = "Bitfusion"
    forms = frozenset({FORM_WHOLE, FORM_PERCENT, FORM_MEMORY, FORM_FILTERS})
    isolation = Isolation(
        "remote GPU, memory share",
        "The GPU is reached over the network and the Bitfusion server caps each client's GPU "
        "memory at its share; compute is shared.",
    )

    def check(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> None:
        refuse_unless(self, gpu_slice)
        for term in gpu_slice.filters:
            if term.negated or term.key not in BITFUSION_FILTER_KEYS:
                raise refuse(
                    "filter",
                    str(term),
                    "is not a Bitfusion filter",
                    "use KEY=VALUE with " + ", ".join(sorted(BITFUSION_FILTER_KEYS)),
                )

    def render(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> Rendering:
        self.check(gpu_slice, offer)
        annotations = {ANNOTATION_MANAGEMENT: ManagementMode.ALL.value}
        if gpu_slice.filters:
            annotations[ANNOTATION_FILTER] = gpu_slice.filter_annotation()
        return Rendering(limits=gpu_slice.to_resources(), annotations=annotations)

    def price(self, gpu_slice: GpuSlice, offer: Offer = NO_OFFER) -> tuple[Charge, ...]:
        self.check(gpu_slice, offer)
        units = gpu_slice.quota_units(offer.per_gpu_memory_bytes)
        return (
            Charge(
                QUOTA_RESOURCE,
                units,
                f"1 unit = 1/{UNITS_PER_GPU} of a GPU",
                QUOTA_KEYS,
                "the Kubernetes API server (ResourceQuota), on the units the webhook writes",
            ),
        )

    def quota_keys(self) -> tuple[str, ...]:
        return QUOTA_KEYS

    def read_pool(self, nodes: Iterable[Json], pods: Iterable[Json] | None) -> Pool:
        return Pool(self.name, resources=node_resources(nodes, pods, [QUOTA_RESOURCE]))
