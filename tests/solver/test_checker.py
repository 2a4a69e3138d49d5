"""The checker must catch broken plans, or the property tests prove nothing.

The plans here are written by hand (not by the planner), so these tests hold whatever the planner
does: a valid plan passes, and each way of breaking the specification is flagged.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpusched.model import Cluster, Job, JobPlan, Placement, Plan, Segment
from gpusched.verify import check_plan, plan_objective

A = {"name": "A", "memory_gib": 40, "price_per_hour": 2.0}
B = {"name": "B", "memory_gib": 80, "price_per_hour": 4.0}


def cluster(nodes: list[dict[str, Any]], types: list[dict[str, Any]] | None = None, **extra: Any) -> Cluster:
    return Cluster.model_validate({"gpu_types": types or [A, B], "nodes": nodes, **extra})


def jobs(*items: dict[str, Any]) -> list[Job]:
    return [Job.model_validate(j) for j in items]


Row = tuple[str, list[tuple[float, float]], dict[str, int]]


def build(
    c: Cluster, js: list[Job], rows: dict[str, Row], horizon: float = 8.0, slot: float = 1.0, **flags: Any
) -> Plan:
    """A plan with every derived field filled in by hand arithmetic (jobs without restarts)."""
    types = c.type_map()
    out = []
    for job in js:
        if job.name not in rows:
            out.append(JobPlan(job=job.name, status="unscheduled", reason="capacity", reason_code="capacity"))
            continue
        tname, segs, nodes = rows[job.name]
        end = segs[-1][1]
        wall = sum(e - s for s, e in segs)
        met = None if job.deadline is None else end <= job.deadline + 1e-9
        out.append(
            JobPlan(
                job=job.name,
                status="running" if job.running else "scheduled",
                gpu_type=tname,
                gpus=job.gpus,
                start=segs[0][0],
                end=end,
                finishes=end <= horizon,
                segments=[Segment(start=s, end=min(e, horizon)) for s, e in segs],
                placement=[Placement(node=n, gpus=g) for n, g in nodes.items()],
                cost=job.gpus * types[tname].price_per_hour * wall,
                deadline_met=met,
                tardiness=0.0 if job.deadline is None else max(0.0, end - job.deadline),
                reason=None if met is not False else "late",
                **flags.get(job.name, {}),
            )
        )
    missed = any(jp.deadline_met is False for jp in out)
    p = Plan(
        policy="cost",
        solver="hand",
        status="infeasible" if missed else "optimal",
        horizon=horizon,
        slot=slot,
        objective=0.0,
        lower_bound=0.0,
        gap=0.0,
        solve_time_s=0.0,
        total_cost=sum(jp.cost for jp in out),
        jobs=out,
    )
    value = plan_objective(c, js, p).value
    p.objective = p.lower_bound = value
    return p


# ------------------------------------------------------------------------------- a valid base plan

BASE_CLUSTER = cluster(
    [
        {"name": "a0", "gpu_type": "A", "gpu_count": 4},
        {"name": "a1", "gpu_type": "A", "gpu_count": 4},
        {"name": "b0", "gpu_type": "B", "gpu_count": 4},
        {"name": "c0", "gpu_type": "A", "gpu_count": 4, "cordoned": True},
    ]
)
BASE_JOBS = jobs(
    {"name": "x", "gpus": 4, "duration": 1, "gpu_types": ["A"]},
    {"name": "y", "gpus": 4, "duration": 1, "gpu_types": ["A"], "release": 1, "deadline": 4},
    {"name": "m", "gpus": 2, "duration": 1.5, "min_gpu_memory_gib": 60},
    {"name": "g", "gpus": 8, "duration": 2, "gpu_types": ["A"], "max_nodes": 2},
    {"name": "p", "gpus": 2, "duration": 2, "preemptible": True, "gpu_types": ["A"]},
    {"name": "r", "gpus": 2, "duration": 3, "running": {"nodes": {"c0": 2}, "done": 1}},
)
BASE_ROWS: dict[str, Row] = {
    "x": ("A", [(0.0, 1.0)], {"a0": 4}),
    "y": ("A", [(1.0, 2.0)], {}),
    "m": ("B", [(0.0, 1.5)], {"b0": 2}),
    "g": ("A", [(2.0, 4.0)], {}),
    "p": ("A", [(0.0, 1.0), (4.0, 5.0)], {"a1": 2}),
    "r": ("A", [(0.0, 2.0)], {"c0": 2}),
}


def base() -> Plan:
    p = build(BASE_CLUSTER, BASE_JOBS, BASE_ROWS)
    p.job("p").restarts = 1  # p stops at 1h and resumes at 4h: no overhead, one restart
    return p


def test_hand_written_plan_is_valid() -> None:
    assert check_plan(BASE_CLUSTER, BASE_JOBS, base()) == []


def _seg(p: Plan, name: str, start: float, end: float) -> None:
    jp = p.job(name)
    jp.segments = [Segment(start=start, end=end)]
    jp.start, jp.end = start, end


MUTATIONS: dict[str, tuple[Any, str]] = {
    # name: (mutation, a fragment the violation must contain)
    "capacity": (lambda p: _seg(p, "y", 0.0, 1.0), "in use >"),
    "type": (lambda p: setattr(p.job("x"), "gpu_type", "B"), "allowed types"),
    "memory": (lambda p: setattr(p.job("m"), "gpu_type", "A"), "GiB"),
    "gang": (lambda p: setattr(p.job("x"), "gpus", 3), "gang of 4"),
    "release": (lambda p: _seg(p, "y", 0.0, 1.0), "before its release"),
    "deadline claim": (lambda p: setattr(p.job("y"), "deadline_met", False), "deadline_met=False"),
    "late end": (lambda p: _seg(p, "y", 4.0, 5.0), "miss their deadline"),
    "contiguity": (
        lambda p: setattr(p.job("x"), "segments", [Segment(start=0, end=0.5), Segment(start=2, end=2.5)]),
        "non-preemptible but runs in 2 pieces",
    ),
    "off slot": (lambda p: _seg(p, "y", 1.5, 2.5), "not on a slot boundary"),
    "placement size": (
        lambda p: p.job("x").placement.append(Placement(node="a1", gpus=1)),
        "placement holds",
    ),
    "placement type": (
        lambda p: setattr(p.job("x"), "placement", [Placement(node="b0", gpus=4)]),
        "planned on A",
    ),
    "work": (lambda p: setattr(p.job("m").segments[0], "end", 1.0), "its work ends at 1.5h"),
    "end field": (lambda p: setattr(p.job("m"), "end", 1.0), "reports end 1.0h"),
    "cost field": (lambda p: setattr(p.job("m"), "cost", 1.0), "reports cost"),
    "total cost": (lambda p: setattr(p, "total_cost", 1.0), "total_cost"),
    "restarts": (lambda p: setattr(p.job("p"), "restarts", 0), "restarts"),
    "cordon": (
        lambda p: setattr(
            p.job("x"), "placement", [Placement(node="c0", gpus=2), Placement(node="a0", gpus=2)]
        ),
        "cordoned node c0",
    ),
    "cordon later": (
        lambda p: (
            setattr(p.job("r"), "preempted", True),
            _seg(p, "r", 1.0, 3.25),
            setattr(p.job("r"), "placement", []),
        ),
        "non-preemptible running job stopped",
    ),
    "max_nodes": (lambda p: None, "no node assignment"),  # the job, not the plan, changes: see below
    "node packing": (
        lambda p: _seg(p, "p", 2.0, 4.0) or setattr(p.job("p"), "restarts", 0),
        "no node assignment",
    ),
    "optimal with gap": (
        lambda p: setattr(p, "lower_bound", p.objective * 0.9) or setattr(p, "gap", 0.1),
        "gap",
    ),
    "bound above": (lambda p: setattr(p, "lower_bound", p.objective + 1), "above its objective"),
    "missing job": (lambda p: p.jobs.pop(0), "missing from the plan"),
    "unscheduled no reason": (
        lambda p: p.jobs.__setitem__(0, JobPlan(job="x", status="unscheduled")),
        "without a reason",
    ),
    "false infeasible": (lambda p: setattr(p, "status", "infeasible"), "every deadline is met"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_checker_flags_each_kind_of_violation(name: str) -> None:
    mutate, fragment = MUTATIONS[name]
    p = base()
    mutate(p)
    if name == "max_nodes":
        js = [j.model_copy(update={"max_nodes": 1}) if j.name == "g" else j for j in BASE_JOBS]
    else:
        js = BASE_JOBS
    problems = check_plan(BASE_CLUSTER, js, p)
    assert any(fragment in problem for problem in problems), (name, problems)
    assert all("\n" not in problem for problem in problems)


# ----------------------------------------------------------------------- the reproductions


def test_new_work_on_a_cordoned_node_after_preempting_its_running_job() -> None:
    c = cluster([{"name": "c0", "gpu_type": "A", "gpu_count": 8, "cordoned": True}], types=[A])
    js = jobs(
        {"name": "old", "gpus": 8, "duration": 4, "preemptible": True, "running": {"nodes": {"c0": 8}}},
        {"name": "new", "gpus": 8, "duration": 2},
    )
    # old is preempted, new takes c0 now, old comes back on c0 later: 16 GPUs on a cordoned 8 in total.
    p = build(
        c,
        js,
        {"new": ("A", [(0.0, 2.0)], {"c0": 8}), "old": ("A", [(2.0, 6.25)], {})},
        old={"preempted": True, "restarts": 1},
    )
    problems = check_plan(c, js, p)
    assert any("new: new work on cordoned node c0" in q for q in problems), problems
    assert any("slot 0 (0h): 8 x A in use > 0 available" in q for q in problems), problems
    assert any("slot 2 (2h): 8 x A in use > 0 available" in q for q in problems), problems


def test_sixteen_gpus_on_fourteen_with_maintenance_and_lost_gpus() -> None:
    c = cluster(
        [
            {"name": "n0", "gpu_type": "A", "gpu_count": 8, "unhealthy_gpus": 2},
            {"name": "n1", "gpu_type": "A", "gpu_count": 8},
        ],
        types=[A],
        maintenance=[{"node": "n1", "start": 3, "end": 5}],
    )
    js = jobs(
        {"name": "r1", "gpus": 4, "duration": 8, "running": {"nodes": {"n0": 4}}},
        {"name": "r2", "gpus": 4, "duration": 8, "running": {"nodes": {"n0": 4}}},
        {"name": "r3", "gpus": 8, "duration": 8, "preemptible": True, "running": {"nodes": {"n1": 8}}},
    )
    rows = {n: ("A", [(0.0, 8.0)], dict(j.running.nodes)) for n, j in ((j.name, j) for j in js) if j.running}
    p = build(c, js, rows)
    problems = check_plan(c, js, p)
    assert any("slot 3 (3h): 16 x A in use > 6 available" in q for q in problems), problems
    assert any("node n0 holds 8 GPUs (r1 4, r2 4) > 6 usable" in q for q in problems), problems
    assert any("node n1 holds 8 GPUs (r3 8) > 0 usable" in q for q in problems), problems
    # The non-preemptible pair cannot both stay on n0: stopping one is forced, and the plan must
    # then call itself infeasible.
    pair = js[:2]
    stopped = build(c, pair, {"r1": rows["r1"]})
    problems = check_plan(c, pair, stopped)
    assert any("r2: its nodes cannot keep" in q and "status is 'optimal'" in q for q in problems), problems


def test_future_gang_onto_nodes_that_keep_four_busy() -> None:
    c = cluster(
        [{"name": "n0", "gpu_type": "A", "gpu_count": 8}, {"name": "n1", "gpu_type": "A", "gpu_count": 8}],
        types=[A],
    )
    js = jobs(
        {"name": "r0", "gpus": 4, "duration": 10, "running": {"nodes": {"n0": 4}}},
        {"name": "r1", "gpus": 4, "duration": 10, "running": {"nodes": {"n1": 4}}},
        {"name": "big", "gpus": 8, "duration": 2, "max_nodes": 1},
    )
    p = build(
        c,
        js,
        {
            "r0": ("A", [(0.0, 10.0)], {"n0": 4}),
            "r1": ("A", [(0.0, 10.0)], {"n1": 4}),
            "big": ("A", [(1.0, 3.0)], {}),
        },
        horizon=12,
    )
    problems = check_plan(c, js, p)
    assert not any("in use >" in q for q in problems), "type-level capacity holds; only the nodes do not"
    [packing] = [q for q in problems if "no node assignment" in q]
    assert packing.startswith("slot 1 (1h)")
    assert "big (8 GPUs, max_nodes 1)" in packing and "n0" in packing and "n1" in packing


def test_deadline_judged_on_the_real_end() -> None:
    c = cluster([{"name": "n0", "gpu_type": "A", "gpu_count": 4}], types=[A])
    js = jobs({"name": "lone", "gpus": 4, "duration": "2h18m", "deadline": "2h30m"})
    p = build(c, js, {"lone": ("A", [(0.0, 2.3)], {"n0": 4})}, slot=0.5)
    assert check_plan(c, js, p) == []
    wrong = p.model_copy(deep=True)
    wrong.status = "infeasible"
    wrong.job("lone").deadline_met = False
    wrong.job("lone").reason = "capacity taken by jobs of higher priority"
    problems = check_plan(c, js, wrong)
    assert any("deadline_met=False but it ends at 2.3h (deadline 2.5h)" in q for q in problems), problems
    assert any("status infeasible, yet every deadline is met" in q for q in problems), problems


def test_bound_above_the_exact_optimum_is_flagged() -> None:
    from oracle_compare import compare_plan
    from shapes import Instance

    c = cluster([{"name": "n0", "gpu_type": "A", "gpu_count": 4}], types=[A])
    js = jobs({"name": "a", "gpus": 4, "duration": 1}, {"name": "b", "gpus": 4, "duration": 1})
    inst = Instance("hand", 0, c, js, horizon=4.0)
    good = build(c, js, {"a": ("A", [(0.0, 1.0)], {"n0": 4}), "b": ("A", [(1.0, 2.0)], {})}, horizon=4)
    assert compare_plan(inst, "cost", good).failures == []
    high = good.model_copy(deep=True)
    high.lower_bound += 0.5
    high.objective += 0.5
    failures = compare_plan(inst, "cost", high).failures
    assert any(f.startswith("[bound]") for f in failures), failures
    # A later start is a worse plan; calling it optimal is a false claim.
    late = build(c, js, {"a": ("A", [(0.0, 1.0)], {"n0": 4}), "b": ("A", [(2.0, 3.0)], {})}, horizon=4)
    failures = compare_plan(inst, "cost", late).failures
    assert any(f.startswith("[optimal]") for f in failures), failures
