"""The planner's one entry point: plan(cluster, jobs, options) -> Plan.

Pipeline: build the slot instance; a portfolio of list schedules gives a feasible incumbent at
once; the start-time MILP (CBC or HiGHS through PuLP), warm-started from it, improves it within the
time limit; node placement fixes the exact nodes of the first slot, and a job that cannot be placed
there (fragmentation, max_nodes) is barred from starting now and the plan re-solved. Whatever
happens, the best feasible plan found is returned with its lower bound.
"""

from __future__ import annotations

import time

from gpusched.model import Cluster, Job, JobPlan, Placement, Plan, Segment, SlotUsage
from gpusched.solver.bounds import trivial_bound
from gpusched.solver.greedy import lp_guided, portfolio
from gpusched.solver.instance import Instance, JobInfo, build_instance
from gpusched.solver.milp import solve_milp
from gpusched.solver.options import PlanOptions
from gpusched.solver.placement import place_first_slot
from gpusched.solver.policies import Policy, make_policy
from gpusched.solver.schedule import Schedule, is_late, usage
from gpusched.units import format_hours

DEFAULT_TIME_LIMIT = 60.0
COLUMN_BUDGET = 250_000
COLUMNS_PER_SECOND = 6_000
"""Measured rate at which PuLP builds and CLP/CBC solves the LP relaxation (2-core machine, M size):
the LP and the MILP are only attempted when the time limit leaves room for a model of this size."""
MAX_REPAIRS = 6


def plan(cluster: Cluster, jobs: list[Job], options: PlanOptions | None = None) -> Plan:
    options = options or PlanOptions()
    started = time.perf_counter()
    time_limit = options.time_limit if options.time_limit is not None else DEFAULT_TIME_LIMIT
    inst = build_instance(cluster, jobs, options)
    policy = make_policy(options.policy, inst)

    forbid: frozenset[int] = frozenset()
    notes: list[str] = []
    bound: float | None = None
    proven = False
    schedule: Schedule = {}
    placements: dict[int, list[Placement]] = {}
    for attempt in range(MAX_REPAIRS + 1):
        schedule, source, _ = portfolio(inst, policy, forbid)
        best_value = policy.evaluate(schedule)
        plannable = any(info.plannable for info in inst.jobs)
        left = time_limit - (time.perf_counter() - started)
        model_s = _estimated_columns(inst) / COLUMNS_PER_SECOND
        if plannable and left > 0.5 and model_s > 0.8 * left and attempt == 0:
            notes.append(
                f"the {_estimated_columns(inst)}-column model would not fit the {time_limit:g}s time limit: "
                "the best heuristic plan is returned (raise --time-limit for an optimised plan)"
            )
        if plannable and left > 0.5 and model_s <= 0.8 * left:
            relaxed = solve_milp(
                inst,
                policy,
                solver=options.solver,
                time_limit=left,
                threads=options.threads,
                forbid_now=forbid,
                column_budget=COLUMN_BUDGET,
                relax=True,
            )
            if relaxed.objective is not None:
                if attempt == 0 and not relaxed.thinned:
                    bound = relaxed.objective
                rounded, name, _ = lp_guided(inst, policy, relaxed.fractional, forbid)
                if policy.evaluate(rounded) < best_value - 1e-9:
                    schedule, source, best_value = rounded, name, policy.evaluate(rounded)
            if relaxed.thinned and attempt == 0:
                notes.append(
                    f"model thinned to {relaxed.columns} start columns: far-future starts on a coarser grid"
                )
        left = time_limit - (time.perf_counter() - started)
        if (
            plannable
            and left > 0.5
            and model_s <= 0.8 * left
            and (bound is None or best_value > bound + 1e-9 * max(1.0, abs(bound)))
        ):
            result = solve_milp(
                inst,
                policy,
                solver=options.solver,
                time_limit=left,
                threads=options.threads,
                warm=schedule,
                forbid_now=forbid,
                column_budget=COLUMN_BUDGET,
            )
            if result.schedule is not None and policy.evaluate(result.schedule) <= best_value + 1e-9:
                schedule, source = result.schedule, f"milp-{options.solver}"
            if attempt == 0 and not result.thinned and result.bound is not None:
                bound = max(bound or result.bound, result.bound)
                proven = result.status == "optimal"
            if result.status == "not_solved" and attempt == 0:
                notes.append(
                    "MILP found no better solution in the time limit; the heuristic plan is returned"
                )
        elif (
            plannable
            and attempt == 0
            and bound is not None
            and best_value <= bound + 1e-9 * max(1.0, abs(bound))
        ):
            proven = True  # the heuristic plan already meets the LP bound
        placements, failed = place_first_slot(inst, schedule)
        if not failed:
            break
        names = ", ".join(inst.jobs[j].job.name for j in failed)
        notes.append(
            f"no node placement for {names} now (fragmentation or max_nodes): re-planned to start later"
        )
        forbid = forbid | frozenset(failed)
        proven = False
    else:
        for j in failed:
            schedule.pop(j, None)

    objective = policy.evaluate(schedule)
    lower = trivial_bound(inst, policy)
    if bound is not None:
        lower = max(lower, min(bound, objective))
    if proven and not forbid:
        lower = objective
    gap = 0.0 if objective <= lower + 1e-9 else (objective - lower) / max(abs(objective), 1e-9)
    job_plans = [_job_plan(inst, policy, info, schedule, placements) for info in inst.jobs]
    late = any(jp.deadline_met is False for jp in job_plans)
    status = "infeasible" if late else ("optimal" if gap <= 1e-6 else "feasible")
    if late:
        notes.append("some deadlines cannot be met: see the jobs with deadline_met = false")
    return Plan(
        policy=options.policy,
        solver=f"{options.solver} ({source})",
        status=status,
        epoch=options.epoch,
        horizon=inst.n_slots * inst.slot,
        slot=inst.slot,
        objective=objective,
        lower_bound=lower,
        gap=gap,
        solve_time_s=time.perf_counter() - started,
        total_cost=sum(jp.cost for jp in job_plans),
        jobs=job_plans,
        utilisation=_utilisation(inst, schedule),
        notes=notes,
    )


def _estimated_columns(inst: Instance) -> int:
    return min(
        COLUMN_BUDGET,
        sum(len(inst.start_range(info, o)) for info in inst.jobs for o in inst.all_options(info)),
    )


def _job_plan(
    inst: Instance, policy: Policy, info: JobInfo, schedule: Schedule, placements: dict[int, list[Placement]]
) -> JobPlan:
    job = info.job
    choice = schedule.get(info.index)
    running = job.running is not None
    if choice is None:
        why_code, why = _why_unscheduled(inst, info)
        return JobPlan(
            job=job.name,
            status="unscheduled",
            preempted=running,
            deadline_met=False if job.deadline is not None else None,
            reason=why,
            reason_code=why_code,  # type: ignore[arg-type]
        )
    opt = choice.option
    gtype = inst.types[opt.type_index]
    start = inst.slot_start(choice.start)
    end = start + opt.run_hours
    horizon = inst.n_slots * inst.slot
    keeps = opt is info.continue_option
    late = is_late(inst, info, choice)
    reason = None
    code = None
    if late:
        code = "deadline"
        alone = min(o.run_hours for o in inst.all_options(info)) + inst.slot_start(info.release_slot)
        if alone > (job.deadline or 0.0) + 1e-9:
            reason = (
                f"cannot finish by its deadline {format_hours(job.deadline or 0.0)}: even alone on its fastest "
                f"type it would end at {format_hours(alone)}"
            )
        else:
            reason = (
                f"misses its deadline {format_hours(job.deadline or 0.0)} (ends {format_hours(end)}): the capacity "
                "before it is taken by jobs of higher priority or earlier deadlines"
            )
    elif choice.start > info.release_slot:
        reason = f"waiting for {info.gpus} x {gtype.name}; planned start {format_hours(start)} from now"
    return JobPlan(
        job=job.name,
        status="running" if running and choice.start == 0 else "scheduled",
        gpu_type=gtype.name,
        gpus=info.gpus,
        start=start,
        end=end,
        finishes=end <= horizon + 1e-9,
        segments=[Segment(start=start, end=min(end, horizon))],
        placement=placements.get(info.index, []),
        cost=info.gpus * opt.run_hours * gtype.price_per_hour,
        preempted=running and choice.start > 0,
        migrated=running and choice.start == 0 and not keeps,
        restarts=1 if running and not keeps else 0,
        deadline_met=None if job.deadline is None else not late,
        tardiness=max(0.0, end - job.deadline) if job.deadline is not None else 0.0,
        reason=reason,
        reason_code=code,  # type: ignore[arg-type]
    )


def _why_unscheduled(inst: Instance, info: JobInfo) -> tuple[str, str]:
    if not info.plannable:
        return info.reason_code or "capacity", info.reason or "no GPU type can run it"
    horizon = inst.n_slots * inst.slot
    if info.release_slot >= inst.n_slots:
        return (
            "horizon",
            f"released at {format_hours(info.job.release)}, after the {format_hours(horizon)} horizon",
        )
    types = sorted({inst.types[o.type_index].name for o in inst.all_options(info)})
    return "capacity", (
        f"waiting for {info.gpus} x {'/'.join(types)}: no free capacity inside the {format_hours(horizon)} horizon"
    )


def _utilisation(inst: Instance, schedule: Schedule) -> list[SlotUsage]:
    used = usage(inst, schedule)
    return [
        SlotUsage(
            slot=t,
            start=inst.slot_start(t),
            used={g.name: int(used[k, t]) for k, g in enumerate(inst.types)},
            capacity={g.name: int(inst.capacity[k][t]) for k, g in enumerate(inst.types)},
        )
        for t in range(inst.n_slots)
    ]
