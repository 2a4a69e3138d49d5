"""The Lagrangian bound (colgen.lagrangian): never above the exact optimum, whatever its steps.

The planner proves this bound on every model past COLGEN_MIN_COLUMNS starts, where no exact answer
is at hand; so it is checked here where one is: on the small generated shapes of the oracle, each
policy, against the slot model solved to optimality (HiGHS, gap 0), with Polyak's step aimed at
that optimum itself (the most aggressive steps the planner could take) and at a loose incumbent.
And the whole planner, sent through the Lagrangian stage on those shapes, against the independent
oracle (checker and monolithic node-level MILP)."""

from __future__ import annotations

import pytest
from oracle_compare import compare_plan
from shapes import SHAPES, generate

from gpusched.solver import PlanOptions, api, plan
from gpusched.solver.bounds import trivial_bound
from gpusched.solver.colgen import lagrangian, prepare
from gpusched.solver.greedy import fifo_baseline
from gpusched.solver.instance import build_instance
from gpusched.solver.milp import solve_milp
from gpusched.solver.policies import MakespanPolicy, make_policy

POLICIES = ("cost", "jct", "makespan", "deadline", "fair")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_lagrangian_bound_never_above_the_slot_optimum(shape: str, policy: str) -> None:
    for seed in range(3):
        gen = generate(shape, seed)
        options = PlanOptions(policy=policy, horizon=gen.horizon, slot=gen.slot)  # type: ignore[arg-type]
        inst = build_instance(gen.cluster, gen.jobs, options)
        pol = make_policy(policy, inst)
        exact = solve_milp(inst, pol, solver="highs", gap=0.0, time_limit=60)
        assert exact.status == "optimal" and exact.objective is not None, gen.label()
        optimum = exact.objective
        prepared = prepare(inst, pol)
        greedy = pol.evaluate(fifo_baseline(inst, pol))
        for target in (optimum, greedy):
            result = lagrangian(prepared, time_limit=30.0, target=target, max_steps=300, tolerance=0.0)
            if result.bound is None:
                assert not any(info.plannable for info in inst.jobs)
                continue
            assert result.bound <= optimum + 1e-9 * max(1.0, abs(optimum)), (
                f"{gen.label()} {policy}: Lagrangian bound {result.bound} above the optimum {optimum}"
            )
            if not isinstance(pol, MakespanPolicy):
                # Its first step, at zero prices, is the capacity-free bound.
                assert result.bound >= trivial_bound(inst, pol) - 1e-9 * max(1.0, abs(optimum))


@pytest.mark.parametrize("policy", ("cost", "jct", "deadline"))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_planner_through_the_lagrangian_stage_against_the_oracle(
    shape: str, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small models normally skip the stage (the whole slot LP is one quick solve): send them through it.
    monkeypatch.setattr(api, "COLGEN_MIN_COLUMNS", 0)
    gen = generate(shape, 0)
    options = PlanOptions(policy=policy, horizon=gen.horizon, slot=gen.slot, solver="highs", time_limit=4.0)  # type: ignore[arg-type]
    stages: list[str] = []
    result = plan(gen.cluster, gen.jobs, options, progress=lambda p: stages.append(p.stage))
    inst = build_instance(gen.cluster, gen.jobs, options)
    if any(info.plannable for info in inst.jobs):
        assert "lagrangian" in stages, stages
    out = compare_plan(gen, policy, result, options.migration_penalty, f"{gen.label()} {policy}")
    assert out.failures == [], f"{out.label}:\n" + "\n".join(out.failures)
