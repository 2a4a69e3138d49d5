"""Real-server counterparts of the three scenarios that make the stand-in misbehave on purpose (#12).

The stand-in API server can fail one request, forget its watch history and log every request by
token; a real kube-apiserver does each of these through its own, documented machinery:

- a binding that fails: an in-tree ValidatingAdmissionPolicy (CEL, no webhook server) denies the
  pods/binding of one worker, as the stand-in's `fail("POST", ".../wide-a1-w1/binding", 422)`;
- a compacted watch history: etcd's compaction (its v3 JSON gateway) while the operator's watch is
  behind, on a control plane whose kube-apiserver serves watches from etcd (--watch-cache=false), so
  resuming answers 410 "too old resource version";
- the request log: kube-apiserver's audit log (--audit-policy-file, --audit-log-path), per user.

`python tests/e2e/run.py` runs these instead of the stand-in-only tests (e2e_suite.COUNTERPARTS).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_controlplane import ROOT, ControlPlane
from e2e_harness import harness_module, open_harness, real_cluster_or_skip, real_harness

from gpusched.scheduler.kube import KubeError

pytestmark = pytest.mark.e2e
__all__ = ["real_harness"]  # the fixture, imported for pytest

Obj = dict[str, Any]
ADMISSION = "/apis/admissionregistration.k8s.io/v1"


# ------------------------------------------------------------------------- a binding that fails


@contextlib.contextmanager
def binding_denied(h: Any, pods: list[str]) -> Iterator[None]:
    """A ValidatingAdmissionPolicy (+ its binding) that refuses POST pods/<name>/binding for the named
    pods of this run's namespace with 422 Invalid, active when the block starts, gone when it ends.

    A policy takes effect a moment after it is created (the API server compiles it from its own
    informer); `vap-probe-*` pods, which the policy refuses too, tell when it does."""
    name = f"gpusched-e2e-deny-bind-{h.run_id}"
    names = ", ".join(f"'{p}'" for p in pods)
    selector = {"matchLabels": {harness_module.E2E_LABEL: h.run_id}}
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": selector,
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods/binding"],
                    }
                ],
            },
            "validations": [
                {
                    "expression": f"!(request.name in [{names}]) && !request.name.startsWith('vap-probe-')",
                    "messageExpression": "'binding of ' + request.name + ' refused by the e2e test'",
                    "reason": "Invalid",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": selector},
        },
    }
    kube = h.kube
    kube.request("create vap", "POST", f"{ADMISSION}/validatingadmissionpolicies", policy)
    kube.request("create vapb", "POST", f"{ADMISSION}/validatingadmissionpolicybindings", binding)
    try:
        probes = iter(range(1000))

        def refused() -> bool:
            probe = f"vap-probe-{next(probes)}"
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": probe, "namespace": h.namespace},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }
            kube.create_pod(h.namespace, body)
            try:
                kube.bind_pod(h.namespace, probe, h.nodes[0])
                return False
            except KubeError as exc:
                assert exc.status == 422, exc
                return True
            finally:
                kube.delete_pod(h.namespace, probe, 0)

        h.wait_for(refused, 60, "the ValidatingAdmissionPolicy to take effect", every=0.3)
        yield
    finally:
        kube.request(
            "delete vapb", "DELETE", f"{ADMISSION}/validatingadmissionpolicybindings/{name}", ok=(404,)
        )
        kube.request("delete vap", "DELETE", f"{ADMISSION}/validatingadmissionpolicies/{name}", ok=(404,))


def test_real_gang_is_withdrawn_when_one_worker_cannot_be_bound(real_harness: Any) -> None:
    """tests/scheduler/test_scenarios.py::test_gang_is_withdrawn_when_one_worker_cannot_be_bound on a
    real server: rank 1 of the first attempt cannot be bound, so the whole gang goes (rank 0, which was
    bound, too) and the next attempt, under fresh names, runs."""
    h = real_harness
    log = audit_log()
    offset = log.stat().st_size if log is not None and log.is_file() else 0
    h.add_node("gpu-a")
    h.add_node("gpu-b")
    with binding_denied(h, ["wide-a1-w1"]):
        h.submit("wide", 16, per_node=8)
        h.start_operator()
        h.wait_phase("wide", "Running", timeout=60)
    status = h.job("wide")["status"]
    names = sorted(p["metadata"]["name"] for p in h.pods("wide"))
    assert names == ["wide-a2-w0", "wide-a2-w1"], names
    assert status["attempt"] == 2 and sorted(status["nodes"]) == sorted(h.nodes)
    pods = h.pods("wide")
    assert {h.pod_env(p)["MASTER_ADDR"] for p in pods} == {f"wide.{h.namespace}.svc"}
    svc = h.kube.request("get svc", "GET", f"/api/v1/namespaces/{h.namespace}/services/wide")
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["selector"]["gpusched.io/rank"] == "0"
    withdrawn = [e for e in h.events("wide") if e["reason"] == "GangWithdrawn"]
    assert withdrawn and "all 2 workers withdrawn" in withdrawn[0]["message"]
    # The first attempt's rank 0 had been bound: it was deleted with the rest, not left running.
    h.wait_for(
        lambda: not [p for p in h.pods() if p["metadata"]["name"].startswith("wide-a1")],
        30,
        "the first attempt's workers to be gone",
    )
    if log is not None and log.is_file():  # the refusal came from the server, as the test meant
        refused = [
            e
            for e in audit_events(log, h.namespace, offset=offset)
            if _resource(e) == "pods/binding" and e["objectRef"].get("name") == "wide-a1-w1"
        ]
        assert refused and {e["responseStatus"]["code"] for e in refused} == {422}, refused


# ------------------------------------------------------------------------- the request log


def audit_log() -> Path | None:
    path = os.environ.get("GPUSCHED_E2E_AUDIT_LOG")
    return Path(path) if path else None


def audit_events(log: Path, namespace: str | None = None, since: str = "", offset: int = 0) -> list[Obj]:
    """The audit events (one per request: when it was answered) of requests in `namespace` or cluster-scoped ones
    (namespace None: all), received at or after `since` (RFC 3339 micro time, as the log writes)."""
    out = []
    with log.open("rb") as f:
        f.seek(offset)  # where the log ended when the test began: the suite's earlier tests are skipped
        for line in f:
            event = json.loads(line)
            # A watch is answered when its stream starts (ResponseComplete only when it ends).
            stage = "ResponseStarted" if event.get("verb") == "watch" else "ResponseComplete"
            if event.get("stage") != stage or event.get("requestReceivedTimestamp", "") < since:
                continue
            ns = (event.get("objectRef") or {}).get("namespace")
            if namespace is None or ns in (None, namespace):
                out.append(event)
    return out


def _resource(event: Obj) -> str:
    ref = event.get("objectRef") or {}
    sub = ref.get("subresource")
    return f"{ref.get('resource', '')}/{sub}" if sub else ref.get("resource", "")


def _allowed(rules: list[Obj], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
        for r in rules
    )


def _micro_now(offset_s: float = 0.0) -> str:
    """Now (plus offset_s) as the audit log writes its timestamps, so that strings compare as times."""
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone.utc) + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_real_operator_requests_are_the_rbac_allowed_ones_in_the_audit_log(real_harness: Any) -> None:
    """tests/scheduler/test_deploy.py::test_operator_rbac_is_least_privilege_and_covers_every_request_it_makes
    on a real server, whose request log is its audit log: every request the operator's ServiceAccount
    made is one deploy/'s RBAC allows (and the real authorizer agreed: no 403), the harness' own
    requests never came from it, and an idle cluster sees nothing from it but the Lease heartbeat."""
    h = real_harness
    log = audit_log()
    if log is None or not log.is_file():
        pytest.skip(
            "no audit log: `python tests/e2e/run.py` starts kube-apiserver with one (GPUSCHED_E2E_AUDIT_LOG)"
        )
    operator = "system:serviceaccount:" + os.environ.get("GPUSCHED_E2E_OPERATOR_SA", "").replace("/", ":")
    if operator == "system:serviceaccount:":
        pytest.skip("the operator shares the admin identity: its requests cannot be told apart")
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/operator/rbac.yaml").read_text()) if d]
    cluster_rules = next(d for d in docs if d["kind"] == "ClusterRole")["rules"]
    lease_rules = next(d for d in docs if d["kind"] == "Role")["rules"]
    since, offset = _micro_now(), log.stat().st_size
    # A preemption scenario, so that every kind of request the operator makes shows up, beside a gang
    # of two workers that keeps running (created, then bound, behind a Service; a lone worker is
    # created on its node in one request and has no Service).
    for node in ("gpu-a", "gpu-b", "gpu-c"):
        h.add_node(node)
    h.submit("pair", 16, per_node=8)
    h.submit("low", 8, preemptible=True)
    op = h.start_operator(lease_name="gpusched-operator")
    h.wait_phase("pair", "Running", timeout=60)
    h.wait_phase("low", "Running", timeout=60)
    h.submit("high", 8, priority=50)
    h.wait_phase("high", "Running", timeout=60)
    h.wait_for(lambda: op.rounds > 0, 10, "a completed round")
    events = audit_events(log, h.namespace, since, offset)
    mine = [e for e in events if e["user"]["username"] == operator]
    harness = [e for e in events if e["user"]["username"] == "gpusched-e2e-admin"]
    seen = {(e["verb"], (e.get("objectRef") or {}).get("apiGroup", ""), _resource(e)) for e in mine}
    harness_only = {
        ("create", "", "nodes"),
        ("patch", "", "nodes/status"),
        ("create", "gpusched.io", "gpujobs"),
    }
    harness_seen = {
        (e["verb"], (e.get("objectRef") or {}).get("apiGroup", ""), _resource(e)) for e in harness
    }
    assert harness_only <= harness_seen and not harness_only & seen, seen
    denied = [(e["verb"], e["requestURI"]) for e in mine if e["responseStatus"]["code"] == 403]
    assert not denied, f"the real authorizer refused the operator: {denied}"
    for verb, group, resource in seen:
        if not resource:  # a non-resource URL (GET /version): system:public-info-viewer
            continue
        rules = lease_rules if resource == "leases" else cluster_rules
        assert _allowed(rules, group, resource, verb), f"operator made {verb} {group}/{resource}: not in RBAC"
    verbs = {v for v, _, _ in seen}
    assert {"list", "watch", "create", "patch", "delete"} <= verbs, verbs
    assert {r for _, _, r in seen} >= {
        "pods",
        "pods/binding",
        "services",
        "gpujobs",
        "gpujobs/status",
        "leases",
        "events",
    }

    # Idle: "pair" and "high" run, "low" waits for a node, nothing changes. Once the preemption's writes are
    # done (no write but the Lease's for 3 s), the operator's only writes are its Lease renewals.
    def writes(since: str) -> list[Obj]:
        return [
            e
            for e in audit_events(log, None, since, offset)
            if e["user"]["username"] == operator and e["verb"] not in ("get", "list", "watch")
        ]

    def settled() -> bool:
        last = max(
            (e["requestReceivedTimestamp"] for e in writes(since) if _resource(e) != "leases"), default=""
        )
        return last < _micro_now(-3.0)

    h.wait_for(settled, 30, "the operator's writes to stop (3 s without one beside the Lease)", every=0.5)
    idle_since = _micro_now()
    time.sleep(8)
    idle = writes(idle_since)
    others = [(e["verb"], _resource(e), e["requestURI"]) for e in idle if _resource(e) != "leases"]
    assert not others, f"writes on an idle cluster beyond the Lease heartbeat: {others}"
    assert idle, "no Lease renewal in 8 s (lease 4 s): the heartbeat is missing from the log"


# ------------------------------------------------------------------------- a compacted watch history


def _etcd(plane: ControlPlane, path: str, body: Obj) -> Obj:
    request = urllib.request.Request(
        plane.etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def etcd_compact(plane: ControlPlane) -> int:
    """Compact etcd's history up to its current revision (what kube-apiserver does every 5 minutes)."""
    revision = int(_etcd(plane, "/v3/kv/range", {"key": "AA=="})["header"]["revision"])  # key "\0"
    _etcd(plane, "/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


@pytest.fixture
def uncached_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    real_cluster_or_skip()
    bins = os.environ.get("GPUSCHED_E2E_BIN")
    if not bins:
        pytest.skip("GPUSCHED_E2E_BIN is not set: `python tests/e2e/run.py` builds the control plane")
    with ControlPlane(
        Path(bins), controller_manager=False, workdir=tmp_path / "plane", watch_cache=False, audit=False
    ) as plane:
        yield plane


def test_real_watches_resume_after_410_gone(uncached_plane: ControlPlane, tmp_path: Path) -> None:
    """tests/scheduler/test_scenarios.py::test_watches_resume_after_410_gone on a real server: etcd
    forgets the history the operator's watches would resume from; kube-apiserver answers 410 and the
    operator re-lists, then keeps scheduling: nothing lost, nothing done twice."""
    plane = uncached_plane
    operator = plane.deploy_operator_identity()
    with open_harness(
        str(plane.kubeconfig),
        tmp_path,
        operator_kubeconfig=str(operator),
        operator_sa="gpusched-system/gpusched-operator",
    ) as h:
        h.add_node("gpu-a")
        h.submit("before", 8)
        # Short watches: each stream ends (and resumes from the last version it saw) every 2 s.
        op = h.start_operator(watch_timeout=2)
        h.wait_phase("before", "Running", timeout=60)
        h.wait_for(lambda: op.rounds >= 1, 15, "a first round")
        first = {p["metadata"]["name"]: p["metadata"]["uid"] for p in h.pods("before")}
        before = op.jobs.relists
        h.add_node("gpu-b")  # history moves on past the operator's last-seen GPUJob version...
        revision = etcd_compact(plane)  # ...and is forgotten: resuming a watch from it must answer 410
        h.wait_for(lambda: op.jobs.relists > before, 30, "the GPUJob informer to re-list after 410 Gone")
        assert int(op.jobs.resource_version) >= revision
        h.submit("after-compaction", 8)
        h.wait_phase("after-compaction", "Running", timeout=60)
        # Nothing lost or duplicated: one worker each, the first job's untouched, nodes not shared.
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in h.pods("before")} == first
        after = h.pods("after-compaction")
        assert [p["metadata"]["name"] for p in after] == ["after-compaction-a1-w0"]
        assert {h.pods("before")[0]["spec"]["nodeName"], after[0]["spec"]["nodeName"]} == set(h.nodes)
        assert (
            h.job("before")["status"]["attempt"] == 1 and h.job("after-compaction")["status"]["attempt"] == 1
        )
