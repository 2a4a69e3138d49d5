"""The interface every scheduling policy implements, so the engine measures all of them alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gpusched.simulations.workload import SimJob

if TYPE_CHECKING:
    from gpusched.simulations.engine import Simulator


class SchedPolicy:
    """Hooks the engine calls; `schedule` decides who starts and who is preempted.

    Hooks are cheap bookkeeping (keep the policy's own ordered queues); `schedule` runs once
    after each batch of simultaneous events and acts through sim.try_start / sim.start / sim.preempt.
    """

    name = "base"

    def __init__(self) -> None:
        self.sim: Simulator | None = None

    def attach(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def s(self) -> Simulator:
        assert self.sim is not None, "policy not attached to a simulator"
        return self.sim

    def on_arrival(self, job: SimJob) -> None:
        """A job entered the queue for the first time."""

    def on_requeue(self, job: SimJob) -> None:
        """A job came back to the queue after a preemption or a failure."""

    def on_start(self, job: SimJob) -> None:
        """A job started running (by this policy's decision)."""

    def on_stop(self, job: SimJob) -> None:
        """A running job stopped without finishing (preempted or hit by a failure)."""

    def on_finish(self, job: SimJob) -> None:
        """A job completed."""

    def on_wakeup(self, payload: Any) -> bool:
        """A policy-specific timer fired; return True when the schedule should be recomputed."""
        return True

    def schedule(self, now: float) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Policy-specific numbers for the summary (solver calls, LP solves...)."""
        return {}
