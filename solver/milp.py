"""The time-indexed start-variable MILP over GPU types, modelled with PuLP.

z[j,o,s] = 1 when job j starts in slot s with option o (a GPU type and a duration). It is the x_it
model of the seed document made exact: the GPUs of type i in use in slot t are
x_it = sum over jobs, options on i, and starts s with s <= t < s + d of gpus_j * z[j,o,s], and the
capacity rows bound x_it by the healthy GPUs of i in t. Gang (all GPUs or none), one type per job,
type/memory compatibility, release and contiguity for non-preemptible jobs hold by construction of
the columns; deadlines are soft with a dominant penalty so an infeasible instance still has a plan.
This start-time formulation has a much stronger LP relaxation than the x/y form, which is what
lets CBC close the gap quickly.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field

import pulp

from gpusched.solver.instance import Instance, JobInfo, TypeOption
from gpusched.solver.policies import FairPolicy, MakespanPolicy, Policy
from gpusched.solver.schedule import Choice, Schedule


@dataclass
class MilpResult:
    schedule: Schedule | None
    status: str
    """'optimal', 'feasible', 'not_solved', 'infeasible'."""
    objective: float | None
    bound: float | None
    solve_time_s: float
    columns: int
    thinned: bool
    notes: list[str] = field(default_factory=list)
    fractional: list[tuple[int, TypeOption, int, float]] = field(default_factory=list)
    """LP relaxation only: (job index, option, start, value) for every z > 0."""


def start_grid(first: int, n_slots: int, dense: int) -> list[int]:
    """All starts in the first `dense` slots after release, then ever sparser (x2 each block)."""
    starts: list[int] = []
    s, stride, block_end = first, 1, first + dense
    while s < n_slots:
        starts.append(s)
        s += stride
        if s >= block_end:
            stride *= 2
            block_end = s + dense
    return starts


def build_columns(
    inst: Instance, column_budget: int | None, forbid_now: frozenset[int], must_have: Schedule
) -> tuple[list[tuple[JobInfo, TypeOption, int]], bool]:
    def columns_for(dense: int | None) -> list[tuple[JobInfo, TypeOption, int]]:
        cols: list[tuple[JobInfo, TypeOption, int]] = []
        for info in inst.jobs:
            for opt in inst.all_options(info):
                rng = inst.start_range(info, opt)
                starts = (
                    list(rng)
                    if dense is None or opt is info.continue_option
                    else start_grid(rng.start, rng.stop, dense)
                )
                hint = must_have.get(info.index)
                if hint is not None and hint.option is opt and hint.start not in starts:
                    starts.append(hint.start)
                for s in starts:
                    if s == 0 and info.index in forbid_now:
                        continue
                    cols.append((info, opt, s))
        return cols

    cols = columns_for(None)
    if column_budget is None or len(cols) <= column_budget:
        return cols, False
    dense = max(1, inst.n_slots // 2)
    while dense > 1:
        cols = columns_for(dense)
        if len(cols) <= column_budget:
            break
        dense //= 2
    return columns_for(dense) if dense == 1 else cols, True


def solve_milp(
    inst: Instance,
    policy: Policy,
    *,
    solver: str = "cbc",
    time_limit: float | None = None,
    threads: int = 1,
    gap: float = 5e-4,
    warm: Schedule | None = None,
    forbid_now: frozenset[int] = frozenset(),
    column_budget: int | None = None,
    relax: bool = False,
) -> MilpResult:
    """Solve the model (or, with relax=True, its LP relaxation: then `fractional` holds z)."""
    t0 = time.perf_counter()
    cols, thinned = build_columns(inst, column_budget, forbid_now, warm or {})
    prob = pulp.LpProblem("gpusched", pulp.LpMinimize)
    cat = pulp.LpContinuous if relax else pulp.LpBinary
    z = [pulp.LpVariable(f"z{c}", lowBound=0, upBound=1, cat=cat) for c in range(len(cols))]

    by_job: dict[int, list[int]] = {}
    load: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for c, (info, opt, s) in enumerate(cols):
        by_job.setdefault(info.index, []).append(c)
        for t in range(s, min(s + opt.slots, inst.n_slots)):
            load.setdefault((opt.type_index, t), []).append((c, info.gpus))

    # Each job either starts once or pays its penalty through an explicit slack u_j. (Folding the
    # penalties into a constant would give the solver a huge negative objective and make its
    # relative stopping gap meaninglessly loose.)
    objective_terms: list[tuple[pulp.LpVariable, float]] = []
    for info in inst.jobs:
        if not info.plannable or info.index not in by_job:
            continue
        choices = pulp.lpSum(z[c] for c in by_job[info.index])
        for c in by_job[info.index]:
            _, opt, s = cols[c]
            objective_terms.append((z[c], policy.coefficient(info, opt, s)))
        if info.fixed:
            prob += choices == 1, f"keep_{info.index}"
        else:
            slack = pulp.LpVariable(f"u{info.index}", lowBound=0, upBound=1)
            objective_terms.append((slack, policy.unscheduled_penalty(info)))
            prob += choices + slack == 1, f"once_{info.index}"
    constant = sum(
        policy.unscheduled_penalty(info) for info in inst.jobs if info.plannable and info.index not in by_job
    )

    for (k, t), entries in load.items():
        if sum(g for _, g in entries) > inst.capacity[k][t]:
            prob += pulp.lpSum(g * z[c] for c, g in entries) <= inst.capacity[k][t], f"cap_{k}_{t}"

    extra = _auxiliary(prob, inst, policy, cols, z, by_job)
    prob += pulp.LpAffineExpression(objective_terms) + extra + constant

    if warm and not relax:
        index = {(info.index, id(opt), s): c for c, (info, opt, s) in enumerate(cols)}
        for j, choice in warm.items():
            hit = index.get((j, id(choice.option), choice.start))
            if hit is not None:
                z[hit].setInitialValue(1)
        for var in z:
            if var.varValue is None:
                var.setInitialValue(0)
        for var in prob.variables():
            if var.name.startswith("u") and var.varValue is None:
                job = int(var.name[1:])
                var.setInitialValue(0 if job in warm else 1)

    build_s = time.perf_counter() - t0
    remaining = None if time_limit is None else max(1.0, time_limit - build_s)
    log_path = None
    if solver == "highs":
        backend: pulp.LpSolver = pulp.HiGHS(
            mip=not relax, msg=False, timeLimit=remaining, threads=threads, gapRel=None if relax else gap
        )
    else:
        fd, log_path = tempfile.mkstemp(prefix="gpusched-cbc-", suffix=".log")
        os.close(fd)
        backend = pulp.PULP_CBC_CMD(
            mip=not relax,
            msg=False,
            timeLimit=None if remaining is None else max(1, math.ceil(remaining)),
            threads=threads,
            gapRel=None if relax else gap,
            warmStart=bool(warm) and not relax,
            logPath=log_path,
        )
    try:
        prob.solve(backend)
    except pulp.PulpSolverError as exc:  # the solver binary died: keep the heuristic plan
        return MilpResult(
            None, "not_solved", None, None, time.perf_counter() - t0, len(cols), thinned, [str(exc)]
        )
    elapsed = time.perf_counter() - t0

    if relax:
        _cleanup(log_path)
        if prob.status != pulp.LpStatusOptimal:
            return MilpResult(None, "not_solved", None, None, elapsed, len(cols), thinned)
        value = float(pulp.value(prob.objective))
        fractional = [
            (cols[c][0].index, cols[c][1], cols[c][2], float(var.varValue or 0.0))
            for c, var in enumerate(z)
            if (var.varValue or 0.0) > 1e-6
        ]
        return MilpResult(None, "optimal", value, value, elapsed, len(cols), thinned, fractional=fractional)
    has_solution = prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    if not has_solution:
        _cleanup(log_path)
        return MilpResult(None, "not_solved", None, None, elapsed, len(cols), thinned)
    schedule: Schedule = {}
    for c, var in enumerate(z):
        if var.varValue is not None and var.varValue > 0.5:
            info, opt, s = cols[c]
            schedule[info.index] = Choice(opt, s)
    objective = float(pulp.value(prob.objective))
    optimal = prob.sol_status == pulp.LpSolutionOptimal
    bound = _bound(prob, solver, log_path, objective, optimal)
    _cleanup(log_path)
    return MilpResult(
        schedule, "optimal" if optimal else "feasible", objective, bound, elapsed, len(cols), thinned
    )


def _auxiliary(
    prob: pulp.LpProblem,
    inst: Instance,
    policy: Policy,
    cols: list[tuple[JobInfo, TypeOption, int]],
    z: list[pulp.LpVariable],
    by_job: dict[int, list[int]],
) -> pulp.LpAffineExpression | float:
    if isinstance(policy, MakespanPolicy):
        span = pulp.LpVariable("makespan", lowBound=0)
        for j, cs in by_job.items():
            prob += (
                span >= pulp.lpSum((inst.slot_start(cols[c][2]) + cols[c][1].run_hours) * z[c] for c in cs),
                f"span_{j}",
            )
        return pulp.LpAffineExpression([(span, 1.0)])
    if isinstance(policy, FairPolicy):
        theta = pulp.LpVariable("min_share", lowBound=0, upBound=1)
        for team, entitled in policy.entitlement.items():
            if entitled <= 0:
                continue
            got = pulp.lpSum(
                policy.gpu_hours_in_horizon(info, opt, s) / entitled * z[c]
                for c, (info, opt, s) in enumerate(cols)
                if info.job.team == team
            )
            prob += theta <= got, f"share_{re.sub(r'[^A-Za-z0-9_]', '_', team)}_{len(team)}"
        return policy.fair_weight - pulp.LpAffineExpression([(theta, policy.fair_weight)])
    return 0.0


_CBC_BOUND = re.compile(r"(?:Lower bound|best possible)[:\s]+(-?[0-9.eE+]+)", re.IGNORECASE)


def _bound(
    prob: pulp.LpProblem, solver: str, log_path: str | None, objective: float, optimal: bool
) -> float | None:
    if optimal:
        return objective
    if solver == "highs":
        try:
            return float(prob.solverModel.getInfo().mip_dual_bound)
        except Exception:  # an older highspy without the info field
            return None
    if log_path is None:
        return None
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    found = _CBC_BOUND.findall(text)
    if not found:
        return None
    # CBC reports the bound without the objective's constant term.
    constant = float(prob.objective.constant) if prob.objective is not None else 0.0
    return float(found[-1]) + constant


def _cleanup(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)
