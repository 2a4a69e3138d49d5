"""gpusched.backoff: the one exponential backoff of the retry loops (kube calls, informers, connect)."""

from __future__ import annotations

import pytest

from gpusched.backoff import Backoff


def test_doubles_to_the_cap_and_resets() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert b.delay == 3.0
    b.reset()
    assert b.delay == 0.5 and b.next() == 0.5


def test_jitter_spreads_each_wait_between_half_and_one_and_a_half() -> None:
    draws = iter([0.0, 0.999, 0.5])
    b = Backoff(1.0, 10.0, jitter=True, rng=lambda: next(draws))
    assert b.next() == 0.5  # 1.0 x 0.5
    assert b.next() == pytest.approx(2.0 * 1.499)
    assert b.next() == 4.0  # 4.0 x 1.0
    assert b.delay == 8.0  # the un-jittered schedule is unchanged by jitter


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_refuses_a_schedule_that_would_spin_or_shrink(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base, cap)
