"""Property tests: whatever the instance and policy, the plan passes the independent checker and
is never worse than the FIFO baseline on the policy's own objective."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpusched.model import Cluster, GpuType, Job, Node, RunningState
from gpusched.solver import PlanOptions, plan
from gpusched.solver.greedy import fifo_baseline
from gpusched.solver.instance import build_instance
from gpusched.solver.placement import place_first_slot
from gpusched.solver.policies import make_policy
from gpusched.verify import check_plan

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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from(["cost", "jct", "makespan", "deadline", "fair"]))
def test_every_plan_passes_the_checker_and_beats_fifo(
    instance: tuple[Cluster, list[Job]], policy: str
) -> None:
    cluster, jobs = instance
    options = PlanOptions(policy=policy, horizon=6.0, slot=0.5, time_limit=20)  # type: ignore[arg-type]
    result = plan(cluster, jobs, options)
    assert check_plan(cluster, jobs, result) == []
    inst = build_instance(cluster, jobs, options)
    pol = make_policy(policy, inst)
    fifo = fifo_baseline(inst, pol)
    _, unplaceable = place_first_slot(inst, fifo)
    if not unplaceable:  # FIFO's plan is a baseline only where its gangs fit on real nodes
        assert result.objective <= pol.evaluate(fifo) + 1e-6
    assert result.lower_bound <= result.objective + 1e-6
