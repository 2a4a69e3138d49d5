"""The sizing loop as a library call (simulations/sizing.py): what `gpusched capacity` prints and writes."""

from __future__ import annotations

import pytest

from gpusched.model import GpuType
from gpusched.simulations import capacity as cap
from gpusched.simulations import sizing
from gpusched.simulations.workload import TraceJob

TYPES = [
    GpuType(name="A100", memory_gib=80, price_per_hour=3.0, speed=1.6),
    GpuType(name="V100", memory_gib=32, price_per_hour=1.5, speed=1.0),
]


def _jobs(n: int = 40, gpu_types: tuple[str, ...] | None = None) -> list[TraceJob]:
    """n jobs of 1-4 GPUs and 1-2 hours, one every 20 minutes."""
    return [
        TraceJob(f"j{i}", gpus=1 + i % 4, work=1.0 + (i % 2), release=i / 3, gpu_types=gpu_types)
        for i in range(n)
    ]


def test_recommends_the_cheapest_candidate_that_meets_the_slo() -> None:
    request = sizing.SizingRequest(
        jobs=_jobs(), types=TYPES, slo=cap.parse_slo("p95_queue<=1h"), what_ifs=["+8 A100", "demand +30%"]
    )
    stages: list[str] = []
    result = sizing.run(request, lambda stage, done, total: stages.append(stage))
    assert result.best is not None and result.best.metrics["meets"]
    assert result.best.metrics["value"] <= 1.0
    meeting = [c for c in result.candidates if c.metrics["meets"]]
    assert result.best.metrics["bill"] == min(c.metrics["bill"] for c in meeting)
    assert "validating candidates by simulation" in stages
    report = result.report()
    assert report["recommendation"]["label"] == result.best.label
    assert len(report["candidates"]) == len(result.candidates) == len(result.frontier_points())
    added, denser = result.what_ifs
    assert added["what_if"] == "+8 A100" and denser["what_if"] == "demand +30%"
    # 8 more A100 at the reserved price on top of the simulated bill; never a cheaper cluster
    assert added["bill"] > result.best.metrics["bill"] * 0.99
    assert added["value"] <= result.best.metrics["value"] + 1e-9


def test_jobs_on_no_candidate_type_are_a_workload_error() -> None:
    request = sizing.SizingRequest(jobs=_jobs(8, ("H100",)), types=TYPES, slo=cap.parse_slo("p95_queue<=1h"))
    with pytest.raises(sizing.SizingError, match="may only run on H100") as caught:
        sizing.run(request)
    assert caught.value.field == "workload"


def test_a_what_if_on_a_node_the_recommendation_lacks_is_reported_not_applied() -> None:
    """The recommendation names its nodes only after the sizing: a node it lacks is reported as not
    applied beside the applied what-ifs, and the sizing (its report and files) is kept."""
    request = sizing.SizingRequest(
        jobs=_jobs(12),
        types=TYPES,
        slo=cap.parse_slo("p95_queue<=2h"),
        what_ifs=["lose node nope-0", "demand +10%"],
    )
    result = sizing.run(request)
    assert result.best is not None
    missing, applied = result.what_ifs
    assert missing["what_if"] == "lose node nope-0" and "nope-0" in missing["not_applied"]
    assert "not_applied" not in applied and applied["value"] >= 0


def _request(**kw: object) -> sizing.SizingRequest:
    """A sweep with a miss, refinement between its points and what-ifs (the workload of
    test_cli's refinement test): every stage that simulates in batches is exercised."""
    from gpusched.simulations.inputs import detect_format
    from gpusched.simulations.traces import load_trace

    spec = "jobs=300,rate_per_hour=20,seed=3"
    jobs = load_trace(detect_format(spec, "--workload"), spec, None, limit=None, seed=0, option="--workload")
    return sizing.SizingRequest(
        jobs=jobs,
        types=[
            GpuType(name="H100", memory_gib=80, price_per_hour=4.0, speed=2.0),
            GpuType(name="A100", memory_gib=80, price_per_hour=2.0, speed=1.0),
        ],
        slo=cap.parse_slo("p95_queue<=30m"),
        what_ifs=["+8 H100", "demand +30%", "lose node nope-0"],
        **kw,  # type: ignore[arg-type]
    )


def test_parallel_sizing_equals_serial() -> None:
    """Candidates simulated side by side in worker processes give exactly the serial result: the
    same candidates in the same order, the same metrics, the same recommendation and what-ifs."""
    serial = sizing.run(_request(workers=1)).report()
    parallel = sizing.run(_request(workers=3)).report()
    assert len(serial["candidates"]) >= 3
    assert any(c["label"] == "refined" for c in serial["candidates"])
    assert parallel == serial


def test_a_backend_that_is_not_installed_is_a_one_line_error() -> None:
    from gpusched.simulations import parallel

    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(parallel.RunnerError, match=r"^--backend: ray is not installed \(expected"):
            sizing.run(_request(backend="ray"))
    else:
        print("ray is installed here: its missing-package error is not reachable")
    with pytest.raises(parallel.RunnerError, match="--backend: unknown backend 'spark'"):
        sizing.run(_request(backend="spark"))
    with pytest.raises(parallel.RunnerError, match="--cluster-address: missing"):
        sizing.run(_request(backend="dask"))


def test_sizing_on_a_real_local_dask_cluster_equals_serial() -> None:
    """The Dask backend on a real local cluster (two worker processes) gives the serial result."""
    distributed = pytest.importorskip(
        "distributed", reason="the 'distributed' package (gpusched[dask] extra) is not installed here"
    )
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc:
        got = sizing.run(_request(backend="dask", address=lc.scheduler_address)).report()
    assert got == sizing.run(_request(workers=1)).report()
