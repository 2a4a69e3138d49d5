"""The front-end's forced round (frontend.at_once): when every queued job can start now on its best
type, the plan is decided without a model -- and it must be a plan the planner itself could not
beat. Checked against plan() on random small clusters, and on the cases where it must step aside."""

from __future__ import annotations

import random

import pytest

from gpusched.model import CapacityChange, Cluster, GpuType, Job, Node, RunningState
from gpusched.solver import PlanOptions, plan
from gpusched.solver.frontend import (
    AT_ONCE,
    Running,
    Start,
    Waiting,
    at_once,
    best_type,
    free_view,
    interpret,
    select,
)

TYPES = [
    GpuType(name="V100", memory_gib=32, speed=1.0, price_per_hour=3.0),
    GpuType(name="P100", memory_gib=16, speed=0.8, price_per_hour=1.5),
    GpuType(name="K80", memory_gib=12, speed=0.25, price_per_hour=0.5),
]


def _cluster(per_type: dict[str, int], node_gpus: int = 4) -> Cluster:
    nodes = [
        Node(name=f"{t.lower()}-{i}", gpu_type=t, gpu_count=node_gpus)
        for t, n in per_type.items()
        for i in range(n)
    ]
    return Cluster(gpu_types=TYPES, nodes=nodes)


def _queued(jobs: list[Job]) -> list[Waiting]:
    return [Waiting(j, (i,)) for i, j in enumerate(jobs)]


def test_every_job_starts_now_on_its_fastest_type() -> None:
    cluster = _cluster({"V100": 2, "P100": 1, "K80": 1})
    jobs = [Job(name=f"j{i}", gpus=g, duration=3.0) for i, g in enumerate([4, 2, 1])]
    sel = select(cluster, _queued(jobs), [], "jct")
    got = at_once(cluster, sel, "jct", 24.0, 0.25)
    assert got is not None and got.found_by == AT_ONCE and got.status == "optimal"
    assert {jp.job: jp.gpu_type for jp in got.jobs} == {"j0": "V100", "j1": "V100", "j2": "V100"}
    decisions = interpret(got, cluster, sel.queued, sel.running, free_view(cluster, []), True)
    assert all(isinstance(d, Start) and d.as_planned for d in decisions)
    used: dict[str, int] = {}
    for d in decisions:
        assert isinstance(d, Start)
        for p in d.placement:
            used[p.node] = used.get(p.node, 0) + p.gpus
    assert all(used[n.name] <= n.gpu_count for n in cluster.nodes if n.name in used)


def test_a_job_whose_best_type_is_full_goes_to_the_model() -> None:
    # 6 V100 GPUs asked, 4 there: start one on P100 now or wait for V100 is the planner's call.
    cluster = _cluster({"V100": 1, "P100": 2})
    jobs = [Job(name="a", gpus=4, duration=3.0), Job(name="b", gpus=2, duration=3.0)]
    assert at_once(cluster, select(cluster, _queued(jobs), [], "jct"), "jct", 24.0, 0.25) is None


@pytest.mark.parametrize("policy", ["cost", "fair", "makespan", "deadline"])
def test_only_the_objectives_it_is_optimal_for(policy: str) -> None:
    cluster = _cluster({"V100": 2})
    jobs = [Job(name="a", gpus=1, duration=1.0)]
    assert at_once(cluster, select(cluster, _queued(jobs), [], policy), policy, 24.0, 0.25) is None


def test_steps_aside_for_maintenance_deadlines_and_movable_running_jobs() -> None:
    cluster = _cluster({"V100": 1, "K80": 1})
    job = Job(name="a", gpus=1, duration=2.0)
    windowed = cluster.model_copy(
        update={"maintenance": [CapacityChange(start=1.0, end=2.0, node="v100-0", gpus=4)]}
    )
    assert at_once(windowed, select(windowed, _queued([job]), [], "jct"), "jct", 24.0, 0.25) is None
    late = Job(name="late", gpus=1, duration=2.0, deadline=1.0)
    assert at_once(cluster, select(cluster, _queued([late]), [], "jct"), "jct", 24.0, 0.25) is None
    # A preemptible job running on K80 might move to the free V100s: the model decides.
    slow = Job(
        name="slow",
        gpus=4,
        duration=10.0,
        preemptible=True,
        running=RunningState(nodes={"k80-0": 4}, done=1.0),
    )
    running = [Running(slow, ran_h=5.0, movable=True)]
    assert at_once(cluster, select(cluster, _queued([job]), running, "jct"), "jct", 24.0, 0.25) is None
    # Not preemptible: it stays where it is, and the queued job starts on V100 at once.
    stays = slow.model_copy(update={"preemptible": False})
    sel = select(cluster, _queued([job]), [Running(stays, ran_h=5.0, movable=False)], "jct")
    got = at_once(cluster, sel, "jct", 24.0, 0.25)
    assert got is not None
    assert {jp.job: (jp.status, jp.gpu_type) for jp in got.jobs} == {
        "slow": ("running", "K80"),
        "a": ("scheduled", "V100"),
    }


def test_best_type_weighs_the_jobs_own_speeds_and_the_cost_tie_break() -> None:
    # Own speeds make P100 this job's fastest type.
    job = Job(name="a", gpus=1, duration=1.0, speeds={"P100": 1.5})
    assert best_type(job, TYPES) is not None and best_type(job, TYPES).name == "P100"  # type: ignore[union-attr]
    # Equal speed: the cheaper type, as the planner's tie-break prefers.
    even = Job(name="b", gpus=1, duration=1.0, speeds={"V100": 0.8})
    assert best_type(even, TYPES).name == "P100"  # type: ignore[union-attr]
    assert best_type(Job(name="c", gpus=1, duration=1.0, gpu_types=["K80"]), TYPES).name == "K80"  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(12))
def test_the_planner_does_no_better_where_at_once_decides(seed: int) -> None:
    """On random uncontended rounds that at_once decides, plan() (the MILP, no time pressure) also
    starts every queued job now, on a type where it ends as early, and scores no better."""
    rng = random.Random(seed)
    # Room for every job on any type (at most 5 x 4 GPUs asked), so every round is decided at once.
    cluster = _cluster({"V100": rng.randint(3, 4), "P100": rng.randint(3, 4), "K80": 1}, node_gpus=8)
    jobs = []
    for i in range(rng.randint(1, 5)):
        speeds = {"P100": round(rng.uniform(0.5, 1.3), 2)} if rng.random() < 0.4 else {}
        jobs.append(
            Job(
                name=f"q{i}",
                gpus=rng.choice([1, 1, 2, 4]),
                duration=round(rng.uniform(0.5, 6.0), 2),
                speeds=speeds,
                priority=rng.choice([1.0, 1.0, 2.0]),
            )
        )
    sel = select(cluster, _queued(jobs), [], "jct")
    got = at_once(cluster, sel, "jct", 24.0, 0.25)
    assert got is not None
    solved = plan(cluster, sel.jobs, PlanOptions(policy="jct", horizon=24.0, slot=0.25, time_limit=20.0))
    ours = {jp.job: jp for jp in got.jobs}
    for jp in solved.jobs:
        assert jp.start is not None and jp.start < 0.125, (jp.job, jp.start)
        mine = ours[jp.job]
        assert jp.end == pytest.approx(mine.end, abs=1e-6), (jp.job, jp.gpu_type, mine.gpu_type)
