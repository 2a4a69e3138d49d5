"""FIFO (strict head-of-line, optional backfill) and SJF with oracle durations: the simplest baselines.

Strict FIFO is what a plain Kubernetes queue or Slurm without backfill does: a big gang at the head
blocks everyone behind it. Backfill lets later jobs that fit start now (without reservations, so
it may delay the head); SJF orders by the true remaining work, which no real scheduler knows.
"""

from __future__ import annotations

import bisect
import heapq

from gpusched.simulations.policies.base import SchedPolicy
from gpusched.simulations.workload import SimJob


class Fifo(SchedPolicy):
    def __init__(self, backfill: bool = False) -> None:
        super().__init__()
        self.backfill = backfill
        self.name = "fifo-backfill" if backfill else "fifo"
        self.queue: list[tuple[float, int]] = []

    def on_arrival(self, job: SimJob) -> None:
        self.queue.append((job.spec.release, job.idx))

    def on_requeue(self, job: SimJob) -> None:
        # A job hit by a failure keeps its place in line: it arrived when it arrived.
        bisect.insort(self.queue, (job.spec.release, job.idx))

    def schedule(self, now: float) -> None:
        sim = self.s
        if not self.backfill:
            while self.queue and sim.try_start(sim.jobs[self.queue[0][1]]):
                self.queue.pop(0)
            return
        kept: list[tuple[float, int]] = []
        for pos, entry in enumerate(self.queue):
            if sim.state.total_free == 0:
                kept.extend(self.queue[pos:])
                break
            if not sim.try_start(sim.jobs[entry[1]]):
                kept.append(entry)
        self.queue = kept


class Sjf(SchedPolicy):
    """Shortest remaining work first (oracle), non-preemptive; skips jobs that do not fit."""

    name = "sjf"
    scan_limit = 2000
    """Jobs that do not fit looked at per pass before giving up (keeps huge queues cheap)."""

    def __init__(self) -> None:
        super().__init__()
        self.heap: list[tuple[float, float, int]] = []

    def on_arrival(self, job: SimJob) -> None:
        heapq.heappush(self.heap, (job.remaining, job.spec.release, job.idx))

    on_requeue = on_arrival

    def schedule(self, now: float) -> None:
        sim = self.s
        skipped: list[tuple[float, float, int]] = []
        while self.heap and sim.state.total_free > 0:
            entry = heapq.heappop(self.heap)
            if not sim.try_start(sim.jobs[entry[2]]):
                skipped.append(entry)
                if len(skipped) >= self.scan_limit:
                    break
        for entry in skipped:
            heapq.heappush(self.heap, entry)
