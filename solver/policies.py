"""Scheduling objectives, one class per policy over the shared start-time allocation model.

Like Gavel's policies, each class only says what a choice is worth; the allocation model, the
heuristics and the MILP are shared. A policy's objective is linear in the start variables
(coefficient per job/option/start) plus, for makespan and fairness, one auxiliary term, so the
greedy plans and the MILP are scored by exactly the same function (`evaluate`).

Terms common to every policy:
- a job that does not start inside the horizon costs `unscheduled_penalty` (more than any start);
- a start that misses the job's deadline costs `late_penalty` on top: deadlines are met whenever
  the capacity allows it, and an infeasible instance still gets the plan with the fewest misses;
- restarting a running job pays its restart overhead (and the migration penalty) in GPU time.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from typing import ClassVar

import numpy as np

from gpusched.solver.instance import DEADLINE_TOL, Instance, JobInfo, TypeOption
from gpusched.solver.schedule import Choice, Schedule, end_hours, is_late

TIE = 1e-3
"""Weight of the tie-breaking terms (earlier completion) relative to the policy's main term."""


class Policy:
    name: ClassVar[str]

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.horizon = inst.n_slots * inst.slot
        max_run = max((o.run_hours for info in inst.jobs for o in inst.all_options(info)), default=0.0)
        self.late_unit = 10.0 * (self.horizon + max_run)
        """Hours-equivalent charged for a missed deadline, per unit of priority."""
        self._attainable: dict[int, bool] = {}
        """Per job index: `_deadline_attainable`, asked for every start a list schedule prices."""

    # --- the linear part ---------------------------------------------------------------------------

    def base(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        """The policy's own value of starting job `info` with `opt` at `start` (lower is better)."""
        raise NotImplementedError

    def coefficient(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        value = self.base(info, opt, start)
        if self._deadline_attainable(info) and self.inst.late(info, opt, start):
            value += self.late_penalty(info)
        return value

    def coefficients(self, info: JobInfo, opt: TypeOption, starts: np.ndarray) -> np.ndarray:
        """`coefficient` for many starts at once: column generation prices every start of the
        slot model (close to a million at L) on each round, which only arrays make affordable."""
        values = self.base_many(info, opt, starts)
        if self._deadline_attainable(info):
            # The same expression as Instance.late, so both agree to the last bit.
            late = starts * self.inst.slot + opt.run_hours > (info.job.deadline or 0.0) + DEADLINE_TOL
            values = values + np.where(late, self.late_penalty(info), 0.0)
        return values

    def base_many(self, info: JobInfo, opt: TypeOption, starts: np.ndarray) -> np.ndarray:
        """`base` over an array of starts; subclasses whose `base` is affine in the start override it."""
        return np.array([self.base(info, opt, int(s)) for s in starts], dtype=float)

    def _completions(self, opt: TypeOption, starts: np.ndarray) -> np.ndarray:
        return starts * self.inst.slot + opt.run_hours

    def _deadline_attainable(self, info: JobInfo) -> bool:
        """A deadline no choice can meet costs every plan the same: it is left out of the objective
        (it would only swamp the relative gap the solver stops at) and reported instead."""
        if info.job.deadline is None:
            return False
        known = self._attainable.get(info.index)
        if known is None:
            known = self._attainable[info.index] = self._any_on_time(info)
        return known

    def _any_on_time(self, info: JobInfo) -> bool:
        return any(
            not self.inst.late(info, o, self.inst.start_range(info, o).start)
            for o in self.inst.all_options(info)
            if len(self.inst.start_range(info, o))
        )

    def late_penalty(self, info: JobInfo) -> float:
        return self.scale(info) * self.late_unit

    def unscheduled_penalty(self, info: JobInfo) -> float:
        """What not starting inside the horizon costs: a start just after it, plus one slot's delay.

        Pricing it like the start it stands for (rather than as a huge constant) keeps the LP
        relaxation tight; the extra slot makes any start inside the horizon preferable.
        """
        after = self.inst.n_slots
        # A running job left out of the horizon is stopped now and restarts later.
        later = info.options or self.inst.all_options(info)
        best = min((self.base(info, o, after) for o in later), default=0.0)
        late = self.late_penalty(info) if self._deadline_attainable(info) else 0.0
        return best + late + self.scale(info) * self.inst.slot

    def scale(self, info: JobInfo) -> float:
        """Converts an hour of delay of this job into objective units."""
        return info.weight

    # --- the nonlinear (auxiliary) part -------------------------------------------------------------

    def extra(self, schedule: Schedule) -> float:
        return 0.0

    # --- shared --------------------------------------------------------------------------------------

    def evaluate(self, schedule: Schedule) -> float:
        total = self.extra(schedule)
        for info in self.inst.jobs:
            if not info.plannable:
                continue
            choice = schedule.get(info.index)
            if choice is None:
                total += self.unscheduled_penalty(info)
            else:
                total += self.coefficient(info, choice.option, choice.start)
        return total

    def order_key(self, info: JobInfo) -> tuple[float, ...]:
        """Greedy list order: lower first. Running jobs are always placed before the rest."""
        return (info.job.release, info.index)

    def completion(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        return self.inst.slot_start(start) + opt.run_hours

    def run_cost(self, info: JobInfo, opt: TypeOption) -> float:
        return info.gpus * opt.run_hours * self.inst.types[opt.type_index].price_per_hour


class CostPolicy(Policy):
    """The seed document's objective: minimise spend (sum x_it C_i); ties go to earlier completion."""

    name = "cost"

    def __init__(self, inst: Instance) -> None:
        super().__init__(inst)
        prices = [t.price_per_hour for t in inst.types]
        self.hour_value = max(1e-6, sum(prices) / len(prices))

    def scale(self, info: JobInfo) -> float:
        return info.weight * info.gpus * self.hour_value

    def base(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        return self.run_cost(info, opt) + TIE * self.scale(info) * self.completion(info, opt, start)

    def base_many(self, info: JobInfo, opt: TypeOption, starts: np.ndarray) -> np.ndarray:
        return self.run_cost(info, opt) + TIE * self.scale(info) * self._completions(opt, starts)

    def order_key(self, info: JobInfo) -> tuple[float, ...]:
        # Big gangs first: they are the hardest to pack, the cheap slots go to whoever fits.
        return (info.job.release, -info.gpus, info.index)


class JctPolicy(Policy):
    """Weighted job completion time: sum priority_j * (end_j - release_j), ties go to lower cost."""

    name = "jct"

    def base(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        jct = self.completion(info, opt, start) - info.job.release
        return info.weight * jct + TIE * self.run_cost(info, opt) / max(1e-9, self._price_scale)

    def base_many(self, info: JobInfo, opt: TypeOption, starts: np.ndarray) -> np.ndarray:
        jct = self._completions(opt, starts) - info.job.release
        return info.weight * jct + TIE * self.run_cost(info, opt) / max(1e-9, self._price_scale)

    @cached_property
    def _price_scale(self) -> float:
        return max((t.price_per_hour for t in self.inst.types), default=1.0) or 1.0

    def order_key(self, info: JobInfo) -> tuple[float, ...]:
        # Smith's rule (WSPT) on the fastest option: the optimal order on one machine.
        shortest = min((o.run_hours for o in self.inst.all_options(info)), default=0.0)
        return (info.job.release, shortest * info.gpus / info.weight, info.index)


class MakespanPolicy(JctPolicy):
    """Finish the whole queue as early as possible; weighted completion time breaks ties."""

    name = "makespan"

    def base(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        return TIE * super().base(info, opt, start)

    def base_many(self, info: JobInfo, opt: TypeOption, starts: np.ndarray) -> np.ndarray:
        return TIE * super().base_many(info, opt, starts)

    def unscheduled_penalty(self, info: JobInfo) -> float:
        # Left out, the job ends after the horizon at the earliest: never cheaper than any makespan.
        longest = max((o.run_hours for o in self.inst.all_options(info)), default=0.0)
        return super().unscheduled_penalty(info) + self.horizon + longest

    def extra(self, schedule: Schedule) -> float:
        return max((end_hours(self.inst, self.inst.jobs[j], c) for j, c in schedule.items()), default=0.0)

    def order_key(self, info: JobInfo) -> tuple[float, ...]:
        # Longest processing time first (LPT): the classic makespan list order.
        shortest = min((o.run_hours for o in self.inst.all_options(info)), default=0.0)
        return (info.job.release, -shortest * info.gpus, info.index)


class DeadlinePolicy(JctPolicy):
    """SLO attainment: fewest weighted deadline misses, then least weighted tardiness, then JCT."""

    name = "deadline"

    def base(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        value = TIE * super().base(info, opt, start)
        if info.deadline_slot is not None:
            tardiness = max(0.0, self.completion(info, opt, start) - (info.job.deadline or 0.0))
            value += info.weight * tardiness
        return value

    def base_many(self, info: JobInfo, opt: TypeOption, starts: np.ndarray) -> np.ndarray:
        values = TIE * super().base_many(info, opt, starts)
        if info.deadline_slot is not None:
            tardiness = np.maximum(0.0, self._completions(opt, starts) - (info.job.deadline or 0.0))
            values = values + info.weight * tardiness
        return values

    def order_key(self, info: JobInfo) -> tuple[float, ...]:
        # Earliest deadline first; jobs without a deadline after, by WSPT.
        deadline = info.job.deadline if info.job.deadline is not None else float("inf")
        return (deadline, *super().order_key(info))


class FairPolicy(JctPolicy):
    """Max-min fairness across teams: maximise the smallest share of its entitlement any team gets.

    A team's entitlement is its water-filled share of the GPU-hours inside the horizon (equal
    shares, capped by what the team asks for); its share is the GPU-hours it is given there over
    that entitlement. Weighted completion time breaks ties.
    """

    name = "fair"

    def __init__(self, inst: Instance) -> None:
        super().__init__(inst)
        self.teams = sorted({info.job.team for info in inst.jobs if info.plannable})
        demand: dict[str, float] = defaultdict(float)
        for info in inst.jobs:
            if info.plannable:
                fastest = min(o.run_hours for o in inst.all_options(info))
                demand[info.job.team] += info.gpus * min(fastest, self.horizon)
        supply = sum(sum(row) for row in inst.capacity) * inst.slot
        self.entitlement = _water_fill(supply, dict(demand))
        total_weight = sum(info.weight for info in inst.jobs if info.plannable) or 1.0
        self.fair_weight = 10.0 * total_weight * (self.horizon + 1.0)

    def gpu_hours_in_horizon(self, info: JobInfo, opt: TypeOption, start: int) -> float:
        run_slots = min(opt.slots, self.inst.n_slots - start)
        return info.gpus * min(opt.run_hours, run_slots * self.inst.slot)

    def shares(self, schedule: Schedule) -> dict[str, float]:
        got: dict[str, float] = defaultdict(float)
        for j, choice in schedule.items():
            info = self.inst.jobs[j]
            got[info.job.team] += self.gpu_hours_in_horizon(info, choice.option, choice.start)
        return {t: min(1.0, got[t] / e) for t, e in self.entitlement.items() if e > 0}

    def extra(self, schedule: Schedule) -> float:
        shares = self.shares(schedule)
        return self.fair_weight * (1.0 - min(shares.values(), default=1.0))


def _water_fill(supply: float, demand: dict[str, float]) -> dict[str, float]:
    """Equal shares of supply, each capped by demand, the surplus re-shared among the rest."""
    share: dict[str, float] = {t: 0.0 for t in demand}
    open_teams = {t for t, d in demand.items() if d > 0}
    left = supply
    while open_teams and left > 1e-9:
        each = left / len(open_teams)
        for t in sorted(open_teams):
            give = min(each, demand[t] - share[t])
            share[t] += give
            left -= give
        open_teams = {t for t in open_teams if demand[t] - share[t] > 1e-9}
    return share


POLICY_CLASSES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (CostPolicy, JctPolicy, MakespanPolicy, DeadlinePolicy, FairPolicy)
}


def make_policy(name: str, inst: Instance) -> Policy:
    try:
        return POLICY_CLASSES[name](inst)
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {sorted(POLICY_CLASSES)})") from None


__all__ = ["POLICY_CLASSES", "Choice", "Policy", "Schedule", "is_late", "make_policy"]
