"""The operator as a process meets its environment: an API server that is not there (yet), SIGTERM,
GPUJobs it cannot use. Real HTTP and the official client, against the stand-in (or, for the tests
that take the `harness` fixture, the cluster GPUSCHED_E2E_KUBECONFIG names).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpusched.scheduler.kube import Kube, load_api_client
from gpusched.testing.apiserver import FakeKubeAPI

Harness = Any
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(path: Path, server: str) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "operator"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _cluster(tmp_path: Path) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        yaml.safe_dump({"gpu_types": [{"name": "H100-80GB", "memory_gib": 80, "price_per_hour": 4}]})
    )
    return str(path)


def _operator(tmp_path: Path, kubeconfig: str, *args: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-c",
        "from gpusched.cli import main; main()",
        "operator",
        "--kubeconfig",
        kubeconfig,
        "--cluster-config",
        _cluster(tmp_path),
        "--metrics-port",
        "0",
        *args,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("mode", ["--once", "--dry-run"])
def test_an_unreachable_api_server_is_one_line_and_exit_2_when_a_person_waits(
    tmp_path: Path, mode: str
) -> None:
    server = f"http://127.0.0.1:{_free_port()}"
    proc = _operator(tmp_path, _kubeconfig(tmp_path / "kc", server), mode)
    out, err = proc.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2, err.decode()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert server in lines[0] and "Connection refused" in lines[0], lines[0]
    assert out == b""


def test_a_replica_waits_for_its_api_server_then_works_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """A Deployment's replica may start before its API server answers: it retries with backoff and
    says so (never a traceback), works once the server is up, and on SIGTERM releases its Lease and
    exits 0 (a standby takes over at once instead of after the lease time)."""
    port = _free_port()
    kubeconfig = _kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")
    proc = _operator(tmp_path, kubeconfig, "--lease-namespace", "default", "--lease-name", "gpusched-test")
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(ln.decode() for ln in proc.stderr or []), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while (
            not any("API server unreachable; retrying" in ln for ln in lines) and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert proc.poll() is None, "".join(lines)
        api = FakeKubeAPI()
        api._port = port
        with api:
            kube = Kube(load_api_client(kubeconfig), max_attempts=1)

            def holder() -> Any:
                lease = kube.read_lease("default", "gpusched-test")
                return (lease.get("spec") or {}).get("holderIdentity")

            deadline = time.monotonic() + 60
            while not holder() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert holder(), "the operator never took the Lease once the server was up"
            deadline = time.monotonic() + 30
            while not api.requests.get("GET gpujobs") and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            assert proc.returncode == 0
            assert holder() is None, "the Lease was not released"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    err = "".join(lines)
    assert "Traceback" not in err, err[-3000:]
    assert "API server unreachable; retrying" in err and f"127.0.0.1:{port}" in err


@pytest.mark.parametrize("dry_run", [False, True])
def test_gpujobs_the_operator_cannot_use_are_invalid_and_the_others_go_on(
    harness: Harness, dry_run: bool
) -> None:
    """A field of the wrong value that the CRD cannot see (a template volume named like the checkpoint
    volume; on the stand-in, which does not apply the CRD schema, also a deadline that is text):
    phase Invalid, a condition and a Warning event naming the field, never planned; the rest runs."""
    h = harness
    h.add_node("gpu-a")
    bad = {"bad-volume": "template.volumes"}
    h.submit("bad-volume", 8, template={"volumes": [{"name": "gpusched-checkpoint", "emptyDir": {}}]})
    if h.fake is not None:  # a real server refuses this one itself (format: date-time)
        from gpusched.scheduler.crd import GROUP, PLURAL, VERSION

        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GPUJob",
            "metadata": {"name": "bad-deadline", "namespace": h.namespace},
            "spec": {"gpus": 8, "work": {"duration": "1h"}, "deadline": "next tuesday"},
        }
        h.kube.call(
            "create",
            lambda: h.kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, h.namespace, PLURAL, body, _preload_content=False
            ),
        )
        bad["bad-deadline"] = "spec.deadline"
    h.submit("good", 8)
    op = h.start_operator(dry_run=dry_run)
    for name, field in bad.items():
        status = h.wait_phase(name, "Invalid", timeout=30)["status"]
        assert field in status["reason"], status
        condition = next(c for c in status["conditions"] if c["type"] == "Admitted")
        assert condition["status"] == "False" and field in condition["message"]
        # The event follows the status write (same job, in order): on a busy machine, a moment later.
        h.wait_for(
            lambda n=name: [e for e in h.events(n) if e["reason"] == "InvalidSpec"], 15, f"{name}'s event"
        )
        warnings = [e for e in h.events(name) if e["reason"] == "InvalidSpec"]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning" and field in warnings[0]["message"]
    if dry_run:
        h.wait_for(
            lambda: "dry-run: would start" in (h.job("good").get("status") or {}).get("reason", ""), 30
        )
        assert h.phase("good") == "DryRun"
    else:
        h.wait_phase("good", "Running", timeout=30)
    rounds = op.rounds
    h.wait_for(lambda: op.rounds >= rounds + 2, 30, "two more rounds")
    for name in bad:
        assert h.pods(name) == [] and h.phase(name) == "Invalid"
        assert len([e for e in h.events(name) if e["reason"] == "InvalidSpec"]) == 1


def test_once_runs_one_round_and_exits_0(tmp_path: Path) -> None:
    """--once --dry-run: connect, lead, plan every GPUJob once (statuses written), exit 0; no pods."""
    from gpusched.scheduler.crd import GROUP, PLURAL, VERSION

    with FakeKubeAPI() as api:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kc"))
        kube = Kube(load_api_client(kubeconfig), max_attempts=1)
        node = {
            "metadata": {"name": "n1", "labels": {"gpusched.io/gpu-type": "H100-80GB"}},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}},
        }
        kube.call("node", lambda: kube.core.create_node(node, _preload_content=False))
        for name in ("first", "second"):
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "GPUJob",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"gpus": 8, "work": {"duration": "1h"}},
            }
            kube.call(
                "job",
                lambda b=body: kube.custom.create_namespaced_custom_object(
                    GROUP, VERSION, "default", PLURAL, b, _preload_content=False
                ),
            )
            time.sleep(1.05)  # whole-second creationTimestamps: "first" is first
        proc = _operator(tmp_path, kubeconfig, "--once", "--dry-run", "--lease-namespace", "default")
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "Traceback" not in err.decode()
        statuses = {o["metadata"]["name"]: o.get("status") or {} for o in api.objects("gpujobs")}
        assert (
            statuses["first"]["phase"] == "DryRun"
            and "dry-run: would start now" in statuses["first"]["reason"]
        )
        assert statuses["second"]["phase"] == "Planned" and statuses["second"]["plannedStart"]
        assert api.objects("pods") == []
        lease = kube.read_lease("default", "gpusched-operator")
        assert (lease.get("spec") or {}).get("holderIdentity") is None  # released on the way out


def test_sigterm_releases_the_lease_and_exits_0_on_any_server(harness: Harness) -> None:
    """The same SIGTERM contract through the harness, so the e2e suite checks it on a real
    kube-apiserver too: the leader working a job releases its Lease (holderIdentity cleared, so a
    standby takes over at once) and exits 0, with no traceback."""
    h = harness
    h.add_node("gpu-a")
    h.submit("work", 8)
    proc = h.spawn_operator("sigterm-lease", lease_duration=15)

    def holder() -> Any:
        lease = h.kube.read_lease(h.namespace, "sigterm-lease")
        return (lease.get("spec") or {}).get("holderIdentity") if lease else None

    h.wait_for(lambda: bool(holder()), 60, "the operator to take its Lease")
    h.wait_phase("work", "Running", timeout=60)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = (proc.stderr.read() if proc.stderr else b"").decode()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert holder() is None, "the Lease was not released"
