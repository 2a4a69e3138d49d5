"""A node-level check of a plan, for the planner's own tests: every scheduled job names the nodes
it holds for its whole run, and no node gives out more GPUs than it has in service in any slot.

It reads only the model (cluster, jobs, plan). What a node may give, per slot: its working GPUs
less its maintenance in that slot; on a cordoned node only to running jobs that go on in place
there. Running jobs that go on in place must be on exactly their nodes.
"""

from __future__ import annotations

import math
from collections import defaultdict

from gpusched.model import Cluster, Job, Plan

TOL = 1e-6


def node_violations(cluster: Cluster, jobs: list[Job], plan: Plan) -> list[str]:
    problems: list[str] = []
    nodes = {n.name: n for n in cluster.nodes}
    by_name = {j.name: j for j in jobs}
    n_slots = round(plan.horizon / plan.slot)
    held: dict[tuple[str, int], int] = defaultdict(int)
    for jp in plan.jobs:
        if jp.status == "unscheduled":
            continue
        job = by_name[jp.job]
        where = {p.node: p.gpus for p in jp.placement}
        if sum(where.values()) != job.gpus:
            problems.append(f"{job.name}: placement holds {sum(where.values())} of {job.gpus} GPUs")
        if job.max_nodes is not None and len(where) > job.max_nodes:
            problems.append(f"{job.name}: on {len(where)} nodes > max_nodes {job.max_nodes}")
        in_place = job.running is not None and jp.start is not None and jp.start < TOL and not jp.migrated
        if in_place and job.running is not None and where != job.running.nodes:
            problems.append(f"{job.name}: goes on in place but not on its nodes")
        assert jp.start is not None and jp.end is not None
        first = math.floor(jp.start / plan.slot + TOL)
        last = min(n_slots, math.ceil(jp.end / plan.slot - TOL))
        for name, g in where.items():
            node = nodes.get(name)
            if node is None or node.gpu_type != jp.gpu_type:
                problems.append(f"{job.name}: placed on {name}, not a {jp.gpu_type} node")
                continue
            if node.cordoned and not in_place:
                problems.append(f"{job.name}: new work on cordoned node {name}")
            for t in range(first, last):
                held[(name, t)] += g
    for (name, t), gpus in sorted(held.items()):
        node = nodes[name]
        avail = node.working_gpus
        lo, hi = t * plan.slot, (t + 1) * plan.slot
        for change in cluster.maintenance:
            if change.node == name and change.start < hi - TOL and change.end > lo + TOL:
                avail -= change.gpus if change.gpus is not None else avail
        if gpus > max(0, avail):
            problems.append(f"node {name}, slot {t}: {gpus} GPUs held > {max(0, avail)} in service")
    return problems
