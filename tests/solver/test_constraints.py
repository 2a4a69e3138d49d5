"""Each test is an instance small enough to solve by hand, where one constraint changes the answer.

Remove the constraint from the model and the asserted answer changes: that is what makes each test
a test of that constraint.
"""

from __future__ import annotations

from solver_helpers import make_cluster, run

from gpusched.config import load_inputs
from gpusched.solver import PlanOptions, plan

A = {"name": "A", "memory_gib": 40, "price_per_hour": 4.0, "speed": 2.0}
B = {"name": "B", "memory_gib": 80, "price_per_hour": 1.0, "speed": 1.0}


def test_seed_example_allocates_exactly_the_demand(tmp_path) -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cluster, jobs = load_inputs(root / "examples/seed/cluster.yaml", root / "examples/seed/jobs.yaml")
    result = plan(cluster, jobs.jobs, PlanOptions(horizon=3, slot=1))
    assert [u.used["GPU"] for u in result.utilisation] == [2, 3, 1]
    assert result.status == "optimal" and result.gap == 0
    assert result.total_cost == (2 + 3 + 1) * 2.0


def test_capacity_serialises_jobs_that_do_not_fit_together(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 4}])
    jobs = [{"name": f"j{i}", "gpus": 4, "duration": "1h"} for i in range(2)]
    result = run(cluster, jobs, policy="jct")
    assert sorted(jp.start for jp in result.jobs) == [0.0, 1.0]


def test_unhealthy_gpus_reduce_capacity(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 4, "unhealthy_gpus": 1}])
    result = run(
        cluster,
        [{"name": "big", "gpus": 4, "duration": "1h"}, {"name": "small", "gpus": 3, "duration": "1h"}],
    )
    assert result.job("big").status == "unscheduled" and result.job("big").reason_code == "gang"
    assert result.job("small").status == "scheduled"


def test_cordoned_node_is_not_used(one_type) -> None:
    cluster = make_cluster(
        one_type,
        [
            {"name": "n0", "gpu_type": "A", "gpu_count": 4, "cordoned": True},
            {"name": "n1", "gpu_type": "A", "gpu_count": 4},
        ],
    )
    result = run(cluster, [{"name": "j", "gpus": 4, "duration": "1h"}])
    assert [p.node for p in result.job("j").placement] == ["n1"]


def test_maintenance_window_delays_the_job(one_type) -> None:
    cluster = make_cluster(
        one_type,
        [{"name": "n0", "gpu_type": "A", "gpu_count": 4}],
        maintenance=[{"node": "n0", "start": 0, "end": "2h"}],
    )
    result = run(cluster, [{"name": "j", "gpus": 2, "duration": "1h"}], policy="jct")
    assert result.job("j").start == 2.0
    assert result.utilisation[0].capacity["A"] == 0


def test_placement_avoids_a_node_whose_maintenance_falls_inside_the_run(one_type) -> None:
    # n0 and n1 are alike now, but n0 goes into maintenance at 1h: a 2-hour gang started on it
    # would be stopped part-way. Without the window the tie goes to n0 (name order).
    nodes = [{"name": f"n{i}", "gpu_type": "A", "gpu_count": 4} for i in range(2)]
    job = {"name": "j", "gpus": 4, "duration": "4h", "preemptible": False}
    plain = run(make_cluster(one_type, nodes), [job], policy="jct")
    assert [p.node for p in plain.job("j").placement] == ["n0"]
    window = [{"node": "n0", "start": "1h", "end": "3h"}]
    result = run(make_cluster(one_type, nodes, maintenance=window), [job], policy="jct")
    assert result.job("j").start == 0.0
    assert [p.node for p in result.job("j").placement] == ["n1"]


def test_gang_spans_nodes_only_within_max_nodes(one_type) -> None:
    nodes = [{"name": f"n{i}", "gpu_type": "A", "gpu_count": 2} for i in range(2)]
    cluster = make_cluster(one_type, nodes)
    spread = run(cluster, [{"name": "j", "gpus": 3, "duration": "1h"}])
    assert sum(p.gpus for p in spread.job("j").placement) == 3 and len(spread.job("j").placement) == 2
    packed = run(cluster, [{"name": "j", "gpus": 3, "duration": "1h", "max_nodes": 1}])
    assert packed.job("j").status == "unscheduled" and packed.job("j").reason_code == "gang"


def test_one_gpu_type_per_job() -> None:
    cluster = make_cluster(
        [A, B],
        [{"name": "a0", "gpu_type": "A", "gpu_count": 2}, {"name": "b0", "gpu_type": "B", "gpu_count": 2}],
    )
    result = run(cluster, [{"name": "j", "gpus": 4, "duration": "1h"}])
    assert result.job("j").status == "unscheduled"
    assert "larger than any allowed pool" in (result.job("j").reason or "")


def test_memory_requirement_picks_the_bigger_gpu() -> None:
    cluster = make_cluster(
        [A, B],
        [{"name": "a0", "gpu_type": "A", "gpu_count": 4}, {"name": "b0", "gpu_type": "B", "gpu_count": 4}],
    )
    # Under jct the fast A is preferred; 60 GiB per GPU only fits B.
    free = run(cluster, [{"name": "j", "gpus": 2, "duration": "2h"}], policy="jct")
    assert free.job("j").gpu_type == "A"
    needs = run(cluster, [{"name": "j", "gpus": 2, "duration": "2h", "min_gpu_memory_gib": 60}], policy="jct")
    assert needs.job("j").gpu_type == "B"
    too_much = run(cluster, [{"name": "j", "gpus": 2, "duration": "2h", "min_gpu_memory_gib": 100}])
    assert too_much.job("j").reason_code == "memory"


def test_allowed_types_are_respected() -> None:
    cluster = make_cluster(
        [A, B],
        [{"name": "a0", "gpu_type": "A", "gpu_count": 4}, {"name": "b0", "gpu_type": "B", "gpu_count": 4}],
    )
    result = run(cluster, [{"name": "j", "gpus": 2, "duration": "2h", "gpu_types": ["B"]}], policy="jct")
    assert result.job("j").gpu_type == "B"


def test_cost_policy_buys_cheap_work_and_jct_buys_speed() -> None:
    # A does 2 units/h for $4 ($2 per unit), B 1 unit/h for $1 ($1 per unit).
    cluster = make_cluster(
        [A, B],
        [{"name": "a0", "gpu_type": "A", "gpu_count": 4}, {"name": "b0", "gpu_type": "B", "gpu_count": 4}],
    )
    job = [{"name": "j", "gpus": 4, "duration": "2h"}]
    cheap = run(cluster, job, policy="cost")
    fast = run(cluster, job, policy="jct")
    assert cheap.job("j").gpu_type == "B" and cheap.total_cost == 4 * 2 * 1.0
    assert fast.job("j").gpu_type == "A" and fast.job("j").end == 1.0


def test_release_time_is_respected(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 4}])
    result = run(cluster, [{"name": "j", "gpus": 1, "duration": "1h", "release": "3h"}], policy="jct")
    assert result.job("j").start == 3.0


def test_deadline_reorders_jobs(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 4}])
    jobs = [
        {"name": "important", "gpus": 4, "duration": "2h", "priority": 4},
        {"name": "due", "gpus": 4, "duration": "1h", "deadline": "1h"},
    ]
    result = run(cluster, jobs, policy="jct")
    assert result.job("due").start == 0.0 and result.job("due").deadline_met is True
    assert result.job("important").start == 1.0


def test_impossible_deadline_still_yields_a_plan_that_says_why(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 4}])
    result = run(
        cluster, [{"name": "late", "gpus": 2, "duration": "3h", "deadline": "2h"}], policy="deadline"
    )
    jp = result.job("late")
    assert result.status == "infeasible"
    assert jp.status == "scheduled" and jp.deadline_met is False and jp.reason_code == "deadline"
    assert "even alone" in (jp.reason or "")


def test_cordoned_node_keeps_its_running_job_and_takes_no_new_work(one_type) -> None:
    # `kubectl cordon`: no new work on c0, but the job already there goes on. c0 and n1 both have
    # 4 GPUs free; best-fit would break the tie by name and pick c0 for the new job.
    nodes = [
        {"name": "c0", "gpu_type": "A", "gpu_count": 8, "cordoned": True},
        {"name": "n1", "gpu_type": "A", "gpu_count": 4},
    ]
    jobs = [
        {"name": "old", "gpus": 4, "duration": "3h", "running": {"nodes": {"c0": 4}, "done": "1h"}},
        {"name": "new", "gpus": 4, "duration": "1h"},
        {"name": "later", "gpus": 4, "duration": "1h"},
    ]
    result = run(make_cluster(one_type, nodes), jobs, policy="jct")
    old = result.job("old")
    assert (old.status, old.start, old.end, old.preempted) == ("running", 0.0, 2.0, False)
    assert {p.node: p.gpus for p in old.placement} == {"c0": 4}
    assert [p.node for p in result.job("new").placement] == ["n1"]
    # c0's other 4 GPUs never count: the third job waits for n1.
    assert result.job("later").start == 1.0


def test_non_preemptible_running_job_keeps_its_nodes(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 4}])
    jobs = [
        {"name": "old", "gpus": 4, "duration": "3h", "running": {"nodes": {"n0": 4}, "done": "1h"}},
        {"name": "vip", "gpus": 4, "duration": "1h", "priority": 100},
    ]
    result = run(cluster, jobs, policy="jct")
    assert result.job("old").status == "running" and not result.job("old").preempted
    assert result.job("old").end == 2.0
    assert result.job("vip").start == 2.0


def test_preemptible_running_job_yields_to_urgent_work_and_pays_restart(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 4}])
    jobs = [
        {
            "name": "old",
            "gpus": 4,
            "duration": "3h",
            "preemptible": True,
            "restart_overhead": "30m",
            "running": {"nodes": {"n0": 4}, "done": "1h"},
        },
        {"name": "vip", "gpus": 4, "duration": "1h", "priority": 100, "deadline": "1h"},
    ]
    result = run(cluster, jobs, policy="jct", slot=0.25)
    old = result.job("old")
    assert result.job("vip").start == 0.0
    assert old.preempted and old.start == 1.0
    # 2h of work left + 30 min restart overhead + the migration penalty.
    assert old.end is not None and old.end >= 1.0 + 2.0 + 0.5


def test_running_job_is_not_moved_for_nothing(one_type) -> None:
    cluster = make_cluster(
        one_type,
        [{"name": "n0", "gpu_type": "A", "gpu_count": 4}, {"name": "n1", "gpu_type": "A", "gpu_count": 4}],
    )
    jobs = [
        {
            "name": "r",
            "gpus": 2,
            "duration": "2h",
            "preemptible": True,
            "running": {"nodes": {"n1": 2}, "done": 0},
        },
        {"name": "new", "gpus": 4, "duration": "1h"},
    ]
    result = run(cluster, jobs, policy="jct")
    assert result.job("r").status == "running" and not result.job("r").migrated
    assert [p.node for p in result.job("r").placement] == ["n1"]
    assert [p.node for p in result.job("new").placement] == ["n0"]


def test_placement_is_best_fit_and_keeps_whole_nodes_whole(one_type) -> None:
    cluster = make_cluster(
        one_type,
        [{"name": "n0", "gpu_type": "A", "gpu_count": 8}, {"name": "n1", "gpu_type": "A", "gpu_count": 8}],
    )
    jobs = [
        {"name": "six", "gpus": 6, "duration": "4h", "running": {"nodes": {"n1": 6}, "done": 0}},
        {"name": "two", "gpus": 2, "duration": "1h"},
    ]
    result = run(cluster, jobs, policy="jct")
    # n1 has exactly 2 GPUs left: the small job fills that hole and n0 stays whole for an 8-GPU gang.
    assert [p.node for p in result.job("two").placement] == ["n1"]


def test_gang_stays_inside_one_topology_domain(one_type) -> None:
    nodes = [
        {"name": "a1", "gpu_type": "A", "gpu_count": 4, "topology_domain": "island-a"},
        {"name": "b1", "gpu_type": "A", "gpu_count": 4, "topology_domain": "island-b"},
        {"name": "b2", "gpu_type": "A", "gpu_count": 4, "topology_domain": "island-b"},
    ]
    cluster = make_cluster(one_type, nodes)
    result = run(cluster, [{"name": "j", "gpus": 8, "duration": "1h"}])
    assert sorted(p.node for p in result.job("j").placement) == ["b1", "b2"]


def test_fragmented_slot_defers_the_gang_instead_of_splitting_it(one_type) -> None:
    nodes = [{"name": f"n{i}", "gpu_type": "A", "gpu_count": 4} for i in range(2)]
    cluster = make_cluster(one_type, nodes)
    jobs = [
        {"name": "r0", "gpus": 2, "duration": "1h", "running": {"nodes": {"n0": 2}, "done": 0}},
        {"name": "r1", "gpus": 2, "duration": "2h", "running": {"nodes": {"n1": 2}, "done": 0}},
        {"name": "whole", "gpus": 4, "duration": "1h", "max_nodes": 1},
    ]
    result = run(cluster, jobs, policy="jct")
    # 4 GPUs are free now in total, but not on one node: the job starts when n0 frees up.
    whole = result.job("whole")
    assert whole.start == 1.0 and whole.status == "scheduled"
    assert any("no node placement" in n for n in result.notes)


def test_urgent_gang_preempts_lower_priority_fragments_to_start_now(one_type) -> None:
    nodes = [{"name": f"n{i}", "gpu_type": "A", "gpu_count": 4} for i in range(2)]
    cluster = make_cluster(one_type, nodes)
    jobs = [
        {
            "name": "r0",
            "gpus": 1,
            "duration": "6h",
            "preemptible": True,
            "running": {"nodes": {"n0": 1}, "done": 0},
        },
        {
            "name": "r1",
            "gpus": 2,
            "duration": "6h",
            "preemptible": True,
            "running": {"nodes": {"n1": 2}, "done": 0},
        },
        {"name": "whole", "gpus": 4, "duration": "1h", "max_nodes": 1, "priority": 10},
    ]
    result = run(cluster, jobs, policy="jct")
    # 5 GPUs are free but no node has 4: waiting 6 hours costs 'whole' 60 weighted hours, stopping
    # the 1-GPU job on n0 costs it about one slot and a restart. Only that one is stopped.
    whole = result.job("whole")
    assert whole.start == 0.0 and [p.node for p in whole.placement] == ["n0"]
    assert result.job("r0").preempted and not result.job("r1").preempted
    assert result.job("r1").status == "running"
    assert any("preempted r0" in n for n in result.notes)


def test_gang_does_not_preempt_equal_priority_or_non_preemptible_jobs(one_type) -> None:
    nodes = [{"name": f"n{i}", "gpu_type": "A", "gpu_count": 4} for i in range(2)]
    cluster = make_cluster(one_type, nodes)
    for running_extra, whole_priority in (({"preemptible": True}, 1.0), ({"preemptible": False}, 10.0)):
        jobs = [
            {
                "name": "r0",
                "gpus": 1,
                "duration": "6h",
                "running": {"nodes": {"n0": 1}, "done": 0},
                **running_extra,
            },
            {
                "name": "r1",
                "gpus": 2,
                "duration": "6h",
                "running": {"nodes": {"n1": 2}, "done": 0},
                **running_extra,
            },
            {"name": "whole", "gpus": 4, "duration": "1h", "max_nodes": 1, "priority": whole_priority},
        ]
        result = run(cluster, jobs, policy="jct")
        # Deferred (the later slots are planned per type; the next plan places it for real).
        assert result.job("whole").start != 0.0
        assert not result.job("r0").preempted and not result.job("r1").preempted
        assert not any("preempted" in n for n in result.notes)


def test_makespan_policy_balances_where_jct_would_not() -> None:
    fast = {"name": "F", "memory_gib": 80, "speed": 2.0}
    slow = {"name": "S", "memory_gib": 80, "speed": 1.0}
    cluster = make_cluster(
        [fast, slow],
        [{"name": "f", "gpu_type": "F", "gpu_count": 1}, {"name": "s", "gpu_type": "S", "gpu_count": 1}],
    )
    jobs = [{"name": f"j{i}", "gpus": 1, "duration": "2h"} for i in range(3)]
    # On F each takes 1h, on S 2h. Best makespan: two on F (ends 2h), one on S (ends 2h).
    result = run(cluster, jobs, policy="makespan", slot=0.5)
    assert max(jp.end or 0 for jp in result.jobs) == 2.0
    assert sorted(jp.gpu_type or "" for jp in result.jobs) == ["F", "F", "S"]


def test_fair_policy_gives_the_small_team_its_share(one_type) -> None:
    cluster = make_cluster(one_type, [{"name": "n0", "gpu_type": "A", "gpu_count": 2}])
    jobs = [
        {"name": f"big-{i}", "gpus": 2, "duration": "2h", "team": "big", "priority": 2} for i in range(4)
    ] + [{"name": "small-0", "gpus": 2, "duration": "2h", "team": "small"}]
    jct = run(cluster, jobs, policy="jct", horizon=4)
    fair = run(cluster, jobs, policy="fair", horizon=4)
    # jct runs the heavier-weighted team first and leaves "small" outside a 4h horizon;
    # fair gives "small" one of the two 2-hour windows.
    assert jct.job("small-0").start is None or jct.job("small-0").start >= 4.0
    assert fair.job("small-0").start is not None and fair.job("small-0").start < 4.0


def test_gpu_hours_and_per_type_speeds() -> None:
    cluster = make_cluster(
        [A, B],
        [{"name": "a0", "gpu_type": "A", "gpu_count": 4}, {"name": "b0", "gpu_type": "B", "gpu_count": 4}],
    )
    # 8 GPU-hours on 4 GPUs = 2h at speed 1; this job runs 4x faster on B than the default speed.
    job = {"name": "j", "gpus": 4, "gpu_hours": 8, "speeds": {"B": 4.0}, "gpu_types": ["B"]}
    result = run(cluster, [job], policy="jct", slot=0.25)
    assert result.job("j").end == 0.5


def test_placement_serves_node_limited_gangs_first(one_type) -> None:
    nodes = [{"name": f"small{i}", "gpu_type": "A", "gpu_count": 2} for i in range(2)] + [
        {"name": "big", "gpu_type": "A", "gpu_count": 8}
    ]
    cluster = make_cluster(one_type, nodes)
    jobs = [
        {"name": "free-a", "gpus": 4, "duration": "1h"},
        {"name": "free-b", "gpus": 4, "duration": "1h"},
        {"name": "one-node", "gpus": 4, "duration": "1h", "max_nodes": 1},
    ]
    result = run(cluster, jobs, policy="jct")
    # All three fit now only if the node-limited gang gets 'big' before the others take it.
    assert all(jp.start == 0.0 for jp in result.jobs)
    assert [p.node for p in result.job("one-node").placement] == ["big"]
