"""Compare one planner run with the specification checker and the exact oracle.

`compare` returns the failures as sentences, each tagged with a failure class so a campaign can
count them: [check] a rule broken, [worse] an objective below the exact optimum (the checker or
the oracle is wrong), [bound] a reported lower bound above the optimum, [optimal] a false
"optimal", [objective] the plan's objective field differs from its recomputed value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oracle_milp import Exact, solve_exact
from shapes import Instance

from gpusched.model import Plan
from gpusched.solver import PlanOptions, plan
from gpusched.verify import OPTIMAL_GAP, check_plan_report, plan_objective

REL = 1e-6


@dataclass
class Outcome:
    label: str
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None
    plan: Plan | None = None


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def compare(inst: Instance, policy: str, solver: str, time_limit: float = 4.0) -> Outcome:
    label = f"{inst.label()} {policy} {solver}"
    options = PlanOptions(
        policy=policy, horizon=inst.horizon, slot=inst.slot, solver=solver, time_limit=time_limit
    )
    result = plan(inst.cluster, inst.jobs, options)
    return compare_plan(inst, policy, result, options.migration_penalty, label)


def compare_plan(
    inst: Instance, policy: str, result: Plan, migration_penalty: float = 0.25, label: str = ""
) -> Outcome:
    """Check a given plan of the instance against the checker and the exact oracle."""
    out = Outcome(label or inst.label())
    out.plan = result
    report = check_plan_report(inst.cluster, inst.jobs, result, migration_penalty=migration_penalty)
    out.failures += [f"[check] {v}" for v in report.violations]
    # The reference: the best plan that starts every job that can run at all. Its value does not
    # depend on how a job left unstarted is charged (the specification leaves that loosest), so it
    # bounds the planner's true optimum from above whatever that charge is.
    exact = _exact(inst, policy)
    if exact.objective is None:
        out.skipped = f"oracle: {exact.status} (no plan starts every job)"
        return out
    opt = exact.objective
    mine = plan_objective(inst.cluster, inst.jobs, result, policy, migration_penalty=migration_penalty)
    tol = REL * max(1.0, abs(opt.value))
    starts_all = not [
        name for name in mine.unstarted if name not in opt.unstarted
    ]  # jobs no plan can start are unstarted in both
    better = mine.misses < opt.misses - 1e-6 or (
        _close(mine.misses, opt.misses) and mine.value < opt.value - tol
    )
    if not report.violations and starts_all and better:
        out.failures.append(
            f"[worse] plan ({mine.misses:g} weighted misses, {mine.value:.6f}) better than the exact optimum "
            f"({opt.misses:g}, {opt.value:.6f}): the checker or the oracle is wrong"
        )
    if opt.misses == 0 and result.lower_bound > opt.value + tol + 1e-6:
        out.failures.append(
            f"[bound] lower bound {result.lower_bound:.6f} above the exact optimum {opt.value:.6f}"
        )
    if result.status == "optimal" and starts_all:
        worse = mine.misses > opt.misses + 1e-6 or (
            _close(mine.misses, opt.misses) and mine.value > opt.value * (1 + OPTIMAL_GAP) + tol
        )
        if worse:
            out.failures.append(
                f"[optimal] claims optimal at {mine.value:.6f} ({mine.misses:g} misses); "
                f"exact optimum {opt.value:.6f} ({opt.misses:g} misses)"
            )
    if mine.misses == 0 and not mine.unstarted and not _close(result.objective, mine.value, 1e-5):
        out.failures.append(
            f"[objective] reports objective {result.objective:.6f}, recomputed {mine.value:.6f}"
        )
    return out


_CACHE: dict[tuple[str, str, float, float], Exact] = {}


def _exact(inst: Instance, policy: str) -> Exact:
    """The oracle's answer, once per instance and policy (both solvers compare with it)."""
    key = (repr(inst.to_yaml()), policy, inst.horizon, inst.slot)  # content, not label: labels may repeat
    if key not in _CACHE:
        _CACHE[key] = solve_exact(
            inst.cluster, inst.jobs, policy, inst.horizon, inst.slot, time_limit=60, must_start=True
        )
    return _CACHE[key]
