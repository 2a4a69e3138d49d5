"""The cluster as the planner sees it, built from what the API server holds (pure: plain dicts in).

Kubernetes objects arrive as the JSON dicts the API server sent; nothing here does I/O, so the whole
decision path is testable on plain objects and a restarted operator rebuilds exactly this view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import ValidationError

from gpusched.model import CapacityChange, Cluster, GpuType, Job, Node, RunningState, reference_work
from gpusched.scheduler.crd import (
    ANN_GPUS,
    ANN_JOB,
    ANN_NODE,
    ANN_PLACEMENT,
    GPU_RESOURCE,
    LABEL_ATTEMPT,
    LABEL_GFD_MEMORY,
    LABEL_GFD_PRODUCT,
    LABEL_GPU_TYPE,
    LABEL_JOB,
    LABEL_MANAGED,
    LABEL_RANK,
    LABEL_TOPOLOGY,
    MANAGED_VALUE,
    TERMINAL,
    GPUJobSpec,
    GPUJobStatus,
)
from gpusched.scheduler.podspec import parse_placement_annotation
from gpusched.telemetry import NodeTelemetry, canonical_gpu_type
from gpusched.units import hours_between, parse_datetime
from gpusched.workload_contract import EXIT_PREEMPTED, WorkloadStatus

Obj = dict[str, Any]
JobState = Literal[
    "terminal",
    "invalid",
    "queued",
    "draining",
    "starting",
    "running",
    "succeeded",
    "failed",
    "preempted_by_node",
]


@dataclass(frozen=True)
class SnapshotConfig:
    gpu_types: list[GpuType]
    stale_after: timedelta = timedelta(minutes=2)
    node_selector: str | None = None
    """A label selector: only matching nodes are planned onto (the operator's --node-selector). The
    node watch already asks the API server for these nodes only; filtering here as well keeps the
    decision code right on its own (and on plain objects in tests)."""


@dataclass
class WorkerPod:
    name: str
    namespace: str
    job: str
    """The owning GPUJob's name: the gpusched.io/job-name annotation (the label may be shortened)."""
    rank: int
    attempt: int
    node: str | None
    planned_node: str | None
    gpus: int
    phase: str
    terminating: bool
    exit_code: int | None
    message: str | None
    reason: str | None
    workload: WorkloadStatus | None
    placement: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def active(self) -> bool:
        return not self.finished and not self.terminating


@dataclass
class JobView:
    key: str
    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime | None
    raw: Obj
    spec: GPUJobSpec | None
    status: GPUJobStatus
    error: str | None = None
    pods: list[WorkerPod] = field(default_factory=list)
    final: list[WorkerPod] = field(default_factory=list)
    """Deleted workers whose termination message was seen (progress at preemption)."""
    state: JobState = "queued"
    attempt: int = 0
    world: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    """node -> GPUs, for a starting/running gang (planned nodes for pods not bound yet)."""
    gpu_type: str | None = None
    failure: str | None = None
    evict_reason: str | None = None
    planner_job: Job | None = None
    unplannable: str | None = None

    def current_pods(self) -> list[WorkerPod]:
        return [p for p in self.pods if p.attempt == self.attempt]


@dataclass
class NodeView:
    name: str
    gpu_type: str | None
    allocatable: int
    unhealthy: int = 0
    unknown: int = 0
    held_other: int = 0
    """GPUs held by pods gpusched does not manage: free again at a time nobody knows."""
    held_draining: int = 0
    """GPUs held by gangs being stopped (pods terminating, or stopped for a failing GPU): free
    again once their pods are gone, within a grace period."""
    held_managed: int = 0
    cordoned: bool = False
    topology_domain: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    now: datetime
    config: SnapshotConfig
    jobs: dict[str, JobView]
    nodes: dict[str, NodeView]
    cluster: Cluster
    warnings: list[str] = field(default_factory=list)
    _free: dict[str, int] | None = None

    def free_gpus(self, node: str) -> int:
        """GPUs on a node the planner may hand out now (healthy, not held by pods outside the plan;
        the plan's gangs are not subtracted)."""
        if self._free is None:
            held: dict[str, int] = {}
            for w in self.cluster.maintenance:
                if w.node is not None and w.start <= 0 < w.end:
                    held[w.node] = held.get(w.node, 0) + (w.gpus or 0)
            self._free = {n.name: max(0, n.healthy_gpus - held.get(n.name, 0)) for n in self.cluster.nodes}
        return self._free.get(node, 0)

    def plannable(self) -> list[JobView]:
        return [j for j in self.jobs.values() if j.planner_job is not None]


# --------------------------------------------------------------------------------------------- helpers


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def pod_gpus(pod: Obj) -> int:
    """GPUs a pod holds: the sum over its containers' nvidia.com/gpu limits (requests equal limits)."""
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(GPU_RESOURCE) or (res.get("requests") or {}).get(GPU_RESOURCE)
        if value is not None:
            try:
                total += int(str(value))
            except ValueError:
                continue
    return total


def _quantity_int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _container_termination(pod: Obj) -> tuple[int | None, str | None, str | None]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for cs in statuses:
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if term:
            return term.get("exitCode"), term.get("message"), term.get("reason")
    return None, None, None


def parse_worker(pod: Obj) -> WorkerPod | None:
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    if labels.get(LABEL_MANAGED) != MANAGED_VALUE or LABEL_JOB not in labels:
        return None
    try:
        rank = int(labels.get(LABEL_RANK, "0"))
        attempt = int(labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        return None
    ann = meta.get("annotations") or {}
    exit_code, message, reason = _container_termination(pod)
    workload = None
    if message:
        try:
            workload = WorkloadStatus.model_validate_json(message)
        except ValidationError:
            workload = None
    status = pod.get("status") or {}
    return WorkerPod(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        # Pods of versions before the annotation carry the full name in the label.
        job=ann.get(ANN_JOB) or labels[LABEL_JOB],
        rank=rank,
        attempt=attempt,
        node=(pod.get("spec") or {}).get("nodeName"),
        planned_node=ann.get(ANN_NODE),
        gpus=pod_gpus(pod) or _quantity_int(ann.get(ANN_GPUS)),
        phase=status.get("phase") or "Pending",
        terminating=bool(meta.get("deletionTimestamp")),
        exit_code=exit_code,
        message=message,
        reason=status.get("reason") or reason,
        workload=workload,
        placement=parse_placement_annotation(ann.get(ANN_PLACEMENT)),
    )


def node_gpu_type(node: Obj, telemetry: NodeTelemetry | None, types: list[GpuType]) -> str | None:
    """The configured GPU type of a node: explicit label, else GPU feature discovery, else the agent."""
    labels = _meta(node).get("labels") or {}
    names = [t.name for t in types]
    explicit = labels.get(LABEL_GPU_TYPE)
    if explicit:
        return explicit if explicit in names else None
    candidates: list[str] = []
    product = labels.get(LABEL_GFD_PRODUCT)
    if product:
        mem = labels.get(LABEL_GFD_MEMORY)
        candidates.append(
            canonical_gpu_type(product.replace("-", " "), float(mem) if mem and mem.isdigit() else None)
        )
    if telemetry is not None and telemetry.gpus:
        g = telemetry.gpus[0]
        candidates.append(canonical_gpu_type(g.name, g.memory_total_mib))
    for cand in candidates:
        if cand in names:
            return cand
        model = cand.split("-")[0]
        for name in names:  # a configured 'H100' matches an observed 'H100-80GB' and vice versa
            if name == model or (name.split("-")[0] == model and "-" not in name):
                return name
        for name in names:
            if name.split("-")[0] == model:
                return name
    return None


def _node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return True  # no conditions reported (a bare test node): trust allocatable


# ------------------------------------------------------------------------------------ label selectors

SelectorTerm = tuple[str, str, frozenset[str]]
"""(key, operator, values); operator is one of = != in notin exists !exists."""

_SELECTOR_SET = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", re.S)
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _selector_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms]


def _check_key(key: str, term: str) -> str:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"{term!r}: {prefix!r} is not a DNS subdomain (the label key's prefix)")
    if not _LABEL_NAME.match(name):
        raise ValueError(
            f"{term!r}: {name!r} is not a label name (at most 63 of A-Z a-z 0-9 - _ ., "
            "starting and ending alphanumeric)"
        )
    return key


def _check_value(value: str, term: str) -> str:
    if value and not _LABEL_NAME.match(value):
        raise ValueError(
            f"{term!r}: {value!r} is not a label value (at most 63 of A-Z a-z 0-9 - _ ., "
            "starting and ending alphanumeric)"
        )
    return value


def parse_label_selector(text: str | None) -> list[SelectorTerm]:
    """A Kubernetes label selector string (`a=b,c!=d,e in (f,g),h,!i`), checked as the API server
    checks it, so a mistake fails at startup with the term named rather than on every list.
    Raises ValueError; an empty selector is [] and matches every node."""
    out: list[SelectorTerm] = []
    if not text or not text.strip():
        return out
    for term in _selector_terms(text):
        if not term:
            raise ValueError(f"{text!r}: empty term (a stray comma?)")
        m = _SELECTOR_SET.match(term)
        if m:
            values = [v.strip() for v in m.group(3).split(",")]
            if not any(values):
                raise ValueError(f"{term!r}: {m.group(2)} needs at least one value")
            out.append(
                (_check_key(m.group(1), term), m.group(2), frozenset(_check_value(v, term) for v in values))
            )
        elif "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            out.append((_check_key(key, term), "!=", frozenset([_check_value(value, term)])))
        elif "=" in term:
            key, value = (p.strip() for p in (term.split("==", 1) if "==" in term else term.split("=", 1)))
            out.append((_check_key(key, term), "=", frozenset([_check_value(value, term)])))
        elif term.startswith("!"):
            out.append((_check_key(term[1:].strip(), term), "!exists", frozenset()))
        else:
            out.append((_check_key(term, term), "exists", frozenset()))
    return out


def selector_matches(terms: list[SelectorTerm], labels: dict[str, str]) -> bool:
    for key, op, values in terms:
        value = labels.get(key)
        if op in ("=", "in"):
            ok = value in values
        elif op in ("!=", "notin"):
            ok = value not in values
        elif op == "exists":
            ok = value is not None
        else:
            ok = value is None
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------------- build

DRAINING_H = 5 / 60
"""How long the planner counts GPUs of a gang being stopped as taken (its checkpoint's grace)."""

_NEVER = datetime.max.replace(tzinfo=timezone.utc)


def queue_order(gpujob: Obj) -> tuple[datetime, str, str, str]:
    """First come, first served: creation time, then namespace/name and uid (creationTimestamp has
    whole seconds). The planner breaks ties between equals by the order of its input, so that order
    must be the submission order, never the order in which an API server happens to list (a real one
    lists by name, so `aaa` would overtake an earlier `zzz`)."""
    meta = _meta(gpujob)
    created = parse_datetime(meta.get("creationTimestamp")) or _NEVER
    return created, str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("uid") or "")


def build_snapshot(
    gpujobs: list[Obj],
    pods: list[Obj],
    nodes: list[Obj],
    gpunodes: list[Obj],
    config: SnapshotConfig,
    now: datetime,
    deleted_pods: list[Obj] | None = None,
) -> Snapshot:
    """deleted_pods: final states of recently deleted pods (their termination messages hold progress)."""
    warnings: list[str] = []
    telemetry: dict[str, NodeTelemetry] = {}
    for gn in gpunodes:
        name = _meta(gn).get("name")
        status = gn.get("status")
        if not name or not isinstance(status, dict) or not status:
            continue
        try:
            telemetry[name] = NodeTelemetry.model_validate({"node": name, **status})
        except ValidationError as exc:
            warnings.append(f"GPUNode {name}: unreadable status ({exc.errors()[0].get('msg')}); ignored")

    node_views: dict[str, NodeView] = {}
    pool = parse_label_selector(config.node_selector)
    for node in nodes:
        meta = _meta(node)
        name = meta.get("name")
        if not name:
            continue
        if pool and not selector_matches(pool, meta.get("labels") or {}):
            continue  # outside --node-selector: as if the node did not exist
        alloc = _quantity_int(((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE))
        if alloc <= 0:
            continue
        tel = telemetry.get(name)
        labels = meta.get("labels") or {}
        view = NodeView(
            name=name,
            gpu_type=node_gpu_type(node, tel, config.gpu_types),
            allocatable=alloc,
            cordoned=bool((node.get("spec") or {}).get("unschedulable")) or not _node_ready(node),
            topology_domain=labels.get(LABEL_TOPOLOGY) or (tel.topology_domain if tel else None),
            labels=dict(labels),
        )
        if view.gpu_type is None:
            warnings.append(f"node {name}: GPU type unknown (label it {LABEL_GPU_TYPE}=<a configured type>)")
        if tel is not None:
            if tel.is_stale(now, config.stale_after):
                view.unknown = alloc
                view.problems.append(f"agent heartbeat older than {config.stale_after}")
            else:
                view.unhealthy = sum(1 for g in tel.gpus if g.health == "unhealthy")
                view.unknown = sum(1 for g in tel.gpus if g.health == "unknown")
                for g in tel.gpus:
                    if g.health in ("unhealthy", "unknown"):
                        why = "; ".join(g.health_reasons) or g.health
                        view.problems.append(f"GPU {g.index} {g.health}: {why}")
        node_views[name] = view

    jobs: dict[str, JobView] = {}
    for gj in sorted(gpujobs, key=queue_order):
        meta = _meta(gj)
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        key = f"{ns}/{name}"
        try:
            status = GPUJobStatus.model_validate(gj.get("status") or {})
        except ValidationError:
            status = GPUJobStatus()
        jv = JobView(
            key=key,
            namespace=ns,
            name=name,
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 1),
            created=parse_datetime(meta.get("creationTimestamp")),
            raw=gj,
            spec=None,
            status=status,
        )
        try:
            jv.spec = GPUJobSpec.model_validate(gj.get("spec") or {})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in err.get("loc", ()))
            jv.error = f"spec.{loc}: {err.get('msg')}" if loc else f"spec: {err.get('msg')}"
        jobs[key] = jv

    for pod in pods:
        meta = _meta(pod)
        phase = (pod.get("status") or {}).get("phase")
        worker = parse_worker(pod)
        on_node = str((pod.get("spec") or {}).get("nodeName") or "")
        if worker is not None:
            owner = jobs.get(f"{worker.namespace}/{worker.job}")
            if owner is not None:
                owner.pods.append(worker)
                continue
        # A pod we do not manage (or an orphan of a deleted job): its GPUs are simply not ours.
        if on_node in node_views and phase not in ("Succeeded", "Failed"):
            node_views[on_node].held_other += pod_gpus(pod)

    for pod in deleted_pods or []:
        worker = parse_worker(pod)
        if worker is not None and worker.workload is not None:
            holder = jobs.get(f"{worker.namespace}/{worker.job}")
            if holder is not None:
                holder.final.append(worker)

    for job in jobs.values():
        _classify(job, node_views)

    # GPUs held by managed pods outside a starting/running gang (draining ones) are not plannable.
    for job in jobs.values():
        planned_gang = job.state in ("starting", "running") and job.evict_reason is None
        for p in job.pods:
            if p.finished:
                continue
            where = p.node or (p.planned_node if planned_gang else None)
            if where not in node_views:
                continue
            if planned_gang and p.attempt == job.attempt:
                node_views[where].held_managed += p.gpus
            elif p.node:
                node_views[where].held_draining += p.gpus

    # Evict running gangs from nodes whose healthy GPUs no longer cover what is running there. We
    # cannot tell from the API server which pod holds the failing device, so every gang on that node
    # moves; 'unknown' GPUs (stale agent) only stop new placements, they do not kill running work.
    for nv in node_views.values():
        if nv.allocatable - nv.unhealthy < nv.held_managed + nv.held_other and nv.unhealthy > 0:
            for job in jobs.values():
                if job.state in ("starting", "running") and nv.name in job.nodes and job.evict_reason is None:
                    job.evict_reason = f"GPU unhealthy on node {nv.name} ({'; '.join(nv.problems)})"
    for job in jobs.values():
        if job.state in ("starting", "running") and job.evict_reason is None:
            gone = [n for n in job.nodes if n not in node_views]
            if gone:
                job.evict_reason = f"node {gone[0]} is gone or has no GPUs"
        if job.evict_reason is not None:
            # Its GPUs are being freed but are not free yet: keep them out of this plan.
            for n, held in job.nodes.items():
                if n in node_views:
                    node_views[n].held_managed -= held
                    node_views[n].held_draining += held

    cluster_nodes: list[Node] = []
    taken: list[CapacityChange] = []
    for nv in node_views.values():
        if nv.gpu_type is None:
            continue
        # Unhealthy or unknown GPUs, and GPUs pods gpusched does not manage hold (for as long as
        # nobody knows), are closed to the plan. GPUs a gang being stopped holds come free within
        # its grace period: the planner sees them as taken for a while (a window), so no gang is
        # told it is "larger than any pool" because a draining gang still holds the pool.
        room = max(0, nv.allocatable - nv.held_managed)
        blocked = max(0, min(nv.unhealthy + nv.unknown + nv.held_other, room))
        draining = min(nv.held_draining, room - blocked)
        if draining > 0:
            taken.append(
                CapacityChange(
                    start=0.0,
                    end=DRAINING_H,
                    node=nv.name,
                    gpus=draining,
                    reason="held by a gang being stopped",
                )
            )
        cluster_nodes.append(
            Node(
                name=nv.name,
                gpu_type=nv.gpu_type,
                gpu_count=nv.allocatable,
                unhealthy_gpus=blocked,
                labels=nv.labels,
                topology_domain=nv.topology_domain,
                cordoned=nv.cordoned,  # the planner keeps the gangs already there, adds none
            )
        )
    cluster = Cluster(gpu_types=list(config.gpu_types), nodes=cluster_nodes, maintenance=taken)
    snap = Snapshot(now=now, config=config, jobs=jobs, nodes=node_views, cluster=cluster, warnings=warnings)
    for job in jobs.values():
        _planner_job(job, snap)
    return snap


def _classify(job: JobView, nodes: dict[str, NodeView]) -> None:
    if job.status.phase in TERMINAL:
        job.state = "terminal"
        return
    if job.spec is None:
        job.state = "invalid"
        return
    attempts = [p.attempt for p in job.pods]
    job.attempt = max([job.status.attempt, *attempts]) if attempts else job.status.attempt
    job.world = job.spec.workers
    if not job.pods:
        job.state = "queued"
        return
    if any(p.terminating for p in job.pods) or any(
        p.attempt != job.attempt and not p.finished for p in job.pods
    ):
        job.state = "draining"
        return
    current = job.current_pods()
    if not current:
        job.state = "queued"  # only finished pods of older attempts remain
        return
    succeeded = [p for p in current if p.phase == "Succeeded"]
    failed = [p for p in current if p.phase == "Failed"]
    if len(succeeded) == job.world and len({p.rank for p in succeeded}) == job.world:
        job.state = "succeeded"
        return
    if failed:
        preempted = [p for p in failed if p.exit_code == EXIT_PREEMPTED]
        if len(preempted) == len(failed):
            job.state = "preempted_by_node"
            return
        first = sorted(failed, key=lambda p: p.rank)[0]
        job.state = "failed"
        detail = first.reason or "Error"
        if first.workload is not None and first.workload.message:
            detail += f": {first.workload.message}"
        elif first.message:
            detail += f": {first.message.strip()[:200]}"
        if first.exit_code is None:
            job.failure = f"worker {first.name} was rejected by node {first.node}: {detail}"
        else:
            job.failure = f"worker {first.name} exited with code {first.exit_code} ({detail})"
        return
    for p in current:
        where = p.node or p.planned_node
        if where:
            job.nodes[where] = job.nodes.get(where, 0) + p.gpus
    recorded = {pl.node: pl.gpus for pl in job.status.placement}
    if job.status.attempt != job.attempt or sum(recorded.values()) != job.spec.gpus:
        recorded = next((p.placement for p in current if sum(p.placement.values()) == job.spec.gpus), {})
    if recorded:
        job.nodes = recorded  # the gang's whole placement covers ranks whose pods do not exist yet
    ranks = {p.rank for p in current}
    complete = len(ranks) == job.world and all(p.node for p in current)
    job.state = "running" if complete else "starting"
    types = {nodes[n].gpu_type for n in job.nodes if n in nodes}
    job.gpu_type = types.pop() if len(types) == 1 else job.status.gpu_type


def done_hours(job: JobView, snap: Snapshot) -> float:
    """Reference hours done: recorded progress plus, while running, the time since the gang started."""
    done = job.status.progress.done_hours
    started = parse_datetime(job.status.started_at)
    if job.state == "running" and started is not None and job.gpu_type is not None:
        try:
            speed = snap.cluster.gpu_type(job.gpu_type).speed
        except KeyError:
            speed = 1.0
        done += max(0.0, hours_between(started, snap.now)) * speed
    return done


def _planner_job(job: JobView, snap: Snapshot) -> None:
    """The gpusched.model.Job the planner sees, or why there is none (job.unplannable)."""
    if job.spec is None or job.state not in ("queued", "starting", "running") or job.evict_reason:
        return
    spec = job.spec
    types = snap.cluster.type_map()
    allowed = None
    if spec.gpu_types is not None:
        allowed = [t for t in spec.gpu_types if t in types]
        if not allowed:
            job.unplannable = f"none of gpuTypes {spec.gpu_types} is a configured GPU type ({sorted(types)})"
            return
    ref = spec.work.reference_type
    if ref is not None and ref not in types:
        job.unplannable = f"work.referenceType {ref!r} is not a configured GPU type ({sorted(types)})"
        return
    release = 0.0
    retry = parse_datetime(job.status.retry_after)
    if retry is not None and job.state == "queued":
        release = max(0.0, hours_between(snap.now, retry))
    deadline = None
    when = parse_datetime(spec.deadline)
    if when is not None:
        deadline = hours_between(snap.now, when)
        if deadline <= release:
            deadline = None  # already missed: plan it as soon as possible rather than refuse it
    base: dict[str, Any] = {
        "name": job.key,
        "gpus": spec.gpus,
        "gpu_types": allowed,
        "min_gpu_memory_gib": spec.min_gpu_memory_gib,
        "priority": spec.priority,
        "team": spec.team,
        "release": release,
        "deadline": deadline,
        "preemptible": spec.preemptible,
        "restart_overhead": spec.checkpoint.restart_overhead,
        "checkpoint_interval": spec.checkpoint.interval,
        "max_nodes": spec.workers,
    }
    total = reference_work(spec.gpus, spec.work.duration, spec.work.gpu_hours, ref, types)
    done = done_hours(job, snap)
    if job.state in ("starting", "running") and job.nodes and sum(job.nodes.values()) == spec.gpus:
        base["duration"] = total
        base["running"] = RunningState(nodes=dict(job.nodes), done=min(done, total * 0.999))
    else:
        # A queued job that ran before resumes from its checkpoint: only the rest is left to plan.
        base["duration"] = max(total - done, 1 / 60)
    try:
        job.planner_job = Job(**base)
    except ValidationError as exc:
        job.unplannable = f"cannot plan: {exc.errors(include_url=False)[0].get('msg')}"
