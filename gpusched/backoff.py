"""Exponential backoff, the one used by every retry loop (API calls, watches, waiting for the API server).

Not tenacity: tenacity wraps one call, but these loops wait on a stop event, re-list a cache or check a
give-up deadline between attempts; a delay object they ask for the next wait keeps that logic in the
loop where it can be read, and keeps the doubling, the cap and the jitter in one place.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """base, 2 x base, 4 x base, ... capped at `cap`; with jitter each wait is 0.5x-1.5x of that.

    Jitter spreads the retries of many clients that failed together (a restarted API server).
    """

    def __init__(
        self, base: float, cap: float, jitter: bool = False, rng: Callable[[], float] = random.random
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base}, cap={cap}")
        self.base, self.cap, self.jitter, self._rng = base, cap, jitter, rng
        self._delay = base

    @property
    def delay(self) -> float:
        """The next wait before jitter (what a deadline check should expect)."""
        return self._delay

    def next(self) -> float:
        """The wait to do now; the one after it doubles, up to the cap."""
        wait = self._delay * (0.5 + self._rng()) if self.jitter else self._delay
        self._delay = min(self.cap, self._delay * 2)
        return wait

    def reset(self) -> None:
        """After a success: the next failure waits `base` again."""
        self._delay = self.base
