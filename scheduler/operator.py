"""The control loop: caches -> snapshot -> lifecycle + plan -> apply, on events (debounced) and a period.

All state is in the API server (job status, pod labels and names), so `run_once` after a crash
rebuilds the same view and continues where the dead replica stopped; the caches are only caches.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import typing
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from gpusched import defaults
from gpusched.backoff import Backoff
from gpusched.model import GpuType, Plan
from gpusched.scheduler.applier import Applier, ApplyResult
from gpusched.scheduler.crd import Phase
from gpusched.scheduler.informer import Informer
from gpusched.scheduler.kube import GPUJOBS, GPUNODES, NODES, PODS, Kube
from gpusched.scheduler.leader import LeaderElector
from gpusched.scheduler.metrics import HealthServer, OperatorMetrics
from gpusched.scheduler.reconcile import ReconcileOptions, plan_input, reconcile
from gpusched.scheduler.snapshot import Snapshot, SnapshotConfig, build_snapshot
from gpusched.solver.frontend import at_once
from gpusched.units import parse_datetime

log = logging.getLogger(__name__)


@dataclass
class OperatorSettings:
    gpu_types: list[GpuType]
    namespace: str | None = None
    """Watch GPUJobs in this namespace only (None: all). Pods are always cluster-wide, since GPUs
    held by any pod are not free."""
    node_selector: str | None = None
    """Label selector of the nodes gpusched may use (None: every node with GPUs): a dedicated node
    pool. Other nodes are not watched and never get workers; a node whose labels stop matching is
    treated as gone (its gangs are stopped and re-planned)."""
    replan_interval: float = 30.0
    debounce: float = 0.5
    max_debounce: float = 3.0
    policy: str = defaults.POLICY
    horizon: float = defaults.HORIZON_H
    slot: float = defaults.SLOT_H
    time_limit: float = 10.0
    """Planner seconds for the periodic round, which may optimise."""
    fast_time_limit: float = 2.0
    """Planner seconds for rounds triggered by events: a new job should not wait for an optimiser."""
    dry_run: bool = False
    stale_after: timedelta = timedelta(minutes=2)
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = "gpusched-operator"
    identity: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    lease_seconds: int = 15
    metrics_port: int | None = None
    apply_workers: int = 16
    watch_timeout: int = 300
    backoff_base_s: float = 10.0
    once: bool = False
    """One full round, then return (`gpusched operator --once`)."""
    give_up_after: float | None = None
    """Seconds of retrying an unreachable API server before raising Unreachable (None: retry for
    ever, as a Deployment's replica should; --once and --dry-run give up, a person is waiting)."""
    cache_sync_timeout: float = 30.0


class Unreachable(Exception):
    """The API server could not be reached (or its caches not filled) within give_up_after."""

    def __init__(self, server: str, why: str) -> None:
        super().__init__(f"cannot reach the API server at {server}: {why}")
        self.server, self.why = server, why


@dataclass
class RoundReport:
    snapshot: Snapshot
    plan: Plan | None
    result: ApplyResult
    actions: int
    seconds: float
    solve_seconds: float


class RoundPhases(typing.NamedTuple):
    """One round's time by phase, in seconds (wall time: apply waits on the API server)."""

    finished: float
    plannable: int
    snapshot_s: float
    solve_s: float
    reconcile_s: float
    apply_s: float
    round_s: float
    actions: int
    bound_pods: int
    started: int
    fast: bool


class Operator:
    def __init__(
        self, kube: Kube, settings: OperatorSettings, metrics: OperatorMetrics | None = None
    ) -> None:
        self.kube, self.settings = kube, settings
        self.metrics = metrics or OperatorMetrics()
        kube.on_request = lambda verb, code: self.metrics.api_requests.labels(verb, str(code)).inc()
        self._wake = threading.Event()
        self._first_event: float | None = None
        self._last_event = 0.0
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self.stop_requested = False
        """True when stop() was called (a signal): stop_event alone may also mean the Lease was lost."""
        on = self._on_change
        self.jobs = Informer(kube, GPUJOBS, settings.namespace, on, settings.watch_timeout)
        self.pods = Informer(kube, PODS, None, on, settings.watch_timeout)
        self.nodes = Informer(
            kube, NODES, None, on, settings.watch_timeout, label_selector=settings.node_selector
        )
        self.gpunodes = Informer(kube, GPUNODES, None, on, settings.watch_timeout)
        self.informers = [self.jobs, self.pods, self.nodes, self.gpunodes]
        self.applier = Applier(kube, settings.apply_workers, pods=self.pods, jobs=self.jobs)
        self.elector = LeaderElector(
            kube,
            settings.lease_namespace,
            settings.lease_name,
            settings.identity,
            lease_seconds=settings.lease_seconds,
            renew_every=max(1.0, settings.lease_seconds / 3),
        )
        self.rounds = 0
        self.last_round_ok = time.monotonic()
        self.last_report: RoundReport | None = None
        self.round_log: deque[tuple[float, float, float, int, int]] = deque(maxlen=10_000)
        """(finished at monotonic, round seconds, solve seconds, pods bound, gangs started) per round."""
        self.round_phases: deque[RoundPhases] = deque(maxlen=10_000)
        """Where each round's time went (benchmarks/bench_operator.py prints them)."""
        self.health: HealthServer | None = None
        # The planner's import (numpy, scipy, PuLP: seconds on a busy machine) is paid here, at
        # start, not by the first round: that round decides the first placement.
        import gpusched.solver  # noqa: F401

    # ------------------------------------------------------------------ events

    def _on_change(self, kind: str, event: str, obj: dict[str, object]) -> None:
        now = time.monotonic()
        with self._lock:
            if self._first_event is None:
                self._first_event = now
            self._last_event = now
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to end after the current round (a signal handler may call this)."""
        self.stop_requested = True
        self.stop_event.set()
        self._wake.set()

    def trigger(self) -> None:
        self._on_change("manual", "TRIGGER", {})

    # ------------------------------------------------------------------ one round

    def snapshot(self, now: datetime | None = None) -> Snapshot:
        cfg = SnapshotConfig(
            gpu_types=self.settings.gpu_types,
            stale_after=self.settings.stale_after,
            node_selector=self.settings.node_selector,
        )
        return build_snapshot(
            self.jobs.items(),
            self.pods.items(),
            self.nodes.items(),
            self.gpunodes.items(),
            cfg,
            now or datetime.now(timezone.utc),
            deleted_pods=self.pods.tombstones(),
        )

    def run_once(self, now: datetime | None = None, fast: bool = False) -> RoundReport:
        from gpusched.solver import PlanOptions
        from gpusched.solver import plan as solve  # imported once, in __init__

        t0 = time.perf_counter()
        snap = self.snapshot(now)
        t1_snap = time.perf_counter()
        for w in snap.warnings:
            log.debug("snapshot warning", extra={"warning": w})
        # The front-end's window and hysteresis, the very selection the simulator makes.
        selection = plan_input(snap, self.settings.policy)
        plannable = selection.jobs
        plan: Plan | None = None
        solve_s = 0.0
        if plannable and snap.cluster.nodes:
            options = PlanOptions(
                policy=self.settings.policy,  # type: ignore[arg-type]
                horizon=self.settings.horizon,
                slot=self.settings.slot,
                time_limit=min(self.settings.fast_time_limit, self.settings.time_limit)
                if fast
                else self.settings.time_limit,
                epoch=snap.now,
            )
            t1 = time.perf_counter()
            try:
                # A forced round (every queued job starts now on its best type) is decided by the
                # front-end without a model, exactly as the simulator decides it.
                plan = at_once(
                    snap.cluster, selection, self.settings.policy, options.horizon, options.slot, snap.now
                ) or solve(snap.cluster, plannable, options)
            except Exception:
                log.exception("planner failed; applying lifecycle decisions only")
            solve_s = time.perf_counter() - t1
            self.metrics.solve_seconds.observe(solve_s)
        opts = ReconcileOptions(
            dry_run=self.settings.dry_run, backoff_base_s=self.settings.backoff_base_s, full_round=not fast
        )
        t2 = time.perf_counter()
        decisions = reconcile(snap, plan, opts)
        t3 = time.perf_counter()
        result = self.applier.apply(decisions)
        t4 = time.perf_counter()
        for key in decisions.started:
            job = snap.jobs[key]
            if job.created is not None and job.status.first_started_at is None:
                self.metrics.submit_to_running.observe(max(0.0, (snap.now - job.created).total_seconds()))
        self.metrics.preemptions.inc(len(decisions.preempted))
        self.metrics.gang_withdrawals.inc(len(result.withdrawn))
        self.metrics.pods_bound.inc(result.bound_pods)
        self._observe(snap, plan)
        seconds = time.perf_counter() - t0
        self.metrics.cycle_seconds.observe(seconds)
        self.metrics.rounds.inc()
        self.rounds += 1
        self.last_round_ok = time.monotonic()
        if decisions.actions:
            log.info(
                "round applied",
                extra={
                    "actions": len(decisions.actions),
                    "started": len(decisions.started),
                    "preempted": len(decisions.preempted),
                    "withdrawn": len(result.withdrawn),
                    "bound_pods": result.bound_pods,
                    "solve_s": round(solve_s, 3),
                    "round_s": round(seconds, 3),
                    "errors": result.errors[:5],
                },
            )
        if result.withdrawn or result.failed_jobs:
            self.trigger()  # re-plan soon: the gang's GPUs or the API may be fine a moment later
        self.round_log.append((time.monotonic(), seconds, solve_s, result.bound_pods, len(decisions.started)))
        self.round_phases.append(
            RoundPhases(
                time.monotonic(), len(plannable), t1_snap - t0, solve_s, t3 - t2, t4 - t3, seconds,
                len(decisions.actions), result.bound_pods, len(decisions.started), fast,
            )
        )  # fmt: skip
        report = RoundReport(snap, plan, result, len(decisions.actions), seconds, solve_s)
        self.last_report = report
        return report

    def _observe(self, snap: Snapshot, plan: Plan | None) -> None:
        queue: Counter[str] = Counter()
        phases: Counter[str] = Counter()
        for job in snap.jobs.values():
            phases[job.status.phase] += 1
            if job.state == "queued" and job.spec is not None:
                queue[job.spec.team] += 1
        self.metrics.queue_length.clear()
        for team, n in queue.items():
            self.metrics.queue_length.labels(team).set(n)
        for phase in typing.get_args(Phase):
            self.metrics.jobs_by_phase.labels(phase).set(phases.get(phase, 0))
        # GPUs in service: open ones, plus those gangs still hold on cordoned or NotReady nodes.
        healthy = (
            sum(n.healthy_gpus for n in snap.cluster.nodes)
            + sum(max(0, snap.nodes[n.name].held_managed) for n in snap.cluster.nodes if n.cordoned)
        ) or 1
        held = sum(sum(j.nodes.values()) for j in snap.jobs.values() if j.state == "running")
        self.metrics.actual_utilisation.set(held / healthy)
        if plan is not None:
            planned = sum(jp.gpus for jp in plan.jobs if jp.placement)
            self.metrics.planned_utilisation.set(planned / healthy)

    # ------------------------------------------------------------------ the loop

    def connect(self) -> bool:
        """Wait until the API server answers, retrying with backoff and saying so; False if stopped
        first. Raises Unreachable once settings.give_up_after seconds have gone by."""
        s = self.settings
        server = self.kube.server
        quiet = s.give_up_after is not None  # a person waits for one line, not for retry logs
        log.log(
            logging.DEBUG if quiet else logging.INFO, "connecting to the API server", extra={"server": server}
        )
        started, backoff = time.monotonic(), Backoff(0.5, 30.0)
        while not self.stop_event.is_set():
            why = self.kube.probe()
            if why is None:
                return True
            if s.give_up_after is not None and time.monotonic() - started + backoff.delay > s.give_up_after:
                raise Unreachable(server, why)
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "API server unreachable; retrying",
                extra={"server": server, "error": why, "retry_in_s": backoff.delay},
            )
            self.stop_event.wait(backoff.next())
        return False

    def start_informers(self, timeout: float | None = None) -> None:
        """Start the caches and wait until each has listed once. Waits for ever (saying so every
        `cache_sync_timeout` seconds) unless give_up_after is set (or a timeout given): then raises
        Unreachable after `cache_sync_timeout` seconds (or the timeout)."""
        s = self.settings
        for inf in self.informers:
            inf.start()
        limit = (
            timeout
            if timeout is not None
            else (s.cache_sync_timeout if s.give_up_after is not None else None)
        )
        started = last_said = time.monotonic()
        while True:
            pending = [inf for inf in self.informers if not inf.synced.is_set()]
            if not pending or self.stop_event.is_set():
                return
            now = time.monotonic()
            if limit is not None and now - started >= limit:
                errors = "; ".join(f"{i.kind.name}: {i.last_error or 'no answer'}" for i in pending)
                raise Unreachable(
                    self.kube.server, f"caches not filled after {now - started:.0f}s ({errors})"
                )
            if limit is None and now - last_said >= s.cache_sync_timeout:
                last_said = now
                log.warning(
                    "caches not synced yet; still waiting",
                    extra={"pending": {i.kind.name: i.last_error for i in pending}},
                )
            self.stop_event.wait(0.05)  # short: a signal must not wait for a slow list

    def healthy(self) -> tuple[bool, str]:
        if not all(inf.synced.is_set() for inf in self.informers) and self.elector.is_leader.is_set():
            return False, "caches not synced"
        stale = time.monotonic() - self.last_round_ok
        if self.elector.is_leader.is_set() and stale > 3 * self.settings.replan_interval + 60:
            return False, f"no reconcile round for {stale:.0f}s"
        return True, "leader" if self.elector.is_leader.is_set() else "standby"

    def run(self) -> None:
        """Serve health, win the Lease, sync caches, then reconcile until stopped or the Lease is lost."""
        s = self.settings
        if s.metrics_port is not None:
            self.health = HealthServer(self.metrics, self.healthy, s.metrics_port).start()
        if not self.connect():
            return
        if s.leader_election:
            if not self.elector.acquire(self.stop_event):
                return
            self.elector.start_renewing(on_lost=self.stop_event.set)
        else:
            self.elector.is_leader.set()
        self.metrics.leader.set(1)
        self.start_informers()
        if s.once:
            if not self.stop_event.is_set():
                self.run_once()
            self.metrics.leader.set(0)
            return
        last = last_full = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            with self._lock:
                first, latest = self._first_event, self._last_event
            due_event = first is not None and (now - latest >= s.debounce or now - first >= s.max_debounce)
            due_period = now - last >= s.replan_interval
            if due_event or due_period:
                with self._lock:
                    self._first_event = None
                self._wake.clear()
                # Fresh changes (new jobs) get a quick round even when the period is due too: the
                # optimiser's time limit would hold back their placement; the full round follows at
                # once, unless changes keep coming (then at least every second period).
                starved = now - last_full >= 2 * s.replan_interval
                fast = not due_period or (first is not None and not starved)
                try:
                    report = self.run_once(fast=fast)
                except Exception:
                    if self.stop_event.is_set():
                        break
                    log.exception("reconcile round failed")
                    time.sleep(1.0)
                    self.trigger()
                    report = None
                last = time.monotonic()
                if not fast:
                    last_full = last
                elif due_period:
                    last -= s.replan_interval  # the full round this quick one stood in for is still due
                elif report is not None and _someone_waits(report) and s.fast_time_limit < s.time_limit:
                    # The quick plan left work waiting: let the optimiser (which may preempt) look at
                    # it soon rather than at the next period (at most every third of the period).
                    due = max(last, last_full + s.replan_interval / 3)
                    last = min(last, due - s.replan_interval)
                continue
            wait = s.replan_interval - (now - last)
            if first is not None:
                wait = min(wait, max(0.01, min(s.debounce - (now - latest), s.max_debounce - (now - first))))
            self._wake.wait(max(0.01, wait))
            self._wake.clear()
        self.metrics.leader.set(0)

    def shutdown(self) -> None:
        self.stop_event.set()
        self._wake.set()
        for inf in self.informers:
            inf.stop()
        self.elector.release()
        self.applier.close()
        if self.health is not None:
            self.health.stop()


def _someone_waits(report: RoundReport) -> bool:
    """Work waits that only a preemption could start now: a waiting job outranks a preemptible one."""
    if report.plan is None:
        return False
    jobs = {j.key: j.planner_job for j in report.snapshot.jobs.values() if j.planner_job is not None}
    waiting = [
        jobs[jp.job].priority
        for jp in report.plan.jobs
        if jp.job in jobs and jp.status != "running" and not jp.placement
    ]
    victims = [j.priority for j in jobs.values() if j.running is not None and j.preemptible]
    return bool(waiting and victims and max(waiting) > min(victims))


def created_at(obj: dict[str, object]) -> datetime | None:
    meta = obj.get("metadata")
    return parse_datetime(meta.get("creationTimestamp")) if isinstance(meta, dict) else None
