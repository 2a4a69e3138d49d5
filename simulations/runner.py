"""Replay one workload under several policies: what `gpusched simulate` runs, without the command line.

The CLI (simulations/cli.py) parses and checks options, then hands a `Replay` to `run`; the same
call serves notebooks, benchmarks and tests, so what they measure is what the command does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpusched.model import Cluster
from gpusched.simulations.engine import SimConfig, SimResult, Simulator
from gpusched.simulations.workload import TraceJob

Progress = Callable[[str, int, int], None]
"""progress(policy, jobs done, jobs in total), called as each policy's replay advances."""


@dataclass(frozen=True)
class PolicyOptions:
    """The policies' own knobs (make_policy's options); each policy reads the ones it has."""

    replan_minutes: float = 5.0
    """gpusched: re-plan at most this often (simulated minutes)."""
    plan_window: int = 64
    """gpusched: core window of queued jobs per plan."""
    plan_time_limit: float = 5.0
    """gpusched: planner seconds per call."""
    las_thresholds: tuple[float, ...] = (1.0, 16.0)
    """LAS queue thresholds, GPU-hours of attained service, increasing."""
    las_starvation: float | None = None
    """LAS starvation guard (hours waited before a job goes back to the top queue); None: off."""
    round_hours: float = 0.1
    """Gavel round length (hours)."""

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "replan_minutes": self.replan_minutes,
            "plan_window": self.plan_window,
            "plan_time_limit": self.plan_time_limit,
            "las_thresholds": list(self.las_thresholds),
            "las_starvation": self.las_starvation,
            "round_hours": self.round_hours,
        }


@dataclass(frozen=True)
class Replay:
    """One workload on one cluster, replayed once per policy with the same engine settings."""

    cluster: Cluster
    jobs: Sequence[TraceJob]
    policies: Sequence[str]
    config: SimConfig = field(default_factory=SimConfig)
    options: PolicyOptions = field(default_factory=PolicyOptions)


def run(replay: Replay, progress: Progress | None = None) -> list[SimResult]:
    """Each policy's result, in the order the policies were named."""
    from gpusched.simulations.policies import make_policy

    results = []
    for name in replay.policies:
        policy = make_policy(name, **replay.options.as_kwargs())

        def tick(done: int, total: int, name: str = name) -> None:
            if progress is not None:
                progress(name, done, total)

        results.append(Simulator(replay.cluster, replay.jobs, policy, replay.config, tick).run())
    return results


def planner_warnings(results: Sequence[SimResult]) -> list[str]:
    """One line per policy whose planner calls failed (the replay fell back to backfilling FIFO)."""
    lines = []
    for r in results:
        errors = int(r.extra.get("plan_errors", 0) or 0)
        if errors:
            last = " ".join(str(r.extra.get("last_plan_error", "")).split())[:200]
            lines.append(
                f"{r.policy}: {errors} of {r.extra.get('plans', '?')} planner calls failed and fell back "
                f"to backfilling FIFO; last error: {last}"
            )
    return lines


def write_report(
    results: list[SimResult], out: Path, replay: Replay, trace: str, fmt: str
) -> list[dict[str, Any]]:
    """summary.json/csv, jobs.csv, the plots and report.html into `out` (all or none); the summaries."""
    from gpusched.simulations.report import write_outputs

    meta = {
        "trace": trace,
        "format": fmt,
        "jobs": len(replay.jobs),
        "cluster_gpus": replay.cluster.total_gpus(),
        "policies": ", ".join(replay.policies),
        "seed": replay.config.seed,
        "config": replay.config.model_dump_json(),
    }
    return write_outputs(results, out, meta)
