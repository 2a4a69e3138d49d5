"""Minimal reproductions the oracle campaign found, kept as cluster/jobs YAML pairs.

Each pair in tests/solver/oracle_cases/ is planned with both solvers and compared with the
checker and the exact oracle exactly as the property test does (the first line of each cluster
file is the CLI command that shows it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from oracle_compare import compare_plan
from shapes import Instance

from gpusched.config import load_inputs
from gpusched.solver import PlanOptions, plan

HERE = Path(__file__).parent / "oracle_cases"

# name: (policy, horizon, the planner bug the case reproduced: each is a regression test now)
CASES: dict[str, tuple[str, float, str]] = {
    "deadline_false_miss": (
        "jct",
        4.0,
        "planner bug: deadline judged on the end of the job's last slot, not its end",
    ),
    "deadline_option_dropped": (
        "cost",
        8.0,
        "planner bug: a start that meets its deadline inside its last slot is dropped; false optimal, bound above",
    ),
    "maintenance_running_kept": (
        "jct",
        10.0,
        "planner bug: running job kept on its node through maintenance",
    ),
    "gang_onto_busy_nodes": ("jct", 8.0, "planner bug: future gang planned where no node can hold it"),
    "cordon_new_work": (
        "jct",
        10.0,
        "planner bug: preempts a job on a cordoned node and puts new work there",
    ),
    "preemptible_split_false_optimal": (
        "jct",
        10.0,
        "the one-block model called optimal against a split reference (spec rule 7 now states the model)",
    ),
    "tie_break_false_optimal": (
        "cost",
        12.0,
        "planner bug: a MILP stopped at the solver's gap is called optimal; its bound is above the optimum",
    ),
}


def _params() -> list[object]:
    out = []
    for name in CASES:
        for solver in ("cbc", "highs"):
            out.append(pytest.param(name, solver, id=f"{name}-{solver}"))
    return out


def test_every_case_file_is_listed() -> None:
    names = {p.name.removesuffix(".cluster.yaml") for p in HERE.glob("*.cluster.yaml")}
    assert names == set(CASES)


@pytest.mark.parametrize(("name", "solver"), _params())
def test_reproduction(name: str, solver: str) -> None:
    policy, horizon, _ = CASES[name]
    cluster, jobset = load_inputs(HERE / f"{name}.cluster.yaml", HERE / f"{name}.jobs.yaml")
    inst = Instance(name, 0, cluster, jobset.jobs, horizon=horizon, slot=1.0)
    options = PlanOptions(policy=policy, horizon=horizon, slot=1.0, solver=solver, time_limit=10)
    result = plan(cluster, jobset.jobs, options)
    out = compare_plan(inst, policy, result, options.migration_penalty, f"{name} {solver}")
    assert out.failures == [], "\n".join(out.failures)
