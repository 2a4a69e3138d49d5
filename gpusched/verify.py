"""An independent plan checker: it reads only the model (cluster, jobs, plan), never solver code.

Used on every plan in the tests and benchmarks, so a solver bug that breaks capacity, gang, type,
memory, release, deadline or contiguity is caught whatever produced the plan.
"""

from __future__ import annotations

import math
from collections import defaultdict

from gpusched.model import Cluster, Job, JobPlan, Node, Plan

TOL = 1e-6


def check_plan(cluster: Cluster, jobs: list[Job], plan: Plan) -> list[str]:
    """Every violation as a sentence; an empty list means the plan is valid."""
    problems: list[str] = []
    types = cluster.type_map()
    nodes = {n.name: n for n in cluster.nodes}
    by_name = {j.name: j for j in jobs}
    planned = {jp.job for jp in plan.jobs}
    for job in jobs:
        if job.name not in planned:
            problems.append(f"{job.name}: missing from the plan")
    n_slots = round(plan.horizon / plan.slot)
    used: dict[tuple[str, int], int] = defaultdict(int)
    node_used: dict[str, int] = defaultdict(int)
    kept: dict[tuple[str, int], int] = defaultdict(int)
    """GPUs of cordoned nodes held by running jobs that go on in place: the only work they may have."""

    for jp in plan.jobs:
        found = by_name.get(jp.job)
        if found is None:
            problems.append(f"{jp.job}: in the plan but not in the queue")
            continue
        job = found
        if jp.status == "unscheduled":
            if jp.segments or jp.placement:
                problems.append(f"{job.name}: unscheduled but has segments or placement")
            if not jp.reason:
                problems.append(f"{job.name}: unscheduled without a reason")
            continue
        if jp.gpu_type not in types:
            problems.append(f"{job.name}: unknown GPU type {jp.gpu_type!r}")
            continue
        gtype = types[jp.gpu_type]
        if job.gpu_types is not None and gtype.name not in job.gpu_types:
            problems.append(f"{job.name}: runs on {gtype.name}, not one of its allowed types {job.gpu_types}")
        if gtype.memory_gib + TOL < job.min_gpu_memory_gib:
            problems.append(
                f"{job.name}: {gtype.name} has {gtype.memory_gib} GiB < {job.min_gpu_memory_gib} GiB"
            )
        if jp.gpus != job.gpus:
            problems.append(f"{job.name}: gang of {job.gpus} GPUs given {jp.gpus}")
        if not jp.segments or jp.start is None:
            problems.append(f"{job.name}: scheduled without segments")
            continue
        if not job.preemptible and job.running is None and len(jp.segments) != 1:
            problems.append(f"{job.name}: non-preemptible but runs in {len(jp.segments)} pieces")
        if jp.start + TOL < job.release and job.running is None:
            problems.append(f"{job.name}: starts at {jp.start:g}h before its release {job.release:g}h")
        if job.running is not None and not job.preemptible and (jp.preempted or jp.migrated):
            problems.append(f"{job.name}: non-preemptible running job was preempted or moved")
        # Work: the planned run must cover the remaining work on that type.
        speed = job.speeds.get(gtype.name, gtype.speed)
        need = job.remaining_work(types) / speed
        if jp.restarts:
            need += job.restart_overhead
        run = (jp.end if jp.end is not None else math.inf) - jp.start
        if jp.finishes and run + TOL < need:
            problems.append(f"{job.name}: runs {run:g}h but needs {need:g}h on {gtype.name}")
        if job.deadline is not None and jp.deadline_met and (jp.end is None or jp.end > job.deadline + TOL):
            problems.append(f"{job.name}: claims its deadline {job.deadline:g}h is met but ends at {jp.end}")
        stays = _stays_in_place(job, jp)
        for i, seg in enumerate(jp.segments):
            first = math.floor(seg.start / plan.slot + TOL)
            last = min(n_slots, math.ceil(seg.end / plan.slot - TOL))
            for t in range(first, max(last, first + 1)):
                used[(gtype.name, t)] += job.gpus
                if stays and i == 0 and job.running is not None:
                    for name, gpus in job.running.nodes.items():
                        if name in nodes and nodes[name].cordoned:
                            kept[(name, t)] += gpus
        if jp.start < plan.slot - TOL:
            total = sum(p.gpus for p in jp.placement)
            if total != job.gpus:
                problems.append(f"{job.name}: starts now but its placement holds {total} of {job.gpus} GPUs")
            if job.max_nodes is not None and len(jp.placement) > job.max_nodes:
                problems.append(
                    f"{job.name}: placed on {len(jp.placement)} nodes > max_nodes {job.max_nodes}"
                )
            for p in jp.placement:
                node = nodes.get(p.node)
                if node is None:
                    problems.append(f"{job.name}: placed on unknown node {p.node!r}")
                    continue
                if node.gpu_type != gtype.name:
                    problems.append(
                        f"{job.name}: placed on {p.node} ({node.gpu_type}) but planned on {gtype.name}"
                    )
                node_used[p.node] += p.gpus
            if (
                job.running is not None
                and not job.preemptible
                and jp.placement
                and {p.node: p.gpus for p in jp.placement} != job.running.nodes
            ):
                problems.append(f"{job.name}: non-preemptible running job moved off its nodes")

    capacity = _capacity(cluster, plan.slot, n_slots, kept)
    for (tname, t), gpus in sorted(used.items()):
        if t < n_slots and gpus > capacity[(tname, t)]:
            problems.append(
                f"slot {t} ({t * plan.slot:g}h): {gpus} x {tname} in use > {capacity[(tname, t)]} available"
            )
    for name, gpus in node_used.items():
        avail = _node_capacity_now(cluster, name, plan.slot, kept)
        if gpus > avail:
            problems.append(f"node {name}: {gpus} GPUs placed now > {avail} schedulable")
    return problems


def _stays_in_place(job: Job, jp: JobPlan) -> bool:
    """A running job whose plan goes on now on exactly the nodes it holds."""
    return (
        job.running is not None
        and jp.start is not None
        and jp.start < TOL
        and not jp.preempted
        and not jp.migrated
        and {p.node: p.gpus for p in jp.placement} == job.running.nodes
    )


def _open_gpus(node: Node, t: int, kept: dict[tuple[str, int], int]) -> int:
    """GPUs of a node usable in slot t: a cordoned one only for the running jobs kept on it."""
    if node.cordoned:
        return min(node.working_gpus, kept.get((node.name, t), 0))
    return node.healthy_gpus


def _node_capacity_now(cluster: Cluster, name: str, slot: float, kept: dict[tuple[str, int], int]) -> int:
    node = next(n for n in cluster.nodes if n.name == name)
    gpus = _open_gpus(node, 0, kept)
    for change in cluster.maintenance:
        if change.node == name and change.start < slot - TOL and change.end > TOL:
            gpus -= change.gpus if change.gpus is not None else gpus
    return max(0, gpus)


def _capacity(
    cluster: Cluster, slot: float, n_slots: int, kept: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    cap: dict[tuple[str, int], int] = {}
    for t in range(n_slots):
        lo, hi = t * slot, (t + 1) * slot
        per_node = {}
        for node in cluster.nodes:
            gpus = _open_gpus(node, t, kept)
            for change in cluster.maintenance:
                if change.node == node.name and change.start < hi - TOL and change.end > lo + TOL:
                    gpus -= change.gpus if change.gpus is not None else gpus
            per_node[node.name] = max(0, gpus)
        for gtype in cluster.gpu_types:
            total = sum(per_node[n.name] for n in cluster.nodes if n.gpu_type == gtype.name)
            for change in cluster.maintenance:
                if change.gpu_type == gtype.name and change.start < hi - TOL and change.end > lo + TOL:
                    total -= change.gpus or 0
            cap[(gtype.name, t)] = max(0, total)
    return cap
