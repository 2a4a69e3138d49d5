"""What plan() reports while it searches: the stage, the incumbent, the proven bound, the gap.

A callback, not a log: the CLI draws it live on a terminal, an operator could export it; the
planner neither knows nor waits for what is done with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    stage: str
    """The stage that just ended: greedy, lp, colgen, an alpha-point rounding, support-milp, milp,
    done."""
    incumbent: float | None
    """The objective of the best plan so far (type level: before node packing, except at done)."""
    bound: float | None
    """The best proven lower bound so far (None before one is proven)."""
    gap: float | None
    """(incumbent - bound) / |incumbent|, as the plan reports it; None without a bound."""
    elapsed: float
    """Seconds since plan() started."""

    @classmethod
    def of(cls, stage: str, incumbent: float | None, bound: float | None, elapsed: float) -> Progress:
        gap = None
        if incumbent is not None and bound is not None:
            gap = 0.0 if incumbent <= bound + 1e-9 else (incumbent - bound) / max(abs(incumbent), 1e-9)
        return cls(stage, incumbent, bound, gap, elapsed)


ProgressCallback = Callable[[Progress], None]
