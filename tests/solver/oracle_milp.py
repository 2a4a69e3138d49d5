"""A deliberately naive exact reference: one monolithic time-indexed MILP at node level.

Written from docs/planning.md's specification only (not from the planner). For small instances
(<= ~8 jobs, <= 4 nodes, <= 12 slots). Every job gets, per slot, a binary "runs" and, per node and
slot, an integer "GPUs here"; the rules of the specification are plain rows over those:

- a job takes one GPU type or does not start; it runs in whole slots from its release on;
- each contiguous run keeps its nodes (GPUs per node equal in consecutive running slots), spans at
  most max_nodes nodes, and no node holds more than its usable GPUs in any slot (health,
  maintenance; a cordoned node only for a running job going on in place);
- a job's last slot is the one in which its wall time (work / speed + restart overheads, plus the
  migration penalty on a running job's first restart) is used up, so its real end is linear in the
  variables: end = (last slot + 1) * slot - (slots run * slot - wall);
- the objective is the specification's, minimised lexicographically: weighted misses of meetable
  deadlines first (a second solve with that fixed), then the policy's value.

Solved with scipy.optimize.milp (HiGHS). Nothing here is clever, on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from gpusched.model import Cluster, Job, JobPlan, Placement, Plan, Segment
from gpusched.verify import (
    DEFAULT_MIGRATION_PENALTY,
    TIE,
    Objective,
    meetable,
    node_usable,
    objective_from,
    type_maintenance,
    unstarted_terms,
)

EPS = 1e-4
"""Strictness of 'the job is done in its last slot, not before it': wall times are coarser than this."""


@dataclass
class Exact:
    status: str
    """'optimal', or why not ('time_limit', 'infeasible')."""
    objective: Objective | None
    ends: dict[str, float]
    types: dict[str, str | None]
    runs: dict[str, list[int]]
    plan: Plan | None = None
    """The optimum written as a plan file (the checker must accept it)."""


class _Model:
    """Columns and rows for scipy.optimize.milp, built one by one (clarity over speed)."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[int] = []
        self.names: list[str] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, name: str, lb: float = 0.0, ub: float = 1.0, integer: bool = True) -> int:
        self.names.append(name)
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(1 if integer else 0)
        return len(self.lb) - 1

    def row(self, terms: dict[int, float], lo: float = -np.inf, hi: float = np.inf) -> None:
        self.rows.append((terms, lo, hi))

    def solve(self, cost: dict[int, float], time_limit: float) -> tuple[int, np.ndarray | None]:
        n = len(self.lb)
        r, c, v = [], [], []
        lo, hi = [], []
        for i, (terms, a, b) in enumerate(self.rows):
            for col, val in terms.items():
                r.append(i)
                c.append(col)
                v.append(val)
            lo.append(a)
            hi.append(b)
        matrix = coo_matrix((v, (r, c)), shape=(len(self.rows), n)).tocsr()
        objective = np.zeros(n)
        for col, val in cost.items():
            objective[col] += val
        res = milp(
            c=objective,
            constraints=[LinearConstraint(matrix, lo, hi)],
            integrality=np.array(self.integer),
            bounds=Bounds(self.lb, self.ub),
            options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
        )
        return res.status, (res.x if res.x is not None else None)


def _add(terms: dict[int, float], col: int, val: float) -> None:
    terms[col] = terms.get(col, 0.0) + val


def solve_exact(
    cluster: Cluster,
    jobs: list[Job],
    policy: str,
    horizon: float,
    slot: float,
    *,
    migration_penalty: float = DEFAULT_MIGRATION_PENALTY,
    time_limit: float = 60.0,
    must_start: bool = False,
) -> Exact:
    """The exact optimum; must_start: only plans that start every job that can run at all."""
    T = round(horizon / slot)
    types = cluster.type_map()
    nodes = cluster.nodes
    prices = [t.price_per_hour for t in cluster.gpu_types]
    mean_price, max_price = sum(prices) / len(prices), (max(prices) or 1.0)
    node_of = {n.name: n for n in nodes}
    usable = {(n.name, t): node_usable(cluster, n, t, slot) for n in nodes for t in range(T)}
    m = _Model()
    big = 10 * (horizon + sum(j.total_work(types) / min(_speeds(j, cluster)) + 2 for j in jobs))

    # Per job: its allowed types (with a pool at least as big as the gang).
    allowed: dict[str, list[str]] = {}
    for j in jobs:
        allowed[j.name] = [
            t.name
            for t in cluster.gpu_types
            if j.allows(t)
            and sum(n.gpu_count for n in nodes if n.gpu_type == t.name and (j.running or not n.cordoned))
            >= j.gpus
        ]
    plannable = [j for j in jobs if allowed[j.name]]

    V: dict[str, dict] = {}
    for j in plannable:
        v: dict = {"w": {}, "run": {}, "st": {}, "fin": {}, "g": {}, "R": {}, "mpv": {}, "ks": {}}
        V[j.name] = v
        v["none"] = m.var(f"none[{j.name}]", ub=0.0 if must_start else 1.0)
        for i in allowed[j.name]:
            v["w"][i] = m.var(f"w[{j.name},{i}]")
        m.row({**{c: 1.0 for c in v["w"].values()}, v["none"]: 1.0}, 1, 1)
        rel = 0 if j.running else math.ceil(j.release / slot - 1e-9)
        for t in range(T):
            v["run"][t] = m.var(f"run[{j.name},{t}]", ub=1.0 if t >= rel else 0.0)
            v["st"][t] = m.var(f"st[{j.name},{t}]", ub=1.0 if t >= rel else 0.0)
            v["fin"][t] = m.var(f"fin[{j.name},{t}]", ub=1.0 if t >= rel else 0.0)
            m.row({v["run"][t]: 1.0, v["none"]: 1.0}, hi=1)
        v["thr"] = m.var(f"thr[{j.name}]")
        running = j.running is not None
        v["keep"] = m.var(f"keep[{j.name}]", ub=1.0 if running else 0.0)
        # Starts: exactly the first slot of each run (slot 0 continues a kept running job).
        for t in range(T):
            st, run = v["st"][t], v["run"][t]
            m.row({st: 1.0, run: -1.0}, hi=0)
            if t == 0:
                m.row({st: 1.0, run: -1.0, v["keep"]: 1.0}, lo=0)
                m.row({st: 1.0, v["keep"]: 1.0}, hi=1)
            else:
                prev = v["run"][t - 1]
                m.row({st: 1.0, run: -1.0, prev: 1.0}, lo=0)
                m.row({st: 1.0, prev: 1.0}, hi=1)
        m.row({v["keep"]: 1.0, v["run"][0]: -1.0}, hi=0)
        starts = {v["st"][t]: 1.0 for t in range(T)}
        # One block per job in a plan (spec rule 7): preemption happens between plans, not inside one.
        m.row({**starts, v["keep"]: 1.0}, hi=1)
        if running and not j.preemptible and _nodes_hold(cluster, jobs, j, T, slot, usable):
            m.row({v["keep"]: 1.0}, 1, 1)
        # ks[t]: the kept run is still going in slot t (the only work a cordoned node may hold).
        for t in range(T):
            v["ks"][t] = m.var(f"ks[{j.name},{t}]", ub=1.0 if running else 0.0)
            m.row({v["ks"][t]: 1.0, v["run"][t]: -1.0}, hi=0)
            if t == 0:
                m.row({v["ks"][0]: 1.0, v["keep"]: -1.0}, 0, 0)
            else:
                m.row({v["ks"][t]: 1.0, v["ks"][t - 1]: -1.0}, hi=0)
                m.row({v["ks"][t]: 1.0, v["ks"][t - 1]: -1.0, v["run"][t]: -1.0}, lo=-1)
        # Completion: in exactly one slot, through the horizon, or never started.
        m.row({**{v["fin"][t]: 1.0 for t in range(T)}, v["thr"]: 1.0, v["none"]: 1.0}, 1, 1)
        for t in range(T):
            m.row({v["fin"][t]: 1.0, v["run"][t]: -1.0}, hi=0)
            for u in range(t + 1, T):
                m.row({v["fin"][t]: 1.0, v["run"][u]: 1.0}, hi=1)
        m.row({v["thr"]: 1.0, v["run"][T - 1]: -1.0}, hi=0)
        # Restarts (per type, so the bill can price them) and the migration penalty.
        restart_terms: dict[int, float] = {}
        for i in allowed[j.name]:
            if j.preemptible or running:
                v["R"][i] = m.var(f"R[{j.name},{i}]", ub=T)
                m.row({v["R"][i]: 1.0, v["w"][i]: -float(T)}, hi=0)
                restart_terms[v["R"][i]] = 1.0
            if running:
                v["mpv"][i] = m.var(f"mpv[{j.name},{i}]")
                m.row({v["mpv"][i]: 1.0, v["w"][i]: -1.0}, hi=0)
        if restart_terms:
            # restarts = starts - (1 if it starts, for a new job): sum R - sum st (+ 1 - none) = 0
            terms = {**restart_terms}
            for c in starts:
                _add(terms, c, -1.0)
            if running:
                m.row(terms, 0, 0)
            else:
                _add(terms, v["none"], -1.0)
                m.row(terms, -1, -1)
        if running:
            m.row({**{c: 1.0 for c in v["mpv"].values()}, v["none"]: 1.0, v["keep"]: 1.0}, 1, 1)
        # Wall hours needed, slots run, real end.
        wall: dict[int, float] = {}
        bill: dict[int, float] = {}
        for i in allowed[j.name]:
            need = j.remaining_work(types) / _speed(j, types[i])
            price = types[i].price_per_hour * j.gpus
            _add(wall, v["w"][i], need)
            _add(bill, v["w"][i], price * need)
            if i in v["R"]:
                _add(wall, v["R"][i], j.restart_overhead)
                _add(bill, v["R"][i], price * j.restart_overhead)
            if i in v["mpv"]:
                _add(wall, v["mpv"][i], migration_penalty)
                _add(bill, v["mpv"][i], price * migration_penalty)
        run_terms = {v["run"][t]: slot for t in range(T)}
        # finished: slots*slot >= wall and slots*slot <= wall + slot - EPS; through: slots*slot <= wall - EPS
        t1 = dict(run_terms)
        for c, val in wall.items():
            _add(t1, c, -val)
        m.row({**t1, v["thr"]: big, v["none"]: big}, lo=0)
        m.row({**t1, v["thr"]: -big}, hi=slot - EPS)
        m.row({**t1, v["thr"]: slot}, hi=slot - EPS)  # thr=1: slots*slot - wall <= -EPS
        end_u, bill_u = unstarted_terms(cluster, j, horizon, slot)
        v["E"] = m.var(f"E[{j.name}]", lb=0.0, ub=np.inf, integer=False)
        e_terms = {v["E"]: 1.0, v["thr"]: -horizon, v["none"]: -end_u}
        for t in range(T):
            _add(e_terms, v["fin"][t], -(t + 1) * slot)
            _add(e_terms, v["run"][t], slot)
        for c, val in wall.items():
            _add(e_terms, c, -val)
        m.row(e_terms, 0, 0)
        v["bill"] = bill
        v["bill_u"] = bill_u
        # Nodes: GPUs per node per slot, constant through a run, at most max_nodes nodes.
        for n in nodes:
            if n.gpu_type not in allowed[j.name]:
                continue
            held = j.running.nodes.get(n.name, 0) if j.running else 0
            for t in range(T):
                hi = j.gpus if not n.cordoned else held
                if hi == 0:
                    continue
                g = m.var(f"g[{j.name},{n.name},{t}]", ub=hi)
                v["g"][(n.name, t)] = g
                m.row({g: 1.0, v["w"][n.gpu_type]: -float(j.gpus)}, hi=0)
                if n.cordoned:
                    m.row({g: 1.0, v["ks"][t]: -float(held)}, hi=0)
            if held and (n.name, 0) in v["g"]:
                m.row({v["g"][(n.name, 0)]: 1.0, v["keep"]: -float(held)}, lo=0)
        for t in range(T):
            gs = {v["g"][(n.name, t)]: 1.0 for n in nodes if (n.name, t) in v["g"]}
            m.row({**gs, v["run"][t]: -float(j.gpus)}, 0, 0)
            if j.max_nodes is not None:
                uses = {}
                for n in nodes:
                    if (n.name, t) in v["g"]:
                        u = m.var(f"use[{j.name},{n.name},{t}]")
                        m.row({v["g"][(n.name, t)]: 1.0, u: -float(j.gpus)}, hi=0)
                        uses[u] = 1.0
                m.row(uses, hi=j.max_nodes)
            if t + 1 < T:
                for n in nodes:
                    a, b = v["g"].get((n.name, t)), v["g"].get((n.name, t + 1))
                    both = {v["run"][t]: float(j.gpus), v["run"][t + 1]: float(j.gpus)}
                    diff: dict[int, float] = dict(both)
                    if a is not None:
                        _add(diff, a, 1.0)
                    if b is not None:
                        _add(diff, b, -1.0)
                    m.row(diff, hi=2 * j.gpus)
                    diff2: dict[int, float] = dict(both)
                    if a is not None:
                        _add(diff2, a, -1.0)
                    if b is not None:
                        _add(diff2, b, 1.0)
                    m.row(diff2, hi=2 * j.gpus)
        # Deadlines: a miss flag for every deadline some choice could meet.
        if j.deadline is not None:
            if meetable(cluster, j, horizon, slot, migration_penalty):
                v["miss"] = m.var(f"miss[{j.name}]")
                m.row({v["E"]: 1.0, v["miss"]: -big}, hi=j.deadline + 1e-6)
            v["tard"] = m.var(f"tard[{j.name}]", lb=0.0, ub=np.inf, integer=False)
            m.row({v["tard"]: 1.0, v["E"]: -1.0}, lo=-j.deadline)

    # Node capacity (type-level maintenance takes GPUs from nodes of our choosing).
    for t in range(T):
        rem: dict[str, int] = {}
        for gtype in cluster.gpu_types:
            k = type_maintenance(cluster, gtype.name, t, slot)
            if k:
                cols = {}
                for n in nodes:
                    if n.gpu_type == gtype.name:
                        rem[n.name] = m.var(f"rem[{n.name},{t}]", ub=usable[(n.name, t)])
                        cols[rem[n.name]] = 1.0
                m.row(cols, lo=k)
        for n in nodes:
            terms = {V[j.name]["g"][(n.name, t)]: 1.0 for j in plannable if (n.name, t) in V[j.name]["g"]}
            if n.name in rem:
                terms[rem[n.name]] = 1.0
            if terms:
                m.row(terms, hi=usable[(n.name, t)])

    # Objective pieces (constants of unplannable jobs do not change the argmin).
    miss_obj = {V[j.name]["miss"]: j.priority for j in plannable if "miss" in V[j.name]}
    bill_obj: dict[int, float] = {}
    end_w: dict[int, float] = {}
    for j in plannable:
        v = V[j.name]
        for c, val in v["bill"].items():
            _add(bill_obj, c, val)
        _add(bill_obj, v["none"], v["bill_u"])
        _add(end_w, v["E"], j.priority)
    jct_full = {c: val for c, val in end_w.items()}
    for c, val in bill_obj.items():
        _add(jct_full, c, TIE * val / max_price)
    if policy == "cost":
        value = dict(bill_obj)
        for j in plannable:
            _add(value, V[j.name]["E"], TIE * mean_price * j.priority * j.gpus)
    elif policy == "jct":
        value = jct_full
    elif policy == "makespan":
        span = m.var("span", lb=0.0, ub=np.inf, integer=False)
        for j in plannable:
            m.row({span: 1.0, V[j.name]["E"]: -1.0}, lo=0)
        for j in jobs:
            if j not in plannable:
                m.row({span: 1.0}, lo=unstarted_terms(cluster, j, horizon, slot)[0])
        value = {span: 1.0}
        for c, val in jct_full.items():
            _add(value, c, TIE * val)
    elif policy == "deadline":
        value = {V[j.name]["tard"]: j.priority for j in plannable if "tard" in V[j.name]}
        for c, val in jct_full.items():
            _add(value, c, TIE * val)
    else:
        raise ValueError(f"policy {policy!r} is not covered by the oracle")

    status, x = m.solve(miss_obj, time_limit)
    if status != 0 or x is None:
        return Exact({1: "time_limit", 2: "infeasible"}.get(status, str(status)), None, {}, {}, {})
    if miss_obj:
        best = sum(val * x[c] for c, val in miss_obj.items())
        m.row(dict(miss_obj), hi=best + 1e-6)
    status, x = m.solve(value, time_limit)
    if status != 0 or x is None:
        return Exact({1: "time_limit", 2: "infeasible"}.get(status, str(status)), None, {}, {}, {})

    ends: dict[str, float] = {}
    bills: dict[str, float] = {}
    chosen: dict[str, str | None] = {}
    runs: dict[str, list[int]] = {}
    unstarted: list[str] = []
    rows: list[JobPlan] = []
    for j in jobs:
        if j not in plannable or x[V[j.name]["none"]] > 0.5:
            unstarted.append(j.name)
            ends[j.name], bills[j.name] = unstarted_terms(cluster, j, horizon, slot)
            chosen[j.name] = None
            runs[j.name] = []
            rows.append(JobPlan(job=j.name, status="unscheduled", reason="no room", reason_code="capacity"))
            continue
        v = V[j.name]
        ends[j.name] = float(x[v["E"]])
        bills[j.name] = float(sum(val * x[c] for c, val in v["bill"].items()))
        chosen[j.name] = next(i for i, c in v["w"].items() if x[c] > 0.5)
        runs[j.name] = [t for t in range(T) if x[v["run"][t]] > 0.5]
        rows.append(_job_plan(j, v, x, T, slot, horizon, ends[j.name], bills[j.name], chosen[j.name]))
    objective = objective_from(
        cluster, jobs, ends, bills, policy, horizon, slot, migration_penalty, unstarted
    )
    _ = node_of
    missed = any(r.deadline_met is False for r in rows) or any(
        r.status == "unscheduled" and j.deadline is not None for r, j in zip(rows, jobs, strict=True)
    )
    stopped = any(
        j.running is not None
        and not j.preemptible
        and (r.preempted or r.migrated or r.status == "unscheduled")
        for r, j in zip(rows, jobs, strict=True)
    )
    missed = missed or stopped
    plan = Plan(
        policy=policy,  # type: ignore[arg-type]
        solver="oracle",
        status="infeasible" if missed else "optimal",
        horizon=horizon,
        slot=slot,
        objective=objective.value,
        lower_bound=objective.value,
        gap=0.0,
        solve_time_s=0.0,
        total_cost=sum(r.cost for r in rows),
        jobs=rows,
    )
    return Exact("optimal", objective, ends, chosen, runs, plan)


def _job_plan(
    j: Job,
    v: dict,
    x: np.ndarray,
    T: int,
    slot: float,
    horizon: float,
    end: float,
    bill: float,
    gtype: str | None,
) -> JobPlan:
    """The solution of one job as the plan file writes it."""
    on = [t for t in range(T) if x[v["run"][t]] > 0.5]
    blocks: list[list[int]] = []
    for t in on:
        if blocks and blocks[-1][-1] == t - 1:
            blocks[-1].append(t)
        else:
            blocks.append([t])
    segments = [Segment(start=b[0] * slot, end=(b[-1] + 1) * slot) for b in blocks]
    segments[-1] = Segment(start=segments[-1].start, end=min(end, horizon))
    keep = x[v["keep"]] > 0.5
    placement = [
        Placement(node=name, gpus=round(x[c]))
        for (name, t), c in v["g"].items()
        if t == 0 and round(x[c]) > 0
    ]
    restarts = round(sum(x[c] for c in v["R"].values()))
    deadline_met = None if j.deadline is None else end <= j.deadline + 1e-6
    return JobPlan(
        job=j.name,
        status="running" if j.running else "scheduled",
        gpu_type=gtype,
        gpus=j.gpus,
        start=segments[0].start,
        end=end,
        finishes=end <= horizon + 1e-6,
        segments=segments,
        placement=placement,
        cost=bill,
        preempted=bool(j.running and not keep and 0 not in on),
        migrated=bool(j.running and not keep and 0 in on),
        restarts=restarts,
        deadline_met=deadline_met,
        tardiness=0.0 if j.deadline is None else max(0.0, end - j.deadline),
        reason=None if deadline_met is not False else "late",
    )


def _speed(job: Job, gtype) -> float:  # type: ignore[no-untyped-def]
    return job.speeds.get(gtype.name, gtype.speed)


def _speeds(job: Job, cluster: Cluster) -> list[float]:
    return [_speed(job, t) for t in cluster.gpu_types]


def _nodes_hold(
    cluster: Cluster, jobs: list[Job], job: Job, T: int, slot: float, usable: dict[tuple[str, int], int]
) -> bool:
    """Can a non-preemptible running job's nodes keep it, and every other such job there, until done?"""
    types = cluster.type_map()
    node_type = {n.name: n.gpu_type for n in cluster.nodes}
    held: dict[tuple[str, int], int] = {}
    for other in jobs:
        if other.running is None or other.preemptible:
            continue
        gtype = types[node_type[next(iter(other.running.nodes))]]
        last = min(T, math.ceil(other.remaining_work(types) / _speed(other, gtype) / slot - 1e-9)) - 1
        for name, g in other.running.nodes.items():
            for t in range(last + 1):
                held[(name, t)] = held.get((name, t), 0) + g
    assert job.running is not None
    return all(held.get((name, t), 0) <= usable[(name, t)] for name in job.running.nodes for t in range(T))
