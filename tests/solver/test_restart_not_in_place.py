"""A running job that may not go on in place (its node lost GPUs) must not be "restarted" now on
exactly the GPUs it holds: that is no plan form of the specification (docs/planning.md, rule 8), and
the checker refused it ("marked migrated but does not run now on other nodes"). Found by
test_bounds_hold's search on the code before the fix."""

from __future__ import annotations

import pytest

from gpusched.model import Cluster, GpuType, Job, Node, RunningState
from gpusched.solver import PlanOptions, plan
from gpusched.verify import check_plan

TYPES = [
    GpuType(name="A", memory_gib=80, price_per_hour=3.0, speed=2.0),
    GpuType(name="B", memory_gib=24, price_per_hour=1.0, speed=1.0),
]


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_a_running_job_denied_its_place_is_not_restarted_on_its_own_gpus(solver: str) -> None:
    cluster = Cluster(
        gpu_types=TYPES,
        nodes=[
            Node(name="n0", gpu_type="A", gpu_count=4),
            Node(name="n1", gpu_type="A", gpu_count=4),
            Node(name="n2", gpu_type="B", gpu_count=4, unhealthy_gpus=2),
        ],
    )
    jobs = [
        Job(name="j0", gpus=1, duration=0.5, preemptible=False, restart_overhead=0.25),
        Job(name="j1", gpus=1, duration=0.5, deadline=1.2, preemptible=True, restart_overhead=0.25,
            running=RunningState(nodes={"n2": 1})),
        Job(name="j2", gpus=2, duration=0.5, priority=2, preemptible=True, restart_overhead=0.25,
            running=RunningState(nodes={"n2": 2})),
    ]  # fmt: skip
    result = plan(cluster, jobs, PlanOptions(policy="cost", horizon=5, slot=0.5, solver=solver))
    assert check_plan(cluster, jobs, result) == []
    by_name = {jp.job: jp for jp in result.jobs}
    for job in jobs:
        jp = by_name[job.name]
        if job.running is not None and jp.restarts and jp.start == 0:
            assert {p.node: p.gpus for p in jp.placement} != dict(job.running.nodes), jp
