"""GPUJob conditions as the Kubernetes API conventions and `kubectl wait --for=condition=...` read them.

Unit tests of gpusched.scheduler.crd.job_conditions (and of the reconciler's status writes that carry
them), then one scenario through the operator (stand-in, or a real API server under tests/e2e/run.py,
where `kubectl wait` itself is run when the e2e binaries are there).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gpusched.scheduler.crd import CONDITION_TYPES, GPUJobStatus, conditions_after, job_conditions

Obj = dict[str, Any]
T0, T1, T2, T3 = (f"2026-12-03T1{i}:00:00Z" for i in range(4))


def by_type(conditions: list[Obj]) -> dict[str, Obj]:
    return {c["type"]: c for c in conditions}


def walk(steps: list[tuple[Obj, str]], generation: int = 1) -> list[dict[str, Obj]]:
    """Apply status writes in turn, each at its own time; the conditions after each."""
    previous: list[Obj] | None = None
    out = []
    for status, now in steps:
        previous = job_conditions(status, generation, now, previous)
        out.append(by_type(previous))
    return out


def test_every_condition_is_there_from_the_first_write_with_reason_generation_and_time() -> None:
    conds = job_conditions({"phase": "Planned", "reason": "waiting for 8 x H100-80GB"}, 3, T0)
    assert [c["type"] for c in conds] == list(CONDITION_TYPES)
    for c in conds:
        assert c["observedGeneration"] == 3 and c["lastTransitionTime"] == T0
        assert c["reason"] and c["reason"][0].isupper() and " " not in c["reason"]  # CamelCase
        GPUJobStatus.model_validate({"conditions": [c]})  # the operator reads back what it writes
    c = by_type(conds)
    assert c["Admitted"]["status"] == "True" and c["Admitted"]["message"] == "waiting for 8 x H100-80GB"
    assert {c[k]["status"] for k in ("Running", "Preempted", "Complete", "Failed")} == {"False"}


def test_transition_time_moves_only_when_that_conditions_status_flips() -> None:
    planned, running, done = walk(
        [
            ({"phase": "Planned", "reason": "waiting", "plannedStart": T1}, T0),
            ({"phase": "Running", "reason": "running on n1"}, T1),
            ({"phase": "Succeeded", "reason": "all workers finished"}, T2),
        ]
    )
    # Admitted stays True from planning to the end: its time is the planning time.
    assert [s["Admitted"]["lastTransitionTime"] for s in (planned, running, done)] == [T0, T0, T0]
    assert (running["Running"]["status"], running["Running"]["lastTransitionTime"]) == ("True", T1)
    # Running is not True once it has finished (the old single condition stayed True).
    assert (done["Running"]["status"], done["Running"]["lastTransitionTime"]) == ("False", T2)
    assert (done["Complete"]["status"], done["Complete"]["lastTransitionTime"]) == ("True", T2)
    assert done["Complete"]["reason"] == "Succeeded"
    # Failed was False all along: its time is still the first write's.
    assert (done["Failed"]["status"], done["Failed"]["lastTransitionTime"]) == ("False", T0)


def test_a_rewrite_with_a_new_reason_keeps_every_transition_time() -> None:
    _, second = walk(
        [
            ({"phase": "Planned", "reason": "planned start 14:00", "plannedStart": T2}, T0),
            ({"phase": "Planned", "reason": "planned start 15:00", "plannedStart": T3}, T1),
        ]
    )
    assert second["Admitted"]["message"] == "planned start 15:00"
    assert {c["lastTransitionTime"] for c in second.values()} == {T0}


def test_preemption_sets_preempted_and_admission_follows_the_new_plan() -> None:
    steps = walk(
        [
            ({"phase": "Running", "reason": "running"}, T0),
            ({"phase": "Preempting", "reason": "preempted by the plan"}, T1),
            ({"phase": "Preempted", "reason": "re-queued", "plannedStart": None}, T2),
            ({"phase": "Running", "reason": "running again"}, T3),
        ]
    )
    _, preempting, requeued, again = steps
    assert preempting["Preempted"]["status"] == "True" and preempting["Running"]["status"] == "False"
    assert preempting["Preempted"]["reason"] == "Preempting"
    # Preempting -> Preempted: still preempted, same transition time; not admitted until re-planned.
    assert (
        requeued["Preempted"]["lastTransitionTime"] == T1 and requeued["Preempted"]["reason"] == "Preempted"
    )
    assert requeued["Admitted"]["status"] == "False" and requeued["Admitted"]["lastTransitionTime"] == T2
    assert again["Preempted"]["status"] == "False" and again["Admitted"]["lastTransitionTime"] == T3
    replanned = by_type(job_conditions({"phase": "Preempted", "plannedStart": T3}, 1, T3))
    assert replanned["Admitted"]["status"] == "True"


def test_invalid_unschedulable_failed_and_dry_run() -> None:
    invalid = by_type(job_conditions({"phase": "Invalid", "reason": "invalid GPUJob: spec.gpus"}, 2, T0))
    assert invalid["Admitted"]["status"] == "False" and invalid["Admitted"]["reason"] == "InvalidSpec"
    assert "spec.gpus" in invalid["Admitted"]["message"]
    unsched = by_type(job_conditions({"phase": "Pending", "reasonCodeSeen": "too_large"}, 1, T0))
    assert unsched["Admitted"]["status"] == "False" and unsched["Admitted"]["reason"] == "Unschedulable"
    dry = by_type(job_conditions({"phase": "DryRun", "reason": "dry-run: would start now"}, 1, T0))
    assert dry["Admitted"]["status"] == "True" and dry["Running"]["status"] == "False"
    # Failed after running: admission stays as it was (True, its old time and words).
    _, failed = walk([({"phase": "Running", "reason": "r"}, T0), ({"phase": "Failed", "reason": "oom"}, T1)])
    assert failed["Failed"]["status"] == "True" and failed["Failed"]["message"] == "oom"
    assert failed["Admitted"]["status"] == "True" and failed["Admitted"]["lastTransitionTime"] == T0
    assert failed["Complete"]["status"] == "False"
    # Refused by the API server before it ever ran: Failed, and never admitted.
    never = by_type(job_conditions({"phase": "Failed"}, 1, T1, [{"type": "Admitted", "status": "False"}]))
    assert never["Admitted"]["status"] == "False" and never["Failed"]["status"] == "True"


def test_conditions_after_reads_the_stored_object_and_an_old_single_running_condition() -> None:
    """What an earlier operator wrote (one Running condition, True also when Succeeded) is replaced."""
    stored: Obj = {
        "metadata": {"name": "x", "generation": 4},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Running", "status": "True", "reason": "Running", "lastTransitionTime": T0}
            ],
        },
    }
    conds = by_type(conditions_after(stored, {"phase": "Succeeded", "reason": "done"}, T2))
    assert conds["Running"]["status"] == "False" and conds["Running"]["lastTransitionTime"] == T2
    assert conds["Complete"]["status"] == "True" and conds["Complete"]["observedGeneration"] == 4
    still = by_type(conditions_after(stored, {"reason": "running on n2"}, T2))
    assert still["Running"]["lastTransitionTime"] == T0  # no flip: the stored time is kept


def test_reconciler_status_writes_carry_conditions_only_when_they_change() -> None:
    """Through reconcile's status_patch: a job's generation goes into observedGeneration (status and
    conditions), and a patch that changes nothing the conditions depend on leaves them out."""
    from datetime import datetime, timezone

    from gpusched.scheduler.reconcile import status_patch
    from gpusched.scheduler.snapshot import JobView

    now = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
    raw: Obj = {"metadata": {"name": "j", "namespace": "ml", "uid": "u", "generation": 2}, "status": {}}
    job = JobView(
        key="ml/j",
        namespace="ml",
        name="j",
        uid="u",
        generation=2,
        created=None,
        raw=raw,
        spec=None,
        status=GPUJobStatus(),
    )
    patch = status_patch(job, now, phase="Planned", reason="waiting", planned_start=T3)
    assert patch is not None and patch["observedGeneration"] == 2
    conds = by_type(patch["conditions"])
    assert conds["Admitted"]["status"] == "True" and conds["Admitted"]["observedGeneration"] == 2
    stored = {**patch}
    job.raw = {**raw, "status": stored}
    job.status = GPUJobStatus.model_validate(stored)
    again = status_patch(job, now, progress=job.status.progress.model_copy(update={"step": 5}))
    assert again is not None and "conditions" not in again and again["progress"]["step"] == 5


# ------------------------------------------------------------------------------------- scenario


def _kubectl() -> str | None:
    bins = os.environ.get("GPUSCHED_E2E_BIN")
    path = Path(bins) / "kubectl" if bins else None
    return str(path) if path is not None and path.is_file() else None


def test_conditions_through_a_job_lifecycle_and_kubectl_wait(harness: Any) -> None:
    """A job planned, running, then complete: conditions as `kubectl wait` needs them, on the stand-in
    and (tests/e2e/run.py) a real API server, where `kubectl wait --for=condition=Complete` and the
    printer columns of `kubectl get` are checked with the real kubectl too."""
    h = harness
    h.add_node("gpu-a")
    h.submit("cond", 8)
    h.start_operator()
    running = h.wait_phase("cond", "Running", timeout=60)
    h.submit("after", 8)  # waits for "cond": Planned with a planned start in the future
    conds = by_type(running["status"]["conditions"])
    generation = running["metadata"]["generation"]
    assert running["status"]["observedGeneration"] == generation
    assert conds["Admitted"]["status"] == "True" and conds["Running"]["status"] == "True"
    assert conds["Complete"]["status"] == "False" and conds["Failed"]["status"] == "False"
    assert all(c["observedGeneration"] == generation for c in conds.values())
    planned = h.wait_phase("after", "Planned", timeout=60)["status"]
    assert planned["plannedStart"] and by_type(planned["conditions"])["Admitted"]["status"] == "True"

    kubectl = _kubectl() if h.fake is None else None
    waiter = None
    if kubectl is not None:
        base = [kubectl, f"--kubeconfig={h.kubeconfig}", "-n", h.namespace]
        shown = subprocess.run(
            [*base, "get", "gpujob", "after"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        assert "<invalid>" not in shown and planned["plannedStart"] in shown, shown
        waiter = subprocess.Popen(
            [*base, "wait", "--for=condition=Complete", "--timeout=60s", "gpujob/cond"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    h.finish("cond")
    done = h.wait_phase("cond", "Succeeded", timeout=60)["status"]
    after = by_type(done["conditions"])
    assert after["Complete"]["status"] == "True" and after["Running"]["status"] == "False"
    # Admitted did not flip: its transition time is the one it had while running.
    assert after["Admitted"]["lastTransitionTime"] == conds["Admitted"]["lastTransitionTime"]
    assert after["Failed"]["lastTransitionTime"] == conds["Failed"]["lastTransitionTime"]
    if waiter is not None:
        out, err = waiter.communicate(timeout=90)
        assert waiter.returncode == 0 and "condition met" in out, (out, err)
    elif h.fake is None:
        print("kubectl wait not run: GPUSCHED_E2E_BIN has no kubectl (tests/e2e/run.py builds it)")


def test_a_preempted_job_says_so_until_it_runs_again(harness: Any) -> None:
    """Preempted=True from Preempting through Preempted (one transition), Running=False meanwhile;
    back to Preempted=False, Running=True when it resumes."""
    h = harness
    h.add_node("gpu-a")
    h.submit("low", 8, preemptible=True)
    h.start_operator()
    first = by_type(h.wait_phase("low", "Running", timeout=60)["status"]["conditions"])
    h.submit("high", 8, priority=50)
    h.wait_phase("high", "Running", timeout=60)
    stopped = h.job("low")["status"]
    assert stopped["phase"] in ("Preempting", "Preempted"), stopped
    conds = by_type(stopped["conditions"])
    assert conds["Preempted"]["status"] == "True" and conds["Running"]["status"] == "False"
    assert conds["Complete"]["status"] == conds["Failed"]["status"] == "False"
    since = conds["Preempted"]["lastTransitionTime"]
    h.wait_for(lambda: h.phase("low") == "Preempted", 60, "low to be Preempted")
    assert by_type(h.job("low")["status"]["conditions"])["Preempted"]["lastTransitionTime"] == since
    h.finish("high")
    again = by_type(h.wait_phase("low", "Running", timeout=60)["status"]["conditions"])
    assert again["Preempted"]["status"] == "False" and again["Running"]["status"] == "True"
    assert again["Failed"]["lastTransitionTime"] == first["Failed"]["lastTransitionTime"]


@pytest.mark.parametrize("phase", ["Pending", "Planned", "DryRun", "Running", "Preempting", "Preempted"])
def test_no_condition_claims_an_ending_before_the_end(phase: str) -> None:
    conds = by_type(job_conditions({"phase": phase}, 1, T0))
    assert conds["Complete"]["status"] == "False" and conds["Failed"]["status"] == "False"
