"""Conservation laws on random traces, every baseline policy, with and without failures."""

from __future__ import annotations

import pytest

from gpusched.model import Cluster
from gpusched.simulations import SimConfig, simulate_trace
from gpusched.simulations.traces import SyntheticSpec, synthetic_jobs

CLUSTER = Cluster.model_validate({
    "gpu_types": [{"name": "GPU", "memory_gib": 80, "price_per_hour": 2.0}],
    "nodes": [{"name": f"n{i}", "gpu_type": "GPU", "gpu_count": 8} for i in range(4)],
})
HETERO = Cluster.model_validate({
    "gpu_types": [{"name": "fast", "memory_gib": 80, "speed": 2.0}, {"name": "slow", "memory_gib": 40}],
    "nodes": [{"name": "f0", "gpu_type": "fast", "gpu_count": 8}, {"name": "s0", "gpu_type": "slow", "gpu_count": 8},
              {"name": "s1", "gpu_type": "slow", "gpu_count": 4}],
})


def jobs(seed: int, n: int = 150, **kw: object) -> list:  # type: ignore[type-arg]
    return synthetic_jobs(SyntheticSpec(jobs=n, load=1.5, max_gpus=16, seed=seed, max_duration_h=20, **kw), 32)


@pytest.mark.parametrize("policy", ["fifo", "fifo-backfill", "sjf", "las", "gavel"])
@pytest.mark.parametrize("mtbf", [None, 300.0])
def test_every_job_completes_once_and_gpu_time_is_conserved(policy: str, mtbf: float | None) -> None:
    trace = jobs(seed=7, restart_overhead_s=120)
    cfg = SimConfig(seed=3, mtbf_hours=mtbf, mttr_hours=1.0, checkpoint_on_preempt=policy != "sjf")
    r = simulate_trace(CLUSTER, trace, policy, cfg, round_hours=0.25)
    assert [j.state for j in r.jobs] == ["finished"] * len(trace)
    assert sorted(j.name for j in r.jobs) == sorted(j.name for j in trace)
    for j in r.jobs:
        assert j.done == pytest.approx(j.spec.work)
        assert j.finish is not None and j.first_start is not None
        assert j.spec.release <= j.first_start <= j.finish
        # GPU time held = gang x (work / speed + restart overheads + work lost to preemptions/failures)
        expected = j.spec.gpus * (j.spec.work + j.lost_work) + j.overhead_hours
        assert j.gpu_hours == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert j.cost == pytest.approx(2.0 * j.gpu_hours)
    if mtbf is not None:
        assert r.extra["failures"] > 0
        assert sum(j.failures_hit for j in r.jobs) > 0


def test_capacity_never_exceeded_and_state_returns_to_idle() -> None:
    r = simulate_trace(CLUSTER, jobs(seed=11), "las", SimConfig(mtbf_hours=200.0, seed=1))
    assert all(s.busy <= s.healthy + 1e-9 or s.healthy < 32 for s in r.samples)
    assert max(s.busy for s in r.samples) <= 32
    assert r.samples[-1].busy == pytest.approx(0.0)


@pytest.mark.parametrize("policy", ["fifo", "las", "gavel"])
def test_heterogeneous_speeds(policy: str) -> None:
    trace = jobs(seed=5, n=80)
    r = simulate_trace(HETERO, trace, policy)
    # 16-GPU gangs fit on neither type (8 fast, 12 slow GPUs): rejected at arrival, all others finish.
    assert all(j.state == ("rejected" if j.spec.gpus > 12 else "finished") for j in r.jobs)
    for j in r.jobs:
        if j.state == "rejected":
            continue
        # at least the work at the fastest speed, at most at the slowest (+ lost work, none here)
        assert j.gpu_hours >= j.spec.gpus * j.spec.work / 2.0 - 1e-9
        assert j.gpu_hours <= j.spec.gpus * (j.spec.work + j.lost_work) + j.overhead_hours + 1e-9


def test_runs_are_deterministic() -> None:
    trace = jobs(seed=2)
    a = simulate_trace(CLUSTER, trace, "las", SimConfig(mtbf_hours=300.0, seed=9))
    b = simulate_trace(CLUSTER, jobs(seed=2), "las", SimConfig(mtbf_hours=300.0, seed=9))
    assert [(j.finish, j.preemptions) for j in a.jobs] == [(j.finish, j.preemptions) for j in b.jobs]


@pytest.mark.parametrize("policy", ["fifo-backfill", "las", "gavel", "gpusched"])
def test_conservation_with_maintenance_windows_and_failures(policy: str) -> None:
    """Node and type windows over a failing cluster: every job still finishes once, GPU time adds up."""
    cluster = Cluster.model_validate({
        **CLUSTER.model_dump(),
        "maintenance": [
            {"node": "n1", "start": 5, "end": 30},
            {"gpu_type": "GPU", "gpus": 12, "start": 20, "end": 26},
            {"node": "n3", "gpus": 3, "start": 0, "end": 200},
        ],
    })
    trace = jobs(seed=4, n=60 if policy == "gpusched" else 150, restart_overhead_s=60)
    cfg = SimConfig(seed=5, mtbf_hours=400.0, mttr_hours=1.0)
    options = {"time_limit": 2.0} if policy == "gpusched" else {}
    r = simulate_trace(cluster, trace, policy, cfg, **options)
    assert [j.state for j in r.jobs] == ["finished"] * len(trace)
    # The baselines place blind and get stopped by the windows; the planner sees them coming.
    assert r.extra["maintenance_stops"] > 0 or policy == "gpusched"
    for j in r.jobs:
        assert j.done == pytest.approx(j.spec.work)
        expected = j.spec.gpus * (j.spec.work + j.lost_work) + j.overhead_hours
        assert j.gpu_hours == pytest.approx(expected, rel=1e-6, abs=1e-9)
    # Never more GPUs busy than are in service. In 20-26 the type window takes 12 GPUs beside n1's 8
    # and n3's 3 (it takes GPUs the other windows do not hold while there are any): at most 9 left.
    during = [s for s in r.samples if 20 <= s.time < 26]
    assert during and all(s.healthy <= 32 - 8 - 3 - 12 for s in during)
    for s in r.samples:
        assert s.busy <= s.healthy + 1e-9
    assert r.samples[-1].busy == pytest.approx(0.0)
