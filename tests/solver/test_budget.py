"""The time limit as a budget (issue #10 item 4): stages are sized from what this run measured,
not from quiet-machine rates, and a solver still running at the deadline is killed.

Time here is a model: a clock the test moves by hand, or budget.ScaledClock (a machine `factor`
times slower). No test asserts wall time.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from gpusched.generate import make_cluster, make_jobs
from gpusched.solver import PlanOptions, backends, plan
from gpusched.solver.budget import REFERENCE_SECONDS, Budget, ScaledClock
from gpusched.solver.progress import Progress
from gpusched.verify import check_plan


class ManualClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_slow_first_stage_shrinks_the_estimate_of_every_unmeasured_stage() -> None:
    clock = ManualClock()
    budget = Budget(10.0, clock)
    columns = 50_000
    quiet = budget.estimate("lp_column", columns)
    assert quiet == pytest.approx(columns * REFERENCE_SECONDS["lp_column"])
    assert budget.fits("lp_column", columns, 0.7)
    # One list schedule of 1,000 units took 4x its reference: the machine is 4x slower today.
    with budget.stage("portfolio-fifo", "list", 1000):
        clock.t += 4 * 1000 * REFERENCE_SECONDS["list"]
    assert budget.slowdown() == pytest.approx(4.0)
    assert budget.estimate("lp_column", columns) == pytest.approx(4 * quiet)
    assert not budget.fits("lp_column", columns, 0.7)
    # Once a kind is measured itself, its own rate replaces the scaled reference.
    with budget.stage("lp", "lp_column", columns):
        clock.t += 0.5
    assert budget.seconds_per("lp_column") == pytest.approx(0.5 / columns)


def test_the_reserve_is_kept_from_the_search_and_solver_limits_leave_room_for_the_process() -> None:
    clock = ManualClock()
    budget = Budget(10.0, clock)
    budget.reserve(2.0)
    clock.t += 3.0
    assert budget.left() == pytest.approx(5.0)
    assert budget.total_left() == pytest.approx(7.0)
    limit = budget.solver_limit(10_000)
    assert 0 < limit < budget.left()
    # The solver ran 1.5 s past its limit: that overhead is measured and charged next time.
    budget.note_solver(10_000, limit, limit + 1.5)
    assert budget.solver_limit(10_000) <= budget.left() - 1.5 + 1e-9
    clock.t += 4.9
    assert budget.solver_limit(10_000) == 0.0  # no time: do not start a solver at all


def test_scaled_clock_hands_solvers_real_seconds() -> None:
    budget = Budget(100.0, ScaledClock(25.0))
    assert budget.solver_seconds(50.0) == pytest.approx(2.0)


def test_a_solver_still_running_at_the_hard_limit_is_killed() -> None:
    """The caller's deadline, not the solver's own clock, ends a run (a real process stands in for
    a CBC that does not look at its clock)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = backends._run_bounded(
            ["sleep", "30"], os.path.join(tmp, "log"), time_limit=60.0, hard_limit=0.3
        )
    assert code == -9


def _instance(n_jobs: int = 60) -> tuple[object, list[object]]:
    cluster = make_cluster(64, 2)
    return cluster, make_jobs(n_jobs, cluster, horizon=6.0, seed=11)


def test_on_a_much_slower_machine_the_stages_that_cannot_fit_are_skipped_and_the_plan_is_valid() -> None:
    """On a clock 2,000 times slower the list schedule alone uses the limit: the LP and the MILP
    are skipped (and said so), the best list schedule is returned, with a proven bound."""
    cluster, jobs = _instance()
    options = PlanOptions(policy="jct", horizon=6.0, slot=0.25, time_limit=30)
    result = plan(cluster, jobs, options, clock=ScaledClock(2000.0))  # type: ignore[arg-type]
    assert check_plan(cluster, jobs, result) == []  # type: ignore[arg-type]
    skipped = [n for n in result.notes if n.startswith("time limit: stages shortened or skipped")]
    assert skipped and ("lp" in skipped[0] or "milp" in skipped[0])
    assert result.found_by and "milp" not in result.found_by and "lp-" not in result.found_by
    assert result.lower_bound <= result.objective + 1e-9


def test_on_a_quiet_clock_with_time_to_spare_nothing_is_skipped() -> None:
    cluster, jobs = _instance()
    options = PlanOptions(policy="jct", horizon=6.0, slot=0.25, time_limit=60)
    result = plan(cluster, jobs, options)  # type: ignore[arg-type]
    assert check_plan(cluster, jobs, result) == []  # type: ignore[arg-type]
    assert not [n for n in result.notes if n.startswith("time limit:")]


def test_progress_reports_every_stage_with_a_bound_that_only_rises() -> None:
    cluster, jobs = _instance()
    seen: list[Progress] = []
    options = PlanOptions(policy="cost", horizon=6.0, slot=0.25, time_limit=60)
    result = plan(cluster, jobs, options, progress=seen.append)  # type: ignore[arg-type]
    assert seen[0].stage == "greedy" and seen[-1].stage == "done"
    assert seen[-1].incumbent == pytest.approx(result.objective)
    bounds = [p.bound for p in seen[:-1] if p.bound is not None]
    assert bounds and bounds == sorted(bounds)
    incumbents = [p.incumbent for p in seen[:-1]]
    assert incumbents == sorted(incumbents, reverse=True)
    for p in seen:
        if p.bound is not None and p.incumbent is not None:
            assert p.gap is not None and p.gap >= 0
