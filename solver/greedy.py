"""List-scheduling heuristics on the type-level capacity profile.

They give every solve a feasible incumbent in milliseconds, the fallback when the MILP runs out
of time, and the FIFO baseline that the planner must never be worse than (the portfolio
includes FIFO itself, so the best of it is at most FIFO's objective).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import numpy as np

from gpusched.solver.budget import Budget
from gpusched.solver.instance import Instance, JobInfo, TypeOption
from gpusched.solver.policies import Policy
from gpusched.solver.schedule import Choice, Schedule


def earliest_start(free: np.ndarray, gpus: int, first: int, slots: int) -> int | None:
    """First start >= first where `gpus` are free for `slots` slots (clipped at the horizon).

    One pass over the slots in plain Python: with 24-96 slots that is several times faster than
    sliding windows in numpy (whose call overhead was 80 % of a list schedule), and list schedules
    are what every stage of the planner runs most."""
    n = free.shape[0]
    if first >= n:
        return None
    run = 0
    for t, value in enumerate(free[first:].tolist(), start=first):
        if value >= gpus:
            run += 1
            if run >= slots:
                return t - slots + 1
        else:
            run = 0
    # A run of free slots that reaches the horizon holds a start whose window is clipped there.
    return n - run if run > 0 else None


def place_job(
    inst: Instance,
    policy: Policy,
    free: np.ndarray,
    info: JobInfo,
    forbid_now: frozenset[int] = frozenset(),
) -> Choice | None:
    """The policy's cheapest feasible choice for one job given what is still free."""
    best: tuple[float, Choice] | None = None
    candidates: list[TypeOption] = inst.all_options(info)
    for opt in candidates:
        if opt is info.continue_option:
            if info.index in forbid_now:
                continue
            starts: Iterable[int] = [0] if _fits_now(inst, free, info, opt) else []
        else:
            first = info.release_slot + (1 if info.index in forbid_now and info.release_slot == 0 else 0)
            s = earliest_start(free[opt.type_index], info.gpus, first, opt.slots)
            starts = [] if s is None else [s]
            # A late start on this type might be on time on another; also try the latest on-time
            # start is pointless: earliest is always best for a fixed type under every policy.
        for s in starts:
            value = policy.coefficient(info, opt, s)
            if best is None or value < best[0]:
                best = (value, Choice(opt, s))
    return None if best is None else best[1]


PORTFOLIO_SHARE = 0.2


def list_schedule(
    inst: Instance,
    policy: Policy,
    order: list[JobInfo],
    forbid_now: frozenset[int] = frozenset(),
) -> Schedule:
    # Jobs that must keep running go first: their GPUs are not up for grabs.
    fixed = [info for info in order if info.fixed]
    rest = [info for info in order if not info.fixed]
    return _list_schedule_preferring(inst, policy, fixed + rest, {}, forbid_now)


def fifo_order(inst: Instance) -> list[JobInfo]:
    """Running jobs, then arrival order: what a FIFO queue with backfilling would do."""
    return sorted(inst.jobs, key=lambda i: (i.job.running is None, i.job.release, i.index))


def list_work(inst: Instance) -> int:
    """The work of one list schedule, in Budget's "list" units: job x type option."""
    return sum(len(inst.all_options(info)) or 1 for info in inst.jobs)


def portfolio(
    inst: Instance,
    policy: Policy,
    forbid_now: frozenset[int] = frozenset(),
    budget: Budget | None = None,
    names: tuple[str, ...] | None = None,
) -> tuple[Schedule, str, dict[str, float]]:
    """Several list orders; returns the best schedule, its name, and every order's objective.

    FIFO always runs (the plan is never worse than it); with a budget, each further order only
    when one more list schedule, at the rate measured on the ones before, fits the time left.
    `names` restricts the orders tried (a re-plan tries the order that won before).
    """
    orders: dict[str, Callable[[], list[JobInfo]]] = {
        "fifo": lambda: fifo_order(inst),
        "area": lambda: sorted(
            inst.jobs, key=lambda i: (i.job.running is None, _area_per_weight(inst, i), i.index)
        ),
        "policy": lambda: sorted(inst.jobs, key=lambda i: (i.job.running is None, *policy.order_key(i))),
        "priority": lambda: sorted(
            inst.jobs, key=lambda i: (i.job.running is None, -i.weight, *policy.order_key(i))
        ),
        "big-first": lambda: sorted(
            inst.jobs, key=lambda i: (i.job.running is None, -i.gpus, *policy.order_key(i))
        ),
    }
    if policy.name == "deadline":
        # Earliest deadline first is the order that matters most under deadlines: second, after FIFO.
        orders = {"fifo": orders.pop("fifo"), "policy": orders.pop("policy"), **orders}
    work = list_work(inst)
    results: dict[str, float] = {}
    best: tuple[float, Schedule, str] | None = None
    for name, make in orders.items():
        if names is not None and name not in names and name != "fifo":
            continue
        # Past FIFO and the second order (area: the best at M for cost and completion time alike;
        # EDF under deadlines), an order only runs while it takes a small part of the time left.
        # The second order runs, while any time is left beside the reserve, when it takes at most a
        # quarter of all the time left: a FIFO-only plan (at M in 1 s on a loaded machine) missed
        # 5,600 deadline units where EDF missed 3.
        share = 1.0 if len(results) < 2 else PORTFOLIO_SHARE
        second = (
            len(results) == 1
            and budget is not None
            and budget.left() > 0
            and budget.estimate("list", work) <= 0.25 * budget.total_left()
        )
        if best is not None and budget is not None and not second and not budget.fits("list", work, share):
            budget.skip(f"portfolio-{name}")
            continue
        if budget is not None:
            with budget.stage(f"portfolio-{name}", "list", work):
                schedule = list_schedule(inst, policy, make(), forbid_now)
        else:
            schedule = list_schedule(inst, policy, make(), forbid_now)
        value = policy.evaluate(schedule)
        results[name] = value
        if best is None or value < best[0] - 1e-9:
            best = (value, schedule, name)
    assert best is not None
    return best[1], best[2], results


def _area_per_weight(inst: Instance, info: JobInfo) -> float:
    """Smith's ratio with a gang's width: GPU-hours on its fastest type per unit of priority.

    Not keyed on release first, as the policies' own orders are: the list schedule already starts
    no job before its release, and a short job released later still goes before a long one
    released now. On the M benchmark this order alone came within 5 % of the slot LP's bound for
    completion time (the release-first orders: 96 % above it) and was the best order for cost."""
    shortest = min((o.run_hours for o in inst.all_options(info)), default=0.0)
    return shortest * info.gpus / max(info.weight, 1e-9)


def fifo_baseline(inst: Instance, policy: Policy) -> Schedule:
    """The baseline benchmarks compare against: FIFO with backfilling, the policy's type choice."""
    return list_schedule(inst, policy, fifo_order(inst))


def lp_guided(
    inst: Instance,
    policy: Policy,
    fractional: list[tuple[int, TypeOption, int, float]],
    forbid_now: frozenset[int] = frozenset(),
    exact: bool = False,
    alphas: tuple[float, ...] = (0.2, 0.5, 0.8),
    budget: Budget | None = None,
) -> tuple[Schedule, str, dict[str, float]]:
    """Round an LP relaxation by alpha-points: list-schedule jobs in the order of the slot by
    which the LP has started an alpha fraction of them, each on the type the LP gives it most of.

    With `exact` (the LP is the slot model itself), the jobs the LP already starts integrally are
    also kept exactly where it put them and only the rest are list-scheduled around them: where the
    LP is nearly integral, as under the cost policy, that keeps almost all of its structure.

    With a budget, the roundings run most promising first (around the LP's integral starts, then
    plain alpha-points), each only while one more list schedule fits the time left; the first
    always runs.
    """
    mass: dict[int, list[tuple[int, TypeOption, float]]] = {}
    integral: Schedule = {}
    for j, opt, s, v in fractional:
        mass.setdefault(j, []).append((s, opt, v))
        if exact and v >= 1 - 1e-6 and not (s == 0 and j in forbid_now):
            integral[j] = Choice(opt, s)
    for entries in mass.values():
        entries.sort(key=lambda e: e[0])

    def alpha_order(alpha: float) -> tuple[list[JobInfo], dict[int, TypeOption]]:
        key: dict[int, float] = {}
        preferred: dict[int, TypeOption] = {}
        for j, entries in mass.items():
            acc = 0.0
            total = sum(v for _, _, v in entries)
            key[j] = float(inst.n_slots)
            for s, _, v in entries:
                acc += v
                if acc >= alpha * total - 1e-9:
                    key[j] = s + (1.0 - total)  # jobs the LP barely starts go last
                    break
            by_type: dict[int, float] = {}
            for _, opt, v in entries:
                by_type[id(opt)] = by_type.get(id(opt), 0.0) + v
            top = max(entries, key=lambda e: by_type[id(e[1])])
            preferred[j] = top[1]
        order = sorted(
            inst.jobs,
            key=lambda i: (
                not i.fixed,  # jobs that must keep running first: their GPUs are not up for grabs
                i.job.running is None,
                int(key.get(i.index, inst.n_slots + 1)),
                *policy.order_key(i),
            ),
        )
        return order, preferred

    def policy_order() -> tuple[list[JobInfo], dict[int, TypeOption]]:
        # Around the LP's integral starts, the rest in the policy's own order (EDF under deadlines):
        # where the alpha-point order leaves a deadline job behind its capacity, this one does not.
        return sorted(inst.jobs, key=lambda i: (not i.fixed, i.job.running is None, *policy.order_key(i))), {}

    candidates: list[tuple[str, Callable[[], tuple[list[JobInfo], dict[int, TypeOption]]], Schedule]] = []
    if integral:
        candidates += [(f"lp-fix-alpha-{a}", functools.partial(alpha_order, a), integral) for a in alphas]
        candidates.append(("lp-fix-policy-order", policy_order, integral))
    candidates += [(f"lp-alpha-{a}", functools.partial(alpha_order, a), {}) for a in alphas]
    work = list_work(inst)
    results: dict[str, float] = {}
    best: tuple[float, Schedule, str] | None = None
    for name, make, keep in candidates:
        if best is not None and budget is not None and not budget.fits("list", work):
            budget.skip(name)
            continue
        order, preferred = make()
        if budget is not None:
            with budget.stage(name, "list", work):
                schedule = _list_schedule_preferring(inst, policy, order, preferred, forbid_now, keep)
        else:
            schedule = _list_schedule_preferring(inst, policy, order, preferred, forbid_now, keep)
        value = policy.evaluate(schedule)
        results[name] = value
        if best is None or value < best[0] - 1e-9:
            best = (value, schedule, name)
    assert best is not None
    return best[1], best[2], results


def _list_schedule_preferring(
    inst: Instance,
    policy: Policy,
    order: list[JobInfo],
    preferred: dict[int, TypeOption],
    forbid_now: frozenset[int],
    keep: Schedule | None = None,
) -> Schedule:
    """List scheduling that tries the LP's type first and falls back to the policy's choice;
    the choices in `keep` are placed first, as they are."""
    free = np.asarray(inst.capacity, dtype=np.int64).copy()
    schedule: Schedule = {}
    for j, kept in (keep or {}).items():
        free[kept.option.type_index, kept.start : min(kept.end(), inst.n_slots)] -= inst.jobs[j].charge(
            kept.option
        )
        schedule[j] = kept
    for info in order:
        if not info.plannable or info.index in schedule:
            continue
        choice: Choice | None = None
        opt = preferred.get(info.index)
        if opt is not None:
            if opt is info.continue_option:
                if info.index not in forbid_now and _fits_now(inst, free, info, opt):
                    choice = Choice(opt, 0)
            else:
                first = info.release_slot + (1 if info.index in forbid_now and info.release_slot == 0 else 0)
                s = earliest_start(free[opt.type_index], info.gpus, first, opt.slots)
                if s is not None:
                    choice = Choice(opt, s)
            alt = place_job(inst, policy, free, info, forbid_now)
            if choice is None or (
                alt is not None
                and policy.coefficient(info, alt.option, alt.start)
                < policy.coefficient(info, choice.option, choice.start)
            ):
                choice = alt
        else:
            choice = place_job(inst, policy, free, info, forbid_now)
        if choice is None:
            continue
        end = min(choice.end(), inst.n_slots)
        free[choice.option.type_index, choice.start : end] -= info.charge(choice.option)
        schedule[info.index] = choice
    return schedule


def _fits_now(inst: Instance, free: np.ndarray, info: JobInfo, opt: TypeOption) -> bool:
    """A running job may go on in place: what it takes from open capacity is free for its run."""
    end = min(opt.slots, inst.n_slots)
    return bool((free[opt.type_index, :end] >= info.charge(opt)).all())
