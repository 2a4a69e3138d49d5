"""The list scheduler's core step against its definition, written out by brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpusched.solver.greedy import earliest_start


def _by_definition(free: list[int], gpus: int, first: int, slots: int) -> int | None:
    """The first s >= first with `gpus` free in every slot of [s, s + slots) inside the horizon."""
    n = len(free)
    for s in range(first, n):
        if all(free[t] >= gpus for t in range(s, min(s + slots, n))):
            return s
    return None


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=30),
    st.integers(0, 6),
    st.integers(0, 32),
    st.integers(1, 40),
)
def test_earliest_start_is_the_first_start_whose_clipped_run_is_free(
    free: list[int], gpus: int, first: int, slots: int
) -> None:
    assert earliest_start(np.asarray(free, dtype=np.int64), gpus, first, slots) == _by_definition(
        free, gpus, first, slots
    )
