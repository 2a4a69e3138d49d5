"""Capacity planning: the cheapest cluster (GPU types, node counts, reserved vs on-demand) that meets
a queueing/JCT SLO for a workload, validated by simulation.

1. Sizing MILP (PuLP/CBC): integer reserved nodes r_k and on-demand nodes o_k per GPU type k.
   Jobs are grouped into demand classes c by the candidate types they may run on (openb's gpu_spec,
   a generic CSV's gpu_types), their per-type speeds and the nodes their gang needs; D_c is the
   class's mean demand in reference GPUs (sum of gpus x gpu share x work over the trace span).
   Flow variables y_ck >= 0 (reference GPUs of class c served by type k, only for allowed k) carry
   each class's demand (sum_k y_ck = D_c) to types whose capacity at target utilisation u covers the
   GPUs that flow needs: gpus_per_node x u x (r_k + o_k) >= sum_c y_ck / speed_ck. Pooling all
   demand into one speed-weighted capacity instead would size a cluster of the cheapest type per
   unit of work even for jobs that may not run on it, which the simulation then rejects.
   At least `reserved_share` of each type's load is on reserved nodes. A class whose gangs span
   m >= 2 nodes may only flow to a type it picks (binary b_ck, y_ck <= D_c b_ck) that has at least m
   nodes; the budget, when given, caps the bill.
   Monthly bill = reserved nodes x GPUs x 730 h x price x (1 - discount) + on-demand nodes x GPUs x
   730 h x price x (expected busy share u). One MILP per u in a sweep gives the candidates.
2. Each candidate becomes a Cluster and the workload is simulated on it (the chosen policy); its SLO
   metric is measured. The sweep's points are coarse (one u to the next can add several nodes), so
   `refine` then searches between them: from the dearest candidate that misses the SLO yet costs
   less than the cheapest one meeting it, it adds one on-demand node at a time, of the type that
   cuts the metric most per dollar (each trial simulated), until the SLO is met or the bill reaches
   the best one's. The cheapest candidate that meets the SLO is recommended; all candidates form
   the cost-versus-delay frontier (PNG).
3. What-ifs on the recommendation: "+16 H100" (add GPUs of a type), "lose node NAME",
   "demand +30%" (arrivals compressed by 1.3), each re-simulated and priced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gpusched.model import Cluster, GpuType, Node
from gpusched.simulations.workload import TraceJob

HOURS_PER_MONTH = 730.0
SLO_RE = re.compile(r"^\s*(avg|p50|p95|p99)_(queue|jct)\s*<=\s*(.+?)\s*$")


@dataclass(frozen=True)
class Slo:
    metric: str
    """summary key, e.g. p95_queue_h"""
    limit_h: float
    text: str


def parse_slo(text: str) -> Slo:
    from gpusched.safeio import shown
    from gpusched.units import parse_duration_hours

    m = SLO_RE.match(text)
    if m is None:
        raise ValueError(f"{shown(text)} is not an objective (expected e.g. 'p95_queue<=1h' or 'avg_jct<=4h')")
    limit = parse_duration_hours(m.group(3))
    if limit <= 0:
        raise ValueError(f"the limit must be positive (got {shown(text)})")
    return Slo(metric=f"{m.group(1)}_{m.group(2)}_h", limit_h=limit, text=text.strip())


@dataclass
class Candidate:
    reserved: dict[str, int]
    on_demand: dict[str, int]
    target_util: float
    label: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def nodes(self, gpu_type: str) -> int:
        return self.reserved.get(gpu_type, 0) + self.on_demand.get(gpu_type, 0)

    def describe(self) -> str:
        parts = []
        for t in sorted(set(self.reserved) | set(self.on_demand)):
            r, o = self.reserved.get(t, 0), self.on_demand.get(t, 0)
            if r or o:
                parts.append(f"{t}: {r} reserved + {o} on-demand nodes")
        return "; ".join(parts) or "empty"


def _span(jobs: list[TraceJob]) -> float:
    start = min(j.release for j in jobs)
    end = max(j.release + j.work for j in jobs)
    return max(end - start, 1e-6)


def _gpu_share(job: TraceJob) -> float:
    """GPUs the job occupies: a shared GPU (openb gpu_milli < 1000) counts by its thousandths."""
    return job.gpus * job.gpu_milli / 1000


def workload_demand(jobs: list[TraceJob]) -> tuple[float, int, float]:
    """(mean reference-GPU demand, largest gang, span in hours)."""
    span = _span(jobs)
    return sum(_gpu_share(j) * j.work for j in jobs) / span, max(j.gpus for j in jobs), span


@dataclass(frozen=True)
class DemandClass:
    """Jobs the sizing model treats alike: same allowed candidate types, same per-type speeds, and
    gangs that need the same number of nodes."""

    types: tuple[str, ...] | None
    """Candidate types the jobs may run on; None: any."""
    demand: float
    """Mean demand in reference GPUs (GPU-hours of work at speed 1.0 per hour of the trace span)."""
    biggest: int = 1
    """Largest gang of the class (GPUs)."""
    speeds: tuple[tuple[str, float], ...] = ()
    """Per-type job speeds overriding the type's speed (Gavel throughputs)."""
    jobs: int = 0

    def allowed(self, types: list[GpuType]) -> list[GpuType]:
        return [t for t in types if self.types is None or t.name in self.types]

    def speed(self, t: GpuType) -> float:
        return dict(self.speeds).get(t.name, t.speed)

    def describe(self) -> str:
        where = "any type" if self.types is None else "|".join(self.types)
        return f"{self.jobs} jobs on {where}, largest gang {self.biggest}: {self.demand:.2f} reference GPUs"


def demand_classes(jobs: list[TraceJob], types: list[GpuType], per_node: int) -> list[DemandClass]:
    """The workload's demand grouped by allowed candidate types, speeds and nodes per gang.

    A job's allowed types are cut to the candidates; ValueError names jobs left with none (the
    cluster could never run them, whatever its size)."""
    names = [t.name for t in types]
    span = _span(jobs)
    groups: dict[tuple[tuple[str, ...] | None, tuple[tuple[str, float], ...], int], list[TraceJob]] = {}
    for j in jobs:
        allowed: tuple[str, ...] | None = None
        if j.gpu_types is not None:
            allowed = tuple(n for n in names if n in j.gpu_types)
            if not allowed:
                stuck = [x for x in jobs if x.gpu_types == j.gpu_types]
                raise ValueError(
                    f"{len(stuck)} jobs (e.g. {j.name}) may only run on {'|'.join(j.gpu_types)}, none of which "
                    f"is a candidate GPU type ({', '.join(names)})"
                )
            if len(allowed) == len(names):
                allowed = None
        speeds = tuple(sorted((k, v) for k, v in j.speeds.items() if k in names))
        key = (allowed, speeds, math.ceil(j.gpus / per_node))
        groups.setdefault(key, []).append(j)
    return [
        DemandClass(types=allowed, demand=sum(_gpu_share(j) * j.work for j in group) / span,
                    biggest=max(j.gpus for j in group), speeds=speeds, jobs=len(group))
        for (allowed, speeds, _), group in sorted(groups.items(), key=lambda kv: repr(kv[0]))
    ]


def monthly_bill(c: Candidate, types: dict[str, GpuType], per_node: int, discount: float,
                 on_demand_util: float) -> float:
    bill = 0.0
    for t, gt in types.items():
        bill += c.reserved.get(t, 0) * per_node * HOURS_PER_MONTH * gt.price_per_hour * (1 - discount)
        bill += c.on_demand.get(t, 0) * per_node * HOURS_PER_MONTH * gt.price_per_hour * on_demand_util
    return bill


def size(types: list[GpuType], classes: list[DemandClass], per_node: int, util: float, discount: float,
         budget: float | None = None, reserved_share: float = 0.7) -> Candidate | None:
    """The cheapest node mix for one target utilisation (None when infeasible within the budget).

    Each demand class flows to the types it may use (see the module docstring); on every type at
    least `reserved_share` of its load is reserved (steady base load), the rest may be on-demand,
    billed at its expected busy share `util`. ValueError when a class may use none of `types`.
    """
    import pulp

    prob = pulp.LpProblem("capacity", pulp.LpMinimize)
    r = {t.name: pulp.LpVariable(f"r_{i}", lowBound=0, cat="Integer") for i, t in enumerate(types)}
    o = {t.name: pulp.LpVariable(f"o_{i}", lowBound=0, cat="Integer") for i, t in enumerate(types)}
    cost = {t.name: per_node * HOURS_PER_MONTH * t.price_per_hour for t in types}
    bill = pulp.lpSum(cost[t.name] * ((1 - discount) * r[t.name] + util * o[t.name]) for t in types)
    prob += bill
    index = {t.name: i for i, t in enumerate(types)}
    load: dict[str, list[Any]] = {t.name: [] for t in types}  # GPUs of type k busy serving its flows
    for c_i, c in enumerate(classes):
        allowed = c.allowed(types)
        if not allowed:
            raise ValueError(f"demand class {c.describe()} may use none of {', '.join(t.name for t in types)}")
        y = {t.name: pulp.LpVariable(f"y_{c_i}_{index[t.name]}", lowBound=0) for t in allowed}
        prob += pulp.lpSum(y.values()) >= c.demand
        for t in allowed:
            load[t.name].append((1 / c.speed(t)) * y[t.name])
        need_nodes = math.ceil(c.biggest / per_node)
        if need_nodes >= 2:
            # The class's gangs span nodes: it is served only by a type it picks with enough nodes.
            b = {t.name: pulp.LpVariable(f"b_{c_i}_{index[t.name]}", cat="Binary") for t in allowed}
            prob += pulp.lpSum(b.values()) >= 1
            for t in allowed:
                prob += y[t.name] <= c.demand * b[t.name]
                prob += r[t.name] + o[t.name] >= need_nodes * b[t.name]
    for t in types:
        busy = pulp.lpSum(load[t.name])
        prob += per_node * util * (r[t.name] + o[t.name]) >= busy
        prob += per_node * util * r[t.name] >= reserved_share * busy
    if budget is not None:
        prob += bill <= budget
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    if pulp.LpStatus[prob.status] != "Optimal":
        return None
    return Candidate(
        reserved={t: round(v.value() or 0) for t, v in r.items()},
        on_demand={t: round(v.value() or 0) for t, v in o.items()},
        target_util=util,
        label=f"u={util:.0%}",
    )


Evaluate = Callable[[Candidate], dict[str, Any]]
"""Simulates a candidate: {"value": SLO metric, "meets": bool, "bill": $ per month, ...}."""

EvaluateMany = Callable[[list[Candidate]], list[dict[str, Any]]]
"""Simulates a batch of candidates (in parallel where it can), results in the batch's order."""


def refine(
    candidates: list[Candidate],
    evaluate: Evaluate,
    type_names: list[str],
    budget: float | None = None,
    max_trials: int = 24,
    evaluate_many: EvaluateMany | None = None,
) -> list[Candidate]:
    """New candidates between the sweep's points, each simulated; see step 2 of the module docstring.

    Greedy by marginal value: each step tries +1 on-demand node of every type. A trial that meets
    the SLO lowers the ceiling (the best bill so far); the search goes on from the trial, among
    those still missing it and below the ceiling, with the largest metric cut per extra dollar, as
    a cheaper fit may lie that way. It stops when no trial helps, when every trial costs at least
    the ceiling (or the budget), or after `max_trials` simulations (each is a full simulation).
    One step's trials (one per type) do not depend on each other: they go to `evaluate_many` as one
    batch when given (the same trials, the same results, simulated side by side).
    """
    many: EvaluateMany = evaluate_many or (lambda batch: [evaluate(c) for c in batch])

    def bill(c: Candidate) -> float:
        return float(c.metrics["bill"])

    meeting = [c for c in candidates if c.metrics.get("meets")]
    ceiling = min((bill(c) for c in meeting), default=math.inf)
    if budget is not None:
        ceiling = min(ceiling, budget)
    below = [c for c in candidates if not c.metrics.get("meets") and bill(c) < ceiling]
    if not below or not math.isfinite(ceiling):
        return []
    seen = {c.describe() for c in candidates}
    current = max(below, key=bill)
    found: list[Candidate] = []
    trials = 0
    while trials < max_trials:
        batch: list[Candidate] = []
        for name in type_names:
            if trials >= max_trials:
                break
            trial = replace(
                current,
                on_demand={**current.on_demand, name: current.on_demand.get(name, 0) + 1},
                label="refined",
                metrics={},
            )
            if trial.describe() in seen:
                continue
            seen.add(trial.describe())
            batch.append(trial)
            trials += 1
        for trial, metrics in zip(batch, many(batch)):
            trial.metrics = metrics
        options = [trial for trial in batch if bill(trial) < ceiling]
        winners = [c for c in options if c.metrics["meets"]]
        if winners:  # a new best bill; cheaper fits may still lie along the cheaper trials
            win = min(winners, key=bill)
            found.append(win)
            ceiling = bill(win)
        options = [c for c in options if not c.metrics["meets"] and bill(c) < ceiling]
        if not options:
            break
        gains = [_gain(current, c) for c in options]
        best_gain = max(gains)
        if best_gain <= 0:
            break
        step = options[gains.index(best_gain)]
        found.append(step)
        current = step
    return found


def _gain(base: Candidate, trial: Candidate) -> float:
    """Metric cut per extra dollar a month (NaN metrics, from unfinished runs, never gain)."""
    cut = float(base.metrics["value"]) - float(trial.metrics["value"])
    extra = float(trial.metrics["bill"]) - float(base.metrics["bill"])
    return cut / max(extra, 1e-9) if cut == cut else -math.inf


def to_cluster(c: Candidate, types: list[GpuType], per_node: int) -> Cluster:
    nodes = []
    for t in types:
        for i in range(c.reserved.get(t.name, 0)):
            nodes.append(Node(name=f"{t.name.lower()}-r{i}", gpu_type=t.name, gpu_count=per_node))
        for i in range(c.on_demand.get(t.name, 0)):
            nodes.append(Node(name=f"{t.name.lower()}-o{i}", gpu_type=t.name, gpu_count=per_node))
    return Cluster(gpu_types=types, nodes=nodes)


WHAT_IF_ADD = re.compile(r"^\s*\+\s*(\d+)\s+(\S+)\s*$")
WHAT_IF_LOSE = re.compile(r"^\s*lose\s+node\s+(\S+)\s*$", re.I)
WHAT_IF_DEMAND = re.compile(r"^\s*demand\s*([+-]\s*\d+(?:\.\d+)?)\s*%\s*$", re.I)


def apply_what_if(text: str, cluster: Cluster, jobs: list[TraceJob], per_node: int
                  ) -> tuple[Cluster, list[TraceJob]]:
    """'+16 H100' adds GPUs (as nodes of `per_node`), 'lose node NAME' removes a node,
    'demand +30%' scales the arrival rate (releases divided by 1.3). ValueError on anything else."""
    if m := WHAT_IF_ADD.match(text):
        count, type_name = int(m.group(1)), m.group(2)
        if type_name not in cluster.type_map():
            raise ValueError(f"unknown GPU type {type_name!r} (known: {', '.join(cluster.type_map())})")
        nodes = list(cluster.nodes)
        full, rest = divmod(count, per_node)
        for i in range(full + (1 if rest else 0)):
            nodes.append(Node(name=f"whatif-{type_name.lower()}-{i}", gpu_type=type_name,
                              gpu_count=per_node if i < full else rest))
        return cluster.model_copy(update={"nodes": nodes}), jobs
    if m := WHAT_IF_LOSE.match(text):
        name = m.group(1)
        if name not in {n.name for n in cluster.nodes}:
            raise ValueError(f"unknown node {name!r} (nodes: {', '.join(n.name for n in cluster.nodes[:6])}...)")
        return cluster.model_copy(update={"nodes": [n for n in cluster.nodes if n.name != name]}), jobs
    if m := WHAT_IF_DEMAND.match(text):
        factor = 1 + float(m.group(1).replace(" ", "")) / 100
        if factor <= 0:
            raise ValueError(f"demand change must leave some demand (got {text!r})")
        return cluster, [replace(j, release=j.release / factor,
                                 deadline=None if j.deadline is None else j.deadline / factor) for j in jobs]
    raise ValueError(f"expected '+16 H100', 'lose node NAME' or 'demand +30%' (got {text!r})")


def frontier_png(points: list[tuple[float, float, str, bool]], slo: Slo,
                 recommended: tuple[float, float] | None = None, budget: float | None = None) -> bytes:
    """Cost-versus-delay picture of (monthly bill, SLO metric, label, meets): simulations/frontier_chart.py."""
    from gpusched.simulations.frontier_chart import frontier_png as draw

    return draw(points, slo.text, slo.limit_h, slo.metric, recommended, budget)
