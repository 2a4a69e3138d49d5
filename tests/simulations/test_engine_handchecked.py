"""Tiny traces whose JCTs are worked out by hand, one per policy (the arithmetic is in the comments)."""

from __future__ import annotations

import pytest

from gpusched.model import Cluster
from gpusched.simulations import SimConfig, TraceJob, simulate_trace
from gpusched.simulations.engine import Simulator
from gpusched.simulations.metrics import summarise
from gpusched.simulations.policies.las import Las

from .conftest import one_node


def trio(**a_kwargs: object) -> list[TraceJob]:
    """On one 4-GPU node: A (4 GPUs, 2 h) and B (1 GPU, 1 h) at t=0, C (2 GPUs, 1 h) at t=0.5."""
    return [
        TraceJob(name="A", gpus=4, work=2.0, release=0.0, **a_kwargs),  # type: ignore[arg-type]
        TraceJob(name="B", gpus=1, work=1.0, release=0.0),
        TraceJob(name="C", gpus=2, work=1.0, release=0.5),
    ]


def jcts(result: object) -> dict[str, float]:
    return {j.name: j.finish - j.spec.release for j in result.jobs}  # type: ignore[attr-defined]


def test_fifo_head_of_line() -> None:
    # A runs 0-2 and blocks B and C (strict order). At 2, B (1 GPU) and C (2 GPUs) both start:
    # B ends 3, C ends 3. JCT: A 2, B 3, C 3 - 0.5 = 2.5.
    r = simulate_trace(one_node(), trio(), "fifo")
    assert jcts(r) == pytest.approx({"A": 2.0, "B": 3.0, "C": 2.5})
    assert summarise(r)["avg_jct_h"] == pytest.approx(7.5 / 3)
    assert summarise(r)["avg_queue_h"] == pytest.approx((0 + 2 + 1.5) / 3)


def test_fifo_strict_blocks_but_backfill_does_not() -> None:
    # A 3-GPU job holds 3 of 4 GPUs 0-1; a 2-GPU job waits at the head; a 1-GPU job behind it can use
    # the free GPU at once only with backfill. Strict: big (2 GPUs) 1-2, small 1-1.5 -> small JCT 1.5.
    # Backfill: small runs 0-0.5 (JCT 0.5), big still 1-2.
    jobs = [
        TraceJob(name="hold", gpus=3, work=1.0),
        TraceJob(name="big", gpus=2, work=1.0),
        TraceJob(name="small", gpus=1, work=0.5),
    ]
    strict = jcts(simulate_trace(one_node(), jobs, "fifo"))
    backfill = jcts(simulate_trace(one_node(), jobs, "fifo-backfill"))
    assert strict == pytest.approx({"hold": 1.0, "big": 2.0, "small": 1.5})
    assert backfill == pytest.approx({"hold": 1.0, "big": 2.0, "small": 0.5})


def test_sjf_oracle() -> None:
    # t=0: B (1 h) before A (2 h); B starts, A (4 GPUs) does not fit beside it. t=0.5: C fits (2 GPUs),
    # runs 0.5-1.5. B ends 1. At 1.5 all 4 GPUs free: A runs 1.5-3.5. JCT: A 3.5, B 1, C 1.
    r = simulate_trace(one_node(), trio(), "sjf")
    assert jcts(r) == pytest.approx({"A": 3.5, "B": 1.0, "C": 1.0})


def test_las_two_queues_with_preemption() -> None:
    # Threshold 1 GPU-h. t=0: A (earlier in line) gets all 4 GPUs. A crosses 1 GPU-h at 0.25 -> queue 1;
    # B (queue 0) takes 1 GPU and A no longer fits: A preempted (checkpoints 0.25 h of work).
    # t=0.5: C (queue 0) starts beside B. C crosses 1 GPU-h at 0.5 + 1/2 = 1.0 -> queue 1 (still runs).
    # B ends 1.25; now queue 1 = [A (released 0), C (0.5)]: A takes all 4 GPUs, C is preempted with
    # 0.75 h done. A runs its remaining 1.75 h: 1.25-3.0. C resumes 3.0-3.25.
    # JCT: A 3.0, B 1.25, C 2.75; 2 preemptions.
    sim = Simulator(one_node(), trio(), Las(thresholds=[1.0]))
    r = sim.run()
    assert jcts(r) == pytest.approx({"A": 3.0, "B": 1.25, "C": 2.75})
    assert summarise(r)["preemptions"] == 2


def test_las_restart_overhead_and_conservation() -> None:
    # As above, but A pays 0.1 h at its restart: A runs 1.25-3.1, C 3.1-3.35.
    # A's GPU-hours = 4 x (0.25 + 1.85) = 8.4 = 4 x (2 h of work + 0.1 h overhead).
    r = Simulator(one_node(), trio(restart_overhead=0.1), Las(thresholds=[1.0])).run()
    assert jcts(r) == pytest.approx({"A": 3.1, "B": 1.25, "C": 2.85})
    a = next(j for j in r.jobs if j.name == "A")
    assert a.gpu_hours == pytest.approx(8.4)
    assert a.overhead_hours == pytest.approx(0.4)


def starved() -> list[TraceJob]:
    """On one 4-GPU node: A (4 GPUs, 0.45 h) at t=0, then five 4-GPU jobs S0..S4 of 0.2 h (0.8 GPU-h,
    never demoted) arriving every 0.2 h from 0.25, so the top queue is never empty from 0.25 to 1.25."""
    return [TraceJob(name="A", gpus=4, work=0.45),
            *(TraceJob(name=f"S{i}", gpus=4, work=0.2, release=0.25 + 0.2 * i) for i in range(5))]


def test_las_starvation_guard_changes_who_runs() -> None:
    # Threshold 1 GPU-h. A crosses it at 0.25 (4 GPUs x 0.25 h), is demoted and preempted by S0 with
    # 0.2 h left. Without the guard the S jobs run back to back 0.25-1.25 and A resumes 1.25-1.45.
    plain = Simulator(one_node(), starved(), Las(thresholds=[1.0])).run()
    assert jcts(plain) == pytest.approx({"A": 1.45, **{f"S{i}": 0.2 for i in range(5)}})
    assert summarise(plain)["preemptions"] == 1
    # Guard 0.5 h: A, queued at 0.25, is promoted at 0.75 to the top queue, where it is first in line
    # (released at 0): it preempts S2 (running since 0.65, 0.1 h done) and -- with a fresh 1 GPU-h
    # quota, not demoted again at once -- runs its 0.2 h, 0.75-0.95. Then S2 0.95-1.05, S3 1.05-1.25,
    # S4 1.25-1.45: JCTs S2 0.4, S3 0.4, S4 0.4.
    guarded = Simulator(one_node(), starved(), Las(thresholds=[1.0], promote_after=0.5)).run()
    assert jcts(guarded) == pytest.approx({"A": 0.95, "S0": 0.2, "S1": 0.2, "S2": 0.4, "S3": 0.4, "S4": 0.4})
    s = summarise(guarded)
    assert (s["preemptions"], s["promotions"]) == (2, 1)
    with pytest.raises(ValueError, match="starvation guard must be positive"):
        Las(promote_after=0.0)


def test_preemption_without_checkpoint_loses_work() -> None:
    # No checkpoint on preemption and no checkpoint interval: A's 0.25 h is lost, so A reruns 2 h from
    # 1.25 (ends 3.25) and C its whole 1 h from 3.25 (ends 4.25).
    cfg = SimConfig(checkpoint_on_preempt=False)
    r = Simulator(one_node(), trio(), Las(thresholds=[1.0]), cfg).run()
    assert jcts(r) == pytest.approx({"A": 3.25, "B": 1.25, "C": 3.75})
    a = next(j for j in r.jobs if j.name == "A")
    assert a.lost_work == pytest.approx(0.25)


def test_checkpoint_interval_keeps_whole_intervals() -> None:
    # With checkpoints every 0.1 h, A preempted after 0.25 h keeps 0.2 h: remaining 1.8 h from 1.25.
    cfg = SimConfig(checkpoint_on_preempt=False)
    r = Simulator(one_node(), trio(checkpoint_interval=0.1), Las(thresholds=[1.0]), cfg).run()
    assert jcts(r)["A"] == pytest.approx(1.25 + 1.8)


def test_speed_per_type_and_cost() -> None:
    # One job of 2 reference hours on a speed-2 type finishes in 1 h; 2 GPUs x 1 h x $3 = $6.
    cluster = one_node(gpus=2, speed=2.0, price=3.0)
    r = simulate_trace(cluster, [TraceJob(name="x", gpus=2, work=2.0)], "fifo")
    assert jcts(r) == pytest.approx({"x": 1.0})
    assert summarise(r)["total_cost"] == pytest.approx(6.0)


def test_gavel_shares_the_fast_gpu() -> None:
    # Two 1-GPU jobs of 2 h; one GPU of speed 2, one of speed 1. FIFO: first job takes the fast GPU
    # (done at 1 h), the second the slow one (2 h): avg 1.5. Max-min fairness gives both the same
    # rate, 3 units/h of total throughput split evenly, so both finish near 4/3 h (within a round).
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "fast", "memory_gib": 80, "speed": 2.0}, {"name": "slow", "memory_gib": 80}],
        "nodes": [{"name": "f", "gpu_type": "fast", "gpu_count": 1}, {"name": "s", "gpu_type": "slow", "gpu_count": 1}],
    })
    jobs = [TraceJob(name="j1", gpus=1, work=2.0), TraceJob(name="j2", gpus=1, work=2.0)]
    fifo = jcts(simulate_trace(cluster, jobs, "fifo"))
    assert fifo == pytest.approx({"j1": 1.0, "j2": 2.0})
    gavel = jcts(simulate_trace(cluster, jobs, "gavel", round_hours=0.05))
    for value in gavel.values():
        assert value == pytest.approx(4 / 3, abs=0.06)


def test_gavel_lp_holds_every_active_job() -> None:
    # 600 identical one-GPU jobs of 1 h at t=0 on one 8-GPU node, rounds of 0.1 h. Every job is in the
    # LP (one class of 600: x = 8/600 each), so each round the 8 jobs that never ran rank first (x /
    # share received = infinity; ties by arrival) and take the GPUs: round r (t = 0.1 r) starts jobs
    # 8r..8r+7, and the last job first runs at round 74, t = 7.4 h -- long before any job has its
    # 1 h of service. (With the LP capped at the 512 earliest jobs, jobs 512-599 waited for a finish.)
    jobs = [TraceJob(name=f"j{i:03d}", gpus=1, work=1.0) for i in range(600)]
    r = simulate_trace(one_node(gpus=8), jobs, "gavel", round_hours=0.1)
    first = {j.name: j.first_start for j in r.jobs}
    assert first["j599"] == pytest.approx(7.4)
    assert first["j008"] == pytest.approx(0.1) and first["j007"] == pytest.approx(0.0)
    s = summarise(r)
    assert s["completed"] == 600


def test_shared_gpus_pack_onto_one_gpu() -> None:
    # Two 0.5-GPU jobs share one GPU, so a 1-GPU node runs both at once: both JCT 1 h.
    jobs = [TraceJob(name="a", gpus=1, gpu_milli=500, work=1.0), TraceJob(name="b", gpus=1, gpu_milli=500, work=1.0)]
    r = simulate_trace(one_node(gpus=1), jobs, "fifo")
    assert jcts(r) == pytest.approx({"a": 1.0, "b": 1.0})
    assert summarise(r)["gpu_hours"] == pytest.approx(1.0)


def test_multi_node_gang_and_rejection() -> None:
    # A 12-GPU gang spans two 8-GPU nodes; a 32-GPU job can never fit on 16 GPUs and is rejected.
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80}],
        "nodes": [{"name": f"n{i}", "gpu_type": "GPU", "gpu_count": 8} for i in range(2)],
    })
    jobs = [TraceJob(name="gang", gpus=12, work=1.0), TraceJob(name="huge", gpus=32, work=1.0)]
    r = simulate_trace(cluster, jobs, "fifo")
    s = summarise(r)
    assert s["completed"] == 1 and s["rejected"] == 1
    gang = next(j for j in r.jobs if j.name == "gang")
    assert gang.finish == pytest.approx(1.0)


def test_fragmentation_is_measured() -> None:
    # Two 8-GPU nodes each run a 6-GPU job for 2 h; a 4-GPU job waits: the 2 + 2 free GPUs are
    # unusable by it (it must fit on one node), so 4 GPUs are fragmented for the whole 2 h wait and
    # c runs 2-3. Letting small gangs span nodes removes the hole: c runs 0-1 on 2 + 2 GPUs.
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80}],
        "nodes": [{"name": f"n{i}", "gpu_type": "GPU", "gpu_count": 8} for i in range(2)],
    })
    jobs = [TraceJob(name="a", gpus=6, work=2.0), TraceJob(name="b", gpus=6, work=2.0),
            TraceJob(name="c", gpus=4, work=1.0)]
    strict = simulate_trace(cluster, jobs, "fifo")
    assert summarise(strict)["avg_fragmented_gpus"] == pytest.approx(4.0)
    assert jcts(strict)["c"] == pytest.approx(3.0)
    spread = simulate_trace(cluster, jobs, "fifo", SimConfig(spread_small_jobs=True))
    assert summarise(spread)["avg_fragmented_gpus"] == pytest.approx(0.0)
    assert jcts(spread)["c"] == pytest.approx(1.0)


def test_deadline_attainment() -> None:
    # FIFO on one 4-GPU node: A (4 GPUs, 2 h, deadline 3 h) runs 0-2: met. B (4 GPUs, 1 h, deadline
    # 2.5 h) runs 2-3: missed. C has no deadline and does not count. Attainment 1/2.
    jobs = [TraceJob(name="A", gpus=4, work=2.0, deadline=3.0), TraceJob(name="B", gpus=4, work=1.0, deadline=2.5),
            TraceJob(name="C", gpus=1, work=0.5)]
    s = summarise(simulate_trace(one_node(), jobs, "fifo"))
    assert s["deadline_jobs"] == 2
    assert s["deadline_attainment"] == pytest.approx(0.5)
    assert s["makespan_h"] == pytest.approx(3.5)
    assert s["utilisation"] == pytest.approx((8 + 4 + 0.5) / (4 * 3.5))


def _with_maintenance(cluster: Cluster, *windows: dict[str, object]) -> Cluster:
    return Cluster.model_validate({**cluster.model_dump(), "maintenance": list(windows)})


def test_maintenance_drains_and_resumes_a_job() -> None:
    # A (4 GPUs, 10 h) runs 0-2; node n0 is in maintenance 2-5. Drained with a checkpoint, it keeps
    # its 2 h and runs the other 8 h from 5: JCT 13. Without checkpoints it starts over at 5: JCT 15.
    cluster = _with_maintenance(one_node(), {"node": "n0", "start": 2, "end": 5})
    jobs = [TraceJob(name="A", gpus=4, work=10.0)]
    kept = simulate_trace(cluster, jobs, "fifo")
    assert jcts(kept) == pytest.approx({"A": 13.0})
    assert kept.jobs[0].drains == 1 and summarise(kept)["maintenance_stops"] == 1
    assert summarise(kept)["preemptions"] == 0  # the policy did not choose it
    lost = simulate_trace(cluster, jobs, "fifo", SimConfig(checkpoint_on_preempt=False))
    assert jcts(lost) == pytest.approx({"A": 15.0})
    assert lost.jobs[0].gpu_hours == pytest.approx(4 * (10 + 2))  # 2 h of 4 GPUs lost
    # Without the window the job simply runs 0-10.
    assert jcts(simulate_trace(one_node(), jobs, "fifo")) == pytest.approx({"A": 10.0})


def test_maintenance_by_gpu_type_takes_free_gpus_first() -> None:
    # Two 4-GPU nodes; 4 GPUs of the type are away 0-10. They are taken where nothing runs, so two
    # 4-GPU jobs of 3 h share the other node: X 0-3, Y 3-6 (JCT 3 and 6). Without it both run at once.
    two = Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80}],
        "nodes": [{"name": f"n{i}", "gpu_type": "GPU", "gpu_count": 4} for i in range(2)],
    })
    jobs = [TraceJob(name="X", gpus=4, work=3.0), TraceJob(name="Y", gpus=4, work=3.0)]
    window = {"gpu_type": "GPU", "gpus": 4, "start": 0, "end": 10}
    r = simulate_trace(_with_maintenance(two, window), jobs, "fifo")
    assert jcts(r) == pytest.approx({"X": 3.0, "Y": 6.0})
    assert summarise(r)["maintenance_stops"] == 0
    assert jcts(simulate_trace(two, jobs, "fifo")) == pytest.approx({"X": 3.0, "Y": 3.0})
    # Later in the run the same window takes the idle GPUs, not the busy ones: X keeps running.
    late = {"gpu_type": "GPU", "gpus": 4, "start": 1, "end": 2}
    r = simulate_trace(_with_maintenance(two, late), jobs[:1], "fifo")
    assert jcts(r) == pytest.approx({"X": 3.0}) and r.jobs[0].drains == 0


def test_a_repair_inside_a_window_does_not_bring_the_gpu_back() -> None:
    from gpusched.simulations.outages import Outages
    from gpusched.simulations.state import ClusterState

    cluster = _with_maintenance(one_node(2), {"node": "n0", "gpus": 1, "start": 1, "end": 3})
    state = ClusterState(cluster)
    outages = Outages(state, cluster.maintenance)
    assert outages.fail((0, 0)) == [] and state.total_healthy == 1
    outages.begin(0)  # takes the healthy GPU 1 first; GPU 0 is already out
    assert state.total_healthy == 0 and outages.taken[0] == [(0, 1)]
    outages.repair((0, 0))
    assert state.total_healthy == 1  # GPU 0 repaired, GPU 1 still in maintenance
    outages.end(0)
    assert state.total_healthy == 2
    # A window over a failed GPU: its repair waits for the window's end, and the end for the repair.
    whole = _with_maintenance(one_node(1), {"node": "n0", "start": 1, "end": 3})
    state = ClusterState(whole)
    outages = Outages(state, whole.maintenance)
    outages.fail((0, 0))
    outages.begin(0)
    outages.repair((0, 0))
    assert state.total_healthy == 0
    outages.end(0)
    assert state.total_healthy == 1
