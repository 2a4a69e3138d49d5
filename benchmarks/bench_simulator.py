"""Simulator speed on the real Philly trace (issue #6, part 6) and Gavel's setup (issue #14 item 4).

Run: pytest benchmarks/bench_simulator.py -s [--benchmark-disable]
Targets: full Philly (82,247 jobs) on 2,816 GPUs with FIFO and with LAS in <= 60 s each on two
cores; the gpusched planner policy (re-planning at most once per 5 simulated minutes) in <= 5 min
for the full trace -- measured here on a prefix of the trace (GPUSCHED_BENCH_PLANNER_JOBS, default
300 jobs; 82247 measures the whole trace) and extrapolated two ways, which the printout says
plainly: linearly in jobs, and by the full trace's predicted number of planner calls times the
measured time per call. The planner on Gavel's continuous-arrival setup (3.0 jobs/h, seed 0,
36:36:36) in <= 60 s for the 3,000-job sequence: GPUSCHED_BENCH_GAVEL_JOBS (default 800, window
jobs 300-499; 3000 runs the reference sequence, window 1000-1499), its target scaled by jobs.
The whole-trace runs can outlast pytest-timeout's 600 s on a loaded machine: add --timeout 0.
Each run prints events/s and its time as a ratio to the target and to the trace load time measured
in the same run (the baseline: parsing and validating the CSV).
Skipped with a printed reason when ../shared/traces is absent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from gpusched.simulations.engine import Simulator
from gpusched.simulations.metrics import summarise
from gpusched.simulations.policies import make_policy
from gpusched.simulations.policies.planner import estimate_plan_calls
from gpusched.simulations.traces import load_philly
from gpusched.simulations.validate import helios_cluster

ROOT = Path(__file__).resolve().parents[1]
PHILLY = ROOT / ".." / "shared" / "traces" / "philly" / "philly.csv"
FULL_JOBS = 82_247


@pytest.fixture(scope="module")
def philly() -> tuple[list[Any], float]:
    if not PHILLY.exists():
        reason = f"Philly trace not found at {PHILLY.resolve()} (it lives in ../shared/traces)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    started = time.perf_counter()
    jobs = load_philly(PHILLY)
    return jobs, time.perf_counter() - started


def _report(
    name: str, summary: dict[str, Any], wall: float, target: float, load_s: float, note: str = ""
) -> None:
    print(
        f"\n{name}: {summary['jobs']} jobs, {summary['events']} events in {wall:.1f} s "
        f"({summary['events'] / wall:,.0f} events/s); {wall / target:.2f} x the {target:.0f} s target; "
        f"{wall / load_s:.1f} x the trace load time ({load_s:.1f} s) {note}"
    )


@pytest.mark.parametrize("policy", ["fifo", "las"])
def test_full_philly_baseline(benchmark: Any, philly: tuple[list[Any], float], policy: str) -> None:
    jobs, load_s = philly
    cluster = helios_cluster()
    results: list[Any] = []

    def run() -> None:
        results.append(Simulator(cluster, jobs, make_policy(policy)).run())

    benchmark.pedantic(run, rounds=1, iterations=1)
    result = results[-1]
    summary = summarise(result)
    assert summary["completed"] == FULL_JOBS
    benchmark.extra_info.update(
        events=result.events, events_per_s=result.events / result.wall_s, target_ratio=result.wall_s / 60.0
    )
    _report(f"philly/{policy}", summary, result.wall_s, 60.0, load_s)


def test_planner_on_philly_prefix(benchmark: Any, philly: tuple[list[Any], float]) -> None:
    jobs, load_s = philly
    n = int(os.environ.get("GPUSCHED_BENCH_PLANNER_JOBS", "300"))
    subset = jobs[:n]
    cluster = helios_cluster()
    results: list[Any] = []

    def run() -> None:
        results.append(Simulator(cluster, subset, make_policy("gpusched", replan_minutes=5.0)).run())

    benchmark.pedantic(run, rounds=1, iterations=1)
    result = results[-1]
    summary = summarise(result)
    assert summary["completed"] == len(subset)
    extrapolated = result.wall_s * FULL_JOBS / len(subset)
    # A better estimate: the planner dominates, and its call count over the whole trace follows from
    # the arrival times and the 5-minute rate limit (estimate_plan_calls); the rest scales with jobs.
    calls_full = estimate_plan_calls([j.release for j in jobs])
    calls_here = max(1, int(summary.get("plans", 0)))
    per_call = float(summary.get("plan_seconds", 0.0)) / calls_here
    by_calls = (
        calls_full * per_call + (result.wall_s - float(summary.get("plan_seconds", 0.0))) * FULL_JOBS / n
    )
    benchmark.extra_info.update(
        plans=summary.get("plans"),
        plan_seconds=summary.get("plan_seconds"),
        contended_plans=summary.get("contended_plans"),
        extrapolated_full_s=extrapolated,
        estimated_full_s_by_calls=by_calls,
    )
    _report(
        f"philly[:{n}]/gpusched",
        summary,
        result.wall_s,
        300.0 * len(subset) / FULL_JOBS,
        load_s,
        note=(
            f"\n  {calls_here} planner calls ({estimate_plan_calls([j.release for j in subset])} predicted, "
            f"{summary.get('contended_plans', 0)} contended, {summary.get('preemption_candidates', 0)} "
            f"preemption candidates passed, {summary.get('preemptions', 0)} preemptions), "
            f"{summary.get('at_once_plans', 0)} decided at once by the front-end, "
            f"{summary.get('plan_seconds', 0):.1f} s deciding ({per_call * 1000:.1f} ms/call).\n"
            + (
                f"  Full trace MEASURED: {result.wall_s / 60:.1f} min (target 5 min).\n"
                if n >= FULL_JOBS
                else ""
            )
            + f"  Extrapolated to all {FULL_JOBS} jobs (NOT measured; target 5 min): linear in jobs "
            f"{extrapolated / 60:.1f} min; by predicted planner calls ({calls_full}) x ms/call "
            f"{by_calls / 60:.1f} min."
        ),
    )


def test_planner_on_gavel(benchmark: Any) -> None:
    """The planner on Gavel's setup; the window's average JCT is printed beside the per-job lower
    bound, so a speed-up that costs decisions shows in the same printout."""
    from gpusched.simulations import gavel_trace
    from gpusched.simulations.engine import SimConfig

    matrix = ROOT / ".." / "shared" / "traces" / "gavel" / "simulation_throughputs.json"
    if not matrix.exists():
        reason = f"Gavel's throughputs not found at {matrix.resolve()} (they live in ../shared/traces)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    n = int(os.environ.get("GPUSCHED_BENCH_GAVEL_JOBS", "800"))
    lo, hi = (1000, 1500) if n >= 3000 else (300 * n // 800, 500 * n // 800)
    throughputs = gavel_trace.load_throughputs(matrix)
    started = time.perf_counter()
    generated = gavel_trace.generate(throughputs, n, 3.0, 0)
    trace = gavel_trace.to_trace_jobs(generated, throughputs)
    load_s = time.perf_counter() - started
    bound = gavel_trace.lower_bound_hours(generated[lo:hi], throughputs)
    results: list[Any] = []

    def run() -> None:
        cluster = gavel_trace.gavel_cluster(36, 36, 36)
        results.append(Simulator(cluster, trace, make_policy("gpusched"), SimConfig(seed=0)).run())

    benchmark.pedantic(run, rounds=1, iterations=1)
    result = results[-1]
    summary = summarise(result)
    by_name = {j.spec.name: j for j in result.jobs}
    window = [by_name[f"job-{i}"] for i in range(lo, hi)]
    assert all(j.finish is not None for j in window)
    avg = sum(j.finish - j.spec.release for j in window) / len(window)
    plans = max(1, int(summary.get("plans", 0)))
    benchmark.extra_info.update(
        plans=plans, at_once=summary.get("at_once_plans"), plan_seconds=summary.get("plan_seconds"),
        window_avg_jct_h=avg, lower_bound_h=sum(bound) / len(bound),
    )  # fmt: skip
    _report(
        f"gavel[{n} jobs, 3.0/h]/gpusched",
        summary,
        result.wall_s,
        60.0 * n / 3000,
        max(load_s, 1e-3),
        note=(
            f"\n  {plans} rounds ({summary.get('at_once_plans', 0)} decided at once by the front-end, "
            f"{plans - int(summary.get('at_once_plans', 0))} by plan()), "
            f"{summary.get('plan_seconds', 0):.1f} s deciding; avg JCT of jobs {lo}-{hi - 1}: {avg:.3f} h "
            f"(lower bound {sum(bound) / len(bound):.3f} h)"
        ),
    )
