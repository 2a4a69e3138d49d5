"""The preemption module's rules, hand-checked: hysteresis, the cost of a stop, candidates, reasons."""

from __future__ import annotations

import pytest

from gpusched.defaults import MIN_RUN_H
from gpusched.solver.preemption import (
    Beneficiary,
    Blocked,
    Holder,
    candidates,
    protected,
    reason,
    restart_cost,
)


def test_a_gang_is_protected_for_its_minimum_run_against_equal_or_lower_priority_only() -> None:
    assert protected(0.1, priority=1.0, top_waiting_priority=1.0)
    assert protected(MIN_RUN_H - 0.01, priority=2.0, top_waiting_priority=1.0)
    assert not protected(0.1, priority=1.0, top_waiting_priority=5.0)  # higher priority stops it at once
    assert not protected(MIN_RUN_H, priority=1.0, top_waiting_priority=1.0)


def test_a_stop_costs_the_overhead_plus_the_checkpoint_age_when_none_is_written_on_the_way_out() -> None:
    assert restart_cost(0.1, ran_h=1.7, checkpoint_interval=0.5, checkpoints_on_stop=True) == pytest.approx(
        0.1
    )
    assert restart_cost(0.1, ran_h=1.7, checkpoint_interval=0.5, checkpoints_on_stop=False) == pytest.approx(
        0.3
    )
    assert restart_cost(0.0, ran_h=1.7, checkpoint_interval=None, checkpoints_on_stop=False) == pytest.approx(
        1.7
    )


def test_candidates_are_the_movable_jobs_a_blocked_job_could_displace() -> None:
    blocked = [Blocked(priority=1.0, wall_h={"G": 1.0}, gpus=4)]
    holders = [
        Holder("long", "G", 1.0, remaining_h=5.0, nodes={"n1": 4}, movable=True),
        Holder("short", "G", 1.0, remaining_h=0.5, nodes={"n2": 4}, movable=True),  # ends sooner: kept
        Holder("young", "G", 1.0, remaining_h=5.0, nodes={"n3": 4}, movable=False),  # protected
        Holder("other-type", "H", 0.5, remaining_h=5.0, nodes={"n4": 4}, movable=True),
    ]
    chosen = candidates(blocked, holders, {"n1": 0, "n2": 0, "n3": 0, "n4": 8}, limit=8)
    assert [h.key for h in chosen] == ["long"]


def test_reasons_say_what_the_stop_is_for() -> None:
    low = [Beneficiary("ml/small", 1.0, 4)]
    high = [Beneficiary("ml/urgent", 10.0, 16)]
    assert reason(1.0, None, high, "jct") == "preempted for higher-priority ml/urgent"
    assert "higher-priority" not in reason(1.0, None, low, "jct")
    assert reason(1.0, None, low, "jct").startswith("preempted so that ml/small start now")
    assert reason(1.0, ["n2"], [], "jct") == "moved by the plan to n2"


def test_placement_keeps_gangs_off_nodes_that_go_into_maintenance_soon() -> None:
    # Two equal nodes; "a" (first by name, so it used to win the tie) goes into maintenance at 3 h,
    # after the 1-hour job would end: both are feasible, the maintenance-distance score picks "b".
    from gpusched.model import Cluster, Job
    from gpusched.solver import PlanOptions, plan

    cluster = Cluster.model_validate(
        {
            "gpu_types": [{"name": "G", "memory_gib": 80}],
            "nodes": [{"name": n, "gpu_type": "G", "gpu_count": 8} for n in ("a", "b")],
            "maintenance": [{"node": "a", "start": 3.0, "end": 5.0}],
        }
    )
    result = plan(
        cluster, [Job(name="j", gpus=4, duration=1.0)], PlanOptions(horizon=8, slot=1, time_limit=10)
    )
    assert [p.node for p in result.job("j").placement] == ["b"]
