"""Tiresias-style discretised two-dimensional least-attained-service (Gu et al., NSDI'19).

Attained service is GPU-time (GPUs x hours run), the "2D" of 2D-LAS: it favours both short and
narrow jobs without knowing durations. Jobs sit in K priority queues split by attained-service
thresholds; a job is demoted the moment it crosses its queue's threshold (an exact timer, not a
polling quantum), queues are served in order and FIFO (by arrival) inside a queue, and a higher-queue
job preempts lower-queue running jobs. Optional starvation guard (`promote_after` hours, off by
default): a job waiting in a lower queue -- it was demoted, then preempted -- that has waited that
long since it was last queued goes back to the top queue, as Tiresias' starvation guard does, and its
queue quota starts afresh there (attained service counts from the promotion for demotion), so it
runs a full top-queue quantum instead of being demoted again the instant it restarts. The promotion
is an exact timer, like demotion, not a check at the next unrelated event.
"""

from __future__ import annotations

import bisect
from typing import Any

from gpusched.simulations.policies.base import SchedPolicy
from gpusched.simulations.state import FULL
from gpusched.simulations.workload import SimJob

DEFAULT_THRESHOLDS = (1.0, 16.0)
"""GPU-hours; three queues: < 1 GPU-h, < 16 GPU-h, the rest."""


class Las(SchedPolicy):
    name = "las"
    scan_limit = 2000
    """Waiting jobs examined per pass beyond which the rest are left waiting (cheap on huge queues)."""

    def __init__(self, thresholds: tuple[float, ...] | list[float] | None = None,
                 promote_after: float | None = None) -> None:
        super().__init__()
        self.thresholds = tuple(thresholds) if thresholds else DEFAULT_THRESHOLDS
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:])) or self.thresholds[0] <= 0:
            raise ValueError(f"LAS thresholds must be positive and increasing (got {self.thresholds})")
        if promote_after is not None and promote_after <= 0:
            raise ValueError(f"LAS starvation guard must be positive (got {promote_after}h)")
        self.promote_after = promote_after
        self.credit: dict[int, float] = {}
        """Attained service (GPU-hours) at a job's last promotion: demotion counts from there."""
        self.promotions = 0
        self.queues: list[list[tuple[float, int]]] = [[] for _ in range(len(self.thresholds) + 1)]
        self.demotions = 0

    def _key(self, job: SimJob) -> tuple[float, int]:
        return (job.spec.release, job.idx)

    def on_arrival(self, job: SimJob) -> None:
        job.queue_index = 0
        self.queues[0].append(self._key(job))

    def on_start(self, job: SimJob) -> None:
        q = job.queue_index
        if q < len(self.thresholds):
            attained = job.attained - self.credit.get(job.idx, 0.0)
            when = self.s.now + max(0.0, self.thresholds[q] - attained) / job.spec.gpus
            self.s.wake_at(when, ("demote", job.idx, job.finish_token))

    def on_requeue(self, job: SimJob) -> None:
        if self.promote_after is not None and job.queue_index > 0:
            self.s.wake_at(self.s.now + self.promote_after, ("promote", job.idx, job.finish_token))

    def on_finish(self, job: SimJob) -> None:
        self._remove(job)
        self.credit.pop(job.idx, None)

    def on_wakeup(self, payload: Any) -> bool:
        kind, idx, token = payload
        job = self.s.jobs[idx]
        if kind == "promote":
            # Still waiting since the requeue that set this timer (a start or stop bumps the token).
            if job.state != "pending" or job.finish_token != token or job.queue_index == 0:
                return False
            self._remove(job)
            job.queue_index = 0
            self.credit[idx] = job.attained
            self.promotions += 1
            bisect.insort(self.queues[0], self._key(job))
            return True
        if job.state != "running" or job.finish_token != token:
            return False
        self._remove(job)
        attained = self.s.attained(job) - self.credit.get(idx, 0.0)
        q = job.queue_index
        while q < len(self.thresholds) and attained >= self.thresholds[q] - 1e-9:
            q += 1
        job.queue_index = q
        self.demotions += 1
        bisect.insort(self.queues[q], self._key(job))
        self.on_start(job)  # timer for the next threshold, same run
        return True

    def _remove(self, job: SimJob) -> None:
        queue = self.queues[job.queue_index]
        pos = bisect.bisect_left(queue, self._key(job))
        if pos < len(queue) and queue[pos][1] == job.idx:
            queue.pop(pos)

    def schedule(self, now: float) -> None:
        """Admit jobs in priority order (queue, then arrival) against each type's capacity; running
        jobs not admitted are preempted, waiting jobs admitted are started.

        Capacity is counted in thousandths of a GPU (openb's shared GPUs hold gpu_milli < 1000), and a
        waiting job takes a type with idle capacity before one where it would displace a lower-queue
        job: on openb, jobs that may use any type used to take the 2 A10 GPUs (first in type order)
        and preempt the demoted jobs there while thousands of other GPUs stood idle (docs/simulator.md,
        "LAS on openb").
        """
        sim = self.s
        free = {t: n * FULL for t, n in sim.state.healthy.items()}
        held = dict.fromkeys(free, 0)
        for job in sim.running.values():
            assert job.gpu_type is not None
            held[job.gpu_type] += self._demand(job)
        idle = {t: max(0, free[t] - held[t]) for t in free}
        free_total = sum(free.values())
        keep: list[SimJob] = []
        want: list[tuple[SimJob, str]] = []
        seen_running = 0
        waiting_seen = 0
        n_running = len(sim.running)
        for queue in self.queues:
            for _, idx in queue:
                job = sim.jobs[idx]
                need = self._demand(job)
                if job.state == "running":
                    seen_running += 1
                    t = job.gpu_type
                    assert t is not None
                    if free[t] >= need:
                        free[t] -= need
                        free_total -= need
                        keep.append(job)
                elif waiting_seen < self.scan_limit and free_total > 0:
                    waiting_seen += 1
                    allowed = [t for t in sim.allowed_types(job) if free[t] >= need]
                    quiet = [t for t in allowed if idle[t] >= need]
                    if allowed:
                        t = (quiet or allowed)[0]
                        free[t] -= need
                        free_total -= need
                        idle[t] = max(0, idle[t] - need)
                        want.append((job, t))
                elif seen_running == n_running:
                    break
                if seen_running == n_running and (waiting_seen >= self.scan_limit or free_total <= 0):
                    break
            else:
                continue
            break
        kept = {j.idx for j in keep}
        for job in list(sim.running.values()):
            if job.idx not in kept and job.spec.preemptible:
                sim.preempt(job)
        for job, t in want:
            sim.try_start(job, [t, *(u for u in sim.allowed_types(job) if u != t)])

    @staticmethod
    def _demand(job: SimJob) -> int:
        return job.spec.gpus * job.spec.gpu_milli

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"demotions": self.demotions}
        if self.promote_after is not None:
            out["promotions"] = self.promotions
        return out
