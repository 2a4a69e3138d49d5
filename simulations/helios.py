"""Helios' Philly replay (Hu et al., SC'21) on gpusched's engine, for docs/validation.md section (b).

Helios' QSSF artifact (github.com/S-Lab-System-Group/HeliosArtifact, commit 6345d9f, folder
`framework/QSSF Service/`) replays Microsoft's Philly trace per virtual cluster. What it does, and what
this module reproduces with our engine:

- Jobs (`utils.trace_philly_process`, `data/log_process.py`): GPU jobs of every final status, submitted
  from 2017-10-01 00:00:00 (times re-based to the first such job) up to 2017-11-30 23:59:00 after that
  re-basing, in 11 of Philly's 15 VCs (795a4c, 51b7ef, 925e2b and 23dbec are dropped).
- Cluster (`data/philly_vc.csv`, `cluster.py`): each VC is its own set of 8-GPU nodes, 352 nodes = 2,816
  GPUs in all (HELIOS_VC_NODES); a job only ever uses its own VC's nodes.
- Placement (`policies/placer/consolidate.py`, the `consolidate` default): a job of <= 8 GPUs on one
  node, the fullest that holds it; bigger jobs on wholly free nodes, a remainder (gangs not a multiple
  of 8) on the emptiest node left. `consolidate` below.
- Policies (`policies/fifo.py`, `sjf.py`, `srtf.py`): FIFO and SJF (oracle duration) both stop at the
  first queued job that does not fit (strict head-of-line, no backfill); SRTF preempts by remaining
  time against the VC's GPU count and charges 7 s / 30 s / 60 s of checkpoint overhead per preemption
  for 1 / <= 8 / > 8-GPU jobs. QSSF needs job names and users (its duration estimator), which our
  copy of the trace does not have: it is not reproduced.
- Metrics (`utils.cluster_analysis`): average JCT (end - submit) and average queueing delay in seconds,
  per VC and over all jobs; Helios' queueing delay is all the time a job waited, including time spent
  preempted (SRTF), which is `helios_queue_s` here.

Published numbers: HELIOS_PUBLISHED, transcribed from the outputs stored in the artifact's
`plot/result_plot.ipynb` (tables `jct_avg_consolidate` and `que_avg_consolidate`, which produce the
paper's Figure 13).
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gpusched.config import InputError
from gpusched.model import Cluster, GpuType, Node
from gpusched.safeio import shown
from gpusched.simulations.policies.base import SchedPolicy
from gpusched.simulations.state import FULL, ClusterState, Share
from gpusched.simulations.workload import SimJob, TraceJob
from gpusched.solver.placement import place

HELIOS_VC_NODES: dict[str, int] = {
    "6214e9": 64, "7f04ca": 32, "11cb48": 16, "b436b2": 64, "ee9e8c": 64, "e13805": 16,
    "6c71a0": 32, "2869ce": 16, "ed69ec": 8, "103959": 8, "0e4a51": 32,
}
"""8-GPU nodes per Philly VC: HeliosArtifact `framework/QSSF Service/data/philly_vc.csv` (352 nodes)."""
GPUS_PER_NODE = 8
HELIOS_START = datetime(2017, 10, 1)
HELIOS_SPAN = datetime(2017, 11, 30, 23, 59) - HELIOS_START
"""Helios' trace_range ('2017-10-01 00:00:00', '2017-11-30 23:59:00'), applied after re-basing."""

HELIOS_POLICIES = ("helios-fifo", "helios-sjf", "helios-srtf")
HELIOS_PUBLISHED: dict[str, dict[str, dict[str, int]]] = {
    "fifo": {
        "jct": {"6214e9": 97501, "7f04ca": 133826, "11cb48": 82540, "b436b2": 28732, "ee9e8c": 243144,
                "e13805": 87265, "6c71a0": 31088, "2869ce": 70215, "ed69ec": 28345, "103959": 24743,
                "0e4a51": 233539, "all": 86072},
        "queue": {"6214e9": 78659, "7f04ca": 1412, "11cb48": 74040, "b436b2": 544, "ee9e8c": 127270,
                  "e13805": 2331, "6c71a0": 220, "2869ce": 21171, "ed69ec": 28, "103959": 2391,
                  "0e4a51": 101473, "all": 56531},
    },
    "sjf": {
        "jct": {"6214e9": 23337, "7f04ca": 133271, "11cb48": 14444, "b436b2": 28610, "ee9e8c": 130493,
                "e13805": 85949, "6c71a0": 31030, "2869ce": 56388, "ed69ec": 28346, "103959": 23283,
                "0e4a51": 168747, "all": 34272},
        "queue": {"6214e9": 4494, "7f04ca": 857, "11cb48": 5944, "b436b2": 421, "ee9e8c": 14619,
                  "e13805": 1015, "6c71a0": 162, "2869ce": 7344, "ed69ec": 28, "103959": 932,
                  "0e4a51": 36682, "all": 4731},
    },
    "srtf": {
        "jct": {"6214e9": 19532, "7f04ca": 132980, "11cb48": 9057, "b436b2": 28291, "ee9e8c": 122609,
                "e13805": 85314, "6c71a0": 31020, "2869ce": 53128, "ed69ec": 28346, "103959": 22735,
                "0e4a51": 146023, "all": 30683},
        "queue": {"6214e9": 685, "7f04ca": 565, "11cb48": 554, "b436b2": 100, "ee9e8c": 6720,
                  "e13805": 378, "6c71a0": 150, "2869ce": 4071, "ed69ec": 27, "103959": 380,
                  "0e4a51": 13953, "all": 1138},
    },
    "qssf": {
        "jct": {"6214e9": 26022, "7f04ca": 133941, "11cb48": 21051, "b436b2": 28642, "ee9e8c": 132367,
                "e13805": 85886, "6c71a0": 31019, "2869ce": 58088, "ed69ec": 28346, "103959": 23219,
                "0e4a51": 196886, "all": 37324},
        "queue": {"6214e9": 7179, "7f04ca": 1527, "11cb48": 12550, "b436b2": 454, "ee9e8c": 16493,
                  "e13805": 953, "6c71a0": 151, "2869ce": 9044, "ed69ec": 28, "103959": 867,
                  "0e4a51": 64820, "all": 7783},
    },
}
"""Average JCT and queueing delay (s, truncated to integers) per VC and 'all', consolidate placement:
HeliosArtifact `framework/QSSF Service/plot/result_plot.ipynb`, cells 2 and 3 (stored outputs)."""

PUBLISHED_FOR = {"helios-fifo": "fifo", "helios-sjf": "sjf", "helios-srtf": "srtf", "fifo": "fifo", "sjf": "sjf"}
"""Which published column each of our policies is set beside."""


def helios_mean_duration_s(vc: str = "all") -> float:
    """Mean job duration implied by the published table: for FIFO (non-preemptive) JCT = queue +
    duration for every job, so avg JCT - avg queue is the trace's mean duration, whatever the policy."""
    pub = HELIOS_PUBLISHED["fifo"]
    return float(pub["jct"][vc] - pub["queue"][vc])


# ----------------------------------------------------------------------------------------- trace


def _timestamps(path: Path) -> list[tuple[datetime, str]]:
    """(timestamp, VC) per data row of a Pollux-format philly.csv, in file order."""
    from gpusched.simulations.traces import _rows

    out: list[tuple[datetime, str]] = []
    for line, row in _rows(Path(path), ("timestamp",)):  # the same limits and errors as load_philly
        try:
            out.append((datetime.fromisoformat(row["timestamp"].strip()), (row.get("cluster") or "").strip()))
        except (KeyError, ValueError, AttributeError):
            raise InputError(
                f"{path}: row {line}: column timestamp: not an ISO time (got {shown(row.get('timestamp'))})"
            ) from None
    return out


def helios_jobs(path: Path, days: float | None = None) -> list[TraceJob]:
    """Philly jobs in Helios' window and VCs, releases in hours from the first kept job.

    `days` shortens the window (tests, quick looks); None is Helios' full two months.
    """
    from gpusched.simulations.traces import load_philly

    jobs = load_philly(path)
    stamps = sorted(_timestamps(path))
    if not stamps:
        raise InputError(f"{path}: no jobs in the trace")
    t0 = stamps[0][0]  # load_philly's release 0
    kept_vcs = [(ts, vc) for ts, vc in stamps if vc in HELIOS_VC_NODES and ts >= HELIOS_START]
    if not kept_vcs:
        return []
    first = kept_vcs[0][0]
    span = HELIOS_SPAN if days is None else min(HELIOS_SPAN, timedelta(days=days))
    lo = (first - t0).total_seconds() / 3600.0
    hi = lo + span.total_seconds() / 3600.0
    eps = 0.5 / 3600.0  # releases are whole seconds; half a second absorbs float rounding
    return [replace(j, release=j.release - lo) for j in jobs
            if j.team in HELIOS_VC_NODES and lo - eps <= j.release <= hi + eps]


def trace_facts(jobs: list[TraceJob]) -> dict[str, dict[str, float]]:
    """Per VC and 'all': jobs, mean duration (s), offered load (GPU-hours / (GPUs x window hours)),
    and the mean duration Helios' table implies, so the inputs can be compared before any scheduling."""
    span_h = max((j.release for j in jobs), default=0.0) or 1.0
    out: dict[str, dict[str, float]] = {}
    groups: dict[str, list[TraceJob]] = {vc: [j for j in jobs if j.team == vc] for vc in HELIOS_VC_NODES}
    groups["all"] = jobs
    for vc, js in groups.items():
        gpus = GPUS_PER_NODE * (HELIOS_VC_NODES[vc] if vc != "all" else sum(HELIOS_VC_NODES.values()))
        n = len(js)
        out[vc] = {
            "jobs": n,
            "mean_duration_s": sum(j.work for j in js) * 3600.0 / n if n else float("nan"),
            "helios_mean_duration_s": helios_mean_duration_s(vc),
            "offered_load": sum(j.work * j.gpus for j in js) / (gpus * span_h),
            "max_gpus": max((j.gpus for j in js), default=0),
        }
    return out


def match_durations(jobs: list[TraceJob]) -> list[TraceJob]:
    """Diagnostic, not a reproduction: each VC's durations scaled by one factor so that its mean is
    the one Helios' table implies (helios_mean_duration_s). Job counts, gang sizes and arrival times
    stay ours, so this isolates how much of the gap the durations alone explain."""
    facts = trace_facts(jobs)
    factor = {vc: f["helios_mean_duration_s"] / f["mean_duration_s"]
              for vc, f in facts.items() if vc != "all" and f["jobs"]}
    return [replace(j, work=j.work * factor[j.team]) for j in jobs]


def scaled_vc_nodes(jobs: list[TraceJob], fraction: float) -> dict[str, int]:
    """Helios' VC sizes (per-team quotas) times `fraction`, rounded up, and never fewer nodes than
    the VC's widest gang needs (else that job could never run).

    On the trace we have, Helios' own sizes almost never queue (docs/validation.md (b)); shrinking
    every team's quota by one factor keeps Helios' split across teams and their arrivals, and makes
    the comparison between schedulers one of queueing rather than of placement alone.
    """
    if not fraction > 0:
        raise ValueError(f"--vc-scale: {fraction} (expected a fraction > 0)")
    widest: dict[str, int] = {}
    for j in jobs:
        widest[j.team] = max(widest.get(j.team, 0), j.gpus)
    return {vc: max(math.ceil(nodes * fraction - 1e-9), math.ceil(widest.get(vc, 1) / GPUS_PER_NODE), 1)
            for vc, nodes in HELIOS_VC_NODES.items()}


def vc_cluster(nodes: int, name: str = "vc") -> Cluster:
    """One VC as Helios models it: `nodes` 8-GPU nodes of one GPU type."""
    return Cluster(
        gpu_types=[GpuType(name="GPU", memory_gib=24, price_per_hour=1.0)],
        nodes=[Node(name=f"{name}-{i:03d}", gpu_type="GPU", gpu_count=GPUS_PER_NODE) for i in range(nodes)],
    )


# ------------------------------------------------------------------------------------- placement


def _free_gpus(state: ClusterState, node: int, count: int) -> list[Share]:
    milli, ok = state.milli[node], state.ok[node]
    return [(node, g, FULL) for g in range(len(milli)) if ok[g] and milli[g] == FULL][:count]


def consolidate(state: ClusterState, gpus: int, gpu_type: str = "GPU") -> list[Share] | None:
    """Helios' `ConsolidatePlacement`: <= 8 GPUs on the fullest node that holds them (the engine's
    best fit); more on wholly free nodes only, a remainder on the emptiest node left; else None."""
    if state.free_total.get(gpu_type, 0) < gpus:
        return None
    per = state.max_node[gpu_type]
    if gpus <= per:
        return place(state, state.gang(gpus, FULL, gpu_type))
    buckets = state.buckets[gpu_type]
    whole, rest = divmod(gpus, per)
    full = list(buckets[per])
    if len(full) < whole:
        return None
    shares = [s for node in full[:whole] for s in _free_gpus(state, node, per)]
    if rest == 0:
        return shares
    if len(full) > whole:
        return shares + _free_gpus(state, full[whole], rest)
    for k in range(per - 1, rest - 1, -1):  # the emptiest remaining node, if it holds the remainder
        for node in buckets[k]:
            return shares + _free_gpus(state, node, rest)
    return None


# -------------------------------------------------------------------------------------- policies


class HeliosQueue(SchedPolicy):
    """Helios' FIFO / SJF: the queue in submit order or by duration (oracle), started from the head
    with consolidate placement until the first job that does not fit (no backfill)."""

    def __init__(self, order: str = "fifo") -> None:
        super().__init__()
        if order not in ("fifo", "sjf"):
            raise ValueError(f"unknown Helios queue order {order!r} (known: fifo, sjf)")
        self.order = order
        self.name = f"helios-{order}"
        self.heap: list[tuple[float, float, int]] = []

    def _key(self, job: SimJob) -> tuple[float, float, int]:
        first = job.spec.release if self.order == "fifo" else job.spec.work
        return (first, job.spec.release, job.idx)

    def on_arrival(self, job: SimJob) -> None:
        heapq.heappush(self.heap, self._key(job))

    on_requeue = on_arrival

    def schedule(self, now: float) -> None:
        sim = self.s
        while self.heap:
            job = sim.jobs[self.heap[0][2]]
            shares = consolidate(sim.state, job.spec.gpus)
            if shares is None:
                return
            heapq.heappop(self.heap)
            sim.start(job, shares, "GPU")


class HeliosSrtf(SchedPolicy):
    """Helios' SRTF: at every event, jobs (queued and running) by remaining time take the VC's GPUs
    in that order as a count (not a placement); running jobs left out are preempted, queued jobs let
    in start if consolidate placement finds room (else they wait). Checkpoint overheads come from
    the jobs' restart_overhead (helios_srtf_jobs)."""

    name = "helios-srtf"

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[float, float, int]] = []
        """Queued jobs by (remaining, release, idx): a queued job's remaining work does not change."""

    def on_arrival(self, job: SimJob) -> None:
        bisect.insort(self.pending, (job.remaining, job.spec.release, job.idx))

    on_requeue = on_arrival

    def schedule(self, now: float) -> None:
        sim = self.s
        quota = sim.state.total_healthy
        # Helios sorts queued + running by remaining time, queued first at equal values (stable sort
        # of que_list + run_list); running jobs' remaining shrinks while they run.
        running = sorted(sim.running.values(),
                         key=lambda j: (j.spec.work - sim.progress_now(j), j.spec.release, j.idx))
        merged = heapq.merge(((r, 0, rel, idx) for r, rel, idx in self.pending),
                             ((j.spec.work - sim.progress_now(j), 1, j.spec.release, j.idx) for j in running))
        admit: list[int] = []
        evict: list[SimJob] = []
        for _, is_running, _, idx in merged:
            job = sim.jobs[idx]
            if job.spec.gpus <= quota:
                quota -= job.spec.gpus
                if not is_running:
                    admit.append(idx)
            elif is_running:
                evict.append(job)
        for job in evict:
            sim.preempt(job)  # re-queued through on_requeue
        started: set[int] = set()
        for idx in admit:
            job = sim.jobs[idx]
            shares = consolidate(sim.state, job.spec.gpus)
            if shares is not None:
                sim.start(job, shares, "GPU")
                started.add(idx)
        if started:
            self.pending = [e for e in self.pending if e[2] not in started]


def helios_srtf_jobs(jobs: list[TraceJob]) -> list[TraceJob]:
    """The jobs with Helios' checkpoint overhead per preemption (`Policy.ckpt_overhead`): 7 s for
    1 GPU, 30 s up to 8 GPUs, 60 s above, charged here as wall time at each restart."""
    return [replace(j, restart_overhead=(7.0 if j.gpus == 1 else 30.0 if j.gpus <= 8 else 60.0) / 3600.0)
            for j in jobs]


def make_helios_policy(name: str) -> SchedPolicy:
    if name == "helios-fifo":
        return HeliosQueue("fifo")
    if name == "helios-sjf":
        return HeliosQueue("sjf")
    if name == "helios-srtf":
        return HeliosSrtf()
    raise ValueError(f"unknown Helios policy {name!r} (known: {', '.join(HELIOS_POLICIES)})")


# ------------------------------------------------------------------------------------------ runs


def _percentile(values: list[float], q: float) -> float:
    from gpusched.simulations.metrics import percentile

    return percentile(values, q)


def job_times(job: SimJob) -> tuple[float, float]:
    """(JCT, Helios queueing delay) in seconds: the delay is all the time the job did not hold GPUs,
    which for a job never preempted is first start - submit."""
    assert job.finish is not None
    jct = job.finish - job.spec.release
    held = job.gpu_hours / job.spec.gpus if job.spec.gpus else 0.0
    return jct * 3600.0, max(0.0, jct - held) * 3600.0


def summary(jobs: list[SimJob]) -> dict[str, Any]:
    done = [j for j in jobs if j.finish is not None]
    times = [job_times(j) for j in done]
    jct = [t[0] for t in times]
    queue = [t[1] for t in times]
    n = len(done)
    return {
        "jobs": len(jobs),
        "completed": n,
        "avg_jct_s": sum(jct) / n if n else float("nan"),
        "p50_jct_s": _percentile(jct, 50),
        "p99_jct_s": _percentile(jct, 99),
        "avg_queue_s": sum(queue) / n if n else float("nan"),
        "p50_queue_s": _percentile(queue, 50),
        "p95_queue_s": _percentile(queue, 95),
        "p99_queue_s": _percentile(queue, 99),
        "queued_jobs": sum(1 for q in queue if q > 0.5),
        "mean_duration_s": sum(j.spec.work for j in done) * 3600.0 / n if n else float("nan"),
        "preemptions": sum(j.preemptions for j in jobs),
    }


def run_helios(jobs: list[TraceJob], policies: list[str],
               vc_nodes: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Every policy on every VC; one result per policy with per-VC and 'all' summaries and the
    published numbers beside them. Project policies (fifo, sjf, ...) use the engine's placement.
    `vc_nodes` replaces Helios' VC sizes (scaled_vc_nodes); published numbers are then not shown."""
    from gpusched.simulations.engine import Simulator
    from gpusched.simulations.policies import make_policy

    by_vc: dict[str, list[TraceJob]] = {vc: [] for vc in HELIOS_VC_NODES}
    for j in jobs:
        by_vc[j.team].append(j)
    out = []
    for policy in policies:
        runs: dict[str, list[SimJob]] = {}
        wall = 0.0
        for vc, nodes in (vc_nodes or HELIOS_VC_NODES).items():
            vc_jobs = by_vc[vc]
            if not vc_jobs:
                continue
            if policy in HELIOS_POLICIES:
                pol = make_helios_policy(policy)
                if policy == "helios-srtf":
                    vc_jobs = helios_srtf_jobs(vc_jobs)
            else:
                pol = make_policy(policy)
            result = Simulator(vc_cluster(nodes, vc), vc_jobs, pol).run()
            wall += result.wall_s
            runs[vc] = result.jobs
        per_vc = {vc: summary(js) for vc, js in runs.items()}
        per_vc["all"] = summary([j for js in runs.values() for j in js])
        published = None if vc_nodes else HELIOS_PUBLISHED.get(PUBLISHED_FOR.get(policy, ""))
        out.append({
            "policy": policy,
            "published_as": None if vc_nodes else PUBLISHED_FOR.get(policy),
            "vcs": per_vc,
            "published": published,
            "wall_s": wall,
        })
    return out
