"""The checker must catch broken plans, or the property tests prove nothing."""

from __future__ import annotations

from solver_helpers import make_cluster, run

from gpusched.model import Placement

TYPES = [{"name": "A", "memory_gib": 40}, {"name": "B", "memory_gib": 80}]
NODES = [{"name": "a0", "gpu_type": "A", "gpu_count": 4}, {"name": "b0", "gpu_type": "B", "gpu_count": 4}]


def _valid():
    from gpusched.model import Job
    from gpusched.solver import PlanOptions, plan

    cluster = make_cluster(TYPES, NODES)
    jobs = [
        Job(name="x", gpus=4, duration=1, gpu_types=["A"]),
        Job(name="y", gpus=4, duration=1, gpu_types=["A"], release=0.5, deadline=4),
        Job(name="m", gpus=2, duration=1, min_gpu_memory_gib=60),
    ]
    result = plan(cluster, jobs, PlanOptions(policy="jct", horizon=4, slot=0.5))
    return cluster, jobs, result


def test_valid_plan_has_no_problems() -> None:
    from gpusched.verify import check_plan

    cluster, jobs, result = _valid()
    assert check_plan(cluster, jobs, result) == []
    run(cluster, jobs)  # and through the helper that asserts the same


def test_checker_flags_each_kind_of_violation() -> None:
    from gpusched.verify import check_plan

    cluster, jobs, result = _valid()
    broken = {
        "capacity": lambda p: (
            setattr(p.job("y"), "start", 0.0) or setattr(p.job("y").segments[0], "start", 0.0)
        ),
        "type": lambda p: setattr(p.job("x"), "gpu_type", "B"),
        "memory": lambda p: setattr(p.job("m"), "gpu_type", "A"),
        "gang": lambda p: setattr(p.job("x"), "gpus", 3),
        "release": lambda p: setattr(p.job("y"), "start", 0.0),
        "deadline": lambda p: setattr(p.job("y"), "end", 5.0),
        "contiguity": lambda p: p.job("x").segments.append(p.job("x").segments[0].model_copy()),
        "placement": lambda p: p.job("x").placement.append(Placement(node="b0", gpus=1)),
        "work": lambda p: setattr(p.job("m"), "end", (p.job("m").start or 0) + 0.1),
    }
    for name, mutate in broken.items():
        copy = result.model_copy(deep=True)
        mutate(copy)
        assert check_plan(cluster, jobs, copy) != [], f"checker missed a {name} violation"


def test_checker_flags_new_work_on_a_cordoned_node() -> None:
    from gpusched.model import Job
    from gpusched.solver import PlanOptions, plan
    from gpusched.verify import check_plan

    cluster = make_cluster(
        [{"name": "A", "memory_gib": 40}],
        [
            {"name": "c0", "gpu_type": "A", "gpu_count": 8, "cordoned": True},
            {"name": "n1", "gpu_type": "A", "gpu_count": 4},
        ],
    )
    jobs = [
        Job.model_validate({"name": "old", "gpus": 4, "duration": 2, "running": {"nodes": {"c0": 4}}}),
        Job(name="new", gpus=4, duration=1),
    ]
    result = plan(cluster, jobs, PlanOptions(policy="jct", horizon=4, slot=0.5))
    assert check_plan(cluster, jobs, result) == []
    assert [p.node for p in result.job("new").placement] == ["n1"]
    moved = result.model_copy(deep=True)
    moved.job("new").placement = [Placement(node="c0", gpus=4)]
    assert any("node c0" in problem for problem in check_plan(cluster, jobs, moved))
    # Once the running job is off c0 (preempted), its GPUs there are not open to anyone.
    stopped = result.model_copy(deep=True)
    stopped.job("old").preempted = True
    assert any("in use >" in problem for problem in check_plan(cluster, jobs, stopped))
