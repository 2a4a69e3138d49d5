"""Proof of one decision path (issue #13): the same scenario -- arrivals, a GPU failure, a
preemption for higher-priority work, completions -- driven through the operator (stand-in API
server, fake kubelet, the operator's own rounds) and through the simulator (its engine and planner
policy) gives the same decisions in the same order: who starts on which nodes, who is preempted,
who is stopped by the failure.

The operator runs on the simulator's clock (run_once(now=...)), and each job completes in the live
world when the simulator says it finished: the workload's completion is the one external event the
live side is told. Everything else (what starts, where, what is stopped) each side decides alone.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gpusched.model import Cluster, Node
from gpusched.scheduler.actions import Decisions, Emit, StartGang
from gpusched.scheduler.kube import Kube, load_api_client
from gpusched.scheduler.operator import Operator
from gpusched.simulations.engine import SimConfig, Simulator
from gpusched.simulations.events import Kind
from gpusched.simulations.policies.planner import PlannerPolicy
from gpusched.simulations.workload import SimJob, TraceJob
from gpusched.units import parse_datetime

Harness = Any  # the `harness` fixture of conftest.py
Decision = tuple[str, str, tuple[str, ...]]

# name, GPUs, reference hours (H100 runs at speed 2: half that in wall time), release h, priority
JOBS = [("a", 8, 4.0, 0.0, 1.0), ("b", 8, 4.0, 0.0, 1.0), ("c", 8, 1.0, 1.0, 10.0)]
FAIL_AT, FAIL_JOB, FAIL_GPU = 0.5, "b", 3
"""GPU 3 of the node job b runs on fails half an hour in."""
CHECKPOINT_H = 0.5


class ScriptedSimulator(Simulator):
    """The engine with one scripted GPU failure instead of random ones, recording its decisions."""

    def __init__(self, cluster: Cluster, jobs: list[TraceJob]) -> None:
        super().__init__(cluster, jobs, PlannerPolicy(objective="jct", replan_minutes=1.0), SimConfig())
        self.decisions: list[tuple[float, Decision]] = []
        self.events.push(FAIL_AT, Kind.FAILURE, None)

    def start(self, job: SimJob, shares: list[tuple[int, int, int]], gpu_type: str) -> None:
        nodes = tuple(sorted({self.state.node_name[n] for n, _, _ in shares}))
        self.decisions.append((self.now, ("start", job.name, nodes)))
        super().start(job, shares, gpu_type)

    def preempt(self, job: SimJob) -> None:
        self.decisions.append((self.now, ("preempt", job.name, ())))
        super().preempt(job)

    def _on_failure(self) -> bool:
        victim = next(j for j in self.running.values() if j.name == FAIL_JOB)
        for idx in self.outages.fail((victim.placement[0][0], FAIL_GPU)):
            job = self.jobs[idx]
            self.decisions.append((self.now, ("stop", job.name, ())))
            self._stop(job, checkpoint=False)
            job.failures_hit += 1
            self._requeue(job)
        self.total_failures += 1
        return True


def simulate(h: Harness, nodes: list[str]) -> tuple[list[tuple[float, Decision]], dict[str, float]]:
    cluster = Cluster(
        gpu_types=h.settings().gpu_types, nodes=[Node(name=n, gpu_type=h.GPU, gpu_count=8) for n in nodes]
    )
    trace = [
        TraceJob(name=n, gpus=g, work=w, release=r, priority=p, checkpoint_interval=CHECKPOINT_H)
        for n, g, w, r, p in JOBS
    ]
    sim = ScriptedSimulator(cluster, trace)
    result = sim.run()
    finishes = {j.name: j.finish for j in result.jobs if j.finish is not None}
    return sim.decisions, finishes


def _record(decisions: Decisions, out: list[Decision]) -> None:
    for a in decisions.actions:
        if isinstance(a, StartGang):
            out.append(("start", a.job.name, tuple(sorted({node for _, node in a.pods}))))
        elif isinstance(a, Emit) and a.reason in ("Preempting", "GPUUnhealthy"):
            out.append(("preempt" if a.reason == "Preempting" else "stop", a.job.name, ()))


def test_operator_and_simulator_decide_the_same(harness: Harness, e2e: Any) -> None:
    h = harness
    wait_for = e2e.wait_for
    if h.fake is None:
        pytest.skip("drives the operator on the simulator's clock: needs the stand-in API server")
    nodes = [h.add_node("gpu-a"), h.add_node("gpu-b")]
    expected, finishes = simulate(h, nodes)

    op = Operator(Kube(load_api_client(h.operator_kubeconfig)), h.settings())
    live: list[tuple[float, Decision]] = []
    apply = op.applier.apply

    def recording(decisions: Decisions) -> Any:
        found: list[Decision] = []
        _record(decisions, found)
        live.extend((clock[0], d) for d in found)
        return apply(decisions)

    op.applier.apply = recording  # type: ignore[method-assign]
    op.start_informers(timeout=20)
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    clock = [0.0]

    failed: list[str] = []

    def settle(at: float) -> None:
        """Rounds at simulated time `at` until the cluster is quiet (two rounds with nothing to do)."""
        clock[0] = at
        for node in failed:  # the agent's heartbeat, on the simulated clock (else it looks stale)
            ahead = (t0 + timedelta(hours=at) - datetime.now(timezone.utc)).total_seconds()
            h.set_gpu_health(node, unhealthy=(FAIL_GPU,), age_s=-ahead)
            due = t0 + timedelta(hours=at) - timedelta(minutes=1)
            wait_for(
                lambda n=node, due=due: any(
                    g["metadata"]["name"] == n
                    and (parse_datetime((g.get("status") or {}).get("timestamp")) or t0) >= due
                    for g in op.gpunodes.items()
                ),
                10,
                f"{node}'s heartbeat in the cache",
            )
        quiet = 0
        for _ in range(40):
            time.sleep(0.3)  # the caches catch up with the last round's writes and the kubelet
            report = op.run_once(now=t0 + timedelta(hours=at))
            quiet = quiet + 1 if report.actions == 0 else 0
            if quiet >= 2:
                return
        raise AssertionError(f"no quiet round at {at} h")

    # The scenario's external events, on the simulator's clock.
    steps: list[tuple[float, str, str]] = [(r, "arrive", n) for n, _, _, r, _ in JOBS]
    steps.append((FAIL_AT, "fail", FAIL_JOB))
    steps += [(t, "finish", n) for n, t in finishes.items()]
    steps.sort(key=lambda s: (s[0], s[1] != "arrive"))
    spec = {n: (g, w, p) for n, g, w, _, p in JOBS}
    try:
        for at, what, name in steps:
            if what == "arrive":
                g, w, p = spec[name]
                h.submit(name, g, per_node=8, priority=p, preemptible=True, duration=f"{w:g}h")
                wait_for(lambda n=name: any(j["metadata"]["name"] == n for j in op.jobs.items()), 10, name)
            elif what == "fail":
                node = h.job(name)["status"]["nodes"][0]
                failed.append(node)
            else:
                h.finish(name)
                wait_for(
                    lambda n=name: all(
                        (p.get("status") or {}).get("phase") == "Succeeded"
                        for p in op.pods.items()
                        if p["metadata"]["name"].startswith(f"{n}-")
                    ),
                    10,
                    f"{name} finished",
                )
            i = steps.index((at, what, name))
            if i == len(steps) - 1 or steps[i + 1][0] > at:
                settle(at)
    finally:
        op.shutdown()

    assert [d for _, d in live] == [d for _, d in expected], (live, expected)
    assert [round(t, 6) for t, _ in live] == [round(t, 6) for t, _ in expected]
    kinds = [d[0] for _, d in expected]
    assert {"start", "preempt", "stop"} <= set(kinds)  # the scenario exercises every kind of decision
