"""One deadline for a whole plan, and how long each kind of work actually takes on this run.

A planner inside an operator shares its node: a stage budget computed from rates measured on a
quiet machine overruns as soon as a neighbour takes half the cores (issue #10: 15 s for a 5 s
limit). So every stage of `plan()` asks this object, not a constant, whether it fits:

- one monotonic deadline (`left()`), threaded through the greedy portfolio, the LP, the column
  generation rounds, the MILP, and kept clear of the time the final packing needs (`reserve`);
- each kind of work has a seconds-per-unit figure that is *measured on this run* as soon as a stage
  of that kind has run (`stage(..., kind, work)`); until then the quiet-machine reference is scaled
  by the slow-down the stages measured so far show against their own references, so the first list
  schedule (milliseconds at S, seconds at L) already tells the LP how slow the machine is today;
- solver time limits are the time actually left less the measured overhead of the solver's
  process (reading the model, writing the answer), and a solver still running at the deadline is
  killed, not waited for.

The clock is injectable: `ScaledClock` makes every real second count `factor` seconds, the model of
a machine `factor` times slower, under which the tests check that stages are shrunk or skipped and
the deadline holds without measuring wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

REFERENCE_SECONDS: dict[str, float] = {
    # One list-scheduling step, per job and type option (portfolio, rounding: 0.04 s at M, about
    # 0.6 s at L on the quiet 2-core machine before the policies cached their per-job constants,
    # which halved it; measured beside pack/bound/pool so that their ratios agree).
    "list": 1.5e-5,
    # Building, writing and relaxing the slot model, per start column (20,000 a second at M).
    "lp_column": 5e-5,
    "bucket_column": 6.7e-5,
    # Column generation, per start of the model it prices (56,000 starts: 1-1.5 s at M).
    "colgen_column": 2e-5,
    # Building column generation's pool of starts as arrays, per start (about 0.8 s at L quiet:
    # one policy pass per job and option). These references were set side by side in one
    # process (load 11): each kind ran 2.5-3.5x its figure there, as the list schedule did.
    "pool_column": 1e-6,
    # What a CBC process spends outside its own clock (reading the model, presolve, writing the
    # solution), per column of the model, on top of SOLVER_START.
    "solver_overhead": 2.5e-5,
    # Building a start-time model in Python and writing it out, per column (MILP stages).
    "build_column": 4e-5,
    # Node packing of the whole horizon, per job x sqrt(nodes) (0.08 s at M, 2.1 s at L).
    "pack": 2e-5,
    # The capacity-free bound, per start column (as arrays).
    "bound": 1e-6,
    # The plan's per-job records and utilisation, per job.
    "finish": 3.5e-5,
}
"""Quiet-machine seconds per unit of work: a prior only, replaced by what this run measures."""
SOLVER_START = 0.15
"""Seconds to start a solver process and read back its answer, whatever the model's size."""
MIN_SLOWDOWN, MAX_SLOWDOWN = 0.25, 100.0
MIN_TIMED_SECONDS = 0.02
CALIBRATING = frozenset({"list", "pack", "bound", "finish", "build_column", "pool_column"})
"""Kinds of work done in this process, whose rate says how fast the machine is; a solver stage's
rate on a small model is mostly its process's start, not the machine's speed."""
RESERVE_MARGIN = 1.3
"""The reserved work runs last and cannot be cut short: it is kept with this margin, since the
load can rise between the stage that measured the rate and the end (at L under a busy neighbour
the packing alone is 15 s, and the limit's 5 % is 3 s)."""


class ScaledClock:
    """A clock on which every real second counts `factor` seconds: a machine `factor` times slower.

    Solvers keep real time, so the limits handed to them are divided by the same factor
    (`Budget.solver_seconds`)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._origin = time.perf_counter()

    def __call__(self) -> float:
        return (time.perf_counter() - self._origin) * self.factor


@dataclass
class StageRecord:
    name: str
    seconds: float
    kind: str | None = None
    work: float = 0.0


@dataclass
class Budget:
    """The time limit of one plan() as a deadline, and the measured cost of its kinds of work."""

    limit: float
    clock: Callable[[], float] = time.perf_counter
    started: float = field(init=False)
    deadline: float = field(init=False)
    reserved: float = 0.0
    """Seconds kept at the end for the stages that must run whatever happens (the final
    bookkeeping): the search stages see `left()` without them, nor the reserved work below."""
    reserved_work: dict[str, float] = field(default_factory=dict)
    """Work kept for the end (the node packing, the capacity-free bound), in units of its kind:
    estimated afresh at every `left()`, so the reserve grows as soon as the machine is measured
    slower."""
    measured: dict[str, float] = field(default_factory=dict)
    """Seconds per unit of each kind of work, as measured on this run (the latest stage's)."""
    stages: list[StageRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    timed: set[str] = field(default_factory=set)
    """Kinds whose latest measurement was long enough to say how fast the machine is."""
    """Stages not run (or cut short) because the time left could not hold them."""

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.deadline = self.started + self.limit

    # ---------------------------------------------------------------------------------- time left

    def now(self) -> float:
        return self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        """Seconds the search stages may still use (the reserve excluded)."""
        return self.deadline - self.reserve_seconds() - self.clock()

    def reserve_seconds(self) -> float:
        work = sum(self.estimate(k, w) for k, w in self.reserved_work.items())
        return self.reserved + RESERVE_MARGIN * work

    def total_left(self) -> float:
        return self.deadline - self.clock()

    def reserve(self, seconds: float, **work: float) -> None:
        """Keep `seconds`, and the given work (kind=units) at its measured rate, for the end."""
        self.reserved = max(0.0, seconds)
        self.reserved_work = dict(work)

    # ----------------------------------------------------------------------------- rates and fit

    def slowdown(self) -> float:
        """How much slower than the quiet reference this run's measured work went (the latest
        measurement of each kind; the slowest of them), 1 before anything was measured. Stages
        shorter than MIN_TIMED_SECONDS do not count: their time is fixed overhead and clock
        noise, not a rate (a 4-job list schedule read as a machine 100 times slower)."""
        ratios = [self.measured[k] / REFERENCE_SECONDS[k] for k in self.timed if k in CALIBRATING]
        if not ratios:
            return 1.0
        return min(MAX_SLOWDOWN, max(MIN_SLOWDOWN, max(ratios)))

    def seconds_per(self, kind: str) -> float:
        if kind in self.measured:
            return self.measured[kind]
        return REFERENCE_SECONDS[kind] * self.slowdown()

    def estimate(self, kind: str, work: float) -> float:
        return work * self.seconds_per(kind)

    def fits(self, kind: str, work: float, share: float = 1.0) -> bool:
        """Whether `work` units of `kind` fit in `share` of the time left."""
        return self.estimate(kind, work) <= share * self.left()

    def affordable(self, kind: str, seconds: float, share: float = 1.0) -> float:
        """How many units of `kind` fit in min(seconds, share x the time left)."""
        return max(0.0, min(seconds, share * self.left())) / self.seconds_per(kind)

    def observe(self, kind: str, work: float, seconds: float) -> None:
        if work > 0 and seconds > 0:
            self.measured[kind] = seconds / work
            if seconds >= MIN_TIMED_SECONDS:
                self.timed.add(kind)
            else:
                self.timed.discard(kind)

    @contextmanager
    def stage(self, name: str, kind: str | None = None, work: float = 0.0) -> Iterator[None]:
        """Time a stage; with a kind and its amount of work, that kind's rate is measured from it."""
        t0 = self.clock()
        try:
            yield
        finally:
            seconds = self.clock() - t0
            self.stages.append(StageRecord(name, seconds, kind, work))
            if kind is not None:
                self.observe(kind, work, seconds)

    def skip(self, name: str) -> None:
        self.skipped.append(name)

    # ---------------------------------------------------------------------------------- solvers

    def solver_seconds(self, seconds: float) -> float:
        """Seconds of this budget's clock as seconds of a solver's own (wall) clock."""
        return seconds / getattr(self.clock, "factor", 1.0)

    def solver_overhead(self, columns: int) -> float:
        """Seconds a solver process of `columns` columns spends outside its own time limit."""
        return SOLVER_START * self.slowdown() + self.estimate("solver_overhead", columns)

    def solver_limit(self, columns: int, share: float = 1.0) -> float:
        """The time limit to hand a solver of `columns` columns now: its share of the time left,
        less its measured overhead (never negative: 0 means do not start it)."""
        return max(0.0, share * self.left() - self.solver_overhead(columns))

    def solver_fits(self, kind: str, work: float, columns: int, share: float = 1.0) -> bool:
        """Whether a solver stage fits `share` of the time left: its work at the measured rate plus
        its process's overhead (start, reading, writing), which small models are all about."""
        return self.estimate(kind, work) + self.solver_overhead(columns) <= share * self.left()

    def note_solver(self, columns: int, limit: float, seconds: float) -> None:
        """After a solver run given `limit` seconds took `seconds` in all: what it spent beyond
        its limit is its overhead, measured."""
        if columns > 0 and seconds > limit:
            over = seconds - limit - SOLVER_START * self.slowdown()
            self.observe("solver_overhead", columns, max(over, 1e-9 * columns))


def unbounded() -> Budget:
    """A budget with no real limit, for callers (tests, the oracle) that solve without one."""
    return Budget(limit=1e9)
