"""Metric definitions (docs/simulator.md is the reference): one place so every policy is judged alike.

- JCT = finish - release; queueing delay = first start - release (Helios' definition).
- makespan = last finish - first release.
- utilisation = busy GPU-hours / healthy GPU-hours over [first release, last finish], integrated
  exactly from the samples' step function; fragmentation = time-average of free GPUs that no pending
  job could use (see state.ClusterState.fragmented), over the time some job was pending.
- cost = sum over runs of GPUs x hours x the type's price_per_hour (overheads and lost work included).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from gpusched.simulations.engine import SimResult


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy on the hot path."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarise(result: SimResult) -> dict[str, Any]:
    """The summary numbers of one run, in hours (and dollars for cost)."""
    done = [j for j in result.jobs if j.finish is not None]
    jct = [j.finish - j.spec.release for j in done if j.finish is not None]
    queue = [j.first_start - j.spec.release for j in done if j.first_start is not None]
    with_deadline = [j for j in result.jobs if j.spec.deadline is not None and j.state != "rejected"]
    met = [j for j in with_deadline if j.finish is not None and j.finish <= j.spec.deadline + 1e-9]  # type: ignore[operator]
    first = min((j.spec.release for j in result.jobs), default=0.0)
    last = max((j.finish for j in done if j.finish is not None), default=first)
    busy_h, cap_h, frag_h, pend_h = _integrate(result, first, last)
    return {
        "policy": result.policy,
        "jobs": len(result.jobs),
        "completed": len(done),
        "rejected": len(result.rejected),
        "unfinished": len(result.jobs) - len(done) - len(result.rejected),
        "avg_jct_h": _mean(jct),
        "p50_jct_h": percentile(jct, 50),
        "p95_jct_h": percentile(jct, 95),
        "p99_jct_h": percentile(jct, 99),
        "avg_queue_h": _mean(queue),
        "p50_queue_h": percentile(queue, 50),
        "p95_queue_h": percentile(queue, 95),
        "p99_queue_h": percentile(queue, 99),
        "makespan_h": last - first,
        "utilisation": busy_h / cap_h if cap_h > 0 else math.nan,
        "avg_fragmented_gpus": frag_h / pend_h if pend_h > 0 else 0.0,
        "deadline_jobs": len(with_deadline),
        "deadline_attainment": len(met) / len(with_deadline) if with_deadline else math.nan,
        "preemptions": sum(j.preemptions for j in result.jobs),
        "failures": result.extra.get("failures", 0),
        "maintenance_stops": result.extra.get("maintenance_stops", 0),
        "gpu_hours": sum(j.gpu_hours for j in result.jobs),
        "lost_gpu_hours": sum(j.lost_work / max(j.run_speed, 1e-12) * j.spec.gpus for j in result.jobs),
        "total_cost": sum(j.cost for j in result.jobs),
        "events": result.events,
        "wall_s": result.wall_s,
        "events_per_s": result.events / result.wall_s if result.wall_s > 0 else math.nan,
        **{k: v for k, v in result.extra.items() if k not in ("preemptions", "failures", "maintenance_stops")},
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _integrate(result: SimResult, first: float, last: float) -> tuple[float, float, float, float]:
    busy = cap = frag = pend = 0.0
    samples = result.samples
    for a, b in itertools.pairwise(samples):
        lo, hi = max(a.time, first), min(b.time, last)
        if hi <= lo:
            continue
        dt = hi - lo
        busy += a.busy * dt
        cap += a.healthy * dt
        if a.pending:
            frag += a.fragmented * dt
            pend += dt
    return busy, cap, frag, pend


def job_rows(result: SimResult) -> list[dict[str, Any]]:
    """One row per job for the per-job CSV."""
    rows = []
    for j in result.jobs:
        rows.append({
            "policy": result.policy,
            "job": j.name,
            "gpus": j.spec.gpus,
            "gpu_milli": j.spec.gpu_milli,
            "release_h": j.spec.release,
            "work_h": j.spec.work,
            "state": j.state,
            "first_start_h": j.first_start,
            "finish_h": j.finish,
            "jct_h": None if j.finish is None else j.finish - j.spec.release,
            "queue_h": None if j.first_start is None else j.first_start - j.spec.release,
            "gpu_type": j.gpu_type,
            "starts": j.starts,
            "preemptions": j.preemptions,
            "failures": j.failures_hit,
            "maintenance_stops": j.drains,
            "gpu_hours": j.gpu_hours,
            "cost": j.cost,
            "deadline_h": j.spec.deadline,
            "deadline_met": None if j.spec.deadline is None or j.finish is None
            else j.finish <= j.spec.deadline + 1e-9,
        })
    return rows
