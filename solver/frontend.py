"""The planning front-end: the one step before and after `plan()` that the operator and the
simulator share, so that a what-if replayed in the simulator is decided exactly as the operator
decides it.

Pure (domain objects in, decisions as data out; no I/O, no clocks):

- **before** (`core_window`, `fill_window`, `select`): what goes into the model. A queue of
  thousands of jobs is not one model: a core window of `window` queued jobs (half the earliest
  arrivals, so nobody starves; half the jobs the objective wants first) plus the later jobs (up
  to FILL_LIMIT) that fit in the GPUs the core leaves free (so free GPUs are never idle because the job that
  fits sits past the window). Running jobs the plan may stop are passed as running; those that
  preemption's hysteresis protects (gpusched.solver.preemption) are passed pinned.
- **after** (`interpret`): what the plan means now. A job "starts now" when its planned start is in
  the first slot (`starts_now`); it starts on the plan's nodes when they are still free in whole
  workers, else on the placement module's pick of the planned type (`place_gang`), else it waits
  and is told so. A running job the plan stops, moves or leaves unscheduled is preempted when it
  may be, with the reason the preemption module gives; every other queued job waits with the
  plan's reason.

The reconciler (gpusched.scheduler.reconcile) and the simulator's planner policy
(gpusched.simulations.policies.planner) only translate their world to and from these types.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypeVar

from gpusched.defaults import FILL_LIMIT, MIN_RUN_H, SCAN_LIMIT, WINDOW
from gpusched.model import Cluster, GpuType, Job, JobPlan, Placement, Plan
from gpusched.solver.freegpus import FreeGpus
from gpusched.solver.placement import Gang, place, place_gang
from gpusched.solver.policies import TIE
from gpusched.solver.preemption import Beneficiary, protected, reason, restart_cost

T = TypeVar("T")


# ------------------------------------------------------------------------------------------ before


class QueueFacts(NamedTuple):
    """What window selection needs of a queued job, whatever world it comes from (a tuple: the
    simulator builds one per queued job per plan)."""

    arrival: tuple[Any, ...]
    """Submission order (earliest first)."""
    remaining_h: float
    """Reference hours of work left."""
    priority: float
    deadline: float | None
    gpus: int


Urgency = Callable[[QueueFacts], tuple[object, ...]]
URGENCY: dict[str, Urgency] = {
    "jct": lambda f: (f.remaining_h / f.priority, f.arrival),
    "deadline": lambda f: (f.deadline if f.deadline is not None else math.inf, f.remaining_h, f.arrival),
    "makespan": lambda f: (-f.remaining_h * f.gpus, f.arrival),
}
"""Per objective, the order in which the second half of the core window is filled (cost and fair:
arrival order only)."""


def starts_now(jp: JobPlan, slot: float) -> bool:
    """The one reading of "starts now": a planned start inside the first slot."""
    return jp.start is not None and jp.start < slot / 2


def core_window(items: Iterable[T], facts: Callable[[T], QueueFacts], window: int, policy: str) -> list[T]:
    """`window` queued jobs, in arrival order: half the earliest arrivals, half by the policy's urgency."""
    pool = list(items)
    if len(pool) <= window:
        return sorted(pool, key=lambda j: facts(j).arrival)  # type: ignore[arg-type, return-value]
    urgency = URGENCY.get(policy)
    early_n = window if urgency is None else (window + 1) // 2
    keyed = [(facts(j), j) for j in pool]
    core = heapq.nsmallest(early_n, keyed, key=lambda fj: fj[0].arrival)  # type: ignore[arg-type, return-value]
    if urgency is not None and window > early_n:
        chosen = {id(j) for _, j in core}
        core += heapq.nsmallest(
            window - early_n,
            (fj for fj in keyed if id(fj[1]) not in chosen),
            key=lambda fj: urgency(fj[0]),  # type: ignore[arg-type, return-value]
        )
        core.sort(key=lambda fj: fj[0].arrival)  # type: ignore[arg-type, return-value]
    return [j for _, j in core]


def fill_window(
    items: Iterable[T],
    core: Sequence[T],
    facts: Callable[[T], QueueFacts],
    fits: Callable[[T], bool],
    limit: int = FILL_LIMIT,
    scan_limit: int = SCAN_LIMIT,
    free_left: Callable[[], int] | None = None,
) -> list[T]:
    """Up to `limit` queued jobs past the core that fit (`fits` places them on a scratch free view)
    in the GPUs the core leaves, scanning at most `scan_limit` of them in arrival order."""
    chosen = {id(j) for j in core}
    out: list[T] = []
    if free_left is not None and free_left() <= 0:
        return out
    for j in heapq.nsmallest(scan_limit + len(core), items, key=lambda j: facts(j).arrival):  # type: ignore[arg-type, return-value]
        if id(j) in chosen:
            continue
        if fits(j):
            out.append(j)
            if len(out) >= limit or (free_left is not None and free_left() <= 0):
                break
    return out


@dataclass
class Waiting:
    """A queued job as the front-end sees it (its model Job holds the work still to do)."""

    job: Job
    arrival: tuple[object, ...]
    per_node: int = 1
    """GPUs per worker (a node takes whole workers)."""


@dataclass
class Running:
    """A running (or starting) gang: its model Job carries RunningState (nodes, work done)."""

    job: Job
    ran_h: float
    """Hours since it (re)started."""
    movable: bool
    """May be stopped: preemptible, or a gang that never ran (nothing to checkpoint)."""
    per_node: int = 1
    checkpoints_on_stop: bool = True
    """Writes a checkpoint when stopped (the workload does on SIGTERM): else a stop also costs
    the work since its last periodic checkpoint (preemption.restart_cost)."""


@dataclass
class Selection:
    """What goes into the model, and what was left out."""

    jobs: list[Job]
    queued: list[Waiting]
    running: list[Running]
    pinned: list[str] = field(default_factory=list)
    """Running jobs passed as not preemptible this round (hysteresis)."""
    held_back: int = 0
    """Queued jobs outside the window (planned in a later round)."""


def facts_of(w: Waiting, types: Mapping[str, GpuType]) -> QueueFacts:
    return QueueFacts(
        arrival=w.arrival,
        remaining_h=w.job.remaining_work(dict(types)),
        priority=w.job.priority,
        deadline=w.job.deadline,
        gpus=w.job.gpus,
    )


def free_view(cluster: Cluster, running: Iterable[Running]) -> dict[str, int]:
    """GPUs free for new work now: every open GPU less what running gangs hold."""
    free = {n.name: n.healthy_gpus for n in cluster.nodes}
    for r in running:
        assert r.job.running is not None
        for node, g in r.job.running.nodes.items():
            if node in free:
                free[node] = max(0, free[node] - g)
    return free


def select(
    cluster: Cluster,
    queued: Sequence[Waiting],
    running: Sequence[Running],
    policy: str,
    window: int = WINDOW,
    min_run_h: float = MIN_RUN_H,
    fill_limit: int = FILL_LIMIT,
) -> Selection:
    """The model's input: the queue's window, every running gang (pinned when protected)."""
    types = cluster.type_map()
    core = core_window(queued, lambda w: facts_of(w, types), window, policy)
    fill: list[Waiting] = []
    if len(queued) > len(core):
        scratch = FreeGpus(cluster.nodes, free_view(cluster, running))
        core_names = {w.job.name for w in core}
        for w in core:
            _take(scratch, w, types)

        def fits(w: Waiting) -> bool:
            return w.job.name not in core_names and _take(scratch, w, types)

        fill = fill_window(
            queued, core, lambda w: facts_of(w, types), fits, fill_limit, free_left=lambda: scratch.total_free
        )
    shown = [*core, *fill]
    top = max((w.job.priority for w in shown), default=0.0)
    jobs: list[Job] = []
    pinned: list[str] = []
    for r in running:
        job = r.job
        if job.preemptible and (not r.movable or protected(r.ran_h, job.priority, top, min_run_h)):
            job = job.model_copy(update={"preemptible": False})
            pinned.append(job.name)
        elif not job.preemptible and r.movable and not protected(r.ran_h, job.priority, top, min_run_h):
            job = job.model_copy(update={"preemptible": True})  # a gang that never ran may be withdrawn
        if job.preemptible:
            cost = restart_cost(job.restart_overhead, r.ran_h, job.checkpoint_interval, r.checkpoints_on_stop)
            if cost != job.restart_overhead:
                job = job.model_copy(update={"restart_overhead": cost})
        jobs.append(job)
    jobs += [w.job for w in shown]
    return Selection(jobs, shown, list(running), pinned, len(queued) - len(shown))


def _take(scratch: FreeGpus, w: Waiting, types: Mapping[str, GpuType]) -> bool:
    """Place a queued job on a scratch free view, as the start would (any type it allows)."""
    for t in types.values():
        if not w.job.allows(t):
            continue
        gang = Gang(
            gpus=w.job.gpus,
            gpu_type=t.name,
            per_node=w.per_node,
            max_nodes=w.job.max_nodes,
            min_memory_gib=w.job.min_gpu_memory_gib,
        )
        shares = place(scratch, gang, types)
        if shares is not None:
            scratch.take(shares)
            return True
    return False


# ------------------------------------------------------------------------------------- at once

AT_ONCE_POLICIES = frozenset({"jct"})
"""Objectives for which a plan that starts every queued job now on its best type is optimal
(weighted completion time: no job can end sooner, and nothing running can gain by moving)."""

AT_ONCE = "at-once"
"""Plan.found_by of a plan the front-end decided without a model (`at_once`)."""


def best_type(job: Job, types: Sequence[GpuType]) -> GpuType | None:
    """The type on which starting a queued job now scores best under the jct objective (weighted
    completion plus the planner's cost tie-break, solver/policies.py JctPolicy): least hours,
    cheaper on a tie; the first such type in the cluster's order. None: it may use no type."""
    price_scale = max((t.price_per_hour for t in types), default=1.0) or 1.0
    remaining = job.remaining_work({t.name: t for t in types})
    best: tuple[float, GpuType] | None = None
    for t in types:
        if not job.allows(t):
            continue
        hours = remaining / job.speed_on(t)
        score = job.priority * hours + TIE * job.gpus * hours * t.price_per_hour / price_scale
        if best is None or score < best[0] - 1e-12:
            best = (score, t)
    return None if best is None else best[1]


def at_once(
    cluster: Cluster,
    selection: Selection,
    policy: str,
    horizon: float,
    slot: float,
    epoch: datetime | None = None,
) -> Plan | None:
    """The plan, without a model, when it is forced: every queued job of the selection starts now
    on its best type (`best_type`) in whole workers, and every running gang goes on where it is.

    Under jct no plan does better: each queued job then ends at the earliest it can, and a running
    gang could only gain by moving to a faster type. So this applies only when no running gang
    that may be stopped has a faster type, no node holds more than it has in service, no job waits
    for a release or has a deadline that start misses, and no maintenance is in sight (a window
    could cut a run short); else None and the caller runs plan(). Uncontended rounds -- nearly
    every round of a large cluster that does not queue -- are decided here in milliseconds, by the
    operator and the simulator alike (both call it, then read the plan with `interpret`)."""
    if policy not in AT_ONCE_POLICIES or not selection.queued or cluster.maintenance:
        return None
    types = list(cluster.gpu_types)
    tmap = cluster.type_map()
    nodes = {n.name: n for n in cluster.nodes}
    held: dict[str, int] = {}
    plans: list[JobPlan] = []
    by_name = {j.name: j for j in selection.jobs}
    for r in selection.running:
        job = by_name.get(r.job.name, r.job)
        assert job.running is not None
        node_types = set()
        for name, g in job.running.nodes.items():
            where = nodes.get(name)
            if where is None:
                return None
            held[name] = held.get(name, 0) + g
            node_types.add(where.gpu_type)
        if len(node_types) != 1:
            return None
        here = tmap[node_types.pop()]
        if job.preemptible and any(job.allows(t) and job.speed_on(t) > job.speed_on(here) for t in types):
            return None  # it might finish sooner elsewhere: the model decides
        hours = job.remaining_work(tmap) / job.speed_on(here)
        plans.append(_now(job, "running", here, hours, horizon, list(job.running.nodes.items())))
    if any(g > nodes[name].working_gpus for name, g in held.items()):
        return None  # a gang on GPUs gone out of service: it is stopped, which only the model plans
    free = free_view(cluster, selection.running)
    # Only nodes with room: nothing is given back here, so the others can never take a gang (and
    # the view of a 2,816-GPU cluster, built every round, costs more than the placements).
    room = FreeGpus([n for n in cluster.nodes if free[n.name] > 0], free)
    order = sorted(
        enumerate(selection.queued),
        key=lambda iw: (iw[1].job.max_nodes or 1 << 30, -iw[1].job.gpus, iw[0]),
    )
    starts: dict[str, JobPlan] = {}
    for _, w in order:
        job = w.job
        if job.release > 1e-9:
            return None
        t = best_type(job, types)
        if t is None:
            return None
        hours = job.remaining_work(tmap) / job.speed_on(t)
        if job.deadline is not None and hours > job.deadline + 1e-6:
            return None  # late on its best type: the model weighs the deadline
        gang = Gang(
            gpus=job.gpus,
            gpu_type=t.name,
            per_node=w.per_node,
            max_nodes=job.max_nodes,
            min_memory_gib=job.min_gpu_memory_gib,
        )
        pick = place_gang(room, gang, tmap)
        if pick is None:
            return None
        merged = _merged(pick)
        if not _whole_workers(pick, w.per_node) or (
            job.max_nodes is not None and len(merged) > job.max_nodes
        ):
            return None
        for name, g in pick:
            room.hold(room.index[name], g)
        starts[job.name] = _now(job, "scheduled", t, hours, horizon, merged)
    plans += [starts[w.job.name] for w in selection.queued]
    # The jct objective of this plan (solver/policies.py JctPolicy: every job from time 0), which
    # is also its lower bound: no job can end sooner.

    price_scale = max((t.price_per_hour for t in types), default=1.0) or 1.0
    weight = {j.name: j.priority for j in selection.jobs}
    objective = sum(weight.get(jp.job, 1.0) * (jp.end or 0.0) + TIE * jp.cost / price_scale for jp in plans)
    return Plan(
        policy=policy,  # type: ignore[arg-type]
        solver="none",
        found_by=AT_ONCE,
        status="optimal",
        epoch=epoch,
        horizon=horizon,
        slot=slot,
        objective=objective,
        lower_bound=objective,
        gap=0.0,
        solve_time_s=0.0,
        total_cost=sum(jp.cost for jp in plans),
        jobs=plans,
        notes=["every queued job starts now on its best type: decided by the front-end without a model"],
    )


def _now(
    job: Job,
    status: Literal["running", "scheduled"],
    t: GpuType,
    hours: float,
    horizon: float,
    on: list[tuple[str, int]],
) -> JobPlan:
    """A job's line in a forced plan: from now, for `hours` on type `t`, on these nodes."""
    return JobPlan(
        job=job.name,
        status=status,
        gpu_type=t.name,
        gpus=job.gpus,
        start=0.0,
        end=hours,
        finishes=hours <= horizon,
        placement=[Placement(node=n, gpus=g) for n, g in on],
        cost=job.gpus * hours * t.price_per_hour,
    )


# ------------------------------------------------------------------------------------------- after


@dataclass(frozen=True)
class Start:
    job: str
    gpu_type: str
    placement: list[Placement]
    as_planned: bool
    """On the plan's own nodes (False: the placement module's pick, the plan's were taken)."""


@dataclass(frozen=True)
class Preempt:
    job: str
    reason: str
    moved: bool


@dataclass(frozen=True)
class Keep:
    """A running gang that goes on where it is (the plan kept it, or it may not be stopped)."""

    job: str


@dataclass(frozen=True)
class Wait:
    job: str
    reason: str
    code: str | None
    start: float | None
    """Planned start, hours from now (None: not inside the horizon)."""
    end: float | None
    gpu_type: str | None
    scheduled: bool
    """The plan has a start for it (False: unscheduled within the horizon)."""
    no_room: bool = False
    """Planned to start now, but no whole workers' room is left on its type this round."""


Decision = Start | Preempt | Keep | Wait


def interpret(
    plan: Plan,
    cluster: Cluster,
    queued: Sequence[Waiting],
    running: Sequence[Running],
    free: Mapping[str, int],
    frees_at_once: bool,
) -> list[Decision]:
    """The plan, read once: decisions for every running gang, then for every queued job in order
    (a moved gang whose GPUs are free at once is preempted, then started where the plan puts it).

    free: GPUs free for new work now. frees_at_once: a preempted gang's GPUs are free this round
    (the simulator's instant checkpoint) or only once its pods are gone (the operator's grace
    period: nothing may start there before it has checkpointed)."""
    by_name = {jp.job: jp for jp in plan.jobs}
    room = FreeGpus(cluster.nodes, free)
    out: list[Decision] = []
    starting_now = {
        w.job.name: by_name[w.job.name]
        for w in queued
        if w.job.name in by_name
        and starts_now(by_name[w.job.name], plan.slot)
        and by_name[w.job.name].placement
    }
    priority = {w.job.name: w.job.priority for w in queued}
    moving: list[tuple[JobPlan, Running]] = []
    for r in running:
        jp = by_name.get(r.job.name)
        assert r.job.running is not None
        held = dict(r.job.running.nodes)
        if jp is None:
            out.append(Keep(r.job.name))
            continue
        planned = {p.node: p.gpus for p in jp.placement}
        moved = bool(jp.placement) and planned != held
        if (jp.preempted or jp.migrated or moved or jp.status == "unscheduled") and r.movable:
            beneficiaries = [
                Beneficiary(name, priority[name], sjp.gpus)
                for name, sjp in starting_now.items()
                if any(p.node in held for p in sjp.placement)
            ]
            beneficiaries.sort(key=lambda b: (-b.priority, b.name))
            to = sorted(planned) if moved and starts_now(jp, plan.slot) else None
            why = reason(r.job.priority, to, beneficiaries, plan.policy)
            if jp.status == "unscheduled" and not beneficiaries and jp.reason:
                why = f"stopped by the plan: {jp.reason}"
            out.append(Preempt(r.job.name, why, moved=to is not None))
            if frees_at_once:
                for node, g in held.items():
                    if node in room.index:
                        room.unhold(room.index[node], g)
                if to is not None:
                    moving.append((jp, r))
        else:
            out.append(Keep(r.job.name))
    types = cluster.type_map()
    for jp, r in moving:  # GPUs free at once: a moved gang restarts where the plan puts it
        restart = _queued(jp, Waiting(r.job, (), r.per_node), cluster, room, plan.slot, types)
        if isinstance(restart, Start):
            out.append(restart)
    for w in queued:
        jp = by_name.get(w.job.name)
        if jp is None:
            continue
        out.append(_queued(jp, w, cluster, room, plan.slot, types))
    return out


def _queued(
    jp: JobPlan, w: Waiting, cluster: Cluster, room: FreeGpus, slot: float, types: Mapping[str, GpuType]
) -> Decision:
    name = w.job.name
    if jp.status == "unscheduled" or jp.start is None or jp.gpu_type is None:
        return Wait(
            name,
            jp.reason or "not scheduled within the horizon",
            jp.reason_code or "unscheduled",
            None,
            None,
            None,
            scheduled=False,
        )
    what = f"{w.job.gpus} x {jp.gpu_type}"
    if not starts_now(jp, slot) or not jp.placement:
        why = jp.reason or f"waiting for {what}; planned start in {jp.start:.2f}h"
        return Wait(name, why, jp.reason_code, jp.start, jp.end, jp.gpu_type, scheduled=True)
    pick = [(p.node, p.gpus) for p in jp.placement]
    merged = _merged(pick)
    as_planned = (
        _whole_workers(pick, w.per_node)
        and all(n in room.index and room.whole_free[room.index[n]] >= g for n, g in merged)
        and (w.job.max_nodes is None or len(merged) <= w.job.max_nodes)
    )
    if not as_planned:
        gang = Gang(
            gpus=w.job.gpus,
            gpu_type=jp.gpu_type,
            per_node=w.per_node,
            max_nodes=w.job.max_nodes,
            min_memory_gib=w.job.min_gpu_memory_gib,
        )
        found = place_gang(room, gang, types)
        if found is None:
            why = f"waiting for {what} in whole workers of {w.per_node} GPUs per node"
            return Wait(name, why, None, jp.start, jp.end, jp.gpu_type, scheduled=True, no_room=True)
        pick = found
    for node, g in pick:
        room.hold(room.index[node], g)
    return Start(name, jp.gpu_type, [Placement(node=n, gpus=g) for n, g in pick], as_planned)


def _merged(pick: list[tuple[str, int]]) -> list[tuple[str, int]]:
    total: dict[str, int] = {}
    for n, g in pick:
        total[n] = total.get(n, 0) + g
    return list(total.items())


def _whole_workers(pick: list[tuple[str, int]], per_node: int) -> bool:
    return all(g % per_node == 0 for _, g in _merged(pick))
