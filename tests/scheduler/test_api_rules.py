"""The operator against the API server's rules: what it sends passes, what a user's template breaks is
reported on the GPUJob instead of being retried for ever.

All against the stand-in, which enforces the real server's validation (scheduler/apivalidation.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from gpusched.model import GpuType
from gpusched.scheduler.crd import GPUJobSpec
from gpusched.scheduler.kube import Kube, load_api_client
from gpusched.scheduler.kubetime import parse_time
from gpusched.scheduler.leader import LeaderElector
from gpusched.scheduler.podspec import torch_env
from gpusched.scheduler.reconcile import reconcile
from gpusched.scheduler.snapshot import SnapshotConfig, build_snapshot
from gpusched.testing.apiserver import FakeKubeAPI

Harness = Any
Obj = dict[str, Any]


def test_a_template_the_api_server_refuses_fails_the_job_once_with_its_words(harness: Harness) -> None:
    """A bad env var name passes the CRD (env is free-form) but not pod validation: the job is Failed
    with the server's message and an InvalidSpec event, and no gang is retried round after round.
    (`1BATCH_SIZE` was such a name up to 1.33; a current server refuses only names with '=' or
    characters that are not printable ASCII.)"""
    h = harness
    h.add_node("gpu-a")
    h.submit("bad-env", 8, template={"env": [{"name": "BATCH=SIZE", "value": "8"}]})
    h.submit("good", 8)
    op = h.start_operator()
    job = h.wait_phase("bad-env", "Failed", timeout=30)
    reason = job["status"]["reason"]
    assert "the API server rejected the job's worker pod" in reason
    # The template's env comes after the operator's own variables (and the checkpoint directory).
    position = len(torch_env("bad-env", h.namespace, GPUJobSpec.model_validate(job["spec"]), 0)) + 1
    assert f"spec.containers[0].env[{position}].name" in reason, reason
    assert "a valid environment variable name" in reason
    h.wait_phase("good", "Running", timeout=30)
    rounds = op.rounds
    h.wait_for(lambda: op.rounds >= rounds + 3, 30, "three more rounds")
    reasons = [e["reason"] for e in h.events("bad-env")]
    assert reasons.count("InvalidSpec") == 1 and "GangWithdrawn" not in reasons, reasons
    assert h.job("bad-env")["status"]["attempt"] == 1 and h.pods("bad-env") == []


def test_template_quantities_written_as_numbers_are_sent_as_written(harness: Harness) -> None:
    """`cpu: 2` in YAML is an int, which the API server takes; the client's generated models do not
    (a ValidationError before any request), so the operator must send its JSON as is. The server
    stores quantities in canonical form and hands them back as strings ("2", "4Gi", "1500m")."""
    h = harness
    h.add_node("gpu-a")
    requests = {"cpu": 2, "memory": "4096Mi", "ephemeral-storage": 1.5}
    h.submit("ints", 8, template={"resources": {"requests": requests, "limits": {"cpu": 4}}})
    h.start_operator()
    h.wait_phase("ints", "Running", timeout=30)
    pod = h.pods("ints")[0]
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {
        "cpu": "2",
        "memory": "4Gi",
        "ephemeral-storage": "1500m",
        "nvidia.com/gpu": "8",
    }
    assert resources["limits"] == {"cpu": "4", "nvidia.com/gpu": "8"}
    if h.fake is not None:  # what went over the wire: the numbers as the user wrote them
        sent = [b for m, p, _c, b in h.fake.log if m == "POST" and p.endswith("/pods") and b]
        container = next(b for b in sent if b["metadata"]["name"].startswith("ints-"))["spec"]["containers"][
            0
        ]
        assert container["resources"]["requests"]["cpu"] == 2
        assert container["resources"]["requests"]["ephemeral-storage"] == 1.5


def test_checkpoint_volume_clashes_are_reported_as_an_invalid_spec() -> None:
    """Two volumes of one name or two mounts at one path: a real API server refuses the pod (422)."""
    cfg = SnapshotConfig(gpu_types=[GpuType(name="H100-80GB", memory_gib=80, price_per_hour=4.0)])
    now = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
    base = {"gpus": 8, "work": {"duration": "1h"}, "checkpoint": {"volume": {"emptyDir": {}}}}
    cases = {
        "vol": {"volumes": [{"name": "gpusched-checkpoint", "emptyDir": {}}]},
        "mnt": {
            "volumes": [{"name": "c", "emptyDir": {}}],
            "volumeMounts": [{"name": "c", "mountPath": "/checkpoints"}],
        },
    }
    for name, template in cases.items():
        job = {
            "metadata": {"name": name, "namespace": "ml", "uid": "u"},
            "spec": {**base, "template": template},
        }
        snap = build_snapshot([job], [], [], [], cfg, now)
        assert snap.jobs[f"ml/{name}"].state == "invalid", name
        patch = reconcile(snap, None).actions[0].patch  # type: ignore[union-attr]
        assert patch["phase"] == "Invalid" and "template.volume" in patch["reason"], patch


@pytest.mark.parametrize("micros", [0, 1, 999999])
def test_lease_times_keep_their_six_fractional_digits(tmp_path: Path, micros: int) -> None:
    """MicroTime is parsed with exactly six digits: at .000000 the client's models would send none."""
    when = datetime(2026, 11, 23, 12, 0, 0, micros, tzinfo=timezone.utc)
    with FakeKubeAPI() as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        elector = LeaderElector(kube, "default", "gpusched", "me", clock=lambda: when)
        assert elector.try_acquire_or_renew()  # create
        assert elector.try_acquire_or_renew()  # replace
        spec = kube.read_lease("default", "gpusched")["spec"]
        assert parse_time(spec["renewTime"]) == when and parse_time(spec["acquireTime"]) == when
        elector.is_leader.set()
        elector.release()
        assert kube.read_lease("default", "gpusched")["spec"].get("holderIdentity") is None
