"""Column generation must reach exactly the slot LP that the full model relaxes to.

The full relaxation (every start written out, solved in one go) is the reference: the column
generation's value must equal it, its Lagrangian bound must never exceed it, even when stopped
after one round, and its fractional solution must be a solution of the full LP (capacity and one
start per job). Small instances make the full LP cheap; the generated one is big enough for
pricing to matter.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solver_helpers import instances

from gpusched.generate import make_cluster, make_jobs
from gpusched.model import Cluster, Job
from gpusched.solver import PlanOptions
from gpusched.solver.colgen import solve_colgen
from gpusched.solver.instance import Instance, build_instance
from gpusched.solver.milp import solve_milp
from gpusched.solver.policies import POLICY_CLASSES, Policy, make_policy

SOLVERS = ["cbc", "highs"]


def _generated(policy: str, n_jobs: int = 80) -> tuple[Instance, Policy]:
    cluster = make_cluster(64, 2)
    jobs = make_jobs(n_jobs, cluster, horizon=6.0, seed=3)
    inst = build_instance(cluster, jobs, PlanOptions(policy=policy, horizon=6.0, slot=0.25))  # type: ignore[arg-type]
    return inst, make_policy(policy, inst)


def _full_lp(inst: Instance, policy: Policy, forbid: frozenset[int] = frozenset()) -> float:
    result = solve_milp(inst, policy, solver="highs", relax=True, forbid_now=forbid)
    assert result.objective is not None
    return result.objective


def _assert_lp_solution(inst: Instance, fractional: list[tuple[int, object, int, float]]) -> None:
    used = np.zeros((len(inst.types), inst.n_slots))
    per_job: dict[int, float] = {}
    for j, opt, s, v in fractional:
        info = inst.jobs[j]
        assert 0 < v <= 1 + 1e-7
        assert s in inst.start_range(info, opt)  # type: ignore[arg-type]
        used[opt.type_index, s : min(s + opt.slots, inst.n_slots)] += v * info.gpus  # type: ignore[attr-defined]
        per_job[j] = per_job.get(j, 0.0) + v
    assert np.all(used <= np.asarray(inst.capacity, dtype=float) + 1e-6)
    assert all(total <= 1 + 1e-6 for total in per_job.values())
    for info in inst.jobs:
        if info.fixed:
            assert per_job.get(info.index, 0.0) == pytest.approx(1.0)


def test_vectorised_coefficients_equal_the_scalar_ones() -> None:
    """Pricing reads `coefficients`; the MILP and `evaluate` read `coefficient`: they must agree."""
    for name in POLICY_CLASSES:
        inst, policy = _generated(name, n_jobs=40)
        for info in inst.jobs:
            for opt in inst.all_options(info):
                starts = np.arange(inst.start_range(info, opt).start, inst.n_slots + 2)
                expected = [policy.coefficient(info, opt, int(s)) for s in starts]
                assert policy.coefficients(info, opt, starts) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("policy_name", sorted(POLICY_CLASSES))
def test_converges_to_the_full_slot_lp(solver: str, policy_name: str) -> None:
    inst, policy = _generated(policy_name)
    reference = _full_lp(inst, policy)
    result = solve_colgen(inst, policy, solver=solver, time_limit=60)
    assert result.converged
    assert result.objective == pytest.approx(reference, rel=1e-6)
    assert result.bound == pytest.approx(reference, rel=1e-6)
    # Far fewer columns than the full model: that is the point.
    full = sum(len(inst.start_range(i, o)) for i in inst.jobs for o in inst.all_options(i))
    assert result.columns < full
    _assert_lp_solution(inst, result.fractional)


@pytest.mark.parametrize("rounds", [0, 1, 2])
def test_a_stopped_search_still_gives_a_valid_bound(rounds: int) -> None:
    """Whatever the master has seen, its Lagrangian bound is below the LP optimum."""
    inst, policy = _generated("jct", n_jobs=120)
    reference = _full_lp(inst, policy)
    result = solve_colgen(
        inst, policy, solver="highs", time_limit=60, max_rounds=rounds, warmup_rounds=rounds * 5
    )
    if rounds == 0:
        assert result.objective is None and result.fractional == []
        return
    assert result.bound is not None and result.bound <= reference + 1e-6 * abs(reference)
    assert result.objective is not None and result.objective >= reference - 1e-6 * abs(reference)
    _assert_lp_solution(inst, result.fractional)


def test_seeds_open_the_master_no_worse_than_the_seed_schedule() -> None:
    from gpusched.solver.greedy import portfolio

    inst, policy = _generated("jct", n_jobs=120)
    schedule, _, _ = portfolio(inst, policy)
    seeds = [(j, c.option, c.start) for j, c in schedule.items()]
    result = solve_colgen(
        inst, policy, solver="highs", time_limit=60, seeds=seeds, max_rounds=1, warmup_rounds=0
    )
    assert result.objective is not None and result.objective <= policy.evaluate(schedule) + 1e-6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from(sorted(POLICY_CLASSES)), st.sampled_from(SOLVERS), st.data())
def test_equals_the_full_lp_on_any_instance(
    instance: tuple[Cluster, list[Job]], policy_name: str, solver: str, data: st.DataObject
) -> None:
    """Running jobs (kept or moved), jobs barred from starting now, unplannable jobs: same LP."""
    cluster, jobs = instance
    options = PlanOptions(policy=policy_name, horizon=6.0, slot=0.5)  # type: ignore[arg-type]
    inst = build_instance(cluster, jobs, options)
    policy = make_policy(policy_name, inst)
    movable = [i.index for i in inst.jobs if i.plannable and not i.fixed]
    forbid = frozenset(data.draw(st.lists(st.sampled_from(movable), max_size=2)) if movable else [])
    result = solve_colgen(inst, policy, solver=solver, time_limit=60, forbid_now=forbid)
    if not any(i.plannable for i in inst.jobs):
        assert result.objective is None
        return
    reference = solve_milp(inst, policy, solver="highs", relax=True, forbid_now=forbid)
    assert reference.objective is not None
    assert result.converged
    assert result.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6)
    _assert_lp_solution(inst, result.fractional)
    assert not any(s == 0 and j in forbid for j, _, s, _ in result.fractional)


def test_the_planner_bounds_a_large_model_by_the_exact_slot_lp() -> None:
    """Past the column threshold plan() takes its bound from column generation: the full slot LP's
    value, not the looser bucket LP's, and its plan passes the independent checker."""
    from gpusched.solver import plan
    from gpusched.solver.api import COLGEN_MIN_COLUMNS
    from gpusched.verify import check_plan

    cluster = make_cluster(256, 2)
    jobs = make_jobs(300, cluster, horizon=12.0, seed=5)
    options = PlanOptions(policy="jct", horizon=12.0, slot=0.25, time_limit=8)
    inst = build_instance(cluster, jobs, options)
    assert (
        sum(len(inst.start_range(i, o)) for i in inst.jobs for o in inst.all_options(i)) >= COLGEN_MIN_COLUMNS
    )
    reference = _full_lp(inst, make_policy("jct", inst))
    result = plan(cluster, jobs, options)
    assert check_plan(cluster, jobs, result) == []
    assert result.lower_bound >= reference * (1 - 1e-6)
    assert result.lower_bound <= result.objective + 1e-6
    assert not any("bucket" in note for note in result.notes)


def test_without_a_master_the_jobs_own_choices_at_the_best_prices_are_returned() -> None:
    """The fallback when the master gets no time: one start per job, each a real slot column, with
    the warm-up's Lagrangian bound below the LP optimum."""
    inst, policy = _generated("jct", n_jobs=120)
    reference = _full_lp(inst, policy)
    result = solve_colgen(inst, policy, solver="highs", time_limit=60, max_rounds=0, warmup_rounds=30)
    assert result.objective is None and result.fractional == []
    assert result.bound is not None and result.bound <= reference + 1e-6 * abs(reference)
    jobs = [j for j, _, _, _ in result.lagrangian]
    assert len(jobs) == len(set(jobs)) > 0
    for j, opt, s, v in result.lagrangian:
        assert v == 1.0 and s in inst.start_range(inst.jobs[j], opt)
