"""The operator SIGKILLed at random points while gangs start, run, finish and get preempted, and two
replicas at once. Through the `harness` fixture: the stand-in by default, the cluster that
GPUSCHED_E2E_KUBECONFIG names otherwise (20 kills there; fewer on the stand-in, to keep CI modest).

What must hold whatever the kills hit, checked while it runs and once it has settled:
no GPUJob lost (every one still there and, in the end, run to Succeeded), no pod created twice under
one name, no node holding more GPUs than it has, no partial gang, every GPUJob's status (phase,
attempt, placement, nodes) in agreement with its pods.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from typing import Any

from gpusched.scheduler.crd import LABEL_ATTEMPT, LABEL_MANAGED, LABEL_RANK, MANAGED_VALUE
from gpusched.scheduler.informer import Informer
from gpusched.scheduler.kube import PODS, Kube, load_api_client

Harness = Any
Obj = dict[str, Any]

KILLS = int(
    os.environ.get("GPUSCHED_CRASH_KILLS") or (20 if os.environ.get("GPUSCHED_E2E_KUBECONFIG") else 4)
)
SEED = int(os.environ.get("GPUSCHED_CRASH_SEED") or 12)
NODE_GPUS = 8
LEASE_S = 3


class PodWatch:
    """Every pod of the namespace as the API server reports it, through a watch: which uids each pod
    name ever had, and whether any node ever held more GPUs than it has."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.uids: dict[str, set[str]] = defaultdict(set)
        self.overcommits: list[str] = []
        self._lock = threading.Lock()
        kube = Kube(load_api_client(kubeconfig))
        self.informer = Informer(kube, PODS, namespace, self._seen, watch_timeout=30)

    def start(self) -> PodWatch:
        self.informer.start()
        if not self.informer.synced.wait(30):
            raise AssertionError(f"pod watch did not sync: {self.informer.last_error}")
        return self

    def stop(self) -> None:
        self.informer.stop()

    def _seen(self, kind: str, event: str, obj: Obj) -> None:
        pods = self.informer.items()
        held: Counter[str] = Counter()
        with self._lock:
            for pod in [obj, *pods] if obj else pods:
                meta = pod.get("metadata") or {}
                if (meta.get("labels") or {}).get(LABEL_MANAGED) == MANAGED_VALUE and meta.get("uid"):
                    self.uids[meta["name"]].add(meta["uid"])
            for pod in pods:
                node = (pod.get("spec") or {}).get("nodeName")
                if node and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    held[node] += _gpus(pod)
            self.overcommits += [f"{n}: {g} GPUs held" for n, g in held.items() if g > NODE_GPUS]

    def reused_names(self) -> dict[str, int]:
        with self._lock:
            return {name: len(uids) for name, uids in self.uids.items() if len(uids) > 1}


def _gpus(pod: Obj) -> int:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        total += int(str(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu") or 0))
    return total


def _leader_pid(h: Harness, lease: str) -> int | None:
    holder = (h.kube.read_lease(h.namespace, lease).get("spec") or {}).get("holderIdentity") or ""
    m = re.search(r"-(\d+)-[0-9a-f]{6}$", holder)
    return int(m.group(1)) if m else None


def _problems(h: Harness, submitted: dict[str, int]) -> list[str]:
    """Where GPUJob statuses and pods disagree, or a gang is partial or duplicated ([] when none)."""
    out: list[str] = []
    jobs = {name: h.job(name) for name in submitted}
    pods_by_job: dict[str, list[Obj]] = defaultdict(list)
    for pod in h.pods():
        pods_by_job[pod["metadata"]["annotations"]["gpusched.io/job-name"]].append(pod)
    for name, workers in submitted.items():
        status = jobs[name].get("status") or {}
        phase = status.get("phase")
        active = [
            p
            for p in pods_by_job.get(name, [])
            if not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") not in ("Succeeded", "Failed")
        ]
        if any(p["metadata"].get("deletionTimestamp") for p in pods_by_job.get(name, [])):
            out.append(f"{name}: pods still terminating")
        if phase == "Running":
            ranks = sorted(int(p["metadata"]["labels"][LABEL_RANK]) for p in active)
            attempts = {int(p["metadata"]["labels"][LABEL_ATTEMPT]) for p in active}
            if ranks != list(range(workers)):
                out.append(f"{name}: Running with worker ranks {ranks} (a gang of {workers})")
            if not all(p["spec"].get("nodeName") for p in active):
                out.append(f"{name}: Running with unbound workers")
            if attempts != {status.get("attempt")}:
                out.append(f"{name}: status attempt {status.get('attempt')}, pods of attempts {attempts}")
            held: Counter[str] = Counter()
            for p in active:
                held[p["spec"].get("nodeName")] += _gpus(p)
            placement = {pl["node"]: pl["gpus"] for pl in status.get("placement") or []}
            if placement != dict(held):
                out.append(f"{name}: status placement {placement}, pods hold {dict(held)}")
            if sorted(status.get("nodes") or []) != sorted(held):
                out.append(f"{name}: status nodes {status.get('nodes')}, pods on {sorted(held)}")
        elif phase in ("Pending", "Planned", "Preempted", "Succeeded"):
            if active:
                out.append(f"{name}: {phase} with {len(active)} active workers")
        else:
            out.append(f"{name}: phase {phase}")
    return out


def _chaos(h: Harness, rng: random.Random, submitted: dict[str, int], step: int) -> None:
    """What users and workloads do meanwhile: a running job finishes, an urgent one arrives."""
    if rng.random() < 0.5:
        running = sorted(n for n in submitted if h.phase(n) == "Running")
        if running:
            h.finish(rng.choice(running))
    if step % 3 == 1:
        name = f"urgent-{step}"
        h.submit(name, 8, priority=20, duration="1h")
        submitted[name] = 1


def test_operator_sigkilled_at_random_points_loses_and_duplicates_nothing(harness: Harness) -> None:
    h = harness
    print(f"crash test: {KILLS} kills, seed {SEED} (GPUSCHED_CRASH_KILLS, GPUSCHED_CRASH_SEED)")
    rng = random.Random(SEED)
    for name in ("a", "b", "c"):
        h.add_node(f"gpu-{name}")
    watch = PodWatch(h.kubeconfig, h.namespace).start()
    submitted: dict[str, int] = {}
    for name, gpus, per_node, priority, preemptible in (
        ("wide-low", 16, 8, 1.0, True),
        ("low", 8, None, 1.0, True),
        ("mid", 8, None, 2.0, False),
        ("small-1", 4, None, 1.0, True),
        ("small-2", 4, None, 1.0, False),
    ):
        h.submit(
            name, gpus, per_node=per_node, priority=priority, preemptible=preemptible, duration="6h", grace=2
        )
        submitted[name] = gpus // (per_node or min(gpus, 8))
    lease = "gpusched-crash"
    try:
        for step in range(KILLS):
            proc = h.spawn_operator(lease, lease_duration=LEASE_S)
            h.wait_for(
                lambda p=proc: _leader_pid(h, lease) == p.pid, 60, f"operator {step} to lead", every=0.1
            )
            _chaos(h, rng, submitted, step)
            time.sleep(rng.uniform(0.0, 3.0))  # a random point in its work
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
            assert not watch.overcommits, watch.overcommits[:5]
        # A last operator that lives: everything must settle into a consistent state...
        op = h.start_operator(lease_name=lease, lease_seconds=LEASE_S)
        h.wait_for(op.elector.is_leader.is_set, 30, "the last operator to lead")
        h.wait_for(lambda: not _problems(h, submitted), 90, "statuses and pods to agree", every=0.5)
        # ...and every job must still get its turn and finish: none was lost.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            phases = {n: h.phase(n) for n in submitted}
            if all(p == "Succeeded" for p in phases.values()):
                break
            for name, phase in phases.items():
                if phase == "Running":
                    h.finish(name)
            time.sleep(0.5)
        assert all(h.phase(n) == "Succeeded" for n in submitted), {n: h.phase(n) for n in submitted}
        assert not _problems(h, submitted), _problems(h, submitted)
    finally:
        watch.stop()
    assert not watch.overcommits, watch.overcommits[:5]
    assert watch.reused_names() == {}, f"pod names created more than once: {watch.reused_names()}"
    assert watch.uids, "the watch saw the workers"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> tuple[str, float]:
    """(/healthz answer, reconcile rounds so far) of an operator process."""
    health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read().decode().strip()
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(r"^gpusched_reconcile_rounds_total (\S+)$", text, re.M)
    return health, float(m.group(1)) if m else 0.0


def test_two_replicas_only_the_lease_holder_acts_and_a_kill_hands_over_within_the_lease(
    harness: Harness,
) -> None:
    h = harness
    h.add_node("gpu-a")
    lease, duration = "gpusched-pair", 4
    ports = [_free_port(), _free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    for port in ports:
        procs.append(h.spawn_operator(lease, metrics_port=port, lease_duration=duration))
    h.wait_for(lambda: _leader_pid(h, lease) in {p.pid for p in procs}, 60, "one of them to lead")
    h.submit("one", 8, duration="6h")
    h.wait_phase("one", "Running", timeout=60)

    def roles() -> dict[int, tuple[str, float]] | None:
        try:
            seen = {p.pid: _scrape(port) for p, port in zip(procs, ports, strict=True)}
        except OSError:
            return None  # a health server not up yet
        # The round that started "one" counts itself once it has applied: wait for that.
        return seen if any(rounds > 0 for _role, rounds in seen.values()) else None

    seen = h.wait_for(roles, 60, "both health servers and a counted round")
    leader = _leader_pid(h, lease)
    standby = next(p for p in procs if p.pid != leader)
    assert seen[leader][0] == "leader" and seen[leader][1] > 0, seen
    assert seen[standby.pid] == ("standby", 0.0), seen  # it never ran a round: it never acted
    before = h.kube.read_lease(h.namespace, lease)["spec"]
    killed = next(p for p in procs if p.pid == leader)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    h.wait_for(lambda: _leader_pid(h, lease) == standby.pid, 60, "the standby to take over")
    after = h.kube.read_lease(h.namespace, lease)["spec"]
    from gpusched.scheduler.kubetime import parse_time

    last_renew, taken = parse_time(before["renewTime"]), parse_time(after["acquireTime"])
    assert last_renew is not None and taken is not None
    # Taken as soon as the Lease ran out: within its duration after the dead leader's last renewal,
    # plus the standby's retry period (2 s) and its renew period (duration / 3) of slack.
    gap = (taken - last_renew).total_seconds()
    assert 0 < gap <= duration + duration / 3 + 2 + 3, gap
    assert after["leaseTransitions"] == int(before.get("leaseTransitions") or 0) + 1
    h.submit("two", 8, duration="1h")
    h.finish("one")
    h.wait_phase("two", "Running", timeout=60)  # the new leader acts
    assert h.phase("one") == "Succeeded" and len(h.pods("two")) == 1
    assert _scrape(ports[procs.index(standby)])[0] == "leader"
