"""The time-indexed start-variable MILP over GPU types.

z[j,o,s] = 1 when job j starts in slot s with option o (a GPU type and a duration). It is the x_it
model of the seed document made exact: the GPUs of type i in use in slot t are
x_it = sum over jobs, options on i, and starts s with s <= t < s + d of gpus_j * z[j,o,s], and the
capacity rows bound x_it by the healthy GPUs of i in t. Gang (all GPUs or none), one type per job,
type/memory compatibility, release and contiguity for non-preemptible jobs hold by construction of
the columns; deadlines are soft with a dominant penalty so an infeasible instance still has a plan.
This start-time formulation has a much stronger LP relaxation than the x/y form, which is what
lets CBC close the gap quickly. The model is built as sparse arrays (backends.py says why).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from gpusched.solver import backends
from gpusched.solver.instance import Instance, JobInfo, TypeOption
from gpusched.solver.policies import FairPolicy, MakespanPolicy, Policy
from gpusched.solver.schedule import Choice, Schedule

MIP_GAP = 5e-5
"""Relative gap at which the MILP solvers stop (CBC's ratioGap, HiGHS' mip_rel_gap), and at which
the planner calls a plan optimal: objective - proven lower bound <= MIP_GAP x |objective|, so an
"optimal" plan always prints its gap as 0.00 %."""


@dataclass
class MilpResult:
    schedule: Schedule | None
    status: str
    """'optimal', 'feasible', 'not_solved', 'infeasible' (backends.Solution says what each means)."""
    objective: float | None
    bound: float | None
    """A proven lower bound of this model (None when the solver proved none); of the full slot
    model only when not `thinned`."""
    solve_time_s: float
    columns: int
    thinned: bool
    fractional: list[tuple[int, TypeOption, int, float]] = field(default_factory=list)
    """LP relaxation only: (job index, option, start, value) for every z > 0."""
    build_s: float = 0.0
    """Seconds spent building the model before the solver got it (the planner's budget measures
    its rate per column from this)."""


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


class OutOfTime(Exception):
    """Building the model took longer than the caller allowed (solve_milp's build_limit)."""


def _check(abort_at: float | None) -> None:
    if abort_at is not None and time.perf_counter() > abort_at:
        raise OutOfTime


def build_columns(
    inst: Instance,
    column_budget: int | None,
    forbid_now: frozenset[int],
    must_have: Schedule,
    abort_at: float | None = None,
) -> tuple[list[tuple[JobInfo, TypeOption, int]], bool]:
    def columns_for(dense: int | None) -> list[tuple[JobInfo, TypeOption, int]]:
        cols: list[tuple[JobInfo, TypeOption, int]] = []
        for info in inst.jobs:
            if info.index % 256 == 0:
                _check(abort_at)
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

    full = sum(len(inst.start_range(info, opt)) for info in inst.jobs for opt in inst.all_options(info))
    if column_budget is None or full <= column_budget:
        return columns_for(None), False
    # Thinned: never materialise the full model first (800,000 tuples at L took most of the
    # MILP stage's time limit before the solver started).
    dense = max(1, inst.n_slots // 2)
    cols = columns_for(dense)
    while dense > 1 and len(cols) > column_budget:
        dense //= 2
        cols = columns_for(dense)
    return cols, True


def solve_milp(
    inst: Instance,
    policy: Policy,
    *,
    solver: str = "cbc",
    time_limit: float | None = None,
    threads: int = 1,
    gap: float = MIP_GAP,
    warm: Schedule | None = None,
    forbid_now: frozenset[int] = frozenset(),
    column_budget: int | None = None,
    relax: bool = False,
    columns: list[tuple[JobInfo, TypeOption, int]] | None = None,
    hard_limit: float | None = None,
    build_limit: float | None = None,
) -> MilpResult:
    """Solve the model (or, with relax=True, its LP relaxation: then `fractional` holds z).

    `columns` restricts the model to the given starts (then the result is marked thinned: its bound
    is not one for the full model). `hard_limit`: seconds from now after which the solver process
    is killed and the call answers 'not_solved' (the caller's deadline; backends.solve). A model
    not built within `build_limit` seconds is abandoned ('not_solved' too): its search would have
    no time left.
    """
    t0 = time.perf_counter()
    limits = [x for x in (build_limit, hard_limit) if x is not None]
    abort_at = t0 + min(limits) if limits else None
    try:
        if columns is not None:
            cols, thinned = columns, True
        else:
            cols, thinned = build_columns(inst, column_budget, forbid_now, warm or {}, abort_at)
        model, index = build_model(inst, policy, cols, relax, abort_at)
    except OutOfTime:
        build_s = time.perf_counter() - t0
        return MilpResult(None, "not_solved", None, None, build_s, 0, True, build_s=build_s)
    build_s = time.perf_counter() - t0
    if hard_limit is not None and build_s >= hard_limit:
        # The caller's deadline passed while building: no solver run that would be killed anyway.
        return MilpResult(None, "not_solved", None, None, build_s, len(cols), thinned, build_s=build_s)
    x0 = None
    if warm and not relax:
        x0 = np.zeros(model.c.shape[0])
        for j, choice in warm.items():
            hit = index.get((j, id(choice.option), choice.start))
            if hit is not None:
                x0[hit] = 1.0
        for j, slack in index.slacks.items():
            x0[slack] = 0.0 if j in warm else 1.0
        if index.span is not None:
            x0[index.span] = policy.extra(warm)
        if index.theta is not None and isinstance(policy, FairPolicy):
            x0[index.theta] = min(policy.shares(warm).values(), default=1.0)
    remaining = None if time_limit is None else max(0.5, time_limit - (time.perf_counter() - t0))
    hard = None if hard_limit is None else hard_limit - (time.perf_counter() - t0)
    result = backends.solve(
        model,
        solver=solver,
        relax=relax,
        time_limit=remaining if hard is None else min(remaining or hard, max(0.1, hard)),
        gap=gap,
        threads=threads,
        warm=x0,
        hard_limit=hard,
    )
    elapsed = time.perf_counter() - t0
    if result.x is None:
        return MilpResult(None, result.status, None, None, elapsed, len(cols), thinned, build_s=build_s)
    x = result.x
    if relax:
        fractional = [
            (cols[c][0].index, cols[c][1], cols[c][2], float(x[c])) for c in range(len(cols)) if x[c] > 1e-6
        ]
        return MilpResult(
            None,
            result.status,
            result.objective,
            result.bound,
            elapsed,
            len(cols),
            thinned,
            fractional=fractional,
            build_s=build_s,
        )
    schedule: Schedule = {}
    for c in np.flatnonzero(x[: len(cols)] > 0.5).tolist():
        info, opt, s = cols[c]
        schedule[info.index] = Choice(opt, s)
    return MilpResult(
        schedule, result.status, result.objective, result.bound, elapsed, len(cols), thinned, build_s=build_s
    )


class ColumnIndex(dict[tuple[int, int, int], int]):
    """(job, id(option), start) -> column; plus where the slack and auxiliary columns are."""

    def __init__(self) -> None:
        super().__init__()
        self.slacks: dict[int, int] = {}
        self.span: int | None = None
        self.theta: int | None = None


def build_model(
    inst: Instance,
    policy: Policy,
    cols: list[tuple[JobInfo, TypeOption, int]],
    relax: bool,
    abort_at: float | None = None,
) -> tuple[backends.LinearModel, ColumnIndex]:
    """The start-time model as sparse arrays.

    Rows: one per job (its starts plus its slack sum to 1, or its starts to exactly 1 for a job that
    must keep running), one per (type, slot) for capacity, then the auxiliary rows of makespan
    (one per job) or fairness (one per team). Columns: the starts, the slacks, then span/theta.
    Each job either starts once or pays its penalty through its slack: folding the penalties into
    a constant would give the solver a huge negative objective and a meaninglessly loose relative
    stopping gap.
    """
    n_types, n_slots = len(inst.types), inst.n_slots
    job_rows = {info.index: r for r, info in enumerate(i for i in inst.jobs if i.plannable)}
    cap_base = len(job_rows)
    n_rows = cap_base + n_types * n_slots
    rows: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    colnum: list[np.ndarray] = []
    cost = np.empty(len(cols))
    index = ColumnIndex()
    for c, (info, opt, s) in enumerate(cols):
        if c % 4096 == 0:
            _check(abort_at)
        index[(info.index, id(opt), s)] = c
        cost[c] = policy.coefficient(info, opt, s)
        end = min(s + opt.slots, n_slots)
        r = np.empty(1 + end - s, dtype=np.int64)
        r[0] = job_rows[info.index]
        r[1:] = cap_base + opt.type_index * n_slots + np.arange(s, end)
        v = np.full(r.shape[0], float(info.charge(opt)))
        v[0] = 1.0
        rows.append(r)
        vals.append(v)
        colnum.append(np.full(r.shape[0], c, dtype=np.int64))
    extra_cost: list[float] = []
    col_hi_extra: list[float] = []
    n = len(cols)
    for info in inst.jobs:
        if info.plannable and not info.fixed:
            index.slacks[info.index] = n
            rows.append(np.array([job_rows[info.index]]))
            vals.append(np.array([1.0]))
            colnum.append(np.array([n]))
            extra_cost.append(policy.unscheduled_penalty(info))
            col_hi_extra.append(1.0)
            n += 1
    # A plannable job without any column (all starts barred) pays its penalty as a constant.
    with_cols = {info.index for info, _, _ in cols}
    offset = sum(
        policy.unscheduled_penalty(info)
        for info in inst.jobs
        if info.plannable and info.index not in with_cols and not info.fixed
    )
    for j in job_rows:
        if j not in with_cols and j in index.slacks:
            offset -= policy.unscheduled_penalty(inst.jobs[j])  # its slack column already pays it
    aux_lo: list[float] = []
    aux_hi: list[float] = []
    if isinstance(policy, MakespanPolicy):
        # span >= sum over a job's starts of its end time: one row per job.
        index.span = n
        by_job: dict[int, list[int]] = {}
        for c, (info, _, _) in enumerate(cols):
            by_job.setdefault(info.index, []).append(c)
        for cs in by_job.values():
            row = n_rows + len(aux_lo)
            ends = np.array([inst.slot_start(cols[c][2]) + cols[c][1].run_hours for c in cs])
            rows.append(np.full(len(cs) + 1, row))
            vals.append(np.concatenate([ends, [-1.0]]))
            colnum.append(np.array([*cs, n], dtype=np.int64))
            aux_lo.append(-np.inf)
            aux_hi.append(0.0)
        extra_cost.append(1.0)
        col_hi_extra.append(np.inf)
        n += 1
    elif isinstance(policy, FairPolicy):
        # theta <= each team's share of its entitlement; minimise fair_weight * (1 - theta).
        index.theta = n
        for team, entitled in policy.entitlement.items():
            if entitled <= 0:
                continue
            cs = [c for c, (info, _, _) in enumerate(cols) if info.job.team == team]
            share = np.array([policy.gpu_hours_in_horizon(*cols[c]) / entitled for c in cs])
            row = n_rows + len(aux_lo)
            rows.append(np.full(len(cs) + 1, row))
            vals.append(np.concatenate([-share, [1.0]]))
            colnum.append(np.array([*cs, n], dtype=np.int64))
            aux_lo.append(-np.inf)
            aux_hi.append(0.0)
        extra_cost.append(-policy.fair_weight)
        offset += policy.fair_weight
        col_hi_extra.append(1.0)
        n += 1
    total_rows = n_rows + len(aux_lo)
    A = sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(colnum))), shape=(total_rows, n)
    )
    fixed_rows = np.ones(cap_base)
    integer = np.zeros(n, dtype=bool)
    if not relax:
        integer[: len(cols)] = True
    model = backends.LinearModel(
        c=np.concatenate([cost, np.asarray(extra_cost, dtype=float)]),
        A=A,
        row_lo=np.concatenate(
            [fixed_rows, np.full(n_types * n_slots, -np.inf), np.asarray(aux_lo, dtype=float)]
        ),
        row_hi=np.concatenate(
            [fixed_rows, np.asarray(inst.capacity, dtype=float).reshape(-1), np.asarray(aux_hi, dtype=float)]
        ),
        col_lo=np.zeros(n),
        col_hi=np.concatenate([np.ones(len(cols)), np.asarray(col_hi_extra, dtype=float)]),
        integer=integer,
        offset=offset,
    )
    return model, index


def solve_bucket_relaxation(
    inst: Instance,
    policy: Policy,
    bucket: int,
    *,
    solver: str,
    time_limit: float | None,
    threads: int,
    hard_limit: float | None = None,
) -> MilpResult:
    """A valid lower bound for models too big to relax slot by slot: the LP over time buckets.

    A start anywhere in bucket b is one column, priced at the cheapest start in it and charged,
    in every bucket it overlaps, the least GPU-slots any of its starts would use there, against the
    bucket's total GPU-slots. Every real schedule maps onto a solution of this LP that costs no more,
    so its optimum bounds the plan from below. The makespan and fairness terms are dropped (both
    are non-negative), which keeps the bound valid for those policies too, if weaker. The fractional
    solution, read at each bucket's earliest start, guides the rounding like the slot LP's.
    """
    t0 = time.perf_counter()
    n_types, n_slots = len(inst.types), inst.n_slots
    n_buckets = (n_slots + bucket - 1) // bucket
    plannable = [info for info in inst.jobs if info.plannable]
    job_rows = {info.index: r for r, info in enumerate(plannable)}
    cap_base = len(job_rows)
    rows: list[int] = []
    vals: list[float] = []
    colnum: list[int] = []
    cost: list[float] = []
    meta: list[tuple[int, TypeOption, int]] = []
    for info in plannable:
        for opt in inst.all_options(info):
            rng = inst.start_range(info, opt)
            by_bucket: dict[int, list[int]] = {}
            for s in rng:
                by_bucket.setdefault(s // bucket, []).append(s)
            for b, starts in by_bucket.items():
                c = len(cost)
                cost.append(min(policy.coefficient(info, opt, s) for s in starts))
                meta.append((info.index, opt, starts[0]))
                rows.append(job_rows[info.index])
                vals.append(1.0)
                colnum.append(c)
                last_bucket = min(n_buckets - 1, (starts[-1] + opt.slots - 1) // bucket)
                for bb in range(b, last_bucket + 1):
                    lo, hi = bb * bucket, min((bb + 1) * bucket, n_slots)
                    use = min(max(0, min(s + opt.slots, hi) - max(s, lo)) for s in starts)
                    if use > 0:
                        rows.append(cap_base + opt.type_index * n_buckets + bb)
                        vals.append(float(use * info.charge(opt)))
                        colnum.append(c)
    n = len(cost)
    for info in plannable:
        if not info.fixed:
            rows.append(job_rows[info.index])
            vals.append(1.0)
            colnum.append(n)
            cost.append(policy.unscheduled_penalty(info))
            n += 1
    capacity = np.asarray(inst.capacity, dtype=float)
    bucket_cap = np.array(
        [[capacity[k, b * bucket : (b + 1) * bucket].sum() for b in range(n_buckets)] for k in range(n_types)]
    ).reshape(-1)
    A = sparse.csc_matrix(
        (np.asarray(vals), (np.asarray(rows), np.asarray(colnum))), shape=(cap_base + n_types * n_buckets, n)
    )
    model = backends.LinearModel(
        c=np.asarray(cost),
        A=A,
        row_lo=np.concatenate([np.ones(cap_base), np.full(n_types * n_buckets, -np.inf)]),
        row_hi=np.concatenate([np.ones(cap_base), bucket_cap]),
        col_lo=np.zeros(n),
        col_hi=np.ones(n),
        integer=np.zeros(n, dtype=bool),
    )
    remaining = None if time_limit is None else max(0.5, time_limit - (time.perf_counter() - t0))
    hard = None if hard_limit is None else hard_limit - (time.perf_counter() - t0)
    result = backends.solve(
        model, solver=solver, relax=True, time_limit=remaining, gap=0.0, threads=threads, hard_limit=hard
    )
    elapsed = time.perf_counter() - t0
    if result.x is None or result.status != "optimal":
        return MilpResult(None, "not_solved", None, None, elapsed, len(meta), True)
    fractional = [(j, opt, s, float(result.x[c])) for c, (j, opt, s) in enumerate(meta) if result.x[c] > 1e-6]
    return MilpResult(
        None, "optimal", result.objective, result.objective, elapsed, len(meta), False, fractional=fractional
    )
