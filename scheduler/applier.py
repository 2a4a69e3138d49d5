"""Executes Decisions against the API server: idempotent, gang-atomic, in parallel across jobs.

Idempotent because every object has a deterministic name (a 409 on create means it is already
there) and deletes tolerate 404. Gang-atomic because StartGang creates every worker before binding
any, and withdraws all of them if one cannot be created or bound; the job is then re-planned. A
gang of one worker is created with `spec.nodeName` set: one request instead of create + bind, and
just as atomic (the operator is the scheduler; the API server takes the node from the create as it
would from a binding).

A round runs in two phases. First the jobs that start a gang, up to `workers` at once, each up to
its last worker placed; then, once every gang of the round is placed, the bookkeeping: the started
gangs' status writes and Started events, and every other job's actions (plans of waiting jobs,
deletions, events). Placements wait for no write that only records them, and a crash between the
phases leaves bound gangs whose status lags, which the next round reads from the pods (as after a
crash inside a gang's start). Actions of one job keep their order. Inside a gang the workers are
created concurrently, then bound concurrently: the gang costs two round trips, not two per worker,
and all-or-nothing holds the same (no bind before every create succeeded; any failure withdraws
every worker).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gpusched.scheduler.actions import (
    Action,
    CreateService,
    Decisions,
    DeletePods,
    Emit,
    JobRef,
    PatchStatus,
    StartGang,
)
from gpusched.scheduler.crd import API_VERSION, KIND, conditions_after, event_name
from gpusched.scheduler.informer import Informer
from gpusched.scheduler.kube import Kube, KubeError
from gpusched.scheduler.kubetime import k8s_time

log = logging.getLogger(__name__)
Obj = dict[str, Any]

REJECTED = (400, 422)
"""An API server answering BadRequest or Invalid to a create will answer it again: the object is
wrong (usually the job's template), so retrying every round would only repeat the failure."""


@dataclass
class ApplyResult:
    bound_pods: int = 0
    failed_jobs: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Applier:
    def __init__(
        self,
        kube: Kube,
        workers: int = 16,
        pods: Informer | None = None,
        jobs: Informer | None = None,
        component: str = "gpusched-operator",
    ) -> None:
        self.kube = kube
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply")
        self.fanout = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply-gang")
        """The workers of one gang, created or bound at once (a pool of its own: a job's thread in
        `pool` waits for these, so sharing one pool could leave no thread to run them)."""
        self.pods, self.jobs = pods, jobs
        self._lock = threading.Lock()
        """Guards the round's ApplyResult counters, which every job's thread adds to."""
        self.component = component

    # Write-through into the informers' caches, so the next round sees our writes at once.
    def on_pod(self, obj: Obj) -> None:
        if self.pods is not None:
            self.pods.upsert(obj)

    def on_bound(self, ns: str, name: str, node: str) -> None:
        if self.pods is not None:
            self.pods.set_node(ns, name, node)

    def on_job(self, obj: Obj) -> None:
        if self.jobs is not None:
            self.jobs.upsert(obj)

    def on_pod_deleting(self, ns: str, name: str) -> None:
        if self.pods is not None:
            self.pods.mark_deleting(ns, name)

    def apply(self, decisions: Decisions) -> ApplyResult:
        groups: dict[str, list[Action]] = defaultdict(list)
        for action in decisions.actions:
            groups[action.job.key].append(action)
        result = ApplyResult()
        starts = [k for k in groups if any(isinstance(a, StartGang) for a in groups[k])]
        later: list[tuple[str, list[Action]]] = []
        """What the placed gangs still have to do (status, event, any later action), filled by phase 1."""
        self._run([(key, groups[key]) for key in starts], result, later)
        chosen = set(starts)
        self._run(later + [(k, a) for k, a in groups.items() if k not in chosen], result, None)
        return result

    def _run(
        self,
        work: list[tuple[str, list[Action]]],
        result: ApplyResult,
        later: list[tuple[str, list[Action]]] | None,
    ) -> None:
        futures = [self.pool.submit(self._apply_job, key, actions, result, later) for key, actions in work]
        for f in futures:
            f.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.fanout.shutdown(wait=True)

    def _each(self, fn: Any, items: list[Any]) -> list[Any]:
        """fn over items, concurrently when there are several; results (or the exception each
        raised) in item order."""
        if len(items) <= 1:
            return [_outcome(fn, item) for item in items]
        return list(self.fanout.map(lambda item: _outcome(fn, item), items))

    # ------------------------------------------------------------------ one job

    def _apply_job(
        self,
        key: str,
        actions: list[Action],
        result: ApplyResult,
        later: list[tuple[str, list[Action]]] | None = None,
    ) -> None:
        """One job's actions in order. With `later` (phase 1), a placed gang's follow-ups and the job's
        remaining actions are handed to phase 2 instead of run here."""
        for i, action in enumerate(actions):
            try:
                if isinstance(action, PatchStatus):
                    obj = self.kube.patch_job_status(action.job.namespace, action.job.name, action.patch)
                    if "_status" not in obj:
                        self.on_job(obj)
                elif isinstance(action, CreateService):
                    try:
                        self.kube.create_service(action.job.namespace, action.manifest)
                    except KubeError as exc:
                        if exc.status not in REJECTED:
                            raise
                        self._reject(action.job, f"Service {action.manifest['metadata']['name']}", exc)
                        return
                elif isinstance(action, StartGang):
                    if not self._start_gang(action, result):
                        return
                    rest = _follow_ups(action) + actions[i + 1 :]
                    if later is not None:
                        with self._lock:
                            later.append((key, rest))
                        return
                    self._apply_job(key, rest, result)
                    return
                elif isinstance(action, DeletePods):
                    for name in action.names:
                        self.kube.delete_pod(action.job.namespace, name, action.grace_seconds)
                        self.on_pod_deleting(action.job.namespace, name)
                elif isinstance(action, Emit):
                    self.emit(action.job, action.type, action.reason, action.message)
            except KubeError as exc:
                # The rest of this job's actions depend on this one: stop here, the next round retries.
                log.warning(
                    "action failed", extra={"job": key, "action": type(action).__name__, "error": str(exc)}
                )
                result.failed_jobs.append(key)
                result.errors.append(f"{key}: {type(action).__name__}: {exc}")
                return

    def _start_gang(self, gang: StartGang, result: ApplyResult) -> bool:
        """Place every worker (all or nothing); True when the gang is placed. Its status and event
        are the caller's (`_follow_ups`)."""
        ns = gang.job.namespace
        problem: str | None = None
        rejected: KubeError | None = None
        bound = 0
        if len(gang.pods) == 1:
            outcome = _outcome(lambda pod: self._create_bound(ns, *pod), gang.pods[0])
            if isinstance(outcome, KubeError):
                rejected = outcome if outcome.status in REJECTED else None
                problem = str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            elif isinstance(outcome, str):
                problem = outcome
            elif outcome:
                bound = 1
        else:
            created = self._each(lambda pod: self.kube.create_pod(ns, pod[0]), gang.pods)
            for obj in created:
                if isinstance(obj, KubeError):
                    if obj.status in REJECTED and rejected is None:
                        rejected = obj
                    problem = problem or str(obj)
                elif isinstance(obj, BaseException):
                    raise obj
                elif "_status" not in obj:
                    self.on_pod(obj)
        if problem is None and len(gang.pods) > 1:
            for outcome in self._each(
                lambda pod: self._bind(ns, pod[0]["metadata"]["name"], pod[1]), gang.pods
            ):
                if isinstance(outcome, KubeError):
                    problem = problem or str(outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
                elif isinstance(outcome, str):
                    problem = problem or outcome
                elif outcome:
                    bound += 1  # bound now (not: bound already, by us before a restart)
        if problem is None:
            with self._lock:
                result.bound_pods += bound
            return True
        # All or nothing: a gang with a worker that cannot be placed must not start partially.
        log.warning("gang withdrawn", extra={"job": gang.job.key, "error": problem})
        for manifest, _node in gang.pods:
            name = manifest["metadata"]["name"]
            try:
                self.kube.delete_pod(ns, name, 0)
                self.on_pod_deleting(ns, name)
            except KubeError as exc:
                log.warning("withdraw failed", extra={"job": gang.job.key, "pod": name, "error": str(exc)})
        result.withdrawn.append(gang.job.key)
        if rejected is not None:
            self._reject(gang.job, "worker pod", rejected, attempt=gang.attempt)
            return False
        with contextlib.suppress(KubeError):  # the next attempt must not reuse these pod names
            obj = self.kube.patch_job_status(ns, gang.job.name, {"attempt": gang.attempt})
            if "_status" not in obj:
                self.on_job(obj)
        with contextlib.suppress(KubeError):
            self.emit(
                gang.job,
                "Warning",
                "GangWithdrawn",
                f"{problem}; all {len(gang.pods)} workers withdrawn, re-planning",
            )
        return False

    def _create_bound(self, ns: str, manifest: Obj, node: str) -> bool | str:
        """Create a lone worker already on its node (spec.nodeName): True when placed now, False
        when it existed on `node` already, else what went wrong. An existing pod (409: created
        before a restart) is checked, or bound, as `_bind` does."""
        body = {**manifest, "spec": {**manifest.get("spec", {}), "nodeName": node}}
        obj = self.kube.create_pod(ns, body)
        if obj.get("_status") == 409:
            return self._bind(ns, manifest["metadata"]["name"], node)
        self.on_pod(obj)
        return True

    def _bind(self, ns: str, name: str, node: str) -> bool | str:
        """Bind one worker: True when bound now, False when it was bound to `node` already, else
        what went wrong."""
        answer = self.kube.bind_pod(ns, name, node)
        if answer.get("_status") == 409:
            # Bound already (by us, before a restart) is fine; bound elsewhere or deleting is not.
            pod = self.kube.read_pod(ns, name)
            if (pod.get("spec") or {}).get("nodeName") != node or (pod.get("metadata") or {}).get(
                "deletionTimestamp"
            ):
                return f"pod {name} cannot be bound to {node}"
            self.on_pod(pod)
            return False
        if answer.get("status") not in (None, "Success"):
            return f"binding {name} to {node}: {answer.get('message') or answer}"
        self.on_bound(ns, name, node)
        return True

    def _reject(self, job: JobRef, what: str, exc: KubeError, attempt: int | None = None) -> None:
        """The API server refused an object we built from the job: Failed, with its words, once.

        The job stays Failed (terminal) instead of being re-planned and refused every round; fixing
        the template means re-creating the job."""
        reason = f"the API server rejected the job's {what}: {exc.message}"
        log.warning("object rejected", extra={"job": job.key, "error": str(exc)})
        patch: Obj = {"phase": "Failed", "reason": reason}
        if attempt is not None:
            patch["attempt"] = attempt
        stored = self.jobs.get(job.namespace, job.name) if self.jobs is not None else None
        patch["conditions"] = conditions_after(stored, patch, k8s_time())
        with contextlib.suppress(KubeError):
            obj = self.kube.patch_job_status(job.namespace, job.name, patch)
            if "_status" not in obj:
                self.on_job(obj)
        with contextlib.suppress(KubeError):
            self.emit(job, "Warning", "InvalidSpec", reason)

    def emit(self, job: JobRef, type_: str, reason: str, message: str) -> None:
        now = datetime.now(timezone.utc)
        stamp = k8s_time(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(job.name, uuid.uuid4().hex[:16]), "namespace": job.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": job.name,
                "namespace": job.namespace,
                "uid": job.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.kube.create_event(job.namespace, body)


def _follow_ups(gang: StartGang) -> list[Action]:
    """What a placed gang records: its status (phase Running, placement, attempt), then its event."""
    out: list[Action] = []
    if gang.then_status:
        out.append(PatchStatus(gang.job, gang.then_status))
    if gang.then_event:
        out.append(Emit(gang.job, "Normal", *gang.then_event))
    return out


def _outcome(fn: Any, item: Any) -> Any:
    """fn(item), or the exception it raised (returned, so that one failure does not hide the rest)."""
    try:
        return fn(item)
    except Exception as exc:
        return exc
