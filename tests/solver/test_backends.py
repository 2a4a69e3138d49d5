"""The solver backends: statuses read exactly, bounds that are proven, and HiGHS working whatever
else in the process has used it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from gpusched.generate import make_cluster, make_jobs
from gpusched.solver import PlanOptions, backends
from gpusched.solver.instance import build_instance
from gpusched.solver.milp import solve_milp
from gpusched.solver.policies import make_policy


def test_highs_runs_after_another_highs_used_a_different_thread_count() -> None:
    """HiGHS < 1.17 sizes one process-wide thread pool on its first run and then refuses runs that
    ask for another count; the planner (threads option), PuLP's HiGHS and the column generation
    all create their own Highs, so each run must work whatever ran before it."""
    cluster = make_cluster(64, 2)
    jobs = make_jobs(20, cluster, horizon=6.0, seed=3)
    inst = build_instance(cluster, jobs, PlanOptions(policy="jct", horizon=6.0, slot=0.25))
    policy = make_policy("jct", inst)
    values = []
    for threads, relax in ((2, True), (1, True), (2, False), (1, False)):
        result = solve_milp(inst, policy, solver="highs", relax=relax, threads=threads)
        assert result.status == "optimal", (threads, relax, result.status)
        values.append(result.objective)
    assert values[0] == pytest.approx(values[1]) and values[2] == pytest.approx(values[3])
    assert values[0] <= values[2] + 1e-6


def _knapsack(n: int, seed: int) -> backends.LinearModel:
    """Six random knapsack rows over n binaries (maximise value: minimise its negative)."""
    rng = np.random.default_rng(seed)
    A = sparse.csc_matrix(rng.integers(1, 60, size=(6, n)).astype(float))
    return backends.LinearModel(
        c=-rng.integers(10, 100, size=n).astype(float) - rng.random(n),
        A=A,
        row_lo=np.full(6, -np.inf),
        row_hi=A.sum(axis=1).A1 / 3,
        col_lo=np.zeros(n),
        col_hi=np.ones(n),
        integer=np.ones(n, dtype=bool),
        offset=5.0,
    )


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_a_gap_stop_reports_the_solvers_bound_not_its_incumbent(solver: str) -> None:
    """Stopped at a 5 % gap, CBC says "Optimal (within gap tolerance)" and HiGHS says kOptimal;
    both had been read as proven optima with the incumbent as the bound, above the true optimum."""
    model = _knapsack(60, seed=0)
    exact = backends.solve(model, solver="highs", relax=False, time_limit=60, gap=0.0, threads=1)
    assert exact.status == "optimal" and exact.objective is not None
    stopped = backends.solve(model, solver=solver, relax=False, time_limit=60, gap=0.05, threads=1)
    assert stopped.objective is not None and stopped.bound is not None
    assert stopped.objective > exact.objective + 1e-6  # this instance stops above the optimum
    assert stopped.bound <= exact.objective + 1e-9
    assert stopped.bound < stopped.objective
    if solver == "cbc":
        assert stopped.status == "feasible"


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_an_infeasible_model_is_never_read_as_a_plan(solver: str) -> None:
    """CBC writes "Infeasible - objective value v": it was read as a feasible solution."""
    model = backends.LinearModel(
        c=np.array([1.0, 1.0]),
        A=sparse.csc_matrix(np.array([[1.0, 1.0], [1.0, -1.0]])),
        row_lo=np.array([3.0, 0.0]),
        row_hi=np.array([np.inf, 0.0]),
        col_lo=np.zeros(2),
        col_hi=np.ones(2),
        integer=np.ones(2, dtype=bool),
    )
    result = backends.solve(model, solver=solver, relax=False, time_limit=10, gap=0.0, threads=1)
    assert result.status == "infeasible" and result.x is None and result.bound is None


def test_cbc_proven_optimum_is_its_own_bound() -> None:
    model = _knapsack(20, seed=1)
    result = backends.solve(model, solver="cbc", relax=False, time_limit=60, gap=0.0, threads=1)
    exact = backends.solve(model, solver="highs", relax=False, time_limit=60, gap=0.0, threads=1)
    assert result.status == "optimal" and result.bound == result.objective
    assert result.objective == pytest.approx(exact.objective)
