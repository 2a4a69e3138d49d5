"""The solver backends keep working whatever else in the process has used HiGHS."""

from __future__ import annotations

import pytest

from gpusched.generate import make_cluster, make_jobs
from gpusched.solver import PlanOptions
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
