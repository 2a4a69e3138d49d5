"""The sizing loop behind `gpusched capacity`: candidates from the MILP sweep, each validated by simulation,
refined between the sweep's points, the cheapest one meeting the SLO recommended, and its what-ifs.

The models and the single steps (the sizing MILP, refine, what-ifs, the bill) are simulations/capacity.py;
this module runs them in order, so that the command line (simulations/cli.py) only parses options and
prints, and a test or notebook gets the same answer as the command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gpusched.model import Cluster, GpuType
from gpusched.simulations import capacity as cap
from gpusched.simulations.workload import TraceJob

Progress = Callable[[str, int, "int | None"], None]
"""progress(stage, simulations done, simulations planned or None when open-ended)."""

EXTRA_HEADROOM_STEPS = 8
"""When no swept candidate meets the SLO: at most this many more, each at 1/1.5 the utilisation."""


class SizingError(ValueError):
    """The request cannot be sized; `field` names the request field at fault (workload, budget, what_ifs)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SizingRequest:
    jobs: Sequence[TraceJob]
    types: Sequence[GpuType]
    """Candidate GPU types with their prices and speeds."""
    slo: cap.Slo
    policy: str = "fifo-backfill"
    """Scheduling policy the candidates are simulated under."""
    node_gpus: int = 8
    utilisations: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)
    """Target utilisations swept by the sizing MILP."""
    reserved_discount: float = 0.4
    budget: float | None = None
    """Monthly budget ($); dearer candidates are dropped."""
    what_ifs: Sequence[str] = ()
    """Changes re-simulated on the recommendation: '+16 H100', 'lose node NAME', 'demand +30%'."""
    workers: int | None = None
    """Local processes simulating candidates side by side (None: one per core; 1: in this process)."""
    backend: str = "local"
    """'local' (processes on this machine), or 'dask' / 'ray' to run on the user's cluster."""
    address: Any = None
    """The Dask scheduler (or a distributed.Client) / Ray address for those backends."""


@dataclass
class Sizing:
    """The outcome: every simulated candidate, the recommendation (None: none meets the SLO)."""

    request: SizingRequest
    demand: float
    """Mean demand in reference GPUs."""
    span_h: float
    classes: list[cap.DemandClass]
    candidates: list[cap.Candidate]
    best: cap.Candidate | None
    what_ifs: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """capacity.json."""
        out: dict[str, Any] = {
            "slo": self.request.slo.text,
            "policy": self.request.policy,
            "jobs": len(self.request.jobs),
            "mean_demand_ref_gpus": self.demand,
            "span_h": self.span_h,
            "demand_classes": [
                {
                    "gpu_types": dc.types,
                    "jobs": dc.jobs,
                    "largest_gang": dc.biggest,
                    "mean_demand_ref_gpus": dc.demand,
                }
                for dc in self.classes
            ],
            "candidates": [
                {"label": c.label, "reserved": c.reserved, "on_demand": c.on_demand, **c.metrics}
                for c in self.candidates
            ],
        }
        if self.best is not None:
            b = self.best
            out["recommendation"] = {
                "label": b.label,
                "reserved": b.reserved,
                "on_demand": b.on_demand,
                **b.metrics,
            }
            out["what_ifs"] = self.what_ifs
        return out

    def frontier_points(self) -> list[tuple[float, float, str, bool]]:
        """(monthly bill, SLO metric, label, meets) of every candidate, for capacity.frontier_png."""
        return [
            (float(c.metrics["bill"]), float(c.metrics["value"]), c.label, bool(c.metrics["meets"]))
            for c in self.candidates
        ]


def simulate_summary(policy: str, cluster: Cluster, jobs: Sequence[TraceJob]) -> dict[str, Any]:
    """One candidate's simulation summary (top-level, so worker processes and clusters can run it)."""
    from gpusched.simulations.engine import Simulator
    from gpusched.simulations.metrics import summarise
    from gpusched.simulations.policies import make_policy

    return summarise(Simulator(cluster, list(jobs), make_policy(policy)).run())


def run(request: SizingRequest, progress: Progress | None = None) -> Sizing:
    """Size, simulate, refine, recommend, then the what-ifs on the recommendation (module docstring).

    Independent simulations -- the sweep's candidates, one refinement step's trials, the what-ifs --
    run side by side on the request's runner (simulations/parallel.py); the result is the same as
    one after the other. RunnerError when the requested backend cannot be used."""
    from gpusched.simulations.parallel import Task, make_runner

    jobs = list(request.jobs)
    types = list(request.types)
    per_node, discount, budget = request.node_gpus, request.reserved_discount, request.budget
    type_map = {t.name: t for t in types}
    report = progress or (lambda stage, done, total: None)

    def metrics(c: cap.Candidate, s: dict[str, Any]) -> dict[str, Any]:
        value = s[request.slo.metric]
        ok = s["unfinished"] == 0 and s["rejected"] == 0 and value == value and value <= request.slo.limit_h
        util = s["utilisation"] if s["utilisation"] == s["utilisation"] else 0.0
        bill = cap.monthly_bill(c, type_map, per_node, discount, util)
        return {"value": value, "meets": ok, "bill": bill, "utilisation": util}

    demand, _, span = cap.workload_demand(jobs)
    try:
        classes = cap.demand_classes(jobs, types, per_node)
    except ValueError as exc:
        raise SizingError("workload", str(exc)) from None
    candidates: list[cap.Candidate] = []
    seen: set[str] = set()
    for u in sorted(request.utilisations):
        c = cap.size(types, classes, per_node, u, discount, budget)
        if c is not None and c.describe() not in seen:
            seen.add(c.describe())
            candidates.append(c)
    if not candidates:
        if budget is None:
            raise SizingError(
                "workload", f"no cluster of {', '.join(type_map)} can be sized for the workload"
            )
        raise SizingError(
            "budget", f"no cluster of {', '.join(type_map)} fits the workload within ${budget:,.0f}/month"
        )

    runner = make_runner(
        partial(simulate_summary, request.policy), jobs, request.workers, request.backend, request.address
    )
    try:

        def simulate_all(batch: list[cap.Candidate]) -> list[dict[str, Any]]:
            summaries = runner.map([Task(cap.to_cluster(c, types, per_node)) for c in batch])
            return [metrics(c, s) for c, s in zip(batch, summaries)]

        stage = "validating candidates by simulation"
        report(stage, 0, len(candidates))
        for c, m in zip(candidates, simulate_all(candidates)):
            c.metrics = m
        report(stage, len(candidates), len(candidates))
        # None met the SLO: keep adding headroom (lower target utilisation) a few more times.
        u = min(request.utilisations)
        limit = len(request.utilisations) + EXTRA_HEADROOM_STEPS
        while not any(c.metrics["meets"] for c in candidates) and u > 0.05 and len(candidates) < limit:
            u /= 1.5
            c = cap.size(types, classes, per_node, u, discount, budget)
            if c is None:
                break
            if c.describe() in seen:
                continue
            seen.add(c.describe())
            report(stage, len(candidates), len(candidates) + 1)
            [c.metrics] = simulate_all([c])
            candidates.append(c)
            report(stage, len(candidates), len(candidates))

        refined = 0

        def refine_batch(batch: list[cap.Candidate]) -> list[dict[str, Any]]:
            nonlocal refined
            report("refining between candidates", refined, None)
            refined += len(batch)
            return simulate_all(batch)

        candidates += cap.refine(
            candidates,
            lambda c: refine_batch([c])[0],
            [t.name for t in types],
            budget,
            evaluate_many=refine_batch,
        )

        meeting = [
            c
            for c in candidates
            if c.metrics["meets"] and (budget is None or float(c.metrics["bill"]) <= budget)
        ]
        best = min(meeting, key=lambda c: float(c.metrics["bill"])) if meeting else None
        sizing = Sizing(request, demand, span, classes, candidates, best)
        if best is not None:
            sizing.what_ifs = _what_ifs(best, request, types, jobs, runner, metrics)
    finally:
        runner.close()
    return sizing


def _what_ifs(
    best: cap.Candidate,
    request: SizingRequest,
    types: list[GpuType],
    jobs: list[TraceJob],
    runner: Any,
    metrics: Callable[[cap.Candidate, dict[str, Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every what-if on the recommendation, simulated side by side (see `_what_if`)."""
    from gpusched.simulations.parallel import Task

    base = cap.to_cluster(best, types, request.node_gpus)
    applied: list[tuple[str, Cluster, list[TraceJob]] | dict[str, Any]] = []
    for text in request.what_ifs:
        try:
            changed, changed_jobs = cap.apply_what_if(text, base, jobs, request.node_gpus)
        except ValueError as exc:
            # Known only now (the recommendation names the nodes): say so, keep the report and its files.
            applied.append({"what_if": text, "not_applied": str(exc)})
            continue
        applied.append((text, changed, changed_jobs))
    todo = [a for a in applied if isinstance(a, tuple)]
    summaries = iter(runner.map([Task(changed, None if cj is jobs else cj) for _, changed, cj in todo]))
    out = []
    for a in applied:
        if isinstance(a, dict):
            out.append(a)
            continue
        text, changed, _ = a
        out.append(_what_if(text, best, request, types, base, changed, metrics(best, next(summaries))))
    return out


def _what_if(
    text: str,
    best: cap.Candidate,
    request: SizingRequest,
    types: list[GpuType],
    base: Cluster,
    changed: Cluster,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The recommendation with one change, re-simulated (`metrics`) and re-priced: added GPUs at
    the reserved price, a lost node taking its share of the bill with it."""
    prices = {t.name: t.price_per_hour for t in types}
    added = {name: 0.0 for name in prices}
    for n in changed.nodes:
        if n.name.startswith("whatif-"):
            added[n.gpu_type] += n.gpu_count
    bill = float(metrics["bill"]) + sum(
        g * cap.HOURS_PER_MONTH * prices[t] * (1 - request.reserved_discount) for t, g in added.items()
    )
    base_gpus = sum(n.gpu_count for n in base.nodes)
    lost = base_gpus - sum(n.gpu_count for n in changed.nodes)
    if lost > 0:
        bill *= 1 - lost / max(1, base_gpus)
    return {"what_if": text, **metrics, "bill": bill}
