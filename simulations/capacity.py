"""Capacity planning: the cheapest cluster (GPU types, node counts, reserved vs on-demand) that meets
a queueing/JCT SLO for a workload, validated by simulation.

1. Sizing MILP (PuLP/CBC): integer reserved nodes r_k and on-demand nodes o_k per GPU type k.
   Capacity, in reference-GPU units, must cover the workload's mean demand D (sum of gpus x work
   over the trace span) at a target utilisation u:  sum_k gpus_per_node x speed_k (r_k + o_k) >= D/u;
   the largest gang must fit on one type (binary b_k); the budget, when given, caps the bill.
   Monthly bill = reserved nodes x GPUs x 730 h x price x (1 - discount) + on-demand nodes x GPUs x
   730 h x price x (expected busy share u). One MILP per u in a sweep gives the candidates.
2. Each candidate becomes a Cluster and the workload is simulated on it (the chosen policy); its SLO
   metric is measured. The cheapest candidate that meets the SLO is recommended; all candidates form
   the cost-versus-delay frontier (PNG).
3. What-ifs on the recommendation: "+16 H100" (add GPUs of a type), "lose node NAME",
   "demand +30%" (arrivals compressed by 1.3), each re-simulated and priced.
"""

from __future__ import annotations

import math
import re
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
    from gpusched.units import parse_duration_hours

    m = SLO_RE.match(text)
    if m is None:
        raise ValueError(f"expected e.g. 'p95_queue<=1h' or 'avg_jct<=4h' (got {text!r})")
    limit = parse_duration_hours(m.group(3))
    if limit <= 0:
        raise ValueError(f"the limit must be positive (got {text!r})")
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


def workload_demand(jobs: list[TraceJob]) -> tuple[float, int, float]:
    """(mean reference-GPU demand, largest gang, span in hours)."""
    start = min(j.release for j in jobs)
    end = max(j.release + j.work for j in jobs)
    span = max(end - start, 1e-6)
    return sum(j.gpus * j.work for j in jobs) / span, max(j.gpus for j in jobs), span


def monthly_bill(c: Candidate, types: dict[str, GpuType], per_node: int, discount: float,
                 on_demand_util: float) -> float:
    bill = 0.0
    for t, gt in types.items():
        bill += c.reserved.get(t, 0) * per_node * HOURS_PER_MONTH * gt.price_per_hour * (1 - discount)
        bill += c.on_demand.get(t, 0) * per_node * HOURS_PER_MONTH * gt.price_per_hour * on_demand_util
    return bill


def size(types: list[GpuType], demand: float, biggest: int, per_node: int, util: float, discount: float,
         budget: float | None = None, reserved_share: float = 0.7) -> Candidate | None:
    """The cheapest node mix for one target utilisation (None when infeasible within the budget).

    At least `reserved_share` of the capacity is reserved (steady base load); the rest may be
    on-demand, billed at its expected busy share `util`.
    """
    import pulp

    prob = pulp.LpProblem("capacity", pulp.LpMinimize)
    r = {t.name: pulp.LpVariable(f"r_{i}", lowBound=0, cat="Integer") for i, t in enumerate(types)}
    o = {t.name: pulp.LpVariable(f"o_{i}", lowBound=0, cat="Integer") for i, t in enumerate(types)}
    b = {t.name: pulp.LpVariable(f"b_{i}", cat="Binary") for i, t in enumerate(types)}
    cost = {
        t.name: per_node * HOURS_PER_MONTH * t.price_per_hour for t in types
    }
    prob += pulp.lpSum(cost[t.name] * ((1 - discount) * r[t.name] + util * o[t.name]) for t in types)
    capacity = pulp.lpSum(per_node * t.speed * (r[t.name] + o[t.name]) for t in types)
    reserved_cap = pulp.lpSum(per_node * t.speed * r[t.name] for t in types)
    prob += capacity >= demand / util
    prob += reserved_cap >= reserved_share * demand / util
    need_nodes = math.ceil(biggest / per_node)
    for t in types:
        prob += r[t.name] + o[t.name] >= need_nodes * b[t.name]
    prob += pulp.lpSum(b.values()) >= 1
    if budget is not None:
        prob += pulp.lpSum(cost[t.name] * ((1 - discount) * r[t.name] + util * o[t.name]) for t in types) <= budget
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    if pulp.LpStatus[prob.status] != "Optimal":
        return None
    return Candidate(
        reserved={t: round(v.value() or 0) for t, v in r.items()},
        on_demand={t: round(v.value() or 0) for t, v in o.items()},
        target_util=util,
        label=f"u={util:.0%}",
    )


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


def frontier_png(points: list[tuple[float, float, str, bool]], slo: Slo) -> bytes:
    """Cost-versus-delay scatter: (monthly bill, SLO metric, label, meets)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cost, value, label, meets in points:
        ax.scatter([cost], [value], color="tab:green" if meets else "tab:red")
        ax.annotate(label, (cost, value), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
    ax.axhline(slo.limit_h, linestyle="--", color="grey", label=f"SLO {slo.text}")
    ax.set_xlabel("monthly bill ($)")
    ax.set_ylabel(f"{slo.metric} (h)")
    ax.set_title("Cost versus delay of the candidate clusters")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
