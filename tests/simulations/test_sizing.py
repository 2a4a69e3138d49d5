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
