"""The slot LP of a model too big to write out: column generation over every start.

At L (5,000 jobs, 4 types, 48 slots) the start-time model has about 800,000 columns: writing it
and relaxing it takes minutes, so the time-bucket LP used to stand in for it, a valid but loose
bound and weak guidance for completion-time policies. The model's structure is the classic
Dantzig-Wolfe one, though: each job's columns are tied only by its own convexity row, and only
the type x slot capacity rows (a few hundred) couple the jobs. So the master LP is solved over a
small subset of the columns, and every start is priced against its duals with arrays (prefix sums
of the capacity duals per type make a column's price two lookups): the cheapest start of each job
whose reduced cost is negative joins the master, until none is left.

Makespan and fairness add rows (span >= every job's end; theta <= every team's share) and one
shared column; their duals are priced like capacity's.

Every round also gives a valid lower bound, the Lagrangian one: capacity priced at the duals, each
job alone takes its cheapest start, so the bound holds even if time runs out before the master
converges. At convergence master and bound meet at the slot LP's optimum, the same number the
full model's relaxation would give, and the master's fractional solution is one of the full
model's, which the rounding and the support MILP use exactly as at M.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from gpusched.solver import backends
from gpusched.solver.instance import Instance, JobInfo, TypeOption
from gpusched.solver.policies import FairPolicy, MakespanPolicy, Policy

WARMUP_COLUMN_STEPS = 8
"""The warm-up's last steps whose chosen starts join the opening master."""
STABILITY = 0.5
"""Wentges smoothing: price at this mix of the best-bound duals and the master's last ones.

Column generation's duals jump from round to round; pricing at a point between them and the duals
that gave the best bound so far cuts the number of rounds, and a round whose smoothed prices find
nothing falls back to the master's own duals so convergence is still exact."""


@dataclass
class ColumnPool:
    """Every start of the slot model as arrays, grouped by job (jobs in increasing order)."""

    job: np.ndarray
    group: np.ndarray
    start: np.ndarray
    end: np.ndarray
    """Last slot used + 1, capped at the horizon."""
    type: np.ndarray
    gpus: np.ndarray
    cost: np.ndarray
    groups: list[tuple[JobInfo, TypeOption]]
    job_first: np.ndarray
    """Index of each pooled job's first column (for np.minimum.reduceat)."""
    job_ids: np.ndarray
    """The pooled jobs, in the order of job_first."""
    group_first: np.ndarray
    """Index of each group's (job, option) first column: its starts follow in order."""

    @property
    def size(self) -> int:
        return int(self.job.shape[0])


def build_pool(inst: Instance, policy: Policy, forbid_now: frozenset[int]) -> ColumnPool:
    # Per group (job, option) only scalars and its starts' costs are gathered in the loop; the
    # per-start arrays are spread from them at once (np.full per group was a third of the time).
    starts_: list[np.ndarray] = []
    costs: list[np.ndarray] = []
    sizes: list[int] = []
    g_job: list[int] = []
    g_type: list[int] = []
    g_gpus: list[float] = []
    g_slots: list[int] = []
    groups: list[tuple[JobInfo, TypeOption]] = []
    for info in inst.jobs:
        if not info.plannable:
            continue
        for opt in inst.all_options(info):
            rng = inst.start_range(info, opt)
            first = rng.start + 1 if rng.start == 0 and info.index in forbid_now else rng.start
            if first >= rng.stop:
                continue
            starts = np.arange(first, rng.stop, dtype=np.int64)
            groups.append((info, opt))
            starts_.append(starts)
            costs.append(policy.coefficients(info, opt, starts))
            sizes.append(rng.stop - first)
            g_job.append(info.index)
            g_type.append(opt.type_index)
            g_gpus.append(float(info.charge(opt)))
            g_slots.append(opt.slots)
    if not groups:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        return ColumnPool(
            empty_i, empty_i, empty_i, empty_i, empty_i, empty_f, empty_f, [], empty_i, empty_i, empty_i
        )
    n = np.asarray(sizes, dtype=np.int64)
    job = np.repeat(np.asarray(g_job, dtype=np.int64), n)
    start = np.concatenate(starts_)
    end = np.minimum(start + np.repeat(np.asarray(g_slots, dtype=np.int64), n), inst.n_slots)
    first_of = np.flatnonzero(np.r_[True, job[1:] != job[:-1]])
    group = np.repeat(np.arange(len(groups), dtype=np.int64), n)
    return ColumnPool(
        job=job,
        group=group,
        start=start,
        end=end,
        type=np.repeat(np.asarray(g_type, dtype=np.int64), n),
        gpus=np.repeat(np.asarray(g_gpus, dtype=float), n),
        cost=np.concatenate(costs),
        groups=groups,
        job_first=first_of,
        job_ids=job[first_of],
        group_first=np.r_[0, np.cumsum(n)[:-1]].astype(np.int64),
    )


@dataclass
class _Aux:
    """The rows makespan and fairness add beyond capacity, and the one column they share.

    Makespan: span >= each job's end (a row per job). Fairness: theta <= each team's share of its
    entitlement (a row per team). Both are priced like capacity: their duals enter each start's
    reduced cost, and the shared column's own reduced cost enters the Lagrangian bound.
    """

    n_rows: int
    row: np.ndarray
    """Per pool column: its auxiliary row, or -1."""
    coef: np.ndarray
    """Per pool column: its coefficient in that row."""
    col_cost: float
    col_hi: float
    col_coef: float
    """The shared column's coefficient in every auxiliary row (its lower bound is 0)."""
    offset: float


def _aux_for(inst: Instance, policy: Policy, pool: ColumnPool, job_row: np.ndarray) -> _Aux | None:
    run_hours = np.array([opt.run_hours for _, opt in pool.groups])[pool.group]
    if isinstance(policy, MakespanPolicy):
        ends = pool.start * inst.slot + run_hours
        return _Aux(int(pool.job_ids.shape[0]), job_row[pool.job], ends, 1.0, np.inf, -1.0, 0.0)
    if isinstance(policy, FairPolicy):
        teams = {t: r for r, t in enumerate(t for t, e in policy.entitlement.items() if e > 0)}
        entitled = np.array([policy.entitlement[t] for t in teams] or [1.0])
        team_of_group = np.array([teams.get(info.job.team, -1) for info, _ in pool.groups], dtype=np.int64)
        row = team_of_group[pool.group]
        slots = np.array([opt.slots for _, opt in pool.groups])[pool.group]
        gang = np.array([float(info.gpus) for info, _ in pool.groups])[pool.group]
        hours = gang * np.minimum(run_hours, np.minimum(slots, inst.n_slots - pool.start) * inst.slot)
        coef = np.where(row >= 0, -hours / entitled[np.maximum(row, 0)], 0.0)
        return _Aux(len(teams), row, coef, -policy.fair_weight, 1.0, 1.0, policy.fair_weight)
    return None


@dataclass
class ColgenResult:
    objective: float | None
    """The master's optimum: the slot LP's value once `converged`."""
    bound: float | None
    """The best Lagrangian bound met: valid for the slot MILP whether or not it converged."""
    converged: bool
    rounds: int
    columns: int
    fractional: list[tuple[int, TypeOption, int, float]] = field(default_factory=list)
    """The master's solution: a solution of the slot LP (capacity holds)."""
    lagrangian: list[tuple[int, TypeOption, int, float]] = field(default_factory=list)
    """Each job's own best start at the best-bound prices (value 1): capacity may not hold, but the
    order and types it suggests round well when the master had no time to answer."""
    seconds: float = 0.0


@dataclass
class _Rows:
    """Where the master's rows are: one per pooled job, then type x slot capacity, then auxiliary."""

    job_row: np.ndarray
    """Per job index: its row, or -1 when it has no start in the pool."""
    cap_base: int
    n_slots: int
    aux_base: int
    n_rows: int
    aux: _Aux | None


def _column_block(pool: ColumnPool, sel: np.ndarray, rows: _Rows) -> sparse.csc_matrix:
    """The master's columns for pool entries `sel`: 1 in the job's row, gpus in each slot it runs,
    and its coefficient in its auxiliary row if it has one (rows stay sorted within a column)."""
    aux = rows.aux
    length = pool.end[sel] - pool.start[sel]
    has_aux = (aux.row[sel] >= 0) if aux is not None else np.zeros(sel.shape[0], dtype=bool)
    indptr = np.zeros(sel.shape[0] + 1, dtype=np.int64)
    np.cumsum(1 + length + has_aux, out=indptr[1:])
    nnz = int(indptr[-1])
    indices = np.empty(nnz, dtype=np.int64)
    data = np.empty(nnz)
    heads = indptr[:-1]
    indices[heads] = rows.job_row[pool.job[sel]]
    data[heads] = 1.0
    body = np.ones(nnz, dtype=bool)
    body[heads] = False
    if aux is not None:
        tails = indptr[1:][has_aux] - 1
        indices[tails] = rows.aux_base + aux.row[sel][has_aux]
        data[tails] = aux.coef[sel][has_aux]
        body[tails] = False
    # Slot rows: each column's run start.. end, laid out after its head entry.
    offsets = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    first_row = rows.cap_base + pool.type[sel] * rows.n_slots + pool.start[sel]
    indices[body] = np.repeat(first_row, length) + offsets
    data[body] = np.repeat(pool.gpus[sel], length)
    return sparse.csc_matrix((data, indices, indptr), shape=(rows.n_rows, sel.shape[0]))


@dataclass
class Prepared:
    """The pool of starts, the master's row layout and the pricing over them: built once per
    forbid set and shared by the Lagrangian stage and the column generation after it."""

    pool: ColumnPool
    rows: _Rows
    pricing: _Pricing
    slack_jobs: np.ndarray
    """The pooled jobs that may stay out (not the ones that must keep running)."""


def prepare(inst: Instance, policy: Policy, forbid_now: frozenset[int] = frozenset()) -> Prepared:
    pool = build_pool(inst, policy, forbid_now)
    n_types, n_slots = len(inst.types), inst.n_slots
    pooled = pool.job_ids
    job_row = np.full(len(inst.jobs), -1, dtype=np.int64)
    job_row[pooled] = np.arange(pooled.shape[0])
    aux = _aux_for(inst, policy, pool, job_row) if pooled.shape[0] else None
    cap_base = pooled.shape[0]
    aux_base = cap_base + n_types * n_slots
    n_aux = aux.n_rows if aux is not None else 0
    rows = _Rows(job_row, cap_base, n_slots, aux_base, aux_base + n_aux, aux)
    capacity = np.asarray(inst.capacity, dtype=float).reshape(-1)
    # Slack (unscheduled) columns, and the penalty of plannable jobs with no start at all.
    slack_jobs = np.array([j for j in pooled.tolist() if not inst.jobs[j].fixed], dtype=np.int64)
    slack_cost_by_job = np.full(len(inst.jobs), np.inf)
    for j in slack_jobs.tolist():
        slack_cost_by_job[j] = policy.unscheduled_penalty(inst.jobs[j])
    pooled_set = set(pooled.tolist())
    offset = sum(
        policy.unscheduled_penalty(info)
        for info in inst.jobs
        if info.plannable and not info.fixed and info.index not in pooled_set
    ) + (aux.offset if aux is not None else 0.0)
    pricing = _Pricing(pool, capacity, slack_cost_by_job, n_slots, offset, aux)
    return Prepared(pool, rows, pricing, slack_jobs)


@dataclass
class LagrangianResult:
    bound: float | None
    """Valid lower bound of the slot MILP (None when no step ran, or the model has no start)."""
    prices: np.ndarray
    """The capacity prices (<= 0, type x slot) that gave it."""
    fractional: list[tuple[int, TypeOption, int, float]]
    """The jobs' own choices averaged over the last steps (each start valued by the share of steps
    that chose it): the subgradient's running average nears an LP solution, which alpha-points
    round much better than any single step's choices."""
    steps: int
    seconds: float


LAGRANGE_STALL = 1e-4
"""Relative improvement of the best bound over LAGRANGE_WINDOW steps below which the subgradient
stops: at M, 50-100 steps take the bound to within 0.1-0.2 % of the slot LP's optimum and the
next hundreds add the fourth decimal."""
LAGRANGE_WINDOW = 25


def lagrangian(
    prepared: Prepared,
    *,
    time_limit: float,
    target: float,
    max_steps: int = 400,
    tolerance: float = 1e-4,
) -> LagrangianResult:
    """The Lagrangian bound of the slot model with its capacity rows priced (auxiliary rows at
    zero), by projected subgradient steps with Polyak's rule towards `target` (an incumbent's
    value, so the step shrinks as the bound nears the best plan).

    Each job alone takes its cheapest start at the prices: every price vector y <= 0 gives a valid
    bound, whether or not the steps converged, and the best of them equals the slot LP's optimum
    in the limit (the pricing problem has integral solutions). A step is one pass of array
    arithmetic over the pool (5 ms at M, 70 ms at L), against seconds per simplex round: this is
    the bound a short time limit can afford. Stops at `tolerance` of the target, at the time
    limit, after `max_steps`, or when the best bound stalls.
    """
    t0 = time.perf_counter()
    pricing, pool = prepared.pricing, prepared.pool
    n_slots = pricing.n_slots
    n_types = pricing.capacity.shape[0] // n_slots
    y = np.zeros(n_types * n_slots)
    zero_aux = np.zeros(prepared.rows.n_rows - prepared.rows.aux_base)
    if pool.job_ids.shape[0] == 0:
        return LagrangianResult(None, y, [], 0, time.perf_counter() - t0)
    best, best_y, best_reduced = -np.inf, y, None
    history: list[float] = []
    recent: deque[np.ndarray] = deque(maxlen=LAGRANGE_WINDOW)
    theta, stall, steps = 1.0, 0, 0
    deadline = t0 + time_limit
    last = 0.0
    while steps < max_steps:
        now = time.perf_counter()
        if steps and now + last > deadline:
            break  # (the first step always runs: it is the capacity-free bound)
        reduced, _, bound = pricing.price(y, zero_aux)
        steps += 1
        last = time.perf_counter() - now
        if bound > best + 1e-12 * max(1.0, abs(best)) or not np.isfinite(best):
            best, best_y, best_reduced, stall = bound, y, reduced, 0
        else:
            stall += 1
            if stall >= 3:
                theta, stall = theta / 2, 0
        history.append(best)
        if target - best <= tolerance * max(1.0, abs(target)):
            break
        if len(history) > LAGRANGE_WINDOW and best - history[-LAGRANGE_WINDOW - 1] <= LAGRANGE_STALL * max(
            1.0, abs(best)
        ):
            break
        chosen = pricing.own_choices(reduced)
        recent.append(chosen)
        used = np.zeros((n_types, n_slots + 1))
        np.add.at(used, (pool.type[chosen], pool.start[chosen]), pool.gpus[chosen])
        np.add.at(used, (pool.type[chosen], pool.end[chosen]), -pool.gpus[chosen])
        g = pricing.capacity - np.cumsum(used, axis=1)[:, :n_slots].reshape(-1)
        g = np.where((y < 0) | (g < 0), g, 0.0)  # projected: only over-used or priced rows move
        norm = float(g @ g)
        if norm <= 1e-12:
            break  # the jobs' own choices fit: the bound is the optimum
        aim = max(target, best + 1e-3 * max(1.0, abs(best)))
        y = np.minimum(0.0, y + theta * (aim - bound) / norm * g)
    choices = _starts(pool, pricing.own_choices(best_reduced)) if best_reduced is not None else []
    found = bool(np.isfinite(best))
    return LagrangianResult(float(best) if found else None, best_y, choices, steps, time.perf_counter() - t0)


def solve_colgen(
    inst: Instance,
    policy: Policy,
    *,
    solver: str,
    time_limit: float,
    threads: int = 1,
    forbid_now: frozenset[int] = frozenset(),
    seeds: list[tuple[int, TypeOption, int]] | None = None,
    tolerance: float = 1e-6,
    warmup_rounds: int = 100,
    max_rounds: int | None = None,
    prepared: Prepared | None = None,
    warm_prices: np.ndarray | None = None,
) -> ColgenResult:
    """The slot LP of `build_model` (one start per job, capacity, and the makespan or fairness
    rows) by column generation. `seeds` are (job, option, start) columns that open the master:
    with a schedule's starts among them, the first master optimum is already no worse than it.
    `max_rounds` caps the master solves (then the result is usually not converged). `prepared`
    (of the same forbid_now) saves building the pool again; `warm_prices` (capacity prices of a
    Lagrangian stage, `lagrangian`) replace the warm-up.
    """
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    setup = prepared if prepared is not None else prepare(inst, policy, forbid_now)
    pool, rows, pricing = setup.pool, setup.rows, setup.pricing
    n_types, n_slots = len(inst.types), inst.n_slots
    if pool.job_ids.shape[0] == 0:
        return ColgenResult(None, None, False, 0, 0, seconds=time.perf_counter() - t0)
    cap_base, aux_base = rows.cap_base, rows.aux_base
    n_aux = rows.n_rows - aux_base
    capacity, offset = pricing.capacity, pricing.offset
    slack_jobs, slack_cost_by_job = setup.slack_jobs, pricing.slack_cost_by_job

    # The opening master: the seeds' starts, each job's cheapest start at zero prices, and the
    # starts the jobs choose during the warm-up (which may take a quarter of the time).
    in_master = _seed_mask(pool, seeds or [])
    in_master[_argmin_by_job(pool, pool.cost)] = True
    if warm_prices is not None:
        # Prices from a Lagrangian stage run before: the jobs' choices at them open the master.
        warm_y: np.ndarray | None = warm_prices
        in_master[pricing.own_choices(pricing.price(warm_prices, np.zeros(n_aux))[0])] = True
    else:
        stop_warmup = time.perf_counter() + 0.25 * (deadline - time.perf_counter())
        warm_y = _subgradient(pricing, n_types, in_master, warmup_rounds, stop_warmup)
    master_cols = np.flatnonzero(in_master)
    model = _master_model(pool, master_cols, slack_jobs, slack_cost_by_job, capacity, offset, rows)
    # Pool entry of each master column, in order; -1 for the slacks and the shared column.
    order: list[np.ndarray] = [
        master_cols,
        np.full(model.c.shape[0] - master_cols.shape[0], -1, dtype=np.int64),
    ]

    zero_aux = np.zeros(n_aux)
    best_bound, best_y, best_aux, best_mu = -np.inf, np.zeros(n_types * n_slots), zero_aux, np.zeros(cap_base)
    if warm_y is not None:
        _, best_mu, best_bound = pricing.price(warm_y, zero_aux)
        best_y = warm_y
    objective: float | None = None
    x: np.ndarray | None = None
    converged = False
    rounds = 0
    last_round = 0.0
    session = backends.LpSession(model, solver=solver, threads=threads)
    try:
        while True:
            left = deadline - time.perf_counter()
            # A round is not started when the last one (the master only grows) would not fit:
            # the master solved so far is the answer, as it would be if the round were killed.
            if left <= 0.2 or left < last_round or (max_rounds is not None and rounds >= max_rounds):
                break
            round_started = time.perf_counter()
            sol = session.solve(left, hard_limit=left)
            last_round = time.perf_counter() - round_started
            rounds += 1
            if sol.status != "optimal" or sol.row_dual is None or sol.x is None or sol.objective is None:
                break
            objective, x = sol.objective, sol.x
            master = (
                np.minimum(sol.row_dual[cap_base:aux_base], 0.0),
                np.minimum(sol.row_dual[aux_base:], 0.0),
                sol.row_dual[:cap_base],
            )
            points = [master]
            if np.isfinite(best_bound):
                best = (best_y, best_aux, best_mu)
                points.insert(0, tuple(STABILITY * b + (1 - STABILITY) * m for b, m in zip(best, master)))
            new = np.zeros(0, dtype=np.int64)
            for y, aux_dual, mu in points:
                reduced, per_job, bound = pricing.price(y, aux_dual)
                if bound > best_bound:
                    best_bound, best_y, best_aux, best_mu = bound, y, aux_dual, per_job
                if objective - best_bound <= tolerance * max(1.0, abs(objective)):
                    converged = True
                    break
                new = _entering(pool, reduced, in_master, mu)
                if new.shape[0]:
                    break
            if converged or not new.shape[0]:
                converged = True  # no column prices out at the master's own duals: LP optimal
                break
            in_master[new] = True
            session.add_columns(
                pool.cost[new], _column_block(pool, new, rows), np.zeros(new.shape[0]), np.ones(new.shape[0])
            )
            order.append(new)
    finally:
        session.close()
    if converged and objective is not None:
        best_bound = max(best_bound, objective)
    found = np.isfinite(best_bound)
    return ColgenResult(
        objective=objective,
        bound=float(best_bound) if found else None,
        converged=converged,
        rounds=rounds,
        columns=int(in_master.sum()),
        fractional=_starts(pool, np.concatenate(order), x) if x is not None else [],
        lagrangian=_starts(pool, pricing.own_choices(pricing.price(best_y, best_aux)[0])) if found else [],
        seconds=time.perf_counter() - t0,
    )


def _seed_mask(pool: ColumnPool, seeds: list[tuple[int, TypeOption, int]]) -> np.ndarray:
    """The pool entries of the given (job, option, start) columns."""
    mask = np.zeros(pool.size, dtype=bool)
    group_of = {(info.index, id(opt)): g for g, (info, opt) in enumerate(pool.groups)}
    for j, opt, start in seeds:
        g = group_of.get((j, id(opt)))
        if g is None:
            continue
        k = int(pool.group_first[g]) + start - int(pool.start[pool.group_first[g]])
        if 0 <= k < pool.size and pool.group[k] == g and pool.start[k] == start:
            mask[k] = True
    return mask


def _master_model(
    pool: ColumnPool,
    master_cols: np.ndarray,
    slack_jobs: np.ndarray,
    slack_cost_by_job: np.ndarray,
    capacity: np.ndarray,
    offset: float,
    rows: _Rows,
) -> backends.LinearModel:
    """The opening master LP: the chosen starts, one slack per job that may stay out, and the
    shared column (span or theta) when the policy has auxiliary rows."""
    n_slack, aux = slack_jobs.shape[0], rows.aux
    n_aux = rows.n_rows - rows.aux_base
    blocks = [
        _column_block(pool, master_cols, rows),
        sparse.csc_matrix(
            (np.ones(n_slack), (rows.job_row[slack_jobs], np.arange(n_slack))), shape=(rows.n_rows, n_slack)
        ),
    ]
    costs, upper = (
        [pool.cost[master_cols], slack_cost_by_job[slack_jobs]],
        [np.ones(master_cols.shape[0] + n_slack)],
    )
    if aux is not None:
        blocks.append(
            sparse.csc_matrix(
                (
                    np.full(n_aux, aux.col_coef),
                    (rows.aux_base + np.arange(n_aux), np.zeros(n_aux, dtype=np.int64)),
                ),
                shape=(rows.n_rows, 1),
            )
        )
        costs.append(np.array([aux.col_cost]))
        upper.append(np.array([aux.col_hi]))
    A = sparse.hstack(blocks, format="csc")
    n = A.shape[1]
    cap_rows = rows.aux_base - rows.cap_base
    return backends.LinearModel(
        c=np.concatenate(costs),
        A=A,
        row_lo=np.concatenate([np.ones(rows.cap_base), np.full(cap_rows + n_aux, -np.inf)]),
        row_hi=np.concatenate([np.ones(rows.cap_base), capacity, np.zeros(n_aux)]),
        col_lo=np.zeros(n),
        col_hi=np.concatenate(upper),
        integer=np.zeros(n, dtype=bool),
        offset=offset,
    )


def _starts(
    pool: ColumnPool, entries: np.ndarray, x: np.ndarray | None = None, weights: np.ndarray | None = None
) -> list[tuple[int, TypeOption, int, float]]:
    """(job, option, start, value) of pool entries: with x, of the master columns x uses (entries
    giving each column's pool entry, -1 for slacks); without, each entry at its weight (1)."""
    if x is not None:
        used = np.flatnonzero(x > 1e-6)
        used = used[entries[used] >= 0]
        picked, values = entries[used], x[used]
    else:
        picked = entries
        values = np.ones(entries.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    out = []
    for k, v in zip(picked.tolist(), values.tolist()):
        info, opt = pool.groups[int(pool.group[k])]
        out.append((info.index, opt, int(pool.start[k]), float(v)))
    return out


@dataclass
class _Pricing:
    """Prices every start of the pool at given duals; the Lagrangian bound they give."""

    pool: ColumnPool
    capacity: np.ndarray
    slack_cost_by_job: np.ndarray
    n_slots: int
    offset: float
    aux: _Aux | None

    def price(self, y: np.ndarray, aux_dual: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Each column's cost less its charges at duals y (capacity, <= 0) and aux_dual (auxiliary
        rows, <= 0), each job's cheapest choice at those prices, and the Lagrangian bound.

        With those rows priced, each job alone takes its cheapest start (or stays out) and the
        shared column its cheapest value, so the sum of those minima plus y . capacity bounds the
        slot MILP from below; -inf when the prices make the shared column unbounded.
        """
        pool = self.pool
        per_type = y.reshape(-1, self.n_slots)
        prefix = np.zeros((per_type.shape[0], self.n_slots + 1))
        np.cumsum(per_type, axis=1, out=prefix[:, 1:])
        reduced = pool.cost - pool.gpus * (prefix[pool.type, pool.end] - prefix[pool.type, pool.start])
        shared = 0.0
        if self.aux is not None and self.aux.n_rows:
            aux = self.aux
            reduced = reduced - np.where(aux.row >= 0, aux_dual[np.maximum(aux.row, 0)] * aux.coef, 0.0)
            effective = aux.col_cost - aux.col_coef * float(aux_dual.sum())
            shared = 0.0 if effective >= 0 else effective * aux.col_hi
        per_job = np.minimum(
            np.minimum.reduceat(reduced, pool.job_first), self.slack_cost_by_job[pool.job_ids]
        )
        bound = float(per_job.sum() + y @ self.capacity + self.offset + shared)
        return reduced, per_job, bound if np.isfinite(bound) else -np.inf

    def own_choices(self, reduced: np.ndarray) -> np.ndarray:
        """Pool entries of the start each job takes alone at these prices (none for a job that
        would rather stay out)."""
        chosen = _argmin_by_job(self.pool, reduced)
        return chosen[reduced[chosen] <= self.slack_cost_by_job[self.pool.job[chosen]]]


def _argmin_by_job(pool: ColumnPool, values: np.ndarray) -> np.ndarray:
    best = np.minimum.reduceat(values, pool.job_first)
    hit = values <= np.repeat(best, np.diff(np.r_[pool.job_first, pool.size]))
    first = np.flatnonzero(hit)
    _, keep = np.unique(pool.job[first], return_index=True)
    return first[keep]


def _entering(pool: ColumnPool, reduced: np.ndarray, in_master: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Per job, its cheapest start outside the master whose reduced cost (less the job's dual mu)
    is negative."""
    rc = reduced - np.repeat(mu, np.diff(np.r_[pool.job_first, pool.size]))
    rc = np.where(in_master, np.inf, rc)
    candidates = _argmin_by_job(pool, rc)
    return candidates[rc[candidates] < -1e-7 * np.maximum(1.0, np.abs(pool.cost[candidates]))]


def _subgradient(
    pricing: _Pricing, n_types: int, in_master: np.ndarray, rounds: int, stop_at: float
) -> np.ndarray | None:
    """Lagrangian warm-up: up to `rounds` subgradient steps on the capacity prices.

    Each step costs one pricing pass (tens of milliseconds at L), while a master round costs a
    simplex solve; starting the master from the columns the jobs choose at nearly right prices
    saves most of its rounds. The columns chosen in all but the first steps join the master
    (in_master). The warm-up stops early at `stop_at`.
    """
    if rounds <= 0:
        return None
    pool, capacity, n_slots = pricing.pool, pricing.capacity, pricing.n_slots
    zero_aux = np.zeros(pricing.aux.n_rows if pricing.aux is not None else 0)
    y = np.zeros(n_types * n_slots)
    best_y, best = y, -np.inf
    theta = 1.0
    stall = 0
    recent: deque[np.ndarray] = deque(maxlen=WARMUP_COLUMN_STEPS)
    for _ in range(rounds):
        if time.perf_counter() > stop_at:
            break
        reduced, _, bound = pricing.price(y, zero_aux)
        if not np.isfinite(best) or bound > best + 1e-9 * max(1.0, abs(best)):
            best, best_y, stall = bound, y, 0
        else:
            stall += 1
            if stall >= 3:
                theta, stall = theta / 2, 0
        chosen = pricing.own_choices(reduced)
        # Only the last steps' columns open the master: the first steps' prices are far off, and
        # every column more slows each master solve (at L, all steps' columns made a 65,000-column
        # master whose first CBC solve did not end in 30 s on a loaded machine).
        recent.append(chosen)
        used = np.zeros((n_types, n_slots + 1))
        np.add.at(used, (pool.type[chosen], pool.start[chosen]), pool.gpus[chosen])
        np.add.at(used, (pool.type[chosen], pool.end[chosen]), -pool.gpus[chosen])
        g = capacity - np.cumsum(used, axis=1)[:, :n_slots].reshape(-1)
        # Projected step: prices only on rows that are over-used, or that already carry a price.
        g = np.where((y < 0) | (g < 0), g, 0.0)
        norm = float(g @ g)
        if norm <= 1e-12:
            break
        target = best + 0.05 * max(1.0, abs(best))  # Polyak's step towards a bound 5 % above the best
        step = theta * (target - bound) / norm
        y = np.minimum(0.0, y + step * g)
    for chosen in recent:
        in_master[chosen] = True
    return best_y
