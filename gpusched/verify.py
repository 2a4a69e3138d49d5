"""An independent plan checker, written from docs/planning.md ("Specification"), never from solver code.

It recomputes everything a plan claims from the inputs and the plan's segments (slots held, end
time, bill, restarts, deadline outcome) and checks the rules of the specification, including
node-level realisability over the whole horizon: every contiguous run of every job must fit on
actual nodes (gang, max_nodes, same nodes throughout the run, cordon, health, maintenance,
running jobs that cannot move). That last question is an integer feasibility problem; it is
answered exactly with scipy's bundled HiGHS (`scipy.optimize.milp`) whenever a quick best-fit
packing does not already prove it.

`check_plan` returns the violations as one-line sentences; `plan_objective` recomputes a plan's
objective under a policy so tests can compare it with the planner's and with an exact optimum.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from gpusched.defaults import MIGRATION_PENALTY_H
from gpusched.model import Cluster, GpuType, Job, JobPlan, Node, Plan

TOL = 1e-6
"""Hours (and relative objective) tolerance for float comparisons."""
OPTIMAL_GAP = 5e-5
"""The summary prints the gap in percent with two decimals: 'optimal' must print as 0.00 %."""
TIE = 1e-3
"""Weight of each policy's tie-breaking term (see the specification)."""
DEFAULT_MIGRATION_PENALTY = MIGRATION_PENALTY_H
"""PlanOptions.migration_penalty's default: wall hours added to a running job's first restart."""


# ------------------------------------------------------------------------------------------ capacity


def slot_count(plan: Plan) -> int:
    return max(1, round(plan.horizon / plan.slot))


def overlaps(start: float, end: float, t: int, slot: float) -> bool:
    """Does [start, end) touch slot t = [t*slot, (t+1)*slot)?"""
    return start < (t + 1) * slot - TOL and end > t * slot + TOL


def node_usable(cluster: Cluster, node: Node, t: int, slot: float) -> int:
    """GPUs of a node in service in slot t: gpu_count - unhealthy, less maintenance on the node."""
    gpus = node.gpu_count - node.unhealthy_gpus
    for change in cluster.maintenance:
        if change.node == node.name and overlaps(change.start, change.end, t, slot):
            gpus -= change.gpus if change.gpus is not None else gpus
    return max(0, gpus)


def type_maintenance(cluster: Cluster, gpu_type: str, t: int, slot: float) -> int:
    """GPUs of a type out of service in slot t by type-level maintenance (no node named)."""
    return sum(
        c.gpus or 0
        for c in cluster.maintenance
        if c.gpu_type == gpu_type and overlaps(c.start, c.end, t, slot)
    )


# ------------------------------------------------------------------------------------- derived plan


@dataclass
class Run:
    """A contiguous run of one job: slots first..last (inclusive, inside the horizon)."""

    job: str
    gpu_type: str
    gpus: int
    max_nodes: int | None
    first: int
    last: int
    fixed: dict[str, int] | None = None
    """Nodes the run must use (the plan's first-slot placement, or a kept running job's nodes)."""
    kept: bool = False
    """The running job going on in place: the only work a cordoned node may hold."""

    def active(self, t: int) -> bool:
        return self.first <= t <= self.last


@dataclass
class Derived:
    """What the inputs and a job's segments imply, independent of the plan's own fields."""

    job: Job
    jp: JobPlan
    gtype: GpuType | None
    wall: float = 0.0
    """Wall hours of running needed: work / speed + restart overheads (+ migration penalty)."""
    end: float | None = None
    restarts: int = 0
    stays: bool = False
    bill: float = 0.0
    runs: list[Run] = field(default_factory=list)


def _speed(job: Job, gtype: GpuType) -> float:
    return job.speeds.get(gtype.name, gtype.speed)


def derive(
    cluster: Cluster, job: Job, jp: JobPlan, plan: Plan, migration_penalty: float, problems: list[str]
) -> Derived:
    """Recompute a scheduled job's runs, wall time, end and bill from its segments."""
    types = cluster.type_map()
    gtype = types.get(jp.gpu_type or "")
    d = Derived(job=job, jp=jp, gtype=gtype)
    if gtype is None or not jp.segments:
        return d
    slot, horizon, n_slots = plan.slot, plan.horizon, slot_count(plan)
    segs = jp.segments
    placement = {p.node: p.gpus for p in jp.placement}
    running = job.running
    d.stays = (
        running is not None
        and segs[0].start < TOL
        and not jp.preempted
        and not jp.migrated
        and placement == dict(running.nodes)
    )
    restarts = len(segs) - 1 + (1 if running is not None and not d.stays else 0)
    d.restarts = restarts
    need = job.remaining_work(types) / _speed(job, gtype)
    d.wall = need + restarts * job.restart_overhead
    if running is not None and not d.stays:
        d.wall += migration_penalty
    before = sum(s.end - s.start for s in segs[:-1])
    d.end = segs[-1].start + max(0.0, d.wall - before)
    d.bill = job.gpus * gtype.price_per_hour * d.wall
    for i, seg in enumerate(segs):
        if abs(seg.start / slot - round(seg.start / slot)) > TOL:
            problems.append(f"{job.name}: segment {i} starts at {seg.start:g}h, not on a slot boundary")
        if seg.end <= seg.start + TOL:
            problems.append(f"{job.name}: segment {i} [{seg.start:g}h, {seg.end:g}h) is empty")
        if seg.start < -TOL or seg.start > horizon - TOL:
            problems.append(f"{job.name}: segment {i} starts at {seg.start:g}h, outside the horizon")
        if i > 0 and seg.start < segs[i - 1].end - TOL:
            problems.append(f"{job.name}: segment {i} starts before segment {i - 1} ends")
        if i < len(segs) - 1:
            if abs(seg.end / slot - round(seg.end / slot)) > TOL:
                problems.append(f"{job.name}: segment {i} stops at {seg.end:g}h, not on a slot boundary")
            if i + 1 < len(segs) and abs(segs[i + 1].start - seg.end) < TOL:
                problems.append(f"{job.name}: segments {i} and {i + 1} touch: one run split in two")
        first = round(seg.start / slot)
        last = min(n_slots, math.ceil(seg.end / slot - TOL)) - 1
        if last < first:
            continue
        fixed: dict[str, int] | None = None
        if i == 0 and placement:
            fixed = placement  # the plan's named nodes: now for slot 0, a reservation for later starts
        if i == 0 and d.stays and running is not None:
            fixed = dict(running.nodes)
        d.runs.append(
            Run(job.name, gtype.name, job.gpus, job.max_nodes, first, last, fixed, kept=(i == 0 and d.stays))
        )
    last_seg = segs[-1]
    expected_last_end = min(d.end, horizon)
    if abs(last_seg.end - expected_last_end) > 1e-4:
        problems.append(
            f"{job.name}: last segment ends at {last_seg.end:g}h but its work ends at {d.end:g}h "
            f"({d.wall:g}h of running on {gtype.name})"
        )
    return d


# ------------------------------------------------------------------------------------------- checker


@dataclass
class CheckReport:
    violations: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    """Questions the node-level packing could not settle within its time limit (not violations)."""


def check_plan(
    cluster: Cluster,
    jobs: list[Job],
    plan: Plan,
    *,
    migration_penalty: float = DEFAULT_MIGRATION_PENALTY,
    node_time_limit: float = 20.0,
) -> list[str]:
    """Every violation of the specification as a one-line sentence; [] means the plan is valid."""
    return check_plan_report(
        cluster, jobs, plan, migration_penalty=migration_penalty, node_time_limit=node_time_limit
    ).violations


def check_plan_report(
    cluster: Cluster,
    jobs: list[Job],
    plan: Plan,
    *,
    migration_penalty: float = DEFAULT_MIGRATION_PENALTY,
    node_time_limit: float = 20.0,
) -> CheckReport:
    report = CheckReport()
    problems = report.violations
    nodes = {n.name: n for n in cluster.nodes}
    by_name = {j.name: j for j in jobs}
    n_slots = slot_count(plan)
    slot = plan.slot
    if abs(n_slots * slot - plan.horizon) > TOL:
        problems.append(f"plan: horizon {plan.horizon:g}h is not a whole number of {slot:g}h slots")
    seen: set[str] = set()
    for jp in plan.jobs:
        if jp.job in seen:
            problems.append(f"{jp.job}: appears twice in the plan")
        seen.add(jp.job)
    for job in jobs:
        if job.name not in seen:
            problems.append(f"{job.name}: missing from the plan")

    derived: list[Derived] = []
    for jp in plan.jobs:
        found = by_name.get(jp.job)
        if found is None:
            problems.append(f"{jp.job}: in the plan but not in the queue")
            continue
        d = _check_job(cluster, found, jp, plan, migration_penalty, problems)
        if d is not None:
            derived.append(d)
    _check_running_nonpreemptible(cluster, jobs, plan, derived, problems)

    runs = [r for d in derived for r in d.runs]
    _check_type_capacity(cluster, runs, n_slots, slot, problems)
    _check_nodes(cluster, nodes, runs, n_slots, slot, node_time_limit, report)
    _check_status(cluster, jobs, plan, derived, problems)
    return report


def _check_job(
    cluster: Cluster, job: Job, jp: JobPlan, plan: Plan, migration_penalty: float, problems: list[str]
) -> Derived | None:
    types = cluster.type_map()
    nodes = {n.name: n for n in cluster.nodes}
    if jp.status == "unscheduled":
        if jp.segments or jp.placement:
            problems.append(f"{job.name}: unscheduled but has segments or placement")
        if not jp.reason or jp.reason_code is None:
            problems.append(f"{job.name}: unscheduled without a reason and reason code")
        if job.deadline is not None and jp.deadline_met:
            problems.append(f"{job.name}: unscheduled but claims its deadline is met")
        return None
    if jp.gpu_type not in types:
        problems.append(f"{job.name}: unknown GPU type {jp.gpu_type!r}")
        return None
    gtype = types[jp.gpu_type]
    if not job.allows(gtype):
        why = (
            f"{gtype.name} has {gtype.memory_gib:g} GiB < {job.min_gpu_memory_gib:g} GiB"
            if gtype.memory_gib < job.min_gpu_memory_gib
            else f"not one of its allowed types {job.gpu_types}"
        )
        problems.append(f"{job.name}: runs on {gtype.name}: {why}")
    if jp.gpus != job.gpus:
        problems.append(f"{job.name}: gang of {job.gpus} GPUs given {jp.gpus}")
    if not jp.segments:
        problems.append(f"{job.name}: {jp.status} without segments")
        return None
    if jp.status == "running" and job.running is None:
        problems.append(f"{job.name}: status running but the job is not running now")
    d = derive(cluster, job, jp, plan, migration_penalty, problems)
    first = jp.segments[0]
    if jp.start is None or abs(jp.start - first.start) > TOL:
        problems.append(f"{job.name}: start {jp.start} is not its first segment's {first.start:g}h")
    if job.running is None and first.start + TOL < job.release:
        problems.append(f"{job.name}: starts at {first.start:g}h before its release {job.release:g}h")
    if not job.preemptible and len(jp.segments) != 1:
        problems.append(f"{job.name}: non-preemptible but runs in {len(jp.segments)} pieces")
    assert d.end is not None
    if jp.end is None or abs(jp.end - d.end) > 1e-4:
        problems.append(f"{job.name}: reports end {jp.end}h but its segments end its work at {d.end:g}h")
    if jp.finishes != (d.end <= plan.horizon + TOL):
        problems.append(
            f"{job.name}: finishes={jp.finishes} but it ends at {d.end:g}h (horizon {plan.horizon:g}h)"
        )
    if jp.restarts != d.restarts:
        problems.append(f"{job.name}: reports {jp.restarts} restarts, its segments make {d.restarts}")
    if abs(jp.cost - d.bill) > 1e-4 * max(1.0, d.bill):
        problems.append(f"{job.name}: reports cost {jp.cost:g}, its run bills {d.bill:g}")
    if job.deadline is not None:
        met = d.end <= job.deadline + TOL
        if jp.deadline_met is not met:
            problems.append(
                f"{job.name}: deadline_met={jp.deadline_met} but it ends at {d.end:g}h "
                f"(deadline {job.deadline:g}h)"
            )
        if abs(jp.tardiness - max(0.0, d.end - job.deadline)) > 1e-4:
            problems.append(f"{job.name}: tardiness {jp.tardiness:g} != {max(0.0, d.end - job.deadline):g}")
        if not met and not jp.reason:
            problems.append(f"{job.name}: misses its deadline without a reason")
    # First-slot placement: exactly the gang, on nodes of its type, at most max_nodes of them.
    runs_now = first.start < TOL
    total = sum(p.gpus for p in jp.placement)
    if runs_now and not jp.placement:
        problems.append(f"{job.name}: runs now but names no nodes")
    if jp.placement:
        if total != job.gpus:
            problems.append(f"{job.name}: its placement holds {total} of {job.gpus} GPUs")
        names = [p.node for p in jp.placement]
        if len(set(names)) != len(names):
            problems.append(f"{job.name}: placement names a node twice")
        if job.max_nodes is not None and len(set(names)) > job.max_nodes:
            problems.append(f"{job.name}: placed on {len(set(names))} nodes > max_nodes {job.max_nodes}")
        for p in jp.placement:
            node = nodes.get(p.node)
            if node is None:
                problems.append(f"{job.name}: placed on unknown node {p.node!r}")
            elif node.gpu_type != gtype.name:
                problems.append(
                    f"{job.name}: placed on {p.node} ({node.gpu_type}) but planned on {gtype.name}"
                )
    if job.running is not None:
        if jp.preempted and runs_now:
            problems.append(f"{job.name}: marked preempted but runs in the first slot")
        if jp.migrated and (not runs_now or {p.node: p.gpus for p in jp.placement} == job.running.nodes):
            problems.append(f"{job.name}: marked migrated but does not run now on other nodes")
        if not d.stays and not jp.preempted and not jp.migrated:
            problems.append(
                f"{job.name}: running job neither stays in place nor is marked preempted/migrated"
            )
    elif jp.preempted or jp.migrated:
        problems.append(f"{job.name}: not running now but marked preempted or migrated")
    return d


def _check_running_nonpreemptible(
    cluster: Cluster, jobs: list[Job], plan: Plan, derived: list[Derived], problems: list[str]
) -> None:
    """A non-preemptible running job keeps its nodes until done, unless they cannot hold it."""
    stays = {d.job.name for d in derived if d.stays}
    nodes = {n.name: n for n in cluster.nodes}
    types = cluster.type_map()
    n_slots = slot_count(plan)
    # What all non-preemptible running jobs would hold on each node, slot by slot, if they all stayed.
    demand: dict[tuple[str, int], int] = defaultdict(int)
    last_slot: dict[str, int] = {}
    for job in jobs:
        if job.running is None or job.preemptible:
            continue
        node_type = types[nodes[next(iter(job.running.nodes))].gpu_type]
        wall = job.remaining_work(types) / _speed(job, node_type)
        last_slot[job.name] = min(n_slots, math.ceil(wall / plan.slot - TOL)) - 1
        for name, gpus in job.running.nodes.items():
            for t in range(last_slot[job.name] + 1):
                demand[(name, t)] += gpus
    for job in jobs:
        if job.running is None or job.preemptible or job.name in stays:
            continue
        fits = all(
            demand[(name, t)] <= node_usable(cluster, nodes[name], t, plan.slot)
            for name in job.running.nodes
            for t in range(last_slot[job.name] + 1)
        )
        if fits:
            problems.append(f"{job.name}: non-preemptible running job stopped or moved off its nodes")
        elif plan.status != "infeasible":
            problems.append(
                f"{job.name}: its nodes cannot keep the non-preemptible running job, "
                f"yet plan status is {plan.status!r}, not 'infeasible'"
            )


def _check_type_capacity(
    cluster: Cluster, runs: list[Run], n_slots: int, slot: float, problems: list[str]
) -> None:
    used: dict[tuple[str, int], int] = defaultdict(int)
    kept: dict[tuple[str, int], int] = defaultdict(int)
    for r in runs:
        for t in range(r.first, r.last + 1):
            used[(r.gpu_type, t)] += r.gpus
            if r.kept and r.fixed:
                for name, gpus in r.fixed.items():
                    kept[(name, t)] += gpus
    for (tname, t), gpus in sorted(used.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cap = -type_maintenance(cluster, tname, t, slot)
        for node in cluster.nodes:
            if node.gpu_type != tname:
                continue
            usable = node_usable(cluster, node, t, slot)
            cap += min(usable, kept[(node.name, t)]) if node.cordoned else usable
        cap = max(0, cap)
        if gpus > cap:
            problems.append(f"slot {t} ({t * slot:g}h): {gpus} x {tname} in use > {cap} available")


# -------------------------------------------------------------------------------- node realisability


def _check_nodes(
    cluster: Cluster,
    nodes: dict[str, Node],
    runs: list[Run],
    n_slots: int,
    slot: float,
    time_limit: float,
    report: CheckReport,
) -> None:
    problems = report.violations
    usable = {(n.name, t): node_usable(cluster, n, t, slot) for n in cluster.nodes for t in range(n_slots)}
    # Fixed runs first: their nodes are given, so an excess is a plain per-node violation.
    held: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
    for r in runs:
        if r.fixed is None:
            continue
        for name, gpus in r.fixed.items():
            node = nodes.get(name)
            if node is None or node.gpu_type != r.gpu_type:
                continue  # reported by the placement checks
            for t in range(r.first, r.last + 1):
                held[(name, t)].append((r.job, gpus))
            if node.cordoned and not r.kept:
                problems.append(f"{r.job}: new work on cordoned node {name} (slots {r.first}-{r.last})")
    for (name, t), items in sorted(held.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        total = sum(g for _, g in items)
        if total > usable[(name, t)]:
            who = ", ".join(f"{j} {g}" for j, g in items)
            problems.append(
                f"slot {t} ({t * slot:g}h): node {name} holds {total} GPUs ({who}) > {usable[(name, t)]} usable"
            )
    by_type: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        if r.fixed is not None:
            valid = {k: v for k, v in r.fixed.items() if k in nodes and nodes[k].gpu_type == r.gpu_type}
            # A broken placement is reported above; pack the valid part, or the run freely.
            fixed = valid if sum(valid.values()) == r.gpus else None
            r = Run(r.job, r.gpu_type, r.gpus, r.max_nodes, r.first, r.last, fixed, r.kept)
        by_type[r.gpu_type].append(r)
    overfull = {
        nodes[name].gpu_type
        for (name, t), items in held.items()
        if sum(g for _, g in items) > usable[(name, t)]
    }
    for tname, type_runs in sorted(by_type.items()):
        type_nodes = [n for n in cluster.nodes if n.gpu_type == tname]
        if tname in overfull or not any(r.fixed is None for r in type_runs):
            continue  # already reported node by node, or nothing left to choose
        maint = [type_maintenance(cluster, tname, t, slot) for t in range(n_slots)]
        if not any(maint) and _greedy_fits(type_runs, type_nodes, usable, n_slots):
            continue
        result = _pack(type_runs, type_nodes, usable, maint, n_slots, n_slots - 1, time_limit)
        if result is True:
            continue
        if result is None:
            report.undecided.append(f"{tname}: node packing not settled within {time_limit:g}s")
            continue
        # Find the first slot from which no packing exists, and name who and where.
        lo, hi = 0, n_slots - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if _pack(type_runs, type_nodes, usable, maint, n_slots, mid, time_limit) is False:
                hi = mid
            else:
                lo = mid + 1
        t = lo
        active = [r for r in type_runs if r.active(t)]
        who = ", ".join(
            f"{r.job} ({r.gpus} GPUs{'' if r.max_nodes is None else f', max_nodes {r.max_nodes}'}"
            f"{'' if r.fixed is None else ' on ' + '+'.join(f'{k}:{v}' for k, v in r.fixed.items())})"
            for r in active
        )
        free = ", ".join(
            f"{n.name} {usable[(n.name, t)]}{' cordoned' if n.cordoned else ''}" for n in type_nodes
        )
        problems.append(
            f"slot {t} ({t * slot:g}h): no node assignment of {tname} fits {who} "
            f"on nodes [{free} usable] (runs keep their nodes from their first slot)"
        )


def _may_use(r: Run, node: Node) -> bool:
    if r.fixed is not None:
        return node.name in r.fixed
    return not node.cordoned


def _greedy_fits(
    runs: list[Run], nodes: list[Node], usable: dict[tuple[str, int], int], n_slots: int
) -> bool:
    """Best-fit in start order; True proves realisability, False proves nothing."""
    free = {(n.name, t): usable[(n.name, t)] for n in nodes for t in range(n_slots)}
    for r in sorted(runs, key=lambda r: (r.fixed is None, r.first, -r.gpus)):
        slots = range(r.first, r.last + 1)
        if r.fixed is not None:
            for name, gpus in r.fixed.items():
                for t in slots:
                    free[(name, t)] -= gpus
                    if free[(name, t)] < 0:
                        return False
            continue
        room = sorted(
            ((min(free[(n.name, t)] for t in slots), n.name) for n in nodes if _may_use(r, n)),
            reverse=True,
        )
        # The single node that fits best (least room left), else the largest first.
        single = [(g, name) for g, name in room if g >= r.gpus]
        pick: list[tuple[str, int]] = []
        if single:
            g, name = min(single)
            pick = [(name, r.gpus)]
        else:
            left = r.gpus
            for g, name in room:
                if left <= 0 or g <= 0:
                    break
                take = min(g, left)
                pick.append((name, take))
                left -= take
            if left > 0:
                return False
        if r.max_nodes is not None and len(pick) > r.max_nodes:
            return False
        for name, gpus in pick:
            for t in slots:
                free[(name, t)] -= gpus
    return True


def _pack(
    runs: list[Run],
    nodes: list[Node],
    usable: dict[tuple[str, int], int],
    maint: list[int],
    n_slots: int,
    upto: int,
    time_limit: float,
) -> bool | None:
    """Exact: is there an assignment of every run to nodes for slots 0..upto? None: undecided."""
    runs = [r for r in runs if r.first <= upto]
    cols: list[tuple[str, int, int]] = []  # (kind, run index, node index): a = GPUs, u = node used
    index: dict[tuple[str, int, int], int] = {}
    lb: list[float] = []
    ub: list[float] = []
    for ri, r in enumerate(runs):
        for ni, n in enumerate(nodes):
            if not _may_use(r, n):
                continue
            cap = max(usable[(n.name, t)] for t in range(r.first, min(r.last, upto) + 1))
            hi = min(r.gpus, cap)
            if r.fixed is not None:
                lo = hi = r.fixed.get(n.name, 0)
            else:
                lo = 0
            for kind in ("a", "u"):
                index[(kind, ri, ni)] = len(cols)
                cols.append((kind, ri, ni))
                lb.append(lo if kind == "a" else 0)
                ub.append(hi if kind == "a" else 1)
    # Type-level maintenance takes GPUs from nodes of the planner's (our) choosing: rem[n, t].
    rem: dict[tuple[int, int], int] = {}
    for t in range(upto + 1):
        if maint[t]:
            for ni, n in enumerate(nodes):
                rem[(ni, t)] = len(cols)
                cols.append(("r", t, ni))
                lb.append(0)
                ub.append(usable[(n.name, t)])
    n_cols = len(cols)
    rows: list[int] = []
    cidx: list[int] = []
    vals: list[float] = []
    rlo: list[float] = []
    rhi: list[float] = []

    def row(entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        r_i = len(rlo)
        for c, v in entries:
            rows.append(r_i)
            cidx.append(c)
            vals.append(v)
        rlo.append(lo)
        rhi.append(hi)

    for ri, r in enumerate(runs):
        a_cols = [index[("a", ri, ni)] for ni in range(len(nodes)) if ("a", ri, ni) in index]
        row([(c, 1.0) for c in a_cols], r.gpus, r.gpus)
        u_cols = []
        for ni in range(len(nodes)):
            if ("a", ri, ni) in index:
                a, u = index[("a", ri, ni)], index[("u", ri, ni)]
                row([(a, 1.0), (u, -float(r.gpus))], -np.inf, 0.0)
                u_cols.append(u)
        if r.max_nodes is not None:
            row([(c, 1.0) for c in u_cols], 0.0, r.max_nodes)
    for t in range(upto + 1):
        if maint[t]:
            row([(rem[(ni, t)], 1.0) for ni in range(len(nodes))], maint[t], np.inf)
        for ni, n in enumerate(nodes):
            entries = [
                (index[("a", ri, ni)], 1.0)
                for ri, r in enumerate(runs)
                if r.active(t) and ("a", ri, ni) in index
            ]
            if (ni, t) in rem:
                entries.append((rem[(ni, t)], 1.0))
            if entries:
                row(entries, -np.inf, usable[(n.name, t)])
    if n_cols == 0:
        return all(r.fixed is not None for r in runs) or not runs
    constraints = []
    if rlo:
        matrix = coo_matrix((vals, (rows, cidx)), shape=(len(rlo), n_cols)).tocsr()
        constraints.append(LinearConstraint(matrix, rlo, rhi))
    res = milp(
        c=np.zeros(n_cols),
        constraints=constraints,
        integrality=np.ones(n_cols),
        bounds=Bounds(lb, ub),
        options={"time_limit": time_limit, "presolve": True},
    )
    if res.status == 0:
        return True
    if res.status == 2:
        return False
    return None


# -------------------------------------------------------------------------------- status and bound


def _check_status(
    cluster: Cluster, jobs: list[Job], plan: Plan, derived: list[Derived], problems: list[str]
) -> None:
    if plan.status not in ("optimal", "feasible", "infeasible"):
        problems.append(f"plan: unknown status {plan.status!r}")
    scale = max(1.0, abs(plan.objective))
    if plan.lower_bound > plan.objective + TOL * scale:
        problems.append(f"plan: lower bound {plan.lower_bound:g} above its objective {plan.objective:g}")
    if plan.gap < -TOL:
        problems.append(f"plan: negative gap {plan.gap:g}")
    if plan.status == "optimal" and plan.gap > OPTIMAL_GAP:
        problems.append(
            f"plan: status optimal with gap {plan.gap:.4%} (> {OPTIMAL_GAP:.3%} printed as 0.00%)"
        )
    gap = (plan.objective - plan.lower_bound) / max(abs(plan.objective), 1e-9)
    if plan.status == "optimal" and gap > OPTIMAL_GAP:
        problems.append(
            f"plan: status optimal but objective {plan.objective:g} is {gap:.4%} above its bound {plan.lower_bound:g}"
        )
    total = sum(d.bill for d in derived)
    if abs(plan.total_cost - total) > 1e-4 * max(1.0, total):
        problems.append(f"plan: total_cost {plan.total_cost:g} but its jobs bill {total:g}")
    misses = [
        d.job.name
        for d in derived
        if d.job.deadline is not None and d.end is not None and d.end > d.job.deadline + TOL
    ]
    with_deadline = {j.name for j in jobs if j.deadline is not None}
    misses += [jp.job for jp in plan.jobs if jp.status == "unscheduled" and jp.job in with_deadline]
    if plan.status == "infeasible" and not misses:
        stopped = any(
            j.running is not None
            and not j.preemptible
            and j.name not in {d.job.name for d in derived if d.stays}
            for j in jobs
        )
        if not stopped:
            problems.append(
                "plan: status infeasible, yet every deadline is met and no running job is stopped"
            )
    if misses and plan.status != "infeasible":
        problems.append(f"plan: status {plan.status!r} but {', '.join(sorted(misses))} miss their deadline")


# ------------------------------------------------------------------------------------------ objective


@dataclass
class Objective:
    """A plan's objective under the specification, split into its lexicographic levels."""

    misses: float
    """Priority-weighted deadline misses among deadlines some choice could meet."""
    value: float
    """Primary term plus the tie-breaking term (the miss penalty excluded)."""
    unstarted: list[str]
    missed: list[str]


def meetable(
    cluster: Cluster, job: Job, horizon: float, slot: float, migration_penalty: float = MIGRATION_PENALTY_H
) -> bool:
    """Could the job meet its deadline with the cluster to itself (capacity over time, no other job)?"""
    if job.deadline is None:
        return True
    types = cluster.type_map()
    n_slots = max(1, round(horizon / slot))
    for gtype in cluster.gpu_types:
        if not job.allows(gtype):
            continue
        wall = job.remaining_work(types) / _speed(job, gtype)
        if job.running is not None:
            here = cluster.type_map()[next(n.gpu_type for n in cluster.nodes if n.name in job.running.nodes)]
            if here.name == gtype.name:
                stay_end = wall
                if stay_end <= job.deadline + TOL:
                    return True
            wall += job.restart_overhead + migration_penalty
        first = 0 if job.running is not None else math.ceil(job.release / slot - TOL)
        for s in range(first, n_slots):
            end = s * slot + wall
            if end > job.deadline + TOL:
                break
            last = min(n_slots, math.ceil(end / slot - TOL)) - 1
            ok = True
            for t in range(s, last + 1):
                cap = sum(
                    node_usable(cluster, n, t, slot)
                    for n in cluster.nodes
                    if n.gpu_type == gtype.name and not n.cordoned
                ) - type_maintenance(cluster, gtype.name, t, slot)
                if cap < job.gpus:
                    ok = False
                    break
            if ok:
                return True
    return False


def unstarted_terms(cluster: Cluster, job: Job, horizon: float, slot: float) -> tuple[float, float]:
    """(end, bill) charged to a job that does not start: a start at the horizon, plus one slot."""
    types = cluster.type_map()
    options = [t for t in cluster.gpu_types if job.allows(t)] or cluster.gpu_types
    end = min(horizon + slot + job.remaining_work(types) / _speed(job, t) for t in options)
    bill = min(
        job.gpus * t.price_per_hour * (job.remaining_work(types) / _speed(job, t) + slot) for t in options
    )
    return end, bill


def plan_objective(
    cluster: Cluster,
    jobs: list[Job],
    plan: Plan,
    policy: str | None = None,
    *,
    migration_penalty: float = DEFAULT_MIGRATION_PENALTY,
) -> Objective:
    """The plan's objective recomputed from its segments (policy: the plan's unless given)."""
    policy = policy or plan.policy
    by_name = {j.name: j for j in jobs}
    ends: dict[str, float] = {}
    bills: dict[str, float] = {}
    unstarted: list[str] = []
    scratch: list[str] = []
    for jp in plan.jobs:
        job = by_name.get(jp.job)
        if job is None:
            continue
        if jp.status == "unscheduled" or not jp.segments:
            unstarted.append(job.name)
            ends[job.name], bills[job.name] = unstarted_terms(cluster, job, plan.horizon, plan.slot)
            continue
        d = derive(cluster, job, jp, plan, migration_penalty, scratch)
        assert d.end is not None
        ends[job.name], bills[job.name] = d.end, d.bill
    return objective_from(
        cluster, jobs, ends, bills, policy, plan.horizon, plan.slot, migration_penalty, unstarted
    )


def objective_from(
    cluster: Cluster,
    jobs: list[Job],
    ends: dict[str, float],
    bills: dict[str, float],
    policy: str,
    horizon: float,
    slot: float,
    migration_penalty: float = DEFAULT_MIGRATION_PENALTY,
    unstarted: list[str] | None = None,
) -> Objective:
    """The specification's objective from each job's end and bill (shared with the exact oracle)."""
    prices = [t.price_per_hour for t in cluster.gpu_types]
    mean_price = sum(prices) / len(prices)
    max_price = max(prices) or 1.0
    jobs = [j for j in jobs if j.name in ends]
    bill = sum(bills[j.name] for j in jobs)
    jct = sum(j.priority * (ends[j.name] - (0.0 if j.running else j.release)) for j in jobs)
    jct_full = jct + TIE * bill / max_price
    missed = [
        j.name
        for j in jobs
        if j.deadline is not None
        and ends[j.name] > j.deadline + TOL
        and meetable(cluster, j, horizon, slot, migration_penalty)
    ]
    misses = sum(j.priority for j in jobs if j.name in missed)
    if policy == "cost":
        value = bill + TIE * mean_price * sum(j.priority * j.gpus * ends[j.name] for j in jobs)
    elif policy == "jct":
        value = jct_full
    elif policy == "makespan":
        value = max((ends[j.name] for j in jobs), default=0.0) + TIE * jct_full
    elif policy == "deadline":
        tardiness = sum(
            j.priority * max(0.0, ends[j.name] - j.deadline) for j in jobs if j.deadline is not None
        )
        value = tardiness + TIE * jct_full
    else:
        raise ValueError(f"policy {policy!r}: the oracle covers cost, jct, makespan and deadline")
    return Objective(misses=misses, value=value, unstarted=list(unstarted or []), missed=missed)
