"""Helpers to write planner tests as small, hand-checkable YAML-like dicts."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from gpusched.model import Cluster, GpuType, Job, Node, Plan, RunningState
from gpusched.solver import PlanOptions, plan
from gpusched.verify import check_plan


def make_cluster(types: list[dict[str, Any]], nodes: list[dict[str, Any]], **extra: Any) -> Cluster:
    return Cluster.model_validate({"gpu_types": types, "nodes": nodes, **extra})


def run(cluster: Cluster, jobs: list[dict[str, Any]] | list[Job], **options: Any) -> Plan:
    parsed = [j if isinstance(j, Job) else Job.model_validate(j) for j in jobs]
    options.setdefault("horizon", 8.0)
    options.setdefault("slot", 1.0)
    options.setdefault("time_limit", 30)
    result = plan(cluster, parsed, PlanOptions(**options))
    problems = check_plan(cluster, parsed, result)
    assert problems == [], problems
    return result


TYPES = [
    GpuType(name="A", memory_gib=80, price_per_hour=3.0, speed=2.0),
    GpuType(name="B", memory_gib=24, price_per_hour=1.0, speed=1.0),
]


@st.composite
def instances(draw: st.DrawFn) -> tuple[Cluster, list[Job]]:
    nodes = []
    for i in range(draw(st.integers(1, 4))):
        count = draw(st.sampled_from([2, 4, 8]))
        nodes.append(
            Node(
                name=f"n{i}",
                gpu_type=draw(st.sampled_from(["A", "B"])),
                gpu_count=count,
                unhealthy_gpus=draw(st.integers(0, 1)),
                topology_domain=draw(st.sampled_from(["x", "y"])),
            )
        )
    cluster = Cluster(gpu_types=TYPES, nodes=nodes)
    free = {n.name: n.healthy_gpus for n in nodes}
    jobs = []
    for j in range(draw(st.integers(1, 8))):
        release = draw(st.sampled_from([0.0, 0.0, 1.0, 2.5]))
        duration = draw(st.sampled_from([0.5, 1.0, 2.0, 3.5]))
        deadline = draw(st.one_of(st.none(), st.sampled_from([1.0, 3.0, 6.0])))
        if deadline is not None and deadline <= release:
            deadline = release + 2.0
        running = None
        gpus = draw(st.sampled_from([1, 2, 4, 8]))
        if draw(st.booleans()) and release == 0.0:
            node = draw(st.sampled_from(nodes))
            if free[node.name] >= gpus:
                free[node.name] -= gpus
                running = RunningState(nodes={node.name: gpus}, done=draw(st.sampled_from([0.0, 0.25])))
        jobs.append(
            Job(
                name=f"j{j}",
                gpus=gpus,
                duration=duration,
                gpu_types=draw(st.one_of(st.none(), st.just(["A"]), st.just(["B"]))),
                min_gpu_memory_gib=draw(st.sampled_from([0.0, 0.0, 40.0])),
                priority=draw(st.sampled_from([1.0, 2.0])),
                team=draw(st.sampled_from(["t1", "t2"])),
                release=release,
                deadline=deadline,
                preemptible=draw(st.booleans()),
                restart_overhead=0.25,
                max_nodes=draw(st.one_of(st.none(), st.just(1))),
                running=running,
            )
        )
    if any(j.running for j in jobs):
        # A running job's node type must be one it allows.
        jobs = [
            j.model_copy(update={"gpu_types": None, "min_gpu_memory_gib": 0.0}) if j.running else j
            for j in jobs
        ]
    return cluster, jobs
