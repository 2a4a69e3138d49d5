"""Issue #10's reproductions: running jobs on cordoned, degraded or maintained nodes, gangs that the
type-level model would start where no node has room, and deadlines judged on the exact end.

Each plan also passes a node-level check (tests/solver/node_check.py): every job holds named
nodes for its whole run and no node gives out more GPUs than it has in service.
"""

from __future__ import annotations

from typing import Any

import pytest
from node_check import node_violations
from solver_helpers import make_cluster

from gpusched.model import Cluster, Job, Plan
from gpusched.solver import PlanOptions, plan
from gpusched.verify import check_plan

A = [{"name": "A", "memory_gib": 80, "price_per_hour": 2.0}]


def solve(cluster: Cluster, jobs: list[dict[str, Any]], **options: Any) -> Plan:
    parsed = [Job.model_validate(j) for j in jobs]
    options.setdefault("horizon", 12.0)
    options.setdefault("slot", 1.0)
    options.setdefault("time_limit", 20)
    result = plan(cluster, parsed, PlanOptions(**options))
    assert check_plan(cluster, parsed, result) == []
    assert node_violations(cluster, parsed, result) == []
    return result


def test_cordoned_capacity_belongs_to_the_job_that_goes_on_there() -> None:
    # Before: r's 8 GPUs on the cordoned n0 counted as open A capacity for its remaining 10 h; the
    # plan stopped r, put new1 on n0 and restarted r on the same capacity (16 GPUs on 8).
    cluster = make_cluster(
        A,
        [
            {"name": "n0", "gpu_type": "A", "gpu_count": 8, "cordoned": True},
            {"name": "n1", "gpu_type": "A", "gpu_count": 8},
        ],
    )
    jobs = [
        {"name": "r", "gpus": 8, "duration": "10h", "preemptible": True, "running": {"nodes": {"n0": 8}}},
        {"name": "new1", "gpus": 8, "duration": "3h", "priority": 5},
        {"name": "new2", "gpus": 8, "duration": "3h", "priority": 5},
    ]
    result = solve(cluster, jobs, policy="jct")
    for name in ("new1", "new2"):
        assert [p.node for p in result.job(name).placement] == ["n1"]
    assert sorted(result.job(n).start for n in ("new1", "new2")) == [0.0, 3.0]
    # r either goes on in place, or, stopped, has only n1 to restart on.
    r = result.job("r")
    assert (r.status == "running" and [p.node for p in r.placement] == ["n0"]) or r.start >= 6.0
    assert all(u.capacity["A"] == 8 for u in result.utilisation)


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_non_preemptible_jobs_whose_gpus_go_away_are_stopped_and_reported(solver: str) -> None:
    # n0 lost 2 of 8 GPUs under two 4-GPU jobs; n1 goes into maintenance at 3 h under a 6-hour job.
    # Before: CBC's "Infeasible - objective value" was read as a plan (16 GPUs on 14, "optimal"),
    # and HiGHS's greedy kept c running through the maintenance.
    cluster = make_cluster(
        A,
        [
            {"name": "n0", "gpu_type": "A", "gpu_count": 8, "unhealthy_gpus": 2},
            {"name": "n1", "gpu_type": "A", "gpu_count": 8},
        ],
        maintenance=[{"node": "n1", "start": "3h", "end": "5h"}],
    )
    jobs = [
        {"name": "a", "gpus": 4, "duration": "6h", "priority": 2, "running": {"nodes": {"n0": 4}}},
        {"name": "b", "gpus": 4, "duration": "6h", "running": {"nodes": {"n0": 4}}},
        {"name": "c", "gpus": 6, "duration": "6h", "running": {"nodes": {"n1": 6}}},
    ]
    result = solve(cluster, jobs, policy="jct", solver=solver)
    assert result.job("a").status == "running"  # the higher priority keeps the GPUs left
    for name, why in (("b", "unhealthy"), ("c", "maintenance")):
        jp = result.job(name)
        assert jp.status == "unscheduled" and jp.reason_code == "capacity"
        assert jp.reason is not None and why in jp.reason and "stopped" in jp.reason
        assert any(n.startswith(f"running job {name} stopped") for n in result.notes)


def test_a_running_job_that_would_run_into_maintenance_moves_before_it() -> None:
    cluster = make_cluster(
        A,
        [{"name": "n0", "gpu_type": "A", "gpu_count": 8}, {"name": "n1", "gpu_type": "A", "gpu_count": 8}],
        maintenance=[{"node": "n1", "start": "3h", "end": "5h"}],
    )
    jobs = [
        {
            "name": "r",
            "gpus": 6,
            "duration": "6h",
            "preemptible": True,
            "restart_overhead": "15m",
            "running": {"nodes": {"n1": 6}},
        }
    ]
    result = solve(cluster, jobs, policy="jct")
    r = result.job("r")
    assert r.start == 0.0 and r.migrated and [p.node for p in r.placement] == ["n0"]


def test_a_future_gang_waits_for_a_node_that_holds_it_whole() -> None:
    # 8 GPUs of type A are free from 1 h, 4 on each node: the type-level model sees room for the
    # 8-GPU single-node gang at 1 h; no node has it before the running jobs end at 10 h.
    cluster = make_cluster(
        A, [{"name": "n0", "gpu_type": "A", "gpu_count": 8}, {"name": "n1", "gpu_type": "A", "gpu_count": 8}]
    )
    jobs = [
        {"name": "a", "gpus": 4, "duration": "10h", "running": {"nodes": {"n0": 4}}},
        {"name": "b", "gpus": 4, "duration": "10h", "running": {"nodes": {"n1": 4}}},
        {"name": "g", "gpus": 8, "duration": "2h", "max_nodes": 1, "release": "1h"},
    ]
    result = solve(cluster, jobs, policy="jct")
    g = result.job("g")
    assert g.start == 10.0 and len(g.placement) == 1
    assert result.status != "optimal"  # the type-level bound cannot see the nodes: no false claim


def test_future_jobs_hold_named_nodes_for_their_whole_run() -> None:
    cluster = make_cluster(
        A,
        [{"name": f"n{i}", "gpu_type": "A", "gpu_count": 8} for i in range(2)],
        maintenance=[{"node": "n0", "start": "2h", "end": "4h"}],
    )
    jobs = [{"name": f"j{i}", "gpus": 8, "duration": "3h", "max_nodes": 1} for i in range(4)]
    result = solve(cluster, jobs, policy="jct")
    for jp in result.jobs:
        assert jp.status != "unscheduled" and len(jp.placement) == 1


def test_a_deadline_is_met_when_the_exact_end_is_before_it() -> None:
    # 2h18m of work, deadline 2h30m, 1-hour slots: the job occupies slots 0-2 but ends at 2h18m.
    cluster = make_cluster(A, [{"name": "n0", "gpu_type": "A", "gpu_count": 8}])
    for policy in ("deadline", "cost", "jct"):
        result = solve(
            cluster, [{"name": "a", "gpus": 4, "duration": "2h18m", "deadline": "2h30m"}], policy=policy
        )
        jp = result.job("a")
        assert jp.deadline_met is True and jp.reason is None
        assert result.status == "optimal"


def test_a_deadline_missed_by_the_exact_end_is_reported() -> None:
    cluster = make_cluster(A, [{"name": "n0", "gpu_type": "A", "gpu_count": 4}])
    jobs = [
        {"name": "first", "gpus": 4, "duration": "30m", "priority": 9, "deadline": "1h"},
        {"name": "a", "gpus": 4, "duration": "2h18m", "deadline": "2h30m"},
    ]
    result = solve(cluster, jobs, policy="deadline")
    assert result.job("a").end == pytest.approx(3.3) and result.job("a").deadline_met is False
    assert result.status == "infeasible"
