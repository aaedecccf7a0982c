"""Hypothesis strategies for slices of every form, shared by the backend tests."""

from __future__ import annotations

from hypothesis import strategies as st

from bf_jupyter.quantity import MIB
from bf_jupyter.slice import FILTER_KEYS, MAX_AMOUNT, Filter, GpuSlice

MIG_PROFILES = ("mig-1g.5gb", "mig-1g.10gb", "mig-2g.20gb", "mig-3g.40gb", "mig-7g.80gb")

filters = st.lists(
    st.builds(
        Filter,
        st.sampled_from(sorted(FILTER_KEYS)),
        st.text("abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=12),
        st.booleans(),
    ),
    max_size=3,
).map(tuple)
cores = st.none() | st.integers(1, 100)
amounts = st.integers(1, MAX_AMOUNT)
percent_slices = st.builds(
    lambda a, p, c, f: GpuSlice(a, p, filters=f, cores=c),
    amounts,
    st.integers(1, 100),
    cores,
    filters,
)
memory_slices = st.builds(
    lambda a, mib, c, f: GpuSlice(a, memory_bytes=mib * MIB, filters=f, cores=c),
    amounts,
    st.integers(1, 96 * 1024),
    cores,
    filters,
)
mig_slices = st.builds(
    lambda a, p, f: GpuSlice(a, mig_profile=p, filters=f),
    amounts,
    st.sampled_from(MIG_PROFILES),
    filters,
)
shared_slices = st.builds(lambda a, f: GpuSlice(a, shared=True, filters=f), amounts, filters)
any_slices = percent_slices | memory_slices | mig_slices | shared_slices
