"""The gpusched planner as a simulation policy: the real gpusched.solver.plan on tiny traces."""

from __future__ import annotations

import pytest

from gpusched.model import POLICIES
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
