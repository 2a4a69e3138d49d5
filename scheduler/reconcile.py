"""Decisions, pure: from a Snapshot (and a Plan) to the actions that move the cluster towards it.

Two passes. `lifecycle` reacts to what the pods did (finished, failed, preempted, lost a GPU) and
needs no plan; `follow_plan` turns the planner's first slot into gang starts and preemptions for
the jobs the lifecycle pass left alone. Every decision that changes a job writes its status first
(the attempt number and placement live in the API server before any pod exists) and emits an Event.
Running the same snapshot twice yields the same actions, and applying them twice changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gpusched.defaults import WINDOW
from gpusched.model import Placement, Plan, reference_work
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
from gpusched.scheduler.crd import DRY_RUN, INVALID, GPUJobStatus, Progress, conditions_after
from gpusched.scheduler.kubetime import k8s_time
from gpusched.scheduler.podspec import needs_service, rank_nodes, service_manifest, worker_manifest
from gpusched.scheduler.snapshot import JobView, Snapshot, WorkerPod, done_hours
from gpusched.solver.frontend import Keep, Preempt, Running, Selection, Wait, Waiting, interpret, select
from gpusched.units import hours_between, parse_datetime

Obj = dict[str, Any]


REPLAN_JITTER_S = 300.0
"""A waiting job's planned start moving by less than this is not worth a status write."""
PLAN_REFRESH_S = 300.0
"""A waiting job's plan is rewritten at most this often (the heartbeat of an idle cluster)."""


@dataclass(frozen=True)
class ReconcileOptions:
    dry_run: bool = False
    full_round: bool = True
    """False for the operator's quick rounds on events (a short planner time limit): they start
    what can start, plan new jobs, and leave the plans of jobs already waiting to the full rounds."""
    backoff_base_s: float = 10.0
    backoff_cap_s: float = 600.0


def iso(when: datetime) -> str:
    return k8s_time(when)


def ref(job: JobView) -> JobRef:
    return JobRef(key=job.key, namespace=job.namespace, name=job.name, uid=job.uid)


def status_patch(job: JobView, now: datetime, **fields: Any) -> Obj | None:
    """A merge patch holding only the fields that differ from the job's status (None: nothing to do)."""
    current = job.status.model_dump(by_alias=True, mode="json")
    if "phase" not in (job.raw.get("status") or {}):
        current["phase"] = None  # never written: the default must still appear in the API
    patch: Obj = {}
    for name, value in fields.items():
        alias = GPUJobStatus.model_fields[name].alias or name
        if isinstance(value, Progress):
            value = value.model_dump(by_alias=True, mode="json")
        if isinstance(value, list):
            value = [
                v.model_dump(by_alias=True, mode="json") if hasattr(v, "model_dump") else v for v in value
            ]
        if current.get(alias) != value:
            patch[alias] = value
    if job.status.observed_generation != job.generation:
        patch["observedGeneration"] = job.generation
    if not patch:
        return None
    conditions = conditions_after(job.raw, patch, iso(now))
    if conditions != (job.raw.get("status") or {}).get("conditions"):
        patch["conditions"] = conditions
    return patch


def _patch(out: list[Action], job: JobView, now: datetime, **fields: Any) -> bool:
    patch = status_patch(job, now, **fields)
    if patch is not None:
        out.append(PatchStatus(ref(job), patch))
        _written(job, patch)
        return True
    return False


def _written(job: JobView, patch: Obj) -> None:
    """Make the job's view show a status write of this round, so that a later decision on the same
    job in the same round (a preempted gang resuming at once) is diffed against what the API server
    will hold, not against the status the round started with: else fields the earlier write cleared
    and the later one sets to their old values would be left out of it, and stay cleared."""
    current = job.status.model_dump(by_alias=True, mode="json")
    status = _merge(current, patch)
    job.status = GPUJobStatus.model_validate(status)
    job.raw = {**job.raw, "status": _merge(dict(job.raw.get("status") or {}), patch)}


def _merge(target: Obj, patch: Obj) -> Obj:
    """RFC 7386 JSON merge patch (what PatchStatus sends)."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _progress_from_pods(job: JobView, pods: list[WorkerPod], snap: Snapshot) -> Progress:
    """The workload's own report (termination message) refines the time-based estimate."""
    prog = job.status.progress.model_copy()
    reports = [p.workload for p in pods if p.workload is not None]
    if not reports or job.spec is None:
        return prog
    best = max(reports, key=lambda w: (w.last_checkpoint_step or 0, w.step))
    prog.step = best.step
    prog.total_steps = best.total_steps
    prog.last_checkpoint_step = best.last_checkpoint_step
    if best.total_steps and best.last_checkpoint_step is not None:
        total = _total_work(job, snap)
        prog.done_hours = round(total * min(1.0, best.last_checkpoint_step / best.total_steps), 6)
    return prog


def _total_work(job: JobView, snap: Snapshot) -> float:
    assert job.spec is not None
    work = job.spec.work
    return reference_work(
        job.spec.gpus, work.duration, work.gpu_hours, work.reference_type, snap.cluster.type_map()
    )


def _delete_all(job: JobView, grace: int, why: str) -> DeletePods:
    names = sorted(p.name for p in job.pods if not p.terminating)
    return DeletePods(ref(job), names, grace, why)


def _preempt(out: list[Action], job: JobView, snap: Snapshot, reason: str, event_reason: str) -> bool:
    """Stop a running gang so that it can checkpoint: Preempting, then (pods gone) Preempted.

    A gang that never ran (some workers not created or not bound: its starter died) is withdrawn
    instead: there is nothing to checkpoint and nothing was preempted."""
    assert job.spec is not None
    if job.state == "starting":
        _withdraw(out, job, snap, reason)
        return False
    prog = job.status.progress.model_copy()
    prog.done_hours = round(done_hours(job, snap), 6)
    _patch(
        out,
        job,
        snap.now,
        phase="Preempting",
        reason=reason,
        progress=prog,
        started_at=None,
        preempted=job.status.preempted + 1,
        attempt=job.attempt,  # the next gang gets fresh pod names, whoever started this one
    )
    out.append(_delete_all(job, job.spec.checkpoint.grace_period_seconds, reason))
    out.append(
        Emit(ref(job), "Warning" if event_reason == "GPUUnhealthy" else "Normal", event_reason, reason)
    )
    return True


def _withdraw(out: list[Action], job: JobView, snap: Snapshot, why: str) -> None:
    """Delete a half-started gang (a dead operator's, found by its successor) and re-plan the job.

    Its attempt is recorded first, so the next gang's pods get fresh names (the dead operator
    created this attempt's pods but never wrote the attempt into the status)."""
    assert job.spec is not None
    phase = job.status.phase if job.status.phase in WAITING else "Pending"
    _patch(
        out,
        job,
        snap.now,
        phase=phase,
        reason=f"half-started gang (attempt {job.attempt}) withdrawn: {why}; re-planning",
        attempt=job.attempt,
        placement=[],
        nodes=[],
        started_at=None,
    )
    out.append(DeletePods(ref(job), sorted(p.name for p in job.pods if not p.terminating), 0, why))
    out.append(
        Emit(ref(job), "Warning", "GangWithdrawn", f"attempt {job.attempt} never ran: {why}; re-planning")
    )


# ----------------------------------------------------------------------------------------- lifecycle


def lifecycle(snap: Snapshot, opts: ReconcileOptions, decisions: Decisions) -> set[str]:
    """React to what the pods did; returns the keys of jobs the plan must not touch this round."""
    out = decisions.actions
    busy: set[str] = set()
    now = snap.now
    for job in snap.jobs.values():
        if job.state == "terminal":
            busy.add(job.key)
            continue
        if job.state == "invalid":
            # Never planned; not terminal either: once the spec is fixed it is planned as any other.
            busy.add(job.key)
            why = f"invalid GPUJob: {job.error}"
            if _patch(out, job, now, phase=INVALID, reason=why, planned_start=None, planned_end=None):
                out.append(Emit(ref(job), "Warning", "InvalidSpec", why))
            continue
        assert job.spec is not None
        if job.state == "succeeded":
            busy.add(job.key)
            prog = _progress_from_pods(job, job.current_pods(), snap)
            prog.done_hours = round(_total_work(job, snap), 6)
            if _patch(out, job, now, phase="Succeeded", reason="all workers finished", progress=prog):
                out.append(Emit(ref(job), "Normal", "Succeeded", f"all {job.world} workers exited 0"))
            continue
        if job.state == "failed":
            busy.add(job.key)
            _on_failure(out, job, snap, opts)
            continue
        if job.state == "preempted_by_node":
            busy.add(job.key)
            why = "a worker was stopped from outside (exit 75 after checkpoint): re-queued"
            prog = _progress_from_pods(job, job.pods, snap)
            _patch(out, job, now, phase="Preempting", reason=why, progress=prog, started_at=None)
            out.append(_delete_all(job, job.spec.checkpoint.grace_period_seconds, why))
            out.append(Emit(ref(job), "Normal", "Preempted", why))
            continue
        if job.state == "draining":
            busy.add(job.key)
            if job.status.phase == "Preempting":
                _patch(out, job, now, progress=_progress_from_pods(job, job.pods, snap))
            stray = [
                p.name for p in job.pods if p.attempt != job.attempt and not p.finished and not p.terminating
            ]
            if stray:
                out.append(DeletePods(ref(job), stray, 0, "pods of an older attempt"))
            continue
        if job.evict_reason is not None:
            busy.add(job.key)
            if _preempt(out, job, snap, f"{job.evict_reason}: re-planning elsewhere", "GPUUnhealthy"):
                decisions.preempted.append(job.key)
            continue
        if job.state == "queued" and job.status.phase == "Preempting":
            final = [p for p in job.final if p.attempt == job.status.attempt]
            if final:
                prog = _progress_from_pods(job, final, snap)
                _patch(out, job, now, progress=prog)
                job.status.progress = prog
            step = job.status.progress.last_checkpoint_step
            where = f" at checkpoint step {step}" if step is not None else ""
            why = f"preempted{where}; re-queued with {job.status.progress.done_hours:.2f}h of work done"
            _patch(out, job, now, phase="Preempted", reason=why, placement=[], nodes=[])
            out.append(Emit(ref(job), "Normal", "Requeued", why))
            # Falls through to planning in the same round: it may resume at once elsewhere.
        if job.state == "running" and job.status.phase != "Running":
            nodes = sorted(job.nodes)
            why = f"running on {', '.join(nodes)} ({job.spec.gpus} x {job.gpu_type})"
            started = job.status.started_at or iso(now)
            if _patch(
                out,
                job,
                now,
                phase="Running",
                reason=why,
                started_at=started,
                first_started_at=job.status.first_started_at or started,
                nodes=nodes,
                attempt=job.attempt,
                gpu_type=job.gpu_type,
                placement=[{"node": n, "gpus": g} for n, g in sorted(job.nodes.items())],
            ):
                # Bound, but the status write after binding never happened (e.g. the operator died).
                out.append(Emit(ref(job), "Normal", "Running", why))
                decisions.started.append(job.key)
    return busy


def _backoff(restarts: int, opts: ReconcileOptions) -> float:
    return float(min(opts.backoff_cap_s, opts.backoff_base_s * 2 ** max(0, restarts - 1)))


def _on_failure(out: list[Action], job: JobView, snap: Snapshot, opts: ReconcileOptions) -> None:
    assert job.spec is not None
    why = job.failure or "a worker failed"
    rejected = all(p.exit_code is None for p in job.current_pods() if p.phase == "Failed")
    new = job.attempt > job.status.last_failed_attempt
    grace = job.spec.checkpoint.grace_period_seconds
    if rejected:
        # The node refused the pod (admission): a placement problem, not the job's fault.
        if new:
            _patch(
                out,
                job,
                snap.now,
                phase="Pending",
                reason=f"{why}; re-planning",
                last_failed_attempt=job.attempt,
                placement=[],
                nodes=[],
                started_at=None,
            )
            out.append(Emit(ref(job), "Warning", "PlacementRejected", why))
        out.append(_delete_all(job, 0, why))
        return
    restarts = job.status.restarts + (1 if new else 0)
    if restarts > job.spec.max_restarts:
        if _patch(
            out,
            job,
            snap.now,
            phase="Failed",
            reason=f"{why}; gave up after {job.status.restarts} restarts",
            restarts=job.status.restarts,
            last_failed_attempt=job.attempt,
        ):
            out.append(Emit(ref(job), "Warning", "Failed", why))
        running = [p.name for p in job.pods if not p.finished and not p.terminating]
        if running:
            out.append(DeletePods(ref(job), running, grace, why))
        return
    if new:
        delay = _backoff(restarts, opts)
        retry = snap.now + timedelta(seconds=delay)
        prog = _progress_from_pods(job, job.pods, snap)
        msg = f"{why}; restart {restarts}/{job.spec.max_restarts} after {delay:.0f}s backoff"
        _patch(
            out,
            job,
            snap.now,
            phase="Pending",
            reason=msg,
            restarts=restarts,
            last_failed_attempt=job.attempt,
            retry_after=iso(retry),
            progress=prog,
            placement=[],
            nodes=[],
            started_at=None,
        )
        out.append(Emit(ref(job), "Warning", "WorkerFailed", msg))
    out.append(_delete_all(job, grace, why))


# -------------------------------------------------------------------------------------- follow plan


def _human_start(snap: Snapshot, hours: float) -> str:
    return iso(snap.now + timedelta(hours=hours))


def planning_input(snap: Snapshot) -> tuple[list[Waiting], list[Running]]:
    """The snapshot's plannable jobs as the planning front-end takes them: queued ones in
    submission order, and the gangs that hold GPUs (with how long they have run, for hysteresis)."""
    queued: list[Waiting] = []
    running: list[Running] = []
    for i, job in enumerate(snap.plannable()):
        pj = job.planner_job
        assert pj is not None and job.spec is not None
        if job.state in ("starting", "running"):
            if pj.running is None:
                continue  # a gang whose nodes are not all known yet: neither started nor stopped now
            started = parse_datetime(job.status.started_at)
            ran = hours_between(started, snap.now) if job.state == "running" and started else 0.0
            running.append(
                Running(
                    pj,
                    max(0.0, ran),
                    movable=job.spec.preemptible or job.state == "starting",
                    per_node=job.spec.per_node,
                )
            )
        else:
            queued.append(Waiting(pj, arrival=(i,), per_node=job.spec.per_node))
    return queued, running


def plan_input(snap: Snapshot, policy: str, window: int = WINDOW) -> Selection:
    """What the operator hands plan() this round: the front-end's window over the queue (the very
    selection the simulator makes), with every gang that holds GPUs."""
    queued, running = planning_input(snap)
    return select(snap.cluster, queued, running, policy, window)


def follow_plan(
    snap: Snapshot, plan: Plan, busy: set[str], opts: ReconcileOptions, decisions: Decisions
) -> None:
    out = decisions.actions
    now = snap.now
    by_name = {jp.job: jp for jp in plan.jobs}
    used: Counter[str] = Counter()
    for job in snap.jobs.values():
        if job.state in ("starting", "running") and job.key not in busy:
            used.update(job.nodes)
    queued, running = planning_input(snap)
    queued = [w for w in queued if w.job.name not in busy]
    running = [r for r in running if r.job.name not in busy]
    free = {n.name: max(0, snap.free_gpus(n.name) - used[n.name]) for n in snap.cluster.nodes}
    # A preempted gang's GPUs stay taken until its pods are gone: nothing may start there before
    # it checkpoints (frees_at_once=False).
    for d in interpret(plan, snap.cluster, queued, running, free, frees_at_once=False):
        job = snap.jobs[d.job]
        assert job.spec is not None
        if isinstance(d, Preempt):
            if opts.dry_run:
                _patch(out, job, now, reason=f"dry-run: would be {d.reason}")
                continue
            if _preempt(out, job, snap, d.reason, "Preempting"):
                decisions.preempted.append(job.key)
            continue
        if isinstance(d, Keep):
            if job.state == "starting" and not opts.dry_run:
                _start(
                    out,
                    job,
                    snap,
                    [Placement(node=n, gpus=g) for n, g in job.nodes.items()],
                    job.attempt,
                    job.gpu_type,
                    resume=True,
                )
            continue
        waiting_phase = (
            "Preempted"
            if job.status.phase in ("Preempted", "Preempting")
            else ("Pending" if isinstance(d, Wait) and not d.scheduled else "Planned")
        )
        if isinstance(d, Wait):
            _follow_wait(out, job, snap, opts, d, waiting_phase)
            continue
        what = f"{job.spec.gpus} x {d.gpu_type}"
        if opts.dry_run:
            nodes = sorted({p.node for p in d.placement})
            why = f"dry-run: would start now on {', '.join(nodes)} ({what})"
            if job.status.reason == why and not _plan_write_due(job, opts, now):
                continue
            had = job.status.planned_start
            before = parse_datetime(had)
            kept = (
                had if before is not None and abs((before - now).total_seconds()) < REPLAN_JITTER_S else None
            )
            _plan_patch(
                out,
                job,
                now,
                opts,
                phase=DRY_RUN,
                reason=why,
                planned_start=kept or iso(now),
                gpu_type=d.gpu_type,
            )
            continue
        attempt = max(job.attempt, job.status.last_failed_attempt) + 1
        _start(out, job, snap, list(d.placement), attempt, d.gpu_type, resume=False)
        decisions.started.append(job.key)
    _outside_window(out, snap, by_name, busy, opts)


def _follow_wait(
    out: list[Action], job: JobView, snap: Snapshot, opts: ReconcileOptions, d: Wait, waiting_phase: str
) -> None:
    """A queued job that does not start this round: unscheduled, planned later, or planned now but
    with no whole workers' room left (told so at once: that is no plan rewrite)."""
    assert job.spec is not None
    now = snap.now
    if d.no_room:
        _patch(out, job, now, phase=waiting_phase, reason=d.reason)
        return
    if not _plan_write_due(job, opts, now):
        return  # planned recently: a waiting job's plan is not rewritten every round
    if not d.scheduled:
        code = d.code or "unscheduled"
        seen = job.status.reason_code_seen
        _plan_patch(
            out,
            job,
            now,
            opts,
            phase=waiting_phase,
            reason=d.reason,
            planned_start=None,
            planned_end=None,
            reason_code_seen=code,
        )
        if seen != code:
            out.append(Emit(ref(job), "Warning", "Unschedulable", d.reason))
        return
    start = d.start or 0.0
    what = f"{job.spec.gpus} x {d.gpu_type}"
    when = _human_start(snap, start)
    end = _human_start(snap, d.end) if d.end is not None else None
    had = job.status.planned_start
    before = parse_datetime(had)
    if (
        before is not None
        and abs((before - (now + timedelta(hours=start))).total_seconds()) < REPLAN_JITTER_S
    ):
        # The same plan seen a little later: do not rewrite the job for a few minutes' drift.
        when, end = had or when, job.status.planned_end
    _plan_patch(
        out,
        job,
        now,
        opts,
        phase=waiting_phase,
        reason=f"waiting for {what}; planned start {when}",
        planned_start=when,
        planned_end=end,
        gpu_type=d.gpu_type,
    )
    if had is None:
        out.append(Emit(ref(job), "Normal", "Planned", f"planned to start {when} on {what}"))


def _outside_window(
    out: list[Action], snap: Snapshot, by_name: dict[str, Any], busy: set[str], opts: ReconcileOptions
) -> None:
    """Queued jobs this round's window left out: a job never told anything learns why it waits."""
    shown = sum(1 for j in snap.plannable() if j.state == "queued" and j.key in by_name)
    for job in snap.plannable():
        if job.state != "queued" or job.key in busy or job.key in by_name:
            continue
        if "phase" not in (job.raw.get("status") or {}):
            _patch(
                out,
                job,
                snap.now,
                phase="Pending",
                reason=f"queued: outside this round's planning window ({shown} queued jobs planned first)",
            )


WAITING = ("Pending", "Planned", DRY_RUN, "Preempted")


def _plan_write_due(job: JobView, opts: ReconcileOptions, now: datetime) -> bool:
    """May this round (re)write a waiting job's plan? Always for a job that has none yet; for one
    that is already waiting, only in a full round and only PLAN_REFRESH_S after the last full
    round's write. Quick (event) rounds and full rounds plan differently (heuristics or an
    optimiser with a time limit), and a solver may pick another of several equal plans each time:
    letting each write its own would rewrite every waiting job every round, and every write wakes
    every watcher, so an idle cluster would never be idle."""
    if "phase" not in (job.raw.get("status") or {}) or job.status.phase not in WAITING:
        return True
    if job.status.planned_start is None and job.status.reason_code_seen is None:
        return True  # waiting, but never planned (a restart's backoff, a withdrawn gang)
    if not opts.full_round:
        return False
    written = parse_datetime(job.status.planned_at)
    return written is None or (now - written).total_seconds() >= PLAN_REFRESH_S


def _plan_patch(
    out: list[Action], job: JobView, now: datetime, opts: ReconcileOptions, **fields: Any
) -> None:
    """A waiting job's plan; a full round's write also records when (plannedAt), which is what
    spaces later rewrites (see _plan_write_due)."""
    patch = status_patch(job, now, **fields)
    if patch is None:
        return
    if opts.full_round:
        patch["plannedAt"] = iso(now)
    out.append(PatchStatus(ref(job), patch))
    _written(job, patch)


def _start(
    out: list[Action],
    job: JobView,
    snap: Snapshot,
    placement: list[Placement],
    attempt: int,
    gpu_type: str | None,
    resume: bool,
) -> None:
    assert job.spec is not None
    ranks = rank_nodes(placement, job.spec.per_node)
    if ranks is None:
        return
    nodes = sorted({p.node for p in placement})
    why = f"running on {', '.join(nodes)} ({job.spec.gpus} x {gpu_type})"
    started = iso(snap.now)
    # One status write once the gang is bound (not one before and one after): the placement and
    # attempt also live in every pod's labels and annotations, which is what a restart reads.
    then = status_patch(
        job,
        snap.now,
        phase="Running",
        reason=why,
        attempt=attempt,
        gpu_type=gpu_type,
        placement=[{"node": p.node, "gpus": p.gpus} for p in placement],
        nodes=nodes,
        planned_start=job.status.planned_start if resume else started,
        started_at=started,
        first_started_at=job.status.first_started_at or started,
    )
    existing = {p.rank for p in job.current_pods() if p.node} if resume else set()
    if needs_service(job.spec):  # a lone worker needs no Service (podspec.needs_service)
        out.append(CreateService(ref(job), service_manifest(job.raw, job.spec.template.port)))
    pods = [
        (worker_manifest(job.raw, job.spec, attempt, rank, node, placement), node)
        for rank, node in enumerate(ranks)
        if rank not in existing or not resume
    ]
    out.append(StartGang(ref(job), attempt, pods, then_status=then, then_event=("Started", why)))


def reconcile(snap: Snapshot, plan: Plan | None, opts: ReconcileOptions | None = None) -> Decisions:
    """All actions for one round. Without a plan only the lifecycle pass runs."""
    opts = opts or ReconcileOptions()
    decisions = Decisions()
    busy = lifecycle(snap, opts, decisions)
    for job in snap.jobs.values():
        if job.key not in busy and job.unplannable is not None:
            _patch(decisions.actions, job, snap.now, phase="Pending", reason=job.unplannable)
    if plan is not None:
        follow_plan(snap, plan, busy, opts, decisions)
    if opts.dry_run:
        decisions.actions = [
            a
            for a in decisions.actions
            if (isinstance(a, PatchStatus) and _plan_only(a.patch))
            or (isinstance(a, Emit) and a.reason == "InvalidSpec")  # says why a job is never planned
        ]
        decisions.started.clear()
        decisions.preempted.clear()
    return decisions


_PLAN_FIELDS = {
    "reason",
    "plannedAt",
    "plannedStart",
    "plannedEnd",
    "gpuType",
    "phase",
    "conditions",
    "observedGeneration",
    "reasonCodeSeen",
}


def _plan_only(patch: Obj) -> bool:
    return set(patch) <= _PLAN_FIELDS and patch.get("phase") in (None, "Pending", "Planned", DRY_RUN, INVALID)
