"""The gpusched planner as a simulation policy: the real gpusched.solver.plan on tiny traces."""

from __future__ import annotations

import pytest

from gpusched.defaults import MIN_RUN_H
from gpusched.model import POLICIES, Cluster
from gpusched.simulations import SimConfig, TraceJob, simulate_trace
from gpusched.simulations.engine import Simulator
from gpusched.simulations.metrics import summarise
from gpusched.simulations.policies import make_policy, policy_names
from gpusched.simulations.policies.planner import PlannerPolicy

from .conftest import one_node

plan_api = pytest.importorskip("gpusched.solver", reason="the planner (gpusched.solver) is not importable")


def two_gangs() -> list[TraceJob]:
    """Two 4-GPU jobs of 1 h at t=0 on one 4-GPU node: whatever the objective, one runs 0-1 and the
    other 1-2 (the re-plan at t=1 is triggered by the first completion), so JCTs are {1, 2}."""
    return [TraceJob(name="a", gpus=4, work=1.0), TraceJob(name="b", gpus=4, work=1.0)]


@pytest.mark.parametrize("objective", POLICIES)
def test_every_planner_policy_runs_two_gangs(objective: str) -> None:
    result = simulate_trace(one_node(), two_gangs(), f"gpusched:{objective}", plan_time_limit=2.0)
    s = summarise(result)
    assert s["completed"] == 2, s.get("last_plan_error")
    assert s["plan_errors"] == 0, s.get("last_plan_error")
    assert sorted(j.finish for j in result.jobs) == pytest.approx([1.0, 2.0])
    assert s["plans"] >= 2


def test_planner_waits_for_planned_start_without_events() -> None:
    # b arrives at 0.1 while a (not preemptible) holds the node until 1.0: nothing happens between 0.1
    # and 1.0 except the completion, so b must start exactly at a's completion (re-plan on the finish).
    jobs = [TraceJob(name="a", gpus=4, work=1.0, preemptible=False),
            TraceJob(name="b", gpus=2, work=0.5, release=0.1)]
    result = simulate_trace(one_node(), jobs, "gpusched", plan_time_limit=2.0)
    b = next(j for j in result.jobs if j.name == "b")
    assert b.first_start == pytest.approx(1.0)
    assert b.finish == pytest.approx(1.5)


def test_planner_may_preempt_for_jct() -> None:
    # Same, but a is preemptible: for mean JCT, stopping a (0.9 h left) to run b (0.5 h) gives
    # JCTs a 1.5, b 0.5 (sum 2.0) instead of a 1.0, b 1.4 (sum 2.4). Whatever the planner decides,
    # both finish, the plan is honoured and the total work is conserved.
    jobs = [TraceJob(name="a", gpus=4, work=1.0), TraceJob(name="b", gpus=2, work=0.5, release=0.1)]
    result = simulate_trace(one_node(), jobs, "gpusched:jct", plan_time_limit=2.0)
    s = summarise(result)
    assert s["completed"] == 2 and s["plan_errors"] == 0
    total = sum(j.finish - j.spec.release for j in result.jobs)
    assert total <= 2.4 + 1e-6  # never worse than letting a finish first
    for j in result.jobs:
        assert j.gpu_hours == pytest.approx(j.spec.gpus * (j.spec.work + j.lost_work) + j.overhead_hours)


def test_replan_is_rate_limited() -> None:
    # 20 one-GPU jobs arrive one per simulated minute; with re-planning at most every 5 minutes the
    # planner runs about 20/5 times, not 20, and jobs wait at most ~5 minutes for their start.
    jobs = [TraceJob(name=f"j{i}", gpus=1, work=0.05, release=i / 60) for i in range(20)]
    result = Simulator(one_node(gpus=8), jobs, PlannerPolicy(replan_minutes=5.0, time_limit=2.0)).run()
    s = summarise(result)
    assert s["completed"] == 20
    assert 4 <= s["plans"] <= 7
    assert s["p99_queue_h"] <= 5 / 60 + 1e-9


def test_planner_under_failures_completes_everything() -> None:
    jobs = [TraceJob(name=f"j{i}", gpus=1 + i % 2, work=0.5 + 0.1 * i, release=0.05 * i) for i in range(8)]
    result = simulate_trace(one_node(gpus=4), jobs, "gpusched:cost", SimConfig(mtbf_hours=20.0, seed=2),
                            plan_time_limit=2.0)
    assert all(j.state == "finished" for j in result.jobs)
    for j in result.jobs:
        assert j.gpu_hours == pytest.approx(j.spec.gpus * (j.spec.work + j.lost_work) + j.overhead_hours)


def test_policy_names() -> None:
    names = policy_names()
    for p in ("fifo", "sjf", "las", "gavel", "gpusched", *(f"gpusched:{p}" for p in POLICIES)):
        assert p in names
        make_policy(p)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("round-robin")
    with pytest.raises(ValueError, match="unknown planner policy"):
        make_policy("gpusched:fastest")


class _NeverStarts(PlannerPolicy):
    """A planner stand-in whose every plan starts nothing: the engine must still terminate."""

    def _replan(self, now: float) -> float | None:
        self.plans += 1
        return None


def test_a_plan_that_never_starts_anything_does_not_hang() -> None:
    result = Simulator(one_node(), [TraceJob(name="x", gpus=1, work=1.0)], _NeverStarts()).run()
    s = summarise(result)
    assert s["unfinished"] == 1 and s["completed"] == 0
    assert s["plans"] == 20  # STALL_LIMIT idle plans, then the simulation ends


def test_plan_call_estimate_matches_the_simulation() -> None:
    from gpusched.simulations.policies.planner import estimate_plan_calls

    # arrivals at 0, 1, 2, 3 min then 20 min: plans at 0, at 5 (covering 1-3 min), at 20 -> 3
    assert estimate_plan_calls([0, 1 / 60, 2 / 60, 3 / 60, 20 / 60]) == 3
    jobs = [TraceJob(name=f"j{i}", gpus=1, work=0.02, release=i * 0.03) for i in range(30)]
    result = Simulator(one_node(gpus=8), jobs, PlannerPolicy(time_limit=2.0)).run()
    assert summarise(result)["plans"] == estimate_plan_calls([j.release for j in jobs])


def _first_start(result: object, name: str) -> float | None:
    return next(j.first_start for j in result.jobs if j.name == name)  # type: ignore[attr-defined]


def test_window_is_filled_with_jobs_that_fit_now() -> None:
    # One 4-GPU node. H (3 GPUs, 1 h, not preemptible) starts at 0. big1, big2 (4 GPUs) and small
    # (1 GPU, 0.5 h) arrive at 0.01-0.02; the next plan is at 5 min. With a window of 1 the core is
    # big1, which cannot start before H ends; small, past the window, fits the free GPU and is passed
    # as fill: it starts at 5 min. (Earliest-jobs-only, it waited for big1 and big2: start at 3 h.)
    jobs = [TraceJob(name="H", gpus=3, work=1.0, preemptible=False),
            TraceJob(name="big1", gpus=4, work=1.0, release=0.01),
            TraceJob(name="big2", gpus=4, work=1.0, release=0.011),
            TraceJob(name="small", gpus=1, work=0.5, release=0.02)]
    result = Simulator(one_node(), jobs, PlannerPolicy(window=1, time_limit=2.0)).run()
    s = summarise(result)
    assert s["completed"] == 4 and s["plan_errors"] == 0
    assert _first_start(result, "small") == pytest.approx(5 / 60)
    assert s["window_fill"] >= 1


def test_window_takes_the_objectives_urgent_jobs() -> None:
    # One 4-GPU node held by H (not preemptible) until 1 h; two 10 h jobs then a 0.1 h job arrive, all
    # 4-GPU. Window 2 for jct: one earliest (long1) + one least remaining work (short), so when H ends
    # the planner sees short and runs it first: 1.0-1.1, then the longs 1.1-11.1 and 11.1-21.1.
    # (With the 2 earliest only, short was not seen until a long job had run: start at 11 h.)
    jobs = [TraceJob(name="H", gpus=4, work=1.0, preemptible=False),
            TraceJob(name="long1", gpus=4, work=10.0, release=0.01),
            TraceJob(name="long2", gpus=4, work=10.0, release=0.011),
            TraceJob(name="short", gpus=4, work=0.1, release=0.02)]
    result = Simulator(one_node(), jobs, PlannerPolicy(window=2, time_limit=2.0)).run()
    assert summarise(result)["completed"] == 4
    assert _first_start(result, "short") == pytest.approx(1.0)
    longs = sorted(j.finish for j in result.jobs if j.name.startswith("long"))  # type: ignore[type-var]
    assert longs == pytest.approx([11.1, 21.1])


def two_nodes(gpus: int = 8) -> Cluster:
    return Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80}],
        "nodes": [{"name": f"n{i}", "gpu_type": "GPU", "gpu_count": gpus} for i in range(2)],
    })


def test_fragmented_free_gpus_make_running_jobs_preemptible() -> None:
    # Two 8-GPU nodes each run a 6-GPU, 10 h job from 0; c (4 GPUs, 0.5 h) arrives at 0.6 (after the
    # running jobs' minimum run, MIN_RUN_H = 0.5 h). 4 GPUs are free in all, but 2 + 2 on two nodes,
    # and c must fit on one: it is blocked, so the running jobs (more remaining work than c) are
    # passed as preemption candidates. The planner stops one, c runs 0.6-1.1 on its node, and the
    # stopped job resumes at 1.1 with 9.4 h left: finishes 10.5, the other 10.0. (Counting free GPUs
    # per type, c looked uncontended: the running jobs were occupied capacity and the planner could
    # only split c over the two 2-GPU holes, which the engine forbids.)
    jobs = [TraceJob(name="a", gpus=6, work=10.0), TraceJob(name="b", gpus=6, work=10.0),
            TraceJob(name="c", gpus=4, work=0.5, release=0.6)]
    result = Simulator(two_nodes(), jobs, PlannerPolicy(time_limit=2.0)).run()
    s = summarise(result)
    assert s["completed"] == 3 and s["plan_errors"] == 0 and s["placement_fallbacks"] == 0
    c = next(j for j in result.jobs if j.name == "c")
    assert (c.first_start, c.finish) == pytest.approx((0.6, 1.1))
    assert s["preemptions"] == 1 and s["contended_plans"] >= 1 and s["preemption_candidates"] >= 1
    assert sorted(j.finish for j in result.jobs if j.name != "c") == pytest.approx([10.0, 10.5])  # type: ignore[type-var]
    for j in result.jobs:  # checkpointed preemption, no overhead: GPU-hours = gang x work
        assert j.gpu_hours == pytest.approx(j.spec.gpus * j.spec.work)


def test_a_job_is_not_preempted_before_its_minimum_run_for_equal_priority_work() -> None:
    # As above, but c arrives at 0.1, when a and b have run 6 minutes: preemption's hysteresis keeps
    # them (a stop moments after a start never pays for itself, and is how plans churn); the planner
    # is woken when the protection ends and c starts then (0.5), not at 10 h when a job ends.
    jobs = [TraceJob(name="a", gpus=6, work=10.0, preemptible=True),
            TraceJob(name="b", gpus=6, work=10.0, preemptible=True),
            TraceJob(name="c", gpus=4, work=0.5, release=0.1)]
    result = Simulator(two_nodes(), jobs, PlannerPolicy(time_limit=2.0)).run()
    c = next(j for j in result.jobs if j.name == "c")
    assert c.first_start == pytest.approx(MIN_RUN_H)
    assert summarise(result)["preemptions"] == 1


def test_running_job_shorter_than_the_waiting_one_is_not_a_candidate() -> None:
    # A (4 GPUs, 1 h, preemptible) runs from 0; B (4 GPUs, 2 h) arrives at 0.1. A has less remaining
    # work than B, so it is no preemption candidate: B starts when A ends, at 1.0.
    jobs = [TraceJob(name="A", gpus=4, work=1.0), TraceJob(name="B", gpus=4, work=2.0, release=0.1)]
    result = Simulator(one_node(), jobs, PlannerPolicy(time_limit=2.0)).run()
    s = summarise(result)
    assert _first_start(result, "B") == pytest.approx(1.0)
    assert (s["preemptions"], s["preemption_candidates"]) == (0, 0)


def test_running_job_migrates_to_a_faster_type_that_came_free() -> None:
    # fast (speed 1.5) and slow (speed 1) nodes of 4 GPUs. y (6 reference h, not preemptible) takes the
    # fast node 0-4 h. x (10 reference h) arrives at 0.01; at the 5-minute plan, starting on slow now
    # (done at 10.08 h) beats waiting for fast (4 + 10/1.5 = 10.67 h), and the planner knows y's end.
    # When y ends at 4 h the queue is empty, but x would finish sooner on fast: 10 - 3.9167 = 6.0833
    # reference h left, 4.06 h there (+0.25 h migration penalty in the planner) against 6.08 h on slow,
    # so it is re-planned and migrated: x finishes at 4 + 6.0833 / 1.5 = 8.0556 h.
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "fast", "memory_gib": 80, "speed": 1.5}, {"name": "slow", "memory_gib": 80}],
        "nodes": [{"name": "f", "gpu_type": "fast", "gpu_count": 4}, {"name": "s", "gpu_type": "slow", "gpu_count": 4}],
    })
    jobs = [TraceJob(name="y", gpus=4, work=6.0, preemptible=False),
            TraceJob(name="x", gpus=4, work=10.0, release=0.01)]
    result = Simulator(cluster, jobs, PlannerPolicy(time_limit=2.0)).run()
    s = summarise(result)
    x = next(j for j in result.jobs if j.name == "x")
    assert x.first_start == pytest.approx(5 / 60)
    assert x.finish == pytest.approx(4.0 + (10.0 - (4.0 - 5 / 60)) / 1.5)
    assert (x.gpu_type, x.preemptions, s["migration_plans"]) == ("fast", 1, 1)
    # GPU-hours: 4 GPUs x (3.9167 h on slow + 4.0556 h on fast), no restart overhead
    assert x.gpu_hours == pytest.approx(4 * ((4.0 - 5 / 60) + (10.0 - (4.0 - 5 / 60)) / 1.5))


def test_planner_keeps_a_non_preemptible_job_off_a_node_going_into_maintenance() -> None:
    # Two idle 4-GPU nodes; n0 is in maintenance 2-5. A non-preemptible 4-GPU job of 3 h placed on n0
    # (FIFO's best fit breaks the tie by index) is stopped at 2, loses its 2 h and restarts on n1:
    # JCT 5. The planner sees the window coming and starts it on n1: JCT 3, nothing lost.
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80}],
        "nodes": [{"name": f"n{i}", "gpu_type": "GPU", "gpu_count": 4} for i in range(2)],
        "maintenance": [{"node": "n0", "start": 2, "end": 5}],
    })
    jobs = [TraceJob(name="np", gpus=4, work=3.0, preemptible=False)]
    fifo = simulate_trace(cluster, jobs, "fifo").jobs[0]
    assert (fifo.finish, fifo.drains, fifo.lost_work) == pytest.approx((5.0, 1, 2.0))
    planned = simulate_trace(cluster, jobs, "gpusched", time_limit=2.0).jobs[0]
    assert (planned.finish, planned.drains, planned.lost_work) == pytest.approx((3.0, 0, 0.0))


def test_waiting_for_the_fast_type_does_not_replan_every_slot() -> None:
    # "long" holds the fast node 0-50 h. "w" (8 GPUs, 200 h of work) would end at 200.1 on the slow
    # node now, at 50 + 200 / 2 = 150 on the fast one: the jct plan waits, and no start falls inside
    # the 24 h horizon. Nothing changes until "long" ends (an event), so the planner wakes only as
    # the horizon rolls (every 12 h), not every 15-minute slot (which was ~200 identical plans).
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "fast", "memory_gib": 80, "speed": 2.0}, {"name": "slow", "memory_gib": 80}],
        "nodes": [{"name": "f", "gpu_type": "fast", "gpu_count": 8}, {"name": "s", "gpu_type": "slow", "gpu_count": 8}],
    })
    jobs = [
        TraceJob(name="long", gpus=8, work=100.0, preemptible=False),
        TraceJob(name="w", gpus=8, work=200.0, release=0.1, preemptible=False),
    ]
    r = simulate_trace(cluster, jobs, "gpusched", time_limit=2.0)
    w = next(j for j in r.jobs if j.name == "w")
    assert (w.first_start, w.finish, w.gpu_type) == pytest.approx((50.0, 150.0, "fast"))
    assert summarise(r)["plans"] <= 10


def test_a_gang_kept_out_by_fragments_backs_off_instead_of_replanning_every_slot() -> None:
    # a (3 GPUs) fills n0, b (3 GPUs) goes to n1: one GPU free on each. c (2 GPUs, one node) fits the
    # type's 2 free GPUs but no node, and neither blocker may be preempted: each plan says "next
    # slot", and at the next slot the input is the same. The planner backs off (doubling) until a
    # ends at 30 h and c runs 30-31. Re-planning every 15-minute slot took 28 plans here.
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80}],
        "nodes": [{"name": f"n{i}", "gpu_type": "GPU", "gpu_count": 4} for i in range(2)],
    })
    jobs = [
        TraceJob(name="a", gpus=3, work=30.0, preemptible=False),
        TraceJob(name="b", gpus=3, work=40.0, preemptible=False),
        TraceJob(name="c", gpus=2, work=1.0, release=0.1),
    ]
    r = simulate_trace(cluster, jobs, "gpusched", time_limit=2.0)
    c = next(j for j in r.jobs if j.name == "c")
    assert (c.first_start, c.finish) == pytest.approx((30.0, 31.0))
    assert summarise(r)["plans"] <= 8
