"""The discrete-event engine: arrivals, starts, completions, preemptions, failures, maintenance
windows, re-plan ticks.

A policy (policies/) decides who runs; the engine owns time, GPUs and accounting, so every policy is
measured by the same rules: the same restart overheads, the same checkpoint losses, the same
failures (seeded), the same node-level placement. Events at one instant are applied together and the
policy is asked to schedule once after them, which both matches how a real scheduler debounces and
keeps 82k-job replays fast.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from gpusched.model import Cluster
from gpusched.simulations.events import EventQueue, Kind
from gpusched.simulations.outages import Outages
from gpusched.simulations.state import FULL, ClusterState, Share
from gpusched.simulations.workload import SimJob, TraceJob
from gpusched.solver.placement import place

if TYPE_CHECKING:
    from gpusched.simulations.policies.base import SchedPolicy

EPS = 1e-9


class SimConfig(BaseModel):
    """Knobs that are the same for every policy in a comparison."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    checkpoint_on_preempt: bool = True
    """A preempted job saves its progress before it stops (SIGTERM checkpoint); failures never do."""
    default_restart_overhead: float = Field(default=0.0, ge=0)
    """Hours lost at each restart for jobs whose trace gives none."""
    mtbf_hours: float | None = Field(default=None, gt=0)
    """Mean time between failures of ONE GPU; None disables failures."""
    mttr_hours: float = Field(default=2.0, gt=0)
    """Mean repair time of a failed GPU (exponentially distributed)."""
    spread_small_jobs: bool = False
    """Let gangs that fit on one node span several (off: they wait for a node with room)."""
    sample_every: float = Field(default=1 / 60, gt=0)
    """Hours between samples of utilisation / queue length / fragmentation."""


@dataclass(slots=True)
class Sample:
    time: float
    busy: float
    healthy: int
    pending: int
    running: int
    fragmented: int


@dataclass
class SimResult:
    """What a run produced; metrics.py turns this into numbers, report.py into files."""

    policy: str
    jobs: list[SimJob]
    rejected: list[TraceJob]
    samples: list[Sample]
    cluster: Cluster
    events: int
    wall_s: float
    end_time: float
    extra: dict[str, Any] = field(default_factory=dict)


class Simulator:
    """Replays `jobs` on `cluster` under `policy`."""

    def __init__(
        self,
        cluster: Cluster,
        jobs: Sequence[TraceJob],
        policy: SchedPolicy,
        config: SimConfig | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self._fits_anywhere: dict[tuple[object, int], bool] = {}
        self.config = config or SimConfig()
        self.state = ClusterState(cluster, spread_small_jobs=self.config.spread_small_jobs)
        self.types = cluster.type_map()
        self.policy = policy
        self.progress = progress
        ordered = sorted(jobs, key=lambda j: j.release)
        self.jobs = [SimJob(idx=i, spec=j) for i, j in enumerate(ordered)]
        self.rejected: list[TraceJob] = []
        self.pending: dict[int, SimJob] = {}
        self.running: dict[int, SimJob] = {}
        self.finished = 0
        self.now = 0.0
        self.events = EventQueue()
        self.rng = random.Random(self.config.seed)
        self.busy = 0.0
        self.samples: list[Sample] = []
        self._next_arrival = 0
        self._arrived = 0
        self._wakeups: set[float] = set()
        self._pending_sizes: Counter[tuple[tuple[str, ...] | None, int]] = Counter()
        self._type_order: dict[tuple[tuple[str, ...] | None, tuple[tuple[str, float], ...]], list[str]] = {}
        self._last_sample = -math.inf
        self.total_preemptions = 0
        self.total_failures = 0
        self.total_drains = 0
        self.outages = Outages(self.state, cluster.maintenance)

    # --------------------------------------------------------------------------------- policy API

    def allowed_types(self, job: SimJob) -> list[str]:
        """Types the job may use that exist in the cluster, fastest for it first, then cheapest."""
        if job.type_order is not None:
            return job.type_order
        spec = job.spec
        key = (spec.gpu_types, tuple(sorted(spec.speeds.items())))
        order = self._type_order.get(key)
        if order is None:
            names = [t for t in self.types if spec.gpu_types is None or t in spec.gpu_types]
            order = sorted(names, key=lambda t: (-self.speed(job, t), self.types[t].price_per_hour, t))
            self._type_order[key] = order
        job.type_order = order
        return order

    def speed(self, job: SimJob, gpu_type: str) -> float:
        return job.spec.speeds.get(gpu_type, self.types[gpu_type].speed)

    def can_run_anywhere(self, spec: TraceJob) -> bool:
        key = (spec.gpu_types, spec.gpus)
        known = self._fits_anywhere.get(key)
        if known is None:  # the cluster's GPUs per type never change during a run: once per kind
            known = any(
                (spec.gpu_types is None or t in spec.gpu_types) and self.state.can_ever_fit(spec.gpus, t)
                for t in self.types
            )
            self._fits_anywhere[key] = known
        return known

    def try_start(self, job: SimJob, types: Sequence[str] | None = None) -> bool:
        """Place the job on the first allowed type with room (node-level best fit) and start it."""
        state = self.state
        for t in types if types is not None else self.allowed_types(job):
            shares = place(state, state.gang(job.spec.gpus, job.spec.gpu_milli, t))
            if shares is not None:
                self.start(job, shares, t)
                return True
        return False

    def start(self, job: SimJob, shares: list[Share], gpu_type: str) -> None:
        assert job.state == "pending", (job.name, job.state)
        del self.pending[job.idx]
        self._pending_sizes[(job.spec.gpu_types, job.spec.gpus)] -= 1
        self.running[job.idx] = job
        job.state = "running"
        self.state.allocate(shares, job.idx)
        job.placement = shares
        job.gpu_type = gpu_type
        job.run_start = self.now
        job.run_speed = self.speed(job, gpu_type)
        overhead = 0.0
        if job.starts > 0:
            overhead = job.spec.restart_overhead or self.config.default_restart_overhead
        job.run_overhead = overhead
        if job.first_start is None:
            job.first_start = self.now
        job.starts += 1
        job.finish_token += 1
        self.busy += job.spec.gpus * job.spec.gpu_milli / FULL
        end = self.now + overhead + job.remaining / job.run_speed
        self.events.push(end, Kind.FINISH, (job.idx, job.finish_token))
        self.policy.on_start(job)

    def preempt(self, job: SimJob) -> None:
        """Stop a running job by the policy's decision; it checkpoints if the config says so."""
        self._stop(job, checkpoint=self.config.checkpoint_on_preempt)
        job.preemptions += 1
        self.total_preemptions += 1
        self._requeue(job)

    @property
    def arrivals_left(self) -> int:
        """Jobs of the trace that have not arrived yet."""
        return len(self.jobs) - self._arrived

    def wake_at(self, time: float, payload: Any = None) -> None:
        """Ask for a policy call at `time` (payload None: a plain re-schedule, de-duplicated)."""
        if payload is None:
            if time in self._wakeups:
                return
            self._wakeups.add(time)
        self.events.push(max(time, self.now), Kind.WAKEUP, payload)

    def attained(self, job: SimJob) -> float:
        """GPU-hours of service so far, including the current run."""
        if job.state == "running":
            return job.attained + (self.now - job.run_start) * job.spec.gpus
        return job.attained

    def progress_now(self, job: SimJob) -> float:
        """Reference work done so far including the current run (not all of it saved yet)."""
        if job.state != "running":
            return job.done
        ran = max(0.0, self.now - job.run_start - job.run_overhead)
        return min(job.spec.work, job.done + ran * job.run_speed)

    # ------------------------------------------------------------------------------- accounting

    def _account(self, job: SimJob) -> float:
        elapsed = self.now - job.run_start
        share = job.spec.gpus * job.spec.gpu_milli / FULL
        price = self.types[job.gpu_type].price_per_hour if job.gpu_type else 0.0
        job.gpu_hours += share * elapsed
        job.cost += share * elapsed * price
        job.attained += elapsed * job.spec.gpus
        job.overhead_hours += min(elapsed, job.run_overhead) * share
        self.busy -= share
        return elapsed

    def _stop(self, job: SimJob, checkpoint: bool) -> None:
        elapsed = self._account(job)
        ran = max(0.0, elapsed - job.run_overhead)
        progress = ran * job.run_speed
        if checkpoint:
            saved = progress
        elif job.spec.checkpoint_interval:
            c = job.spec.checkpoint_interval
            saved = math.floor(ran / c + EPS) * c * job.run_speed
        else:
            saved = 0.0
        saved = min(saved, job.remaining)
        job.lost_work += max(0.0, progress - saved)
        job.done += saved
        self.state.release(job.placement, job.idx)
        job.placement = []
        del self.running[job.idx]
        job.finish_token += 1
        self.policy.on_stop(job)

    def _requeue(self, job: SimJob) -> None:
        job.state = "pending"
        job.last_queued = self.now
        self.pending[job.idx] = job
        self._pending_sizes[(job.spec.gpu_types, job.spec.gpus)] += 1
        self.policy.on_requeue(job)

    # -------------------------------------------------------------------------------- main loop

    def run(self) -> SimResult:
        import time as _time

        t0 = _time.perf_counter()
        self.policy.attach(self)
        self._push_next_arrival()
        if self.config.mtbf_hours is not None and self.state.total_healthy > 0:
            self._push_next_failure()
        for i, window in enumerate(self.cluster.maintenance):
            self.events.push(window.start, Kind.WINDOW_START, i)
            self.events.push(window.end, Kind.WINDOW_END, i)
        total = len(self.jobs)
        dirty = False
        while len(self.events):
            time, kind, payload = self.events.pop()
            if time < self.now - EPS:
                raise RuntimeError(f"event at {time} before now {self.now}")
            self.now = max(self.now, time)
            if kind is Kind.FINISH:
                dirty |= self._on_finish(payload)
            elif kind is Kind.ARRIVAL:
                self._on_arrival(payload)
                dirty = True
            elif kind is Kind.FAILURE:
                dirty |= self._on_failure()
            elif kind is Kind.REPAIR:
                self.outages.repair(payload)
                dirty = True
            elif kind is Kind.WINDOW_START:
                dirty |= self._on_window_start(payload)
            elif kind is Kind.WINDOW_END:
                self.outages.end(payload)
                dirty = True
            else:
                if payload is None:
                    self._wakeups.discard(time)
                    dirty = True
                else:
                    dirty |= self.policy.on_wakeup(payload)
            next_time = self.events.peek_time()
            if dirty and (next_time is None or next_time > self.now + EPS):
                self.policy.schedule(self.now)
                dirty = False
                self._sample()
                if self.progress is not None and self.events.popped % 2000 < 8:
                    self.progress(self.finished + len(self.rejected), total)
            if self.finished + len(self.rejected) == total and not self.running:
                break
        self._sample(force=True)
        if self.progress is not None:
            self.progress(self.finished + len(self.rejected), total)
        return SimResult(
            policy=self.policy.name,
            jobs=self.jobs,
            rejected=self.rejected,
            samples=self.samples,
            cluster=self.cluster,
            events=self.events.popped,
            wall_s=_time.perf_counter() - t0,
            end_time=self.now,
            extra={"preemptions": self.total_preemptions, "failures": self.total_failures,
                   "maintenance_stops": self.total_drains, **self.policy.stats()},
        )

    def _push_next_arrival(self) -> None:
        if self._next_arrival < len(self.jobs):
            job = self.jobs[self._next_arrival]
            self.events.push(job.spec.release, Kind.ARRIVAL, job.idx)
            self._next_arrival += 1

    def _on_arrival(self, idx: int) -> None:
        job = self.jobs[idx]
        self._arrived += 1
        self._push_next_arrival()
        if not self.can_run_anywhere(job.spec):
            job.state = "rejected"
            self.rejected.append(job.spec)
            return
        job.last_queued = self.now
        job.state = "pending"
        self.pending[idx] = job
        self._pending_sizes[(job.spec.gpu_types, job.spec.gpus)] += 1
        self.policy.on_arrival(job)

    def _on_finish(self, payload: tuple[int, int]) -> bool:
        idx, token = payload
        job = self.jobs[idx]
        if job.state != "running" or job.finish_token != token:
            return False
        self._account(job)
        job.done = job.spec.work
        self.state.release(job.placement, job.idx)
        job.placement = []
        del self.running[idx]
        job.state = "finished"
        job.finish = self.now
        job.finish_token += 1
        self.finished += 1
        self.policy.on_finish(job)
        return True

    def _push_next_failure(self) -> None:
        assert self.config.mtbf_hours is not None
        gpus = self.cluster.total_gpus()
        rate = gpus / self.config.mtbf_hours
        self.events.push(self.now + self.rng.expovariate(rate), Kind.FAILURE, None)

    def _on_failure(self) -> bool:
        if self.finished + len(self.rejected) == len(self.jobs):
            return False
        self._push_next_failure()
        n = self.rng.randrange(self.cluster.total_gpus())
        node = 0
        while n >= self.state.node_size[node]:
            n -= self.state.node_size[node]
            node += 1
        victims = self.outages.fail((node, n))
        self.total_failures += 1
        for idx in victims:
            job = self.jobs[idx]
            self._stop(job, checkpoint=False)
            job.failures_hit += 1
            self._requeue(job)
        self.events.push(self.now + self.rng.expovariate(1 / self.config.mttr_hours), Kind.REPAIR, (node, n))
        return True

    def _on_window_start(self, window: int) -> bool:
        """A maintenance window takes its GPUs; the jobs on them are stopped and re-queued.

        Planned, so a preemptible job is drained like a preemption (it checkpoints when the config
        says preempted jobs do); a non-preemptible one loses the work since its last checkpoint.
        """
        for idx in self.outages.begin(window):
            job = self.jobs[idx]
            # A job that cannot be preempted cannot be drained cleanly either: like a failure, it
            # keeps only its periodic checkpoints.
            self._stop(job, checkpoint=self.config.checkpoint_on_preempt and job.spec.preemptible)
            job.drains += 1
            self.total_drains += 1
            self._requeue(job)
        return True

    def smallest_pending(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (types, gpus), count in self._pending_sizes.items():
            if count <= 0:
                continue
            for t in self.types if types is None else types:
                if t in self.types and gpus < out.get(t, 1 << 30):
                    out[t] = gpus
        return out

    def _sample(self, force: bool = False) -> None:
        if not force and self.now - self._last_sample < self.config.sample_every:
            return
        self._last_sample = self.now
        frag = self.state.fragmented(self.smallest_pending()) if self.pending else 0
        self.samples.append(
            Sample(self.now, self.busy, self.state.total_healthy, len(self.pending), len(self.running), frag)
        )


def simulate_trace(
    cluster: Cluster,
    jobs: Sequence[TraceJob],
    policy: str,
    config: SimConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    **policy_options: Any,
) -> SimResult:
    """Run one policy by name (see policies.make_policy) on a trace."""
    from gpusched.simulations.policies import make_policy

    sim = Simulator(cluster, jobs, make_policy(policy, **policy_options), config, progress)
    return sim.run()
