"""A non-preemptible running job keeps its GPUs whatever order a rounding takes the jobs in.

Found by test_bounds_hold: two running jobs on a node that lost 2 of its 8 GPUs, one of them
non-preemptible. The LP rounding took both running jobs as one group in alpha-point order; the
preemptible one's restart went first and took the GPUs the fixed one needs, which then had no
start at all: the plan "stopped" a job that may not be stopped.
"""

from __future__ import annotations

from gpusched.model import Cluster, GpuType, Job, Node, RunningState
from gpusched.solver import PlanOptions
from gpusched.solver.greedy import lp_guided
from gpusched.solver.instance import build_instance
from gpusched.solver.policies import make_policy


def test_the_rounding_places_jobs_that_must_keep_running_first() -> None:
    cluster = Cluster(
        gpu_types=[
            GpuType(name="A", memory_gib=80.0, price_per_hour=3.0, speed=2.0),
            GpuType(name="B", memory_gib=24.0, price_per_hour=1.0, speed=1.0),
        ],
        nodes=[Node(name="n0", gpu_type="A", gpu_count=8, unhealthy_gpus=2)],
    )
    jobs = [
        Job(
            name="fixed",
            gpus=4,
            duration=0.5,
            preemptible=False,
            restart_overhead=0.25,
            running=RunningState(nodes={"n0": 4}),
        ),
        Job(
            name="movable",
            gpus=4,
            duration=0.5,
            deadline=1.2,
            preemptible=True,
            restart_overhead=0.25,
            running=RunningState(nodes={"n0": 4}),
        ),
    ]
    inst = build_instance(cluster, jobs, PlanOptions(policy="deadline", horizon=5.0, slot=0.5))
    policy = make_policy("deadline", inst)
    fixed, movable = inst.jobs
    assert fixed.fixed and not movable.fixed
    # Alpha-point order puts the movable job's restart now level with the fixed job (both start at
    # slot 0 in this fractional solution, as rounding a master of an over-full node can).
    restart = next(o for o in inst.all_options(movable) if o is not movable.continue_option)
    fractional = [(movable.index, restart, 0, 1.0), (fixed.index, fixed.continue_option, 0, 1.0)]
    schedule, _, _ = lp_guided(inst, policy, fractional)  # type: ignore[arg-type]
    assert fixed.index in schedule and schedule[fixed.index].start == 0
