"""Snapshot and reconcile decisions on plain API objects, with hand-written plans (no I/O, no solver)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gpusched.defaults import HORIZON_H, MIN_RUN_H, SLOT_H
from gpusched.model import GpuType, JobPlan, Placement, Plan
from gpusched.scheduler.actions import CreateService, Decisions, DeletePods, Emit, PatchStatus, StartGang
from gpusched.scheduler.reconcile import PLAN_REFRESH_S, ReconcileOptions, plan_input, reconcile
from gpusched.scheduler.snapshot import SnapshotConfig, build_snapshot, parse_label_selector, selector_matches
from gpusched.solver import PlanOptions, plan
from gpusched.testing.apiserver import merge_patch
from gpusched.workload_contract import WorkloadStatus

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
TYPES = [
    GpuType(name="H100-80GB", memory_gib=80, price_per_hour=4, speed=2.0),
    GpuType(name="L4-24GB", memory_gib=24, price_per_hour=0.7, speed=0.5),
]
CFG = SnapshotConfig(gpu_types=TYPES, stale_after=timedelta(minutes=2))
Obj = dict[str, Any]


def node(name: str, gpus: int = 8, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {
        "metadata": {
            "name": name,
            "labels": labels if labels is not None else {"gpusched.io/gpu-type": "H100-80GB"},
        },
        "spec": spec,
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}},
    }


def gpujob(name: str, gpus: int, **spec: Any) -> Obj:
    body = {"gpus": gpus, "work": {"duration": "4h"}, **spec}
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": "2026-11-23T11:00:00Z",
        },
        "spec": body,
        "status": {},
    }


def gpunode(name: str, unhealthy: tuple[int, ...] = (), age: timedelta = timedelta(0), gpus: int = 8) -> Obj:
    return {
        "metadata": {"name": name},
        "status": {
            "timestamp": (NOW - age).isoformat(),
            "gpus": [
                {
                    "index": i,
                    "uuid": f"u{i}",
                    "name": "NVIDIA H100 80GB HBM3",
                    "memoryTotalMib": 81559,
                    "health": "unhealthy" if i in unhealthy else "healthy",
                    "healthReasons": ["XID 79"],
                }
                for i in range(gpus)
            ],
        },
    }


def snap(
    jobs: list[Obj],
    pods: list[Obj],
    nodes: list[Obj],
    gpunodes: list[Obj] | None = None,
    deleted: list[Obj] | None = None,
) -> Any:
    return build_snapshot(jobs, pods, nodes, gpunodes or [], CFG, NOW, deleted_pods=deleted)


def plan_of(*jps: JobPlan) -> Plan:
    return Plan(
        policy="jct",
        solver="hand",
        status="optimal",
        horizon=24,
        slot=0.25,
        objective=0,
        lower_bound=0,
        gap=0,
        solve_time_s=0,
        total_cost=0,
        jobs=list(jps),
    )


def start_now(job: str, *placement: tuple[str, int], gpu_type: str = "H100-80GB") -> JobPlan:
    gpus = sum(g for _, g in placement)
    return JobPlan(
        job=job,
        status="scheduled",
        gpu_type=gpu_type,
        gpus=gpus,
        start=0.0,
        end=2.0,
        placement=[Placement(node=n, gpus=g) for n, g in placement],
    )


def keep_running(job: str, *placement: tuple[str, int], gpu_type: str = "H100-80GB") -> JobPlan:
    """The plan's word for a gang that goes on where it is."""
    return start_now(job, *placement, gpu_type=gpu_type).model_copy(update={"status": "running"})


def apply_locally(decisions: Decisions, jobs: list[Obj], pods: list[Obj]) -> None:
    """What the API server would hold after the applier ran (the test's stand-in for it)."""
    by_name = {j["metadata"]["name"]: j for j in jobs}
    for a in decisions.actions:
        if isinstance(a, PatchStatus):
            job = by_name[a.job.name]
            job["status"] = merge_patch(job.get("status") or {}, a.patch)
        elif isinstance(a, StartGang):
            for manifest, n in a.pods:
                if not any(p["metadata"]["name"] == manifest["metadata"]["name"] for p in pods):
                    pod = copy.deepcopy(manifest)
                    pod["spec"]["nodeName"] = n
                    pod["status"] = {"phase": "Running"}
                    pods.append(pod)
            if a.then_status:
                job = by_name[a.job.name]
                job["status"] = merge_patch(job.get("status") or {}, a.then_status)
        elif isinstance(a, DeletePods):
            pods[:] = [p for p in pods if p["metadata"]["name"] not in a.names]


def kinds(decisions: Decisions) -> list[str]:
    return [type(a).__name__ for a in decisions.actions]


# ------------------------------------------------------------------------------------------ snapshot


def test_capacity_subtracts_foreign_pods_unhealthy_gpus_and_stale_agents() -> None:
    foreign = {
        "metadata": {"name": "notebook", "namespace": "x"},
        "spec": {"nodeName": "a", "containers": [{"resources": {"limits": {"nvidia.com/gpu": "3"}}}]},
        "status": {"phase": "Running"},
    }
    finished = copy.deepcopy(foreign)
    finished["metadata"]["name"] = "done"
    finished["status"]["phase"] = "Succeeded"
    gfd = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory": "81559"}
    s = snap(
        [],
        [foreign, finished],
        [
            node("a"),
            node("b"),
            node("c", labels=gfd),
            node("d", unschedulable=True),
            node("cpu-only", 0),
            node("mystery", labels={}),
        ],
        [gpunode("b", unhealthy=(1, 5)), gpunode("c", age=timedelta(minutes=10))],
    )
    free = {n.name: s.free_gpus(n.name) for n in s.cluster.nodes}
    assert free == {"a": 5, "b": 6, "c": 0, "d": 0}
    assert {n.name: n.gpu_type for n in s.cluster.nodes}["c"] == "H100-80GB"  # from GPU feature discovery
    assert any("mystery" in w for w in s.warnings)
    assert any("heartbeat" in p for p in s.nodes["c"].problems)


def test_queued_job_becomes_planner_input_with_backoff_and_remaining_work() -> None:
    job = gpujob("resume", 8, work={"duration": "4h", "referenceType": "L4-24GB"})
    job["status"] = {
        "phase": "Preempted",
        "progress": {"doneHours": 0.5},
        "retryAfter": (NOW + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    s = snap([job], [], [node("a")])
    pj = s.jobs["ml/resume"].planner_job
    assert pj is not None and pj.running is None
    assert pj.release == pytest.approx(0.5)
    assert pj.duration == pytest.approx(4 * 0.5 - 0.5)  # 4h on a speed-0.5 type, minus what is done


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"gpusPerNode": 8}, "gpusPerNode"),  # 12 GPUs are not whole workers of 8
        ({"deadline": "next tuesday"}, "spec.deadline"),
        ({"deadline": 20261201}, "spec.deadline"),
        ({"priority": "high"}, "spec.priority"),
        ({"preemptible": "yes"}, "spec.preemptible"),
        ({"maxRestarts": True}, "spec.maxRestarts"),
        ({"work": {"gpuHours": float("inf")}}, "spec.work.gpuHours"),
    ],
)
def test_an_unusable_gpujob_is_invalid_with_the_field_named_and_never_planned(spec: Obj, field: str) -> None:
    """A wrong type or value is never read as something else (`"yes"` as true, text as no deadline):
    the job gets phase Invalid, a condition and an event naming the field, and stays out of the plan;
    the other jobs go on."""
    bad, good = gpujob("odd", 12, **spec), gpujob("fine", 8)
    s = snap([bad, good], [], [node("a")])
    assert s.jobs["ml/odd"].state == "invalid" and s.jobs["ml/odd"].planner_job is None
    assert [j.key for j in s.plannable()] == ["ml/fine"]
    d = reconcile(s, plan_of(start_now("ml/fine", ("a", 8))))
    patch = next(a.patch for a in d.for_job("ml/odd") if isinstance(a, PatchStatus))
    assert patch["phase"] == "Invalid" and field in patch["reason"], patch
    admitted = next(c for c in patch["conditions"] if c["type"] == "Admitted")
    assert (
        admitted["status"] == "False" and admitted["reason"] == "InvalidSpec" and field in admitted["message"]
    )
    events = [a for a in d.for_job("ml/odd") if isinstance(a, Emit)]
    assert [(e.type, e.reason) for e in events] == [("Warning", "InvalidSpec")] and field in events[0].message
    assert "StartGang" in kinds(Decisions(actions=d.for_job("ml/fine")))
    # Dry-run: the same status and event (it is why the job is never planned), nothing else.
    dry = reconcile(snap([bad], [], [node("a")]), None, ReconcileOptions(dry_run=True))
    assert [type(a).__name__ for a in dry.actions] == ["PatchStatus", "Emit"]
    assert dry.actions[0].patch["phase"] == "Invalid"  # type: ignore[union-attr]
    # Written once: the next round finds nothing to say.
    apply_locally(d, [bad, good], [])
    assert reconcile(snap([bad], [], [node("a")]), None).actions == []
    # Fixed (a new generation): planned like any other job.
    fixed = copy.deepcopy(bad)
    fixed["spec"] = gpujob("odd", 8)["spec"]
    fixed["metadata"]["generation"] = 2
    s2 = snap([fixed], [], [node("a")])
    assert s2.jobs["ml/odd"].state == "queued" and s2.jobs["ml/odd"].planner_job is not None


# ------------------------------------------------------------------------------------------ starting


def test_multi_node_gang_creates_and_binds_every_rank_then_writes_status() -> None:
    jobs, pods = [gpujob("llm", 16, gpusPerNode=8)], []
    s = snap(jobs, pods, [node("a"), node("b")])
    d = reconcile(s, plan_of(start_now("ml/llm", ("a", 8), ("b", 8))))
    assert kinds(d) == ["CreateService", "StartGang"]
    gang = d.actions[1]
    assert isinstance(gang, StartGang) and gang.then_status is not None and gang.then_event is not None
    status = gang.then_status
    assert status["phase"] == "Running" and status["attempt"] == 1
    assert status["placement"] == [{"node": "a", "gpus": 8}, {"node": "b", "gpus": 8}]
    assert [(m["metadata"]["name"], n) for m, n in gang.pods] == [("llm-a1-w0", "a"), ("llm-a1-w1", "b")]
    env = {e["name"]: e["value"] for e in gang.pods[1][0]["spec"]["containers"][0]["env"]}
    assert env["NODE_RANK"] == "1" and env["NNODES"] == "2" and env["WORLD_SIZE"] == "16"
    assert env["MASTER_ADDR"] == "llm.ml.svc"
    # Every worker carries the whole placement: a restarted operator can recreate missing ranks.
    assert all(m["metadata"]["annotations"]["gpusched.io/placement"] == "a:8,b:8" for m, _ in gang.pods)
    assert isinstance(d.actions[0], CreateService) and d.started == ["ml/llm"]


def test_a_lone_worker_starts_without_a_service() -> None:
    """One worker pod needs no Service (its ranks meet on loopback): the start is the gang alone."""
    s = snap([gpujob("one", 8)], [], [node("a")])
    d = reconcile(s, plan_of(start_now("ml/one", ("a", 8))))
    assert kinds(d) == ["StartGang"] and d.started == ["ml/one"]


def test_restart_recreates_missing_ranks_of_an_in_flight_gang() -> None:
    jobs, pods = [gpujob("llm", 16, gpusPerNode=8)], []
    nodes = [node("a"), node("b")]
    first = reconcile(snap(jobs, pods, nodes), plan_of(start_now("ml/llm", ("a", 8), ("b", 8))))
    gang = next(a for a in first.actions if isinstance(a, StartGang))
    only_rank0 = copy.deepcopy(gang.pods[0][0])  # the operator died after creating rank 0, unbound
    only_rank0["status"] = {"phase": "Pending"}
    s = snap(jobs, [only_rank0], nodes)
    view = s.jobs["ml/llm"]
    assert view.state == "starting" and view.nodes == {"a": 8, "b": 8}
    assert view.planner_job is not None and view.planner_job.running is not None
    keep = plan_of(keep_running("ml/llm", ("a", 8), ("b", 8)))
    again = next(a for a in reconcile(s, keep).actions if isinstance(a, StartGang))
    assert [(m["metadata"]["name"], n) for m, n in again.pods] == [("llm-a1-w0", "a"), ("llm-a1-w1", "b")]


def test_reconcile_is_idempotent_once_applied() -> None:
    jobs, pods = [gpujob("llm", 16, gpusPerNode=8)], []
    nodes = [node("a"), node("b")]
    p = plan_of(start_now("ml/llm", ("a", 8), ("b", 8)))
    first = reconcile(snap(jobs, pods, nodes), p)
    again = reconcile(snap(jobs, pods, nodes), p)
    assert kinds(first) == kinds(again)  # same view, same decisions
    apply_locally(first, jobs, pods)
    running_plan = plan_of(keep_running("ml/llm", ("a", 8), ("b", 8)))
    assert jobs[0]["status"]["phase"] == "Running"
    assert reconcile(snap(jobs, pods, nodes), running_plan).actions == []
    assert len(pods) == 2


def test_placement_not_in_whole_workers_is_repacked() -> None:
    jobs = [gpujob("w", 8, gpusPerNode=8)]
    s = snap(jobs, [], [node("a"), node("b")])
    d = reconcile(s, plan_of(start_now("ml/w", ("a", 4), ("b", 4))))
    gang = next(a for a in d.actions if isinstance(a, StartGang))
    assert [n for _, n in gang.pods] in (["a"], ["b"])


def test_later_and_unscheduled_jobs_get_a_human_reason() -> None:
    jobs = [gpujob("later", 8), gpujob("never", 8)]
    p = plan_of(
        JobPlan(job="ml/later", status="scheduled", gpu_type="H100-80GB", gpus=8, start=2.5, end=6.5),
        JobPlan(
            job="ml/never", status="unscheduled", reason="needs 8 x H100 in one pool", reason_code="capacity"
        ),
    )
    d = reconcile(snap(jobs, [], [node("a")]), p)
    patches = {a.job.name: a.patch for a in d.actions if isinstance(a, PatchStatus)}
    assert patches["later"]["phase"] == "Planned"
    assert patches["later"]["reason"] == "waiting for 8 x H100-80GB; planned start 2026-11-23T14:30:00Z"
    assert patches["never"] == {
        **patches["never"],
        "phase": "Pending",
        "reason": "needs 8 x H100 in one pool",
    }
    events = {a.job.name: (a.type, a.reason) for a in d.actions if isinstance(a, Emit)}
    assert events == {"later": ("Normal", "Planned"), "never": ("Warning", "Unschedulable")}


def test_a_waiting_job_is_not_rewritten_when_its_plan_only_drifts() -> None:
    jobs = [gpujob("later", 8)]
    p = plan_of(JobPlan(job="ml/later", status="scheduled", gpu_type="H100-80GB", gpus=8, start=2.0, end=6.0))
    first = reconcile(snap(jobs, [], [node("a")]), p)
    apply_locally(first, jobs, [])
    drift = plan_of(
        JobPlan(job="ml/later", status="scheduled", gpu_type="H100-80GB", gpus=8, start=2.02, end=6.02)
    )
    assert reconcile(snap(jobs, [], [node("a")]), drift).actions == []
    moved = plan_of(
        JobPlan(job="ml/later", status="scheduled", gpu_type="H100-80GB", gpus=8, start=3.0, end=7.0)
    )
    # Moved by hours, but planned a moment ago: a solver that flips between equal plans (or a quick
    # round's heuristic against a full round's optimum) must not rewrite waiting jobs every round.
    assert reconcile(snap(jobs, [], [node("a")]), moved).actions == []
    later = NOW + timedelta(seconds=PLAN_REFRESH_S)
    quick = ReconcileOptions(full_round=False)
    assert reconcile(build_snapshot(jobs, [], [node("a")], [], CFG, later), moved, quick).actions == []
    due = reconcile(build_snapshot(jobs, [], [node("a")], [], CFG, later), moved)
    patch = due.actions[0].patch  # type: ignore[union-attr]
    assert patch["plannedStart"] == "2026-11-23T15:05:00Z" and patch["plannedAt"] == "2026-11-23T12:05:00Z"


def test_a_quick_round_plans_new_jobs_and_leaves_waiting_ones_to_full_rounds() -> None:
    jobs = [gpujob("old", 8), gpujob("new", 8)]
    later = JobPlan(job="ml/old", status="scheduled", gpu_type="H100-80GB", gpus=8, start=2.0, end=6.0)
    apply_locally(reconcile(snap(jobs[:1], [], [node("a")]), plan_of(later)), jobs, [])
    quick = ReconcileOptions(full_round=False)
    moved = later.model_copy(update={"start": 9.0, "end": 13.0})
    new = later.model_copy(update={"job": "ml/new", "start": 6.0, "end": 10.0})
    d = reconcile(snap(jobs, [], [node("a")]), plan_of(moved, new), quick)
    assert [a.job.name for a in d.actions if isinstance(a, PatchStatus)] == ["new"]
    assert "plannedAt" not in d.actions[0].patch  # type: ignore[union-attr]
    # Starting now is never held back.
    d = reconcile(snap(jobs, [], [node("a")]), plan_of(start_now("ml/old", ("a", 8))), quick)
    assert "StartGang" in kinds(d)


def test_dry_run_writes_only_plans() -> None:
    jobs = [gpujob("a", 8), gpujob("b", 8)]
    p = plan_of(
        start_now("ml/a", ("n", 8)),
        JobPlan(job="ml/b", status="scheduled", gpu_type="H100-80GB", gpus=8, start=1.0, end=2.0),
    )
    d = reconcile(snap(jobs, [], [node("n")]), p, ReconcileOptions(dry_run=True))
    assert d.actions and all(isinstance(a, PatchStatus) for a in d.actions)
    assert "dry-run: would start now on n" in d.actions[0].patch["reason"]  # type: ignore[union-attr]
    assert "attempt" not in d.actions[0].patch  # type: ignore[union-attr]
    # A phase that says it: planned to start now, and nothing applied (not "Planned", not left empty).
    assert d.actions[0].patch["phase"] == "DryRun"  # type: ignore[union-attr]
    assert d.actions[1].patch["phase"] == "Planned"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ lifecycle


def _running(jobs: list[Obj], nodes: list[Obj]) -> list[Obj]:
    pods: list[Obj] = []
    apply_locally(
        reconcile(
            snap(jobs, pods, nodes),
            plan_of(start_now(f"ml/{jobs[0]['metadata']['name']}", ("a", jobs[0]["spec"]["gpus"]))),
        ),
        jobs,
        pods,
    )
    apply_locally(reconcile(snap(jobs, pods, nodes), None), jobs, pods)
    assert jobs[0]["status"]["phase"] == "Running"
    return pods


def _terminate(pod: Obj, phase: str, code: int | None, message: str = "", reason: str | None = None) -> None:
    pod["status"] = {"phase": phase}
    if reason:
        pod["status"]["reason"] = reason
    if code is not None:
        pod["status"]["containerStatuses"] = [
            {"name": "worker", "state": {"terminated": {"exitCode": code, "message": message}}}
        ]


def test_worker_failure_restarts_with_backoff_once_then_fails() -> None:
    jobs, nodes = [gpujob("flaky", 8, maxRestarts=1)], [node("a")]
    pods = _running(jobs, nodes)
    _terminate(pods[0], "Failed", 1, WorkloadStatus(state="failed", message="CUDA OOM").model_dump_json())
    d = reconcile(snap(jobs, pods, nodes), None)
    assert kinds(d) == ["PatchStatus", "Emit", "DeletePods"]
    status = d.actions[0].patch  # type: ignore[union-attr]
    assert status["restarts"] == 1 and status["phase"] == "Pending" and "CUDA OOM" in status["reason"]
    assert datetime.fromisoformat(status["retryAfter"].replace("Z", "+00:00")) == NOW + timedelta(seconds=10)
    jobs[0]["status"] = merge_patch(jobs[0]["status"], status)
    # The same failure seen again (the delete not done yet) is not counted twice.
    d2 = reconcile(snap(jobs, pods, nodes), None)
    assert kinds(d2) == ["DeletePods"]
    apply_locally(d2, jobs, pods)
    pj = snap(jobs, pods, nodes).jobs["ml/flaky"].planner_job
    assert pj is not None and pj.release == pytest.approx(10 / 3600)
    # Second attempt fails too: the limit is reached.
    apply_locally(reconcile(snap(jobs, pods, nodes), plan_of(start_now("ml/flaky", ("a", 8)))), jobs, pods)
    assert [p["metadata"]["name"] for p in pods] == ["flaky-a2-w0"]
    _terminate(pods[0], "Failed", 1, "segfault")
    d3 = reconcile(snap(jobs, pods, nodes), None)
    final = d3.actions[0].patch  # type: ignore[union-attr]
    assert final["phase"] == "Failed" and "gave up after 1 restarts" in final["reason"]
    assert any(isinstance(a, Emit) and a.reason == "Failed" for a in d3.actions)


def test_node_rejecting_a_worker_is_a_placement_problem_not_a_restart() -> None:
    jobs, nodes = [gpujob("j", 8)], [node("a")]
    pods = _running(jobs, nodes)
    _terminate(pods[0], "Failed", None, reason="UnexpectedAdmissionError")
    d = reconcile(snap(jobs, pods, nodes), None)
    patch = d.actions[0].patch  # type: ignore[union-attr]
    assert "restarts" not in patch and "rejected by node a" in patch["reason"]
    assert any(isinstance(a, Emit) and a.reason == "PlacementRejected" for a in d.actions)
    assert isinstance(d.actions[-1], DeletePods) and d.actions[-1].grace_seconds == 0


def test_all_workers_succeeding_is_success() -> None:
    jobs, nodes = [gpujob("ok", 8)], [node("a")]
    pods = _running(jobs, nodes)
    _terminate(
        pods[0], "Succeeded", 0, WorkloadStatus(state="finished", step=500, total_steps=500).model_dump_json()
    )
    d = reconcile(snap(jobs, pods, nodes), None)
    assert d.actions[0].patch["phase"] == "Succeeded"  # type: ignore[union-attr]
    assert d.actions[0].patch["progress"]["step"] == 500  # type: ignore[union-attr]


def test_plan_preempts_only_preemptible_jobs_with_their_grace_period() -> None:
    jobs = [gpujob("soft", 8, preemptible=True, checkpoint={"gracePeriodSeconds": 77}), gpujob("hard", 8)]
    nodes = [node("a"), node("b")]
    pods: list[Obj] = []
    apply_locally(
        reconcile(
            snap(jobs, pods, nodes), plan_of(start_now("ml/soft", ("a", 8)), start_now("ml/hard", ("b", 8)))
        ),
        jobs,
        pods,
    )
    apply_locally(reconcile(snap(jobs, pods, nodes), None), jobs, pods)
    jobs[0]["status"]["startedAt"] = "2026-11-23T11:00:00Z"  # ran for an hour on speed-2.0 GPUs
    stop_both = plan_of(
        JobPlan(job="ml/soft", status="scheduled", gpus=8, start=1, end=3, preempted=True),
        JobPlan(job="ml/hard", status="scheduled", gpus=8, start=1, end=3, preempted=True),
    )
    d = reconcile(snap(jobs, pods, nodes), stop_both)
    deletes = [a for a in d.actions if isinstance(a, DeletePods)]
    assert [(a.job.name, a.names, a.grace_seconds) for a in deletes] == [("soft", ["soft-a1-w0"], 77)]
    assert d.preempted == ["ml/soft"]
    patch = next(a.patch for a in d.actions if isinstance(a, PatchStatus) and a.job.name == "soft")
    assert patch["phase"] == "Preempting" and patch["progress"]["doneHours"] == pytest.approx(2.0)


def test_preempted_job_records_checkpoint_progress_from_the_termination_message() -> None:
    jobs, nodes = [gpujob("p", 8, preemptible=True, work={"gpuHours": 80})], [node("a")]
    pods = _running(jobs, nodes)
    jobs[0]["status"]["phase"] = "Preempting"
    final = copy.deepcopy(pods[0])
    _terminate(
        final,
        "Failed",
        75,
        WorkloadStatus(
            state="preempted", step=260, total_steps=1000, last_checkpoint_step=250
        ).model_dump_json(),
    )
    d = reconcile(snap(jobs, [], nodes, deleted=[final]), None)
    patches = [a.patch for a in d.actions if isinstance(a, PatchStatus)]
    assert patches[0]["progress"] == {
        "step": 260,
        "totalSteps": 1000,
        "lastCheckpointStep": 250,
        "doneHours": pytest.approx(2.5),
    }  # 25% of 80 GPU-h / 8 GPUs
    assert patches[1]["phase"] == "Preempted" and "checkpoint step 250" in patches[1]["reason"]


def test_a_preempted_job_resuming_in_the_same_round_on_the_same_node_keeps_its_placement() -> None:
    """Requeued (placement cleared) and started again on the same node in one round: the start's status
    write must be diffed against the requeue's, or placement and nodes stay empty while it runs."""
    jobs, nodes = [gpujob("p", 8, preemptible=True)], [node("a")]
    pods = _running(jobs, nodes)
    later = JobPlan(job="ml/p", status="scheduled", gpus=8, start=1, end=3, preempted=True)
    apply_locally(reconcile(snap(jobs, pods, nodes), plan_of(later)), jobs, pods)
    assert jobs[0]["status"]["phase"] == "Preempting"
    pods.clear()  # the worker checkpointed and is gone
    d = reconcile(snap(jobs, pods, nodes), plan_of(start_now("ml/p", ("a", 8))))
    assert "StartGang" in kinds(d)
    apply_locally(d, jobs, pods)
    status = jobs[0]["status"]
    assert status["phase"] == "Running" and status["attempt"] == 2
    assert status["placement"] == [{"node": "a", "gpus": 8}] and status["nodes"] == ["a"]
    assert [p["metadata"]["name"] for p in pods] == ["p-a2-w0"]


@pytest.mark.parametrize("why", ["unscheduled", "moved", "node gone"])
def test_a_dead_operators_half_started_gang_is_withdrawn_not_preempted(why: str) -> None:
    """The operator died after creating rank 0 of attempt 1 (the status never said attempt 1). Its
    successor withdrawing that gang records the attempt (so the next gang's pods get fresh names) and
    tells no story of a preemption: no Preempting/Requeued events, no preempted count."""
    jobs, nodes = [gpujob("llm", 16, gpusPerNode=8)], [node("a"), node("b"), node("c")]
    first = reconcile(snap(jobs, [], nodes), plan_of(start_now("ml/llm", ("a", 8), ("b", 8))))
    gang = next(a for a in first.actions if isinstance(a, StartGang))
    rank0 = copy.deepcopy(gang.pods[0][0])
    rank0["spec"]["nodeName"] = "a"
    rank0["status"] = {"phase": "Running"}
    pods = [rank0]
    plans = {
        "unscheduled": plan_of(
            JobPlan(job="ml/llm", status="unscheduled", gpus=16, reason="no room", reason_code="capacity")
        ),
        "moved": plan_of(keep_running("ml/llm", ("b", 8), ("c", 8))),
        "node gone": None,
    }
    if why == "node gone":
        nodes = [node("b"), node("c")]
    s = snap(jobs, pods, nodes)
    assert s.jobs["ml/llm"].state == "starting"
    d = reconcile(s, plans[why])
    reasons = [a.reason for a in d.actions if isinstance(a, Emit)]
    assert "GangWithdrawn" in reasons and not {"Preempting", "Requeued", "GPUUnhealthy"} & set(reasons)
    assert d.preempted == []
    patch = next(a.patch for a in d.actions if isinstance(a, PatchStatus))
    assert patch["attempt"] == 1 and patch.get("phase") != "Preempting" and "preempted" not in patch
    apply_locally(d, jobs, pods)
    assert pods == []
    again = reconcile(snap(jobs, pods, nodes), plan_of(start_now("ml/llm", ("b", 8), ("c", 8))))
    restarted = next(a for a in again.actions if isinstance(a, StartGang))
    assert [m["metadata"]["name"] for m, _ in restarted.pods] == ["llm-a2-w0", "llm-a2-w1"]
    assert "Requeued" not in [a.reason for a in again.actions if isinstance(a, Emit)]


def test_a_preempted_gang_records_its_attempt() -> None:
    jobs, nodes = [gpujob("p", 8, preemptible=True)], [node("a")]
    pods = _running(jobs, nodes)
    jobs[0]["status"].pop("attempt")  # a status write that never landed
    later = JobPlan(job="ml/p", status="scheduled", gpus=8, start=1, end=3, preempted=True)
    d = reconcile(snap(jobs, pods, nodes), plan_of(later))
    patch = next(a.patch for a in d.actions if isinstance(a, PatchStatus))
    assert patch["phase"] == "Preempting" and patch["attempt"] == 1 and d.preempted == ["ml/p"]


def test_unhealthy_gpu_evicts_the_gangs_on_that_node_only() -> None:
    jobs = [gpujob("hit", 8, preemptible=True), gpujob("spared", 8)]
    nodes = [node("a"), node("b")]
    pods: list[Obj] = []
    apply_locally(
        reconcile(
            snap(jobs, pods, nodes), plan_of(start_now("ml/hit", ("a", 8)), start_now("ml/spared", ("b", 8)))
        ),
        jobs,
        pods,
    )
    d = reconcile(snap(jobs, pods, nodes, [gpunode("a", unhealthy=(2,)), gpunode("b")]), None)
    deletes = [a for a in d.actions if isinstance(a, DeletePods)]
    assert [a.job.name for a in deletes] == ["hit"]
    warn = next(a for a in d.actions if isinstance(a, Emit))
    assert warn.reason == "GPUUnhealthy" and "node a" in warn.message
    # A stale agent alone does not kill running work: it only stops new placements there.
    assert not [
        a
        for a in reconcile(snap(jobs, pods, nodes, [gpunode("a", age=timedelta(hours=1))]), None).actions
        if isinstance(a, DeletePods)
    ]


def test_cordoned_node_keeps_its_gang_and_gets_no_new_one() -> None:
    """`kubectl cordon a` under a running gang: it goes on there, and the next gang goes to b even
    though a's free half would be the tighter fit."""
    from gpusched.solver import PlanOptions, plan

    jobs = [gpujob("old", 4, gpusPerNode=4)]
    nodes = [node("a"), node("b")]
    pods: list[Obj] = []
    apply_locally(reconcile(snap(jobs, pods, nodes), plan_of(start_now("ml/old", ("a", 4)))), jobs, pods)
    apply_locally(reconcile(snap(jobs, pods, nodes), None), jobs, pods)
    assert jobs[0]["status"]["phase"] == "Running"
    jobs.append(gpujob("new", 4, gpusPerNode=4))
    cordoned = [node("a", unschedulable=True), node("b")]
    s = snap(jobs, pods, cordoned)
    assert {n.name: n.cordoned for n in s.cluster.nodes} == {"a": True, "b": False}
    planned = plan(s.cluster, [j.planner_job for j in s.plannable() if j.planner_job], PlanOptions(epoch=NOW))
    assert {p.node for p in planned.job("ml/old").placement} == {"a"} and not planned.job("ml/old").preempted
    d = reconcile(s, planned)
    assert not [a for a in d.actions if isinstance(a, DeletePods)]
    started = [a for a in d.actions if isinstance(a, StartGang)]
    assert [(a.job.name, [n for _, n in a.pods]) for a in started] == [("new", ["b"])]


def test_node_selector_keeps_the_plan_and_running_gangs_inside_the_pool() -> None:
    pool = SnapshotConfig(gpu_types=TYPES, node_selector="pool in (train, batch),!reserved")
    labels = {"gpusched.io/gpu-type": "H100-80GB"}
    nodes = [
        node("a", labels={**labels, "pool": "train"}),
        node("b", labels={**labels, "pool": "batch"}),
        node("c", labels={**labels, "pool": "train", "reserved": "yes"}),
        node("d", labels=labels),
    ]
    s = build_snapshot([], [], nodes, [], pool, NOW)
    assert sorted(n.name for n in s.cluster.nodes) == ["a", "b"]
    # A gang running on a node that left the pool is stopped as if the node were gone.
    jobs = [gpujob("moved", 8, preemptible=True)]
    pods: list[Obj] = []
    apply_locally(reconcile(snap(jobs, pods, nodes), plan_of(start_now("ml/moved", ("d", 8)))), jobs, pods)
    d = reconcile(build_snapshot(jobs, pods, nodes, [], pool, NOW), None)
    assert [a.job.name for a in d.actions if isinstance(a, DeletePods)] == ["moved"]


@pytest.mark.parametrize(
    ("selector", "needle"),
    [
        ("pool=", None),
        ("a=b,c!=d,e in (f, g),h,!i,gpusched.io/pool==x", None),
        ("pool=a,,b", "empty term"),
        ("pool in ()", "needs at least one value"),
        ("-bad=x", "not a label name"),
        ("Bad_Prefix/x=y", "not a DNS subdomain"),
        ("pool=has space", "not a label value"),
    ],
)
def test_label_selectors_are_checked_as_the_api_server_checks_them(selector: str, needle: str | None) -> None:
    if needle is None:
        assert parse_label_selector(selector)
        return
    with pytest.raises(ValueError, match=needle):
        parse_label_selector(selector)


def test_selector_terms_match_labels() -> None:
    terms = parse_label_selector("pool in (a,b),tier!=cpu,gpu,!reserved")
    assert selector_matches(terms, {"pool": "a", "gpu": "", "tier": "gpu"})
    assert not selector_matches(terms, {"pool": "a", "gpu": "", "tier": "cpu"})
    assert not selector_matches(terms, {"pool": "c", "gpu": ""})
    assert not selector_matches(terms, {"pool": "a"})
    assert not selector_matches(terms, {"pool": "a", "gpu": "", "reserved": "x"})
    assert parse_label_selector("") == [] and selector_matches([], {})


# ------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--replan-interval", "soon"], "--replan-interval"),
        (["--cluster-config", "/nonexistent/cluster.yaml"], "/nonexistent/cluster.yaml: file not found"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig: file not found"),
        (["--node-selector", "pool in (a,b"], "--node-selector: "),
        (["--node-selector", "pool=a,,b"], "--node-selector: 'pool=a,,b': empty term"),
    ],
)
def test_cli_usage_errors_are_one_line_exit_2(args: list[str], needle: str, tmp_path: Any) -> None:
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(json.dumps({"gpu_types": [{"name": "H100-80GB", "memory_gib": 80}]}))
    argv = ["--cluster-config", str(cfg), *args] if "--cluster-config" not in args else args
    proc = subprocess.run(
        [sys.executable, "-c", "from gpusched.cli import main; main()", "operator", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_the_queue_is_in_submission_order_whatever_the_list_order() -> None:
    """The planner breaks ties by its input order: that must be creation order (then namespace/name),
    not the order the API server lists in (by name on a real server)."""
    jobs = [gpujob("aaa", 8), gpujob("zzz", 8), gpujob("mmm", 8), gpujob("bbb", 8)]
    jobs[0]["metadata"]["creationTimestamp"] = "2026-11-23T11:00:02Z"
    jobs[1]["metadata"]["creationTimestamp"] = "2026-11-23T11:00:00Z"
    jobs[2]["metadata"]["creationTimestamp"] = "2026-11-23T11:00:01Z"
    jobs[3]["metadata"]["creationTimestamp"] = "2026-11-23T11:00:01Z"  # same second: by name
    s = snap(jobs, [], [node("a")])
    assert [j.name for j in s.plannable()] == ["zzz", "bbb", "mmm", "aaa"]
    # Both fit the plan's first slot on paper, but only one fits the node: the earlier one starts.
    d = reconcile(s, plan_of(start_now("ml/aaa", ("a", 8)), start_now("ml/zzz", ("a", 8))))
    assert d.started == ["ml/zzz"]


# ------------------------------------------------------------------ preemption pays for itself (#13)
# Preemption must pay for itself and every reason must be true, on plain objects with the real
# planner, through the operator's own planning input. Before the fix: under the default jct policy
# a 16-GPU gang that had just started was preempted when a same-priority 4-GPU job arrived, told
# "preempted by the plan for higher-priority work"; while it drained, the queued 16-GPU gangs were
# told they were "larger than any allowed pool (at most 0)".


def round_(jobs: list[Obj], pods: list[Obj], nodes: list[Obj]) -> tuple[Decisions, Plan]:
    s = snap(jobs, pods, nodes)
    chosen = plan_input(s, "jct")
    result = plan(
        s.cluster,
        chosen.jobs,
        PlanOptions(policy="jct", horizon=HORIZON_H, slot=SLOT_H, time_limit=10, epoch=s.now),
    )
    return reconcile(s, result), result


def reasons(d: Decisions) -> dict[str, str]:
    return {
        a.job.name: a.patch["reason"] for a in d.actions if isinstance(a, PatchStatus) and "reason" in a.patch
    }


def started_big(ran: timedelta) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """A 16-GPU preemptible gang running on both 8-GPU nodes for `ran` (4 h of work left)."""
    nodes = [node("n1"), node("n2")]
    big = gpujob("big", 16, preemptible=True, work={"duration": "8h"})
    pods: list[Obj] = []
    d, _ = round_([big], pods, nodes)
    apply_locally(d, [big], pods)
    assert big["status"]["phase"] == "Running"
    big["status"]["startedAt"] = (NOW - ran).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [big], pods, nodes


def test_a_just_started_gang_is_not_preempted_for_same_priority_work() -> None:
    jobs, pods, nodes = started_big(timedelta(minutes=1))
    jobs.append(gpujob("small", 4, preemptible=True, work={"duration": "30m"}))
    d, result = round_(jobs, pods, nodes)
    assert not [a for a in d.actions if isinstance(a, DeletePods)], reasons(d)
    assert "big" not in reasons(d)
    # The small job is told the truth: it waits for the big gang's GPUs, planned after it ends.
    why = reasons(d)["small"]
    assert why.startswith("waiting for 4 x H100-80GB; planned start ")
    jp = result.job("ml/small")
    big_end = result.job("ml/big").end
    assert jp.start is not None and big_end is not None and jp.start >= big_end - SLOT_H


def test_higher_priority_work_preempts_at_once_and_says_so() -> None:
    jobs, pods, nodes = started_big(timedelta(minutes=1))
    jobs.append(gpujob("urgent", 16, preemptible=True, priority=10, work={"duration": "30m"}))
    d, _ = round_(jobs, pods, nodes)
    why = reasons(d)["big"]
    assert why == "preempted for higher-priority ml/urgent"
    assert any(isinstance(a, DeletePods) and a.job.name == "big" for a in d.actions)


def test_after_its_minimum_run_a_stop_for_equal_priority_never_claims_higher_priority() -> None:
    jobs, pods, nodes = started_big(timedelta(hours=MIN_RUN_H + 0.5))
    jobs.append(gpujob("small", 16, preemptible=True, work={"duration": "15m"}))
    d, result = round_(jobs, pods, nodes)
    why = reasons(d).get("big")
    if why is not None:  # the objective may find the stop worth it; the reason must then be true
        assert "higher-priority" not in why
        assert "ml/small" in why and result.job("ml/small").start == 0.0


def test_gangs_waiting_while_one_drains_are_not_told_they_are_larger_than_the_pool() -> None:
    jobs, pods, nodes = started_big(timedelta(hours=2))
    jobs[0]["status"]["phase"] = "Preempting"
    for p in pods:
        p["metadata"]["deletionTimestamp"] = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    jobs.append(gpujob("next", 16, preemptible=True))
    d, result = round_(jobs, pods, nodes)
    why = reasons(d)["next"]
    assert "larger than any allowed pool" not in why, why
    jp = result.job("ml/next")
    # Its GPUs are being freed: planned for the next slot, and told so.
    assert jp.status == "scheduled" and jp.start == SLOT_H, jp
    assert why.startswith("waiting for 16 x H100-80GB; planned start ")
