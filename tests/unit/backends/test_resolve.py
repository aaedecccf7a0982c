"""``resolve``: the slice a launch hands to a provisioner renders the same without the pool."""

from __future__ import annotations

import pytest
from hypothesis import given

from bf_jupyter.backends import BACKEND_NAMES, SliceRefused, get_backend
from bf_jupyter.backends.base import NO_OFFER, GpuBackend, Offer
from bf_jupyter.slice import GpuSlice, SliceError
from tests.unit.backends.strategies import MIG_PROFILES, any_slices

OFFER = Offer(per_gpu_memory_bytes=80 << 30, mig_profiles=MIG_PROFILES)


@pytest.mark.parametrize("name", BACKEND_NAMES)
@given(gpu_slice=any_slices)
def test_a_resolved_slice_renders_and_prices_as_the_slice_did_on_the_offer(
    name: str, gpu_slice: GpuSlice
) -> None:
    backend = get_backend(name)
    try:
        resolved = backend.resolve(gpu_slice, OFFER)
    except SliceRefused:
        with pytest.raises(SliceRefused):
            backend.render(gpu_slice, OFFER)
        return
    assert GpuSlice.parse(resolved.to_text()) == resolved
    offer_free = Offer(per_gpu_memory_bytes=OFFER.per_gpu_memory_bytes)
    assert backend.render(resolved, offer_free) == backend.render(gpu_slice, OFFER)
    assert _price_or_error(backend, resolved, offer_free) == _price_or_error(
        backend, gpu_slice, OFFER
    )


def _price_or_error(backend: GpuBackend, gpu_slice: GpuSlice, offer: Offer) -> object:
    """The charges, or the error's text where the slice cannot be priced (e.g. more memory than
    one GPU has): both slices must then be refused in the same words."""
    try:
        return backend.price(gpu_slice, offer)
    except SliceError as error:
        return str(error)


def test_nvidia_resolves_a_memory_slice_to_the_smallest_mig_profile_that_holds_it() -> None:
    resolved = get_backend("nvidia").resolve(GpuSlice.parse("1x10Gi"), OFFER)
    assert resolved.to_text() == "1xmig-1g.10gb"
    assert get_backend("nvidia").render(resolved, NO_OFFER).limits == {
        "nvidia.com/mig-1g.10gb": "1"
    }


def test_hami_keeps_the_slice_it_is_given() -> None:
    gpu_slice = GpuSlice.parse("1x8Gi cores=30")
    assert get_backend("hami").resolve(gpu_slice) is gpu_slice


def test_dra_consumable_capacity_resolves_a_percent_to_the_memory_it_takes() -> None:
    backend = get_backend("dra-consumable-capacity")
    resolved = backend.resolve(GpuSlice.parse("1x25%"), OFFER)
    assert resolved.to_text() == "1x20Gi cores=25"
    assert backend.render(resolved, NO_OFFER) == backend.render(GpuSlice.parse("1x25%"), OFFER)
