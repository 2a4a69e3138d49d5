"""The API server stand-in keeps the Kubernetes semantics the operator relies on.

Driven through the official client, as the operator drives it; each case is what a real API server
does (and what a too-simple mock would get wrong).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from gpusched.scheduler.kube import GPUJOBS, GPUNODES, NODES, PODS, Gone, Kube, KubeError, load_api_client
from gpusched.testing.apiserver import FakeKubeAPI, label_matcher

Obj = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kube(fake_api: FakeKubeAPI, tmp_path: Path) -> Iterator[Kube]:
    yield Kube(load_api_client(fake_api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)


def _pod(name: str, labels: dict[str, str] | None = None, node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def test_label_selectors_equality_and_sets() -> None:
    labels = {"app": "gpusched", "rank": "0", "tier": "gpu"}
    assert label_matcher("app=gpusched,rank!=1")(labels)
    assert label_matcher("tier in (gpu, tpu),!missing,rank")(labels)
    assert not label_matcher("tier notin (gpu)")(labels)
    assert not label_matcher("app==other")(labels)


def test_list_with_label_and_field_selectors(kube: Kube) -> None:
    kube.create_pod("a", _pod("p1", {"job": "x"}, node="n1"))
    kube.create_pod("a", _pod("p2", {"job": "y"}, node="n2"))
    kube.create_pod("b", _pod("p3", {"job": "x"}))
    items, rv = kube.list(PODS, None, "job=x")
    assert sorted(p["metadata"]["name"] for p in items) == ["p1", "p3"] and int(rv) > 0
    data = kube.call(
        "list",
        lambda: kube.core.list_pod_for_all_namespaces(
            field_selector="spec.nodeName=n2,metadata.namespace=a", _preload_content=False
        ),
    )
    assert [p["metadata"]["name"] for p in data["items"]] == ["p2"]


def test_create_conflicts_and_stale_updates_conflict(kube: Kube) -> None:
    first = kube.create_pod("a", _pod("p"))
    assert kube.create_pod("a", _pod("p")) == {"_status": 409}
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": "a"},
        "spec": {"holderIdentity": "one"},
    }
    created = kube.create_lease("a", lease)
    mine = {**created, "spec": {"holderIdentity": "two"}}
    assert "_status" not in kube.replace_lease("a", "l", mine)
    assert kube.replace_lease("a", "l", {**created, "spec": {"holderIdentity": "three"}}) == {"_status": 409}
    assert first["metadata"]["uid"] and first["status"]["phase"] == "Pending"


def test_status_subresource_separates_spec_and_status(kube: Kube, fake_api: FakeKubeAPI) -> None:
    gj = {
        "apiVersion": "gpusched.io/v1alpha1",
        "kind": "GPUJob",
        "metadata": {"name": "j"},
        "spec": {"gpus": 8},
        "status": {"phase": "Ignored"},
    }
    created = kube.call(
        "create",
        lambda: kube.custom.create_namespaced_custom_object(
            "gpusched.io", "v1alpha1", "a", "gpujobs", gj, _preload_content=False
        ),
    )
    assert "status" not in created and created["metadata"]["generation"] == 1
    patched = kube.patch_job_status("a", "j", {"phase": "Running"})
    assert patched["status"]["phase"] == "Running" and patched["metadata"]["generation"] == 1
    spec_change = kube.call(
        "patch",
        lambda: kube.custom.patch_namespaced_custom_object(
            "gpusched.io",
            "v1alpha1",
            "a",
            "gpujobs",
            "j",
            {"spec": {"gpus": 16}, "status": {"phase": "X"}},
            _preload_content=False,
            _content_type="application/merge-patch+json",
        ),
    )
    assert spec_change["metadata"]["generation"] == 2 and spec_change["status"]["phase"] == "Running"


def test_binding_sets_the_node_once(kube: Kube) -> None:
    kube.call("node", lambda: kube.core.create_node({"metadata": {"name": "n1"}}, _preload_content=False))
    kube.create_pod("a", _pod("p"))
    assert kube.bind_pod("a", "p", "n1")["status"] == "Success"
    assert kube.bind_pod("a", "p", "n1") == {"_status": 409}
    assert kube.read_pod("a", "p")["spec"]["nodeName"] == "n1"
    # As the real registry: the node is not looked up (PodGC deletes such orphans later).
    kube.create_pod("a", _pod("q"))
    assert kube.bind_pod("a", "q", "no-such-node")["status"] == "Success"
    with pytest.raises(Exception, match="already assigned"):
        kube.call(
            "bind",
            lambda: kube.core.create_namespaced_pod_binding(
                "p", "a", {"metadata": {"name": "p"}, "target": {"name": "n1"}}, _preload_content=False
            ),
        )


def test_graceful_deletion_and_owner_garbage_collection(kube: Kube, fake_api: FakeKubeAPI) -> None:
    owner = kube.create_service(
        "a",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"clusterIP": "None"}},
    )
    child = _pod("bound", node="n1")
    child["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Service", "name": "svc", "uid": owner["metadata"]["uid"]}
    ]
    kube.create_pod("a", child)
    terminating = kube.delete_pod("a", "bound", 30)
    assert (
        terminating["metadata"]["deletionTimestamp"]
        and terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    )
    assert kube.read_pod("a", "bound")["metadata"][
        "deletionTimestamp"
    ]  # still there: the kubelet finishes it
    kube.delete_pod("a", "bound", 0)
    assert kube.read_pod("a", "bound") == {"_status": 404}
    kube.create_pod("a", child)
    kube.call("del svc", lambda: kube.core.delete_namespaced_service("svc", "a", _preload_content=False))
    assert kube.read_pod("a", "bound")["metadata"]["deletionTimestamp"]  # collected with its owner


def test_watch_resumes_from_a_resource_version_and_expires_with_410(
    kube: Kube, fake_api: FakeKubeAPI
) -> None:
    kube.create_pod("a", _pod("before"))
    _, rv = kube.list(PODS, "a")
    kube.create_pod("a", _pod("after-1"))
    kube.delete_pod("a", "after-1", 0)
    seen: list[tuple[str, str]] = []
    for event in kube.watch(PODS, rv, "a", timeout_seconds=1):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
    assert seen == [("ADDED", "after-1"), ("DELETED", "after-1")]  # nothing from before rv
    fake_api.compact()
    with pytest.raises(Gone):
        list(kube.watch(PODS, rv, "a", timeout_seconds=1))


def test_watch_streams_live_events(kube: Kube) -> None:
    _, rv = kube.list(PODS, "a")
    got: list[str] = []
    stop = threading.Event()

    def consume() -> None:
        for event in kube.watch(PODS, rv, "a", timeout_seconds=3, stop=stop):
            got.append(event["object"]["metadata"]["name"])
            if len(got) == 2:
                return

    thread = threading.Thread(target=consume)
    thread.start()
    kube.create_pod("a", _pod("live-1"))
    kube.create_pod("b", _pod("other-namespace"))
    kube.create_pod("a", _pod("live-2"))
    thread.join(timeout=10)
    assert got == ["live-1", "live-2"]


def test_injected_faults_are_retried_by_the_client_wrapper(fake_api: FakeKubeAPI, tmp_path: Path) -> None:
    kube = Kube(load_api_client(fake_api.write_kubeconfig(str(tmp_path / "kc"))), base_delay=0.01)
    fake_api.fail("POST", r"/pods$", 503, times=2)
    created = kube.create_pod("a", _pod("eventually"))
    assert created["metadata"]["name"] == "eventually"
    assert kube.requests["create pod"] == 3
    fake_api.fail("POST", r"/pods$", 422, times=1)
    with pytest.raises(Exception, match="422"):
        kube.create_pod("a", _pod("rejected"))
    assert json.dumps(fake_api.requests)  # the request log the RBAC test reads


# ------------------------------------------------------------------ what a real server is strict about


def test_field_selectors_are_limited_to_the_fields_the_real_server_supports(kube: Kube) -> None:
    kube.create_pod("a", _pod("p1", node="n1"))
    ok = kube.call(
        "list",
        lambda: kube.core.list_namespaced_pod(
            "a", field_selector="metadata.name=p1,status.phase=Pending", _preload_content=False
        ),
    )
    assert [p["metadata"]["name"] for p in ok["items"]] == ["p1"]
    with pytest.raises(KubeError, match=r"field label not supported: spec\.containers") as err:
        kube.call(
            "list",
            lambda: kube.core.list_namespaced_pod(
                "a", field_selector="spec.containers=x", _preload_content=False
            ),
        )
    assert err.value.status == 400 and err.value.reason == "BadRequest"
    with pytest.raises(KubeError, match=r'"spec\.gpus" is not a known field selector'):
        kube.call(
            "list",
            lambda: kube.custom.list_namespaced_custom_object(
                "gpusched.io",
                "v1alpha1",
                "a",
                "gpujobs",
                field_selector="spec.gpus=8",
                _preload_content=False,
            ),
        )


def test_a_watch_with_a_label_selector_sees_objects_enter_and_leave_it(kube: Kube) -> None:
    def node(name: str, pool: str) -> Obj:
        return {"metadata": {"name": name, "labels": {"pool": pool}}}

    kube.call("node", lambda: kube.core.create_node(node("n1", "a"), _preload_content=False))
    _, rv = kube.list(NODES, None, "pool=a")

    def relabel(pool: str) -> None:
        kube.call(
            "patch",
            lambda: kube.core.patch_node(
                "n1",
                {"metadata": {"labels": {"pool": pool}}},
                _preload_content=False,
                _content_type="application/merge-patch+json",
            ),
        )

    relabel("b")  # leaves the selection
    relabel("c")  # outside before and after: nothing
    relabel("a")  # enters it again
    kube.call("node", lambda: kube.core.create_node(node("n2", "b"), _preload_content=False))
    seen = [
        (e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["labels"]["pool"])
        for e in kube.watch(NODES, rv, None, timeout_seconds=1, label_selector="pool=a")
    ]
    # DELETED carries the last state that matched, as the real watch cache sends it.
    assert seen == [("DELETED", "n1", "a"), ("ADDED", "n1", "a")]


def test_errors_are_status_objects_with_reason_and_details(fake_api: FakeKubeAPI) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(fake_api.url + "/api/v1/namespaces/a/pods/missing")
    body = json.loads(err.value.read())
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "missing" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "missing", "kind": "pods"},
    }


def test_serviceaccount_admission_refuses_pods_until_the_account_exists(tmp_path: Path) -> None:
    with FakeKubeAPI(serviceaccount_admission=True) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        with pytest.raises(KubeError) as err:
            kube.create_pod("team", _pod("p"))
        assert err.value.status == 403 and err.value.reason == "Forbidden"
        assert err.value.message == (
            'pods "p" is forbidden: error looking up service account team/default: '
            'serviceaccount "default" not found'
        )
        kube.call(
            "sa",
            lambda: kube.core.create_namespaced_service_account(
                "team", {"metadata": {"name": "default"}}, _preload_content=False
            ),
        )
        pod = kube.create_pod("team", _pod("p"))
        assert pod["spec"]["serviceAccountName"] == "default"
        token = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
        assert token and pod["spec"]["containers"][0]["volumeMounts"][0]["name"] == token[0]["name"]
        named = _pod("q")
        named["spec"]["serviceAccountName"] = "trainer"
        with pytest.raises(KubeError, match='serviceaccount "trainer" not found'):
            kube.create_pod("team", named)


def test_namespace_lifecycle_without_a_namespace_controller(tmp_path: Path) -> None:
    with FakeKubeAPI(namespace_lifecycle=True) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        assert {n["metadata"]["name"] for n in api.objects("namespaces")} >= {"default", "kube-node-lease"}
        with pytest.raises(KubeError, match='namespaces "nowhere" not found'):
            kube.create_pod("nowhere", _pod("p"))
        kube.call(
            "ns", lambda: kube.core.create_namespace({"metadata": {"name": "t"}}, _preload_content=False)
        )
        kube.create_pod("t", _pod("p"))
        gone = kube.call("del", lambda: kube.core.delete_namespace("t", _preload_content=False))
        assert gone["status"]["phase"] == "Terminating"
        with pytest.raises(KubeError, match="because it is being terminated") as err:
            kube.create_pod("t", _pod("q"))
        assert err.value.status == 403
        time.sleep(0.3)  # nothing would ever finish it: no namespace controller
        assert kube.call("get", lambda: kube.core.read_namespace("t", _preload_content=False))["metadata"][
            "deletionTimestamp"
        ]


def test_node_lifecycle_controller_taints_and_evicts_when_the_lease_is_not_renewed(tmp_path: Path) -> None:
    with FakeKubeAPI(node_lifecycle=True, node_grace_s=0.6) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        for name in ("alive", "dead"):
            kube.call(
                "node",
                lambda n=name: kube.core.create_node(
                    {
                        "metadata": {"name": n},
                        "status": {
                            "conditions": [
                                {
                                    "type": "Ready",
                                    "status": "True",
                                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                }
                            ]
                        },
                    },
                    _preload_content=False,
                ),
            )
        kube.create_pod("a", _pod("tolerates", node="dead"))
        tolerant = _pod("brief", node="dead")
        tolerant["spec"]["tolerations"] = [
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 3600,
            }
        ]
        kube.create_pod("a", tolerant)
        stop = threading.Event()

        def kubelet() -> None:  # only "alive" renews its Lease
            while not stop.wait(0.1):
                body = {
                    "metadata": {"name": "alive", "namespace": "kube-node-lease"},
                    "spec": {"holderIdentity": "alive", "renewTime": datetime.now(timezone.utc).isoformat()},
                }
                lease = kube.read_lease("kube-node-lease", "alive")
                if lease.get("_status") == 404:
                    kube.create_lease("kube-node-lease", body)
                else:
                    kube.replace_lease("kube-node-lease", "alive", {**body, "metadata": lease["metadata"]})

        thread = threading.Thread(target=kubelet, daemon=True)
        thread.start()
        try:

            def node(name: str) -> Obj:
                return kube.call("get", lambda: kube.core.read_node(name, _preload_content=False))

            deadline = time.monotonic() + 20
            while not (node("dead").get("spec") or {}).get("taints") and time.monotonic() < deadline:
                time.sleep(0.05)
            dead = node("dead")
            ready = next(c for c in dead["status"]["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
            assert sorted((t["key"], t["effect"]) for t in dead["spec"]["taints"]) == [
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/unreachable", "NoSchedule"),
            ]
            alive = node("alive")
            assert not (alive.get("spec") or {}).get("taints")
            assert next(c for c in alive["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
            # The pod without a toleration is evicted (graceful: its kubelet would finish it); the
            # one tolerating the taint for an hour stays.
            assert api.evicted == ["a/tolerates"]
            assert kube.read_pod("a", "tolerates")["metadata"]["deletionTimestamp"]
            assert not kube.read_pod("a", "brief")["metadata"].get("deletionTimestamp")
            # A heartbeat with Ready=True brings the node back: the taints go.
            kube.call(
                "status",
                lambda: kube.core.patch_node_status(
                    "dead",
                    {
                        "status": {
                            "conditions": [
                                {
                                    "type": "Ready",
                                    "status": "True",
                                    "lastHeartbeatTime": datetime.now(timezone.utc).isoformat(),
                                }
                            ]
                        }
                    },
                    _preload_content=False,
                    _content_type="application/merge-patch+json",
                ),
            )
            deadline = time.monotonic() + 5
            while (node("dead").get("spec") or {}).get("taints") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not (node("dead").get("spec") or {}).get("taints")
        finally:
            stop.set()
            thread.join(timeout=5)


def test_new_nodes_are_tainted_not_ready_by_admission(tmp_path: Path) -> None:
    with FakeKubeAPI(taint_new_nodes=True) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        node = kube.call(
            "node",
            lambda: kube.core.create_node(
                {
                    "metadata": {"name": "n1"},
                    "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
                },
                _preload_content=False,
            ),
        )
        assert node["spec"]["taints"] == [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        ]


def test_pod_gc_fails_and_deletes_pods_bound_to_missing_nodes(tmp_path: Path) -> None:
    with FakeKubeAPI(pod_gc=True, pod_gc_quarantine_s=0.3) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        kube.call("node", lambda: kube.core.create_node({"metadata": {"name": "n1"}}, _preload_content=False))
        kube.create_pod("a", _pod("kept", node="n1"))
        kube.create_pod("a", _pod("orphan"))
        kube.bind_pod("a", "orphan", "vanished")
        deadline = time.monotonic() + 10
        while kube.read_pod("a", "orphan").get("_status") != 404 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kube.read_pod("a", "orphan") == {"_status": 404}
        final = next(
            e[3] for e in api.store.events if e[2] == "DELETED" and e[3]["metadata"]["name"] == "orphan"
        )
        assert final["status"]["phase"] == "Failed"
        assert [c["reason"] for c in final["status"]["conditions"] if c["type"] == "DisruptionTarget"] == [
            "DeletionByPodGC"
        ]
        assert "deletionTimestamp" not in kube.read_pod("a", "kept")["metadata"]


def test_custom_resources_are_served_only_once_their_crd_is_established(tmp_path: Path) -> None:
    import yaml

    with FakeKubeAPI(require_crds=True, crd_establish_s=0.5) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        with pytest.raises(KubeError) as err:
            kube.list(GPUJOBS)
        assert err.value.status == 404
        crd = yaml.safe_load((ROOT / "deploy/crds/gpujobs.yaml").read_text())
        created = kube.request(
            "create crd", "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd
        )
        assert created["spec"] == crd["spec"] and not created["status"]["conditions"]
        with pytest.raises(KubeError):  # created, not yet Established
            kube.list(GPUJOBS)
        deadline = time.monotonic() + 10
        while (
            not api.serves(api.by_path[("gpusched.io", "v1alpha1", "gpujobs")])
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert kube.list(GPUJOBS)[0] == []
        got = kube.request(
            "get", "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gpujobs.gpusched.io"
        )
        conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        assert conditions == {"NamesAccepted": "True", "Established": "True"}
        assert got["status"]["acceptedNames"]["kind"] == "GPUJob" and got["status"]["storedVersions"] == [
            "v1alpha1"
        ]
        with pytest.raises(KubeError):  # the other CRD was never installed
            kube.list(GPUNODES)


# ------------------------------------------------------------------------------ validation
# What a real API server refuses (and what it does not), with its status codes and messages.


def _status(exc: pytest.ExceptionInfo[KubeError]) -> tuple[int, str, str]:
    return exc.value.status, exc.value.reason, exc.value.message


def _create_pod(kube: Kube, body: Obj, ns: str = "default") -> Obj:
    """Through the operator's own create (the JSON as is), so the stand-in sees exactly this body."""
    return kube.create_pod(ns, body)


def _gpu_pod(name: str = "w", **container: Any) -> Obj:
    ctr = {"name": "worker", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "8"}}, **container}
    return {"metadata": {"name": name}, "spec": {"containers": [ctr]}}


@pytest.mark.parametrize(
    ("container", "spec", "field", "words"),
    [
        (
            {"ports": [{"name": "rendezvous-port1", "containerPort": 29500}]},
            {},
            "spec.containers[0].ports[0].name",
            "must be no more than 15 characters",
        ),
        (
            {"ports": [{"name": "rdzv", "containerPort": 70000}]},
            {},
            "spec.containers[0].ports[0].containerPort",
            "must be between 1 and 65535, inclusive",
        ),
        (
            {"env": [{"name": "1BATCH_SIZE", "value": "x"}, {"name": "BATCH=SIZE", "value": "x"}]},
            {},
            "spec.containers[0].env[1].name",  # only the second: a leading digit is fine since 1.34
            "a valid environment variable name must consist only of printable ASCII characters other than '='",
        ),
        (
            {"resources": {"limits": {"nvidia.com/gpu": "8"}, "requests": {"nvidia.com/gpu": "4"}}},
            {},
            "spec.containers[0].resources.requests",
            "must be equal to nvidia.com/gpu limit of 8",
        ),
        (
            {"resources": {"limits": {"nvidia.com/gpu": "500m"}}},
            {},
            "spec.containers[0].resources.limits[nvidia.com/gpu]",
            "must be an integer",
        ),
        (
            {"resources": {"requests": {"rdma/hca": "1"}}},
            {},
            "spec.containers[0].resources.limits",
            "Limit must be set for non overcommitable resources",
        ),
        (
            {"volumeMounts": [{"name": "ckpt", "mountPath": "/c"}]},
            {},
            "spec.containers[0].volumeMounts[0].name",
            'Not found: "ckpt"',
        ),
        (
            {},
            {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]},
            "spec.volumes[1].name",
            'Duplicate value: "a"',
        ),
        ({}, {"subdomain": "bert.large"}, "spec.subdomain", "a lowercase RFC 1123 label must consist of"),
        ({}, {"hostname": "w" * 64}, "spec.hostname", "must be no more than 63 characters"),
        ({}, {"serviceAccountName": "Trainer"}, "spec.serviceAccountName", "a lowercase RFC 1123 subdomain"),
        (
            {},
            {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
            "spec.tolerations[0].operator",
            "value must be empty when `operator` is 'Exists'",
        ),
        (
            {},
            {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
            "spec.tolerations[0].effect",
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ),
    ],
)
def test_pods_the_real_server_refuses_are_422_invalid(
    kube: Kube, container: Obj, spec: Obj, field: str, words: str
) -> None:
    body = _gpu_pod(**container)
    body["spec"].update(spec)
    with pytest.raises(KubeError) as exc:
        _create_pod(kube, body)
    code, reason, message = _status(exc)
    assert (code, reason) == (422, "Invalid")
    assert message.startswith('Pod "w" is invalid: ') and f"{field}: " in message and words in message


def test_pod_metadata_rules_apply_and_the_422_body_has_causes(kube: Kube, fake_api: FakeKubeAPI) -> None:
    too_long = "x" * 64
    body = _gpu_pod()
    body["metadata"]["labels"] = {"gpusched.io/job": too_long}
    with pytest.raises(KubeError) as exc:
        _create_pod(kube, body)
    assert _status(exc)[0] == 422 and "metadata.labels: Invalid value" in exc.value.message
    body = _gpu_pod(name="a" * 254)
    with pytest.raises(KubeError) as exc:
        _create_pod(kube, body)
    assert "metadata.name: Invalid value" in exc.value.message and "no more than 253" in exc.value.message
    body = _gpu_pod()
    owner = {"apiVersion": "gpusched.io/v1alpha1", "kind": "GPUJob", "controller": True}
    body["metadata"]["ownerReferences"] = [
        {**owner, "name": "a", "uid": "1"},
        {**owner, "name": "b", "uid": "2"},
    ]
    with pytest.raises(KubeError) as exc:
        _create_pod(kube, body)
    assert "Only one reference can have Controller set to true" in exc.value.message
    # The Status body, as the client sees it: causes name each field.
    fake_api.fail("*", "^$", 0, 0)
    import urllib.request

    req = urllib.request.Request(
        f"{fake_api.url}/api/v1/namespaces/default/pods",
        method="POST",
        data=json.dumps(_gpu_pod(ports=[{"name": "Rdzv", "containerPort": 1}])).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(req)
    status = json.loads(http.value.read())
    assert status["code"] == 422 and status["details"]["kind"] == "Pod" and status["details"]["name"] == "w"
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.containers[0].ports[0].name"]
    assert status["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_what_the_real_server_accepts_is_accepted(kube: Kube) -> None:
    """No stricter than the real server: requests-only cpu, a GPU request equal to its limit, an empty
    label value, a headless Service without ports, a core/v1 Event with a very long name."""
    ok = _gpu_pod(
        resources={
            "limits": {"nvidia.com/gpu": 8},
            "requests": {"nvidia.com/gpu": "8", "cpu": "500m", "memory": "1Gi"},
        },
        env=[{"name": "_x.y-z", "value": ""}],
        ports=[{"containerPort": 1}],
    )
    ok["metadata"]["labels"] = {"empty": ""}
    ok["spec"].update(hostname="w0", subdomain="j-7b-pretrain-1a2b3c4d", schedulerName="gpusched")
    _create_pod(kube, ok)
    svc = {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "selector": {"a": "b"}}}
    kube.create_service("default", svc)
    event = {
        "metadata": {"name": "7b." + "x" * 300, "namespace": "default"},
        "reason": "R",
        "message": "m",
        "involvedObject": {"kind": "GPUJob", "name": "7b", "namespace": "default"},
    }
    kube.create_event("default", event)
    node_event = {
        "metadata": {"name": "n1.abc"},
        "reason": "R",
        "involvedObject": {"kind": "Node", "name": "n1"},
    }
    kube.create_event("default", node_event)


def test_services_need_dns_1123_label_names_and_valid_ports(kube: Kube) -> None:
    def refused(body: Obj) -> str:
        with pytest.raises(KubeError) as exc:
            kube.create_service("default", body)
        assert _status(exc)[:2] == (422, "Invalid")
        return exc.value.message

    port = {"name": "rendezvous", "port": 29500, "targetPort": 29500}
    for name in ("bert.large", "x" * 64, "Upper"):
        msg = refused({"metadata": {"name": name}, "spec": {"clusterIP": "None", "ports": [port]}})
        assert msg.startswith(f'Service "{name}" is invalid: ') and "metadata.name: Invalid value" in msg
    assert "a lowercase RFC 1123 label must consist of" in refused(
        {"metadata": {"name": "7b.x"}, "spec": {"ports": [port]}}
    )
    # RelaxedServiceNameValidation (current releases): a leading digit is fine.
    kube.create_service("default", {"metadata": {"name": "7b-pretrain"}, "spec": {"ports": [port]}})
    msg = refused({"metadata": {"name": "s"}, "spec": {"ports": [port, {**port, "name": ""}]}})
    assert "spec.ports[1].name: Required value" in msg
    msg = refused(
        {"metadata": {"name": "s"}, "spec": {"ports": [{**port, "targetPort": "rendezvous-port1"}]}}
    )
    assert "spec.ports[0].targetPort" in msg
    msg = refused(
        {"metadata": {"name": "s"}, "spec": {"ports": [port], "selector": {"gpusched.io/job": "y" * 70}}}
    )
    assert "spec.selector" in msg


def test_events_must_be_in_their_objects_namespace(kube: Kube, fake_api: FakeKubeAPI) -> None:
    body = {
        "metadata": {"name": "e1"},
        "reason": "R",
        "message": "m",
        "involvedObject": {"kind": "GPUJob", "name": "j", "namespace": "ml"},
    }
    with pytest.raises(KubeError) as exc:
        kube.create_event("default", body)
    assert _status(exc) == (
        422,
        "Invalid",
        'Event "e1" is invalid: involvedObject.namespace: Invalid value: '
        '"ml": does not match event.namespace',
    )
    # An event with eventTime is a "new" event: it needs reportingComponent (as reportingController),
    # reportingInstance and action.
    body = {
        "metadata": {"name": "e2"},
        "reason": "R",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "involvedObject": {"kind": "GPUJob", "name": "j", "namespace": "default"},
    }
    with pytest.raises(KubeError) as exc:
        kube.create_event("default", body)
    assert (
        "reportingInstance: Required value" in exc.value.message
        and "action: Required value" in exc.value.message
    )
    body["eventTime"] = "2026-01-01T00:00:00Z"  # MicroTime needs its six digits
    with pytest.raises(KubeError) as exc:
        kube.create_event("default", body)
    assert _status(exc)[:2] == (400, "BadRequest")


def test_leases_need_micro_times_and_a_positive_duration(kube: Kube) -> None:
    def lease(**spec: Any) -> Obj:
        return {"metadata": {"name": "l", "namespace": "default"}, "spec": {"holderIdentity": "me", **spec}}

    with pytest.raises(KubeError) as exc:
        kube.create_lease("default", lease(renewTime="2026-01-01T00:00:00Z"))
    code, reason, message = _status(exc)
    assert (code, reason) == (400, "BadRequest")
    assert message.startswith('Lease in version "v1" cannot be handled as a Lease: parsing time')
    with pytest.raises(KubeError) as exc:
        kube.create_lease("default", lease(leaseDurationSeconds=0))
    assert _status(exc)[
        0
    ] == 422 and "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0" in (exc.value.message)
    created = kube.create_lease(
        "default", lease(renewTime="2026-01-01T00:00:00.000000Z", leaseDurationSeconds=15)
    )
    created["spec"]["acquireTime"] = "2026-01-01T00:00:00.5Z"
    with pytest.raises(KubeError) as exc:
        kube.replace_lease("default", "l", created)
    assert _status(exc)[0] == 400


def test_custom_resources_take_no_strategic_merge_patch(kube: Kube, fake_api: FakeKubeAPI) -> None:
    job = {
        "apiVersion": "gpusched.io/v1alpha1",
        "kind": "GPUJob",
        "metadata": {"name": "j"},
        "spec": {"gpus": 8, "work": {"gpuHours": 1}},
    }
    kube.call(
        "create",
        lambda: kube.custom.create_namespaced_custom_object(
            "gpusched.io", "v1alpha1", "default", "gpujobs", job, _preload_content=False
        ),
    )

    def patch(content_type: str, body: Any) -> Obj:
        return kube.call(
            "patch",
            lambda: kube.custom.patch_namespaced_custom_object_status(
                "gpusched.io",
                "v1alpha1",
                "default",
                "gpujobs",
                "j",
                body,
                _preload_content=False,
                _content_type=content_type,
            ),
        )

    with pytest.raises(KubeError) as exc:
        patch("application/strategic-merge-patch+json", {"status": {"phase": "Running"}})
    code, reason, message = _status(exc)
    assert (code, reason) == (415, "UnsupportedMediaType")
    assert message.startswith(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json"
    )
    assert "strategic" not in message
    assert (
        patch("application/merge-patch+json", {"status": {"phase": "Running"}})["status"]["phase"]
        == "Running"
    )
    assert kube.patch_job_status("default", "j", {"phase": "Planned"})["status"]["phase"] == "Planned"
    # Built-in kinds do take it.
    _create_pod(kube, _gpu_pod(name="p"))
    kube.call(
        "patch pod",
        lambda: kube.core.patch_namespaced_pod(
            "p",
            "default",
            {"metadata": {"labels": {"a": "b"}}},
            _preload_content=False,
            _content_type="application/strategic-merge-patch+json",
        ),
    )


def test_a_binding_must_name_its_pod(kube: Kube, fake_api: FakeKubeAPI) -> None:
    _create_pod(kube, _gpu_pod(name="p"))
    body = {"metadata": {"name": "other"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    with pytest.raises(KubeError) as exc:
        kube.call(
            "bind",
            lambda: kube.core.create_namespaced_pod_binding("p", "default", body, _preload_content=False),
        )
    assert _status(exc) == (400, "BadRequest", "name in URL does not match name in Binding object")
    assert kube.bind_pod("default", "p", "n1").get("status") == "Success"


def test_label_selectors_with_invalid_keys_or_values_are_400(kube: Kube) -> None:
    """What a list by a long job name would get from a real server (the harness selects by job_label)."""
    with pytest.raises(KubeError) as exc:
        kube.list(PODS, "default", "gpusched.io/job=" + "x" * 70)
    code, reason, message = _status(exc)
    assert (code, reason) == (400, "BadRequest")
    assert message.startswith('unable to parse requirement: values[0][gpusched.io/job]: Invalid value: "xxx')
    assert "must be no more than 63 characters" in message
    with pytest.raises(KubeError) as exc:
        kube.list(PODS, "default", "bad key!=x")
    assert _status(exc)[0] == 400 and "unable to parse requirement: key" in exc.value.message
    assert kube.list(PODS, "default", "gpusched.io/job in (bert.large,7b-pretrain),!gone")[0] == []


def test_lists_are_in_storage_key_order_as_on_a_real_server(tmp_path: Any) -> None:
    """etcd keys are /registry/<resource>/<namespace>/<name>: a list is sorted by namespace/name (by
    name for cluster-scoped kinds), never in creation order."""
    from gpusched.scheduler.kube import NODES, PODS, Kube, load_api_client

    with FakeKubeAPI() as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        for ns, name in (("b", "x"), ("a-b", "z"), ("a", "y"), ("a", "b")):
            pod = {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
            kube.call(
                "pod", lambda ns=ns, pod=pod: kube.core.create_namespaced_pod(ns, pod, _preload_content=False)
            )
        for name in ("n2", "n10", "n1"):
            kube.call(
                "node",
                lambda n=name: kube.core.create_node({"metadata": {"name": n}}, _preload_content=False),
            )
        pods, _ = kube.list(PODS)
        assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods] == [
            ("a-b", "z"),  # '-' sorts before '/'
            ("a", "b"),
            ("a", "y"),
            ("b", "x"),
        ]
        assert [p["metadata"]["name"] for p in kube.list(PODS, "a")[0]] == ["b", "y"]
        assert [n["metadata"]["name"] for n in kube.list(NODES)[0]] == ["n1", "n10", "n2"]


@pytest.mark.parametrize(
    ("written", "returned"),
    [
        (2, "2"),
        (2.5, "2500m"),
        ("1000m", "1"),
        ("4096Mi", "4Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Ki", "512"),
        ("1.5k", "1500"),
        ("2000", "2k"),
        ("12e6", "12e6"),
        ("0.1234567891", "123456790n"),
        ("0", "0"),
    ],
)
def test_quantities_come_back_in_canonical_form(written: Any, returned: str) -> None:
    """resource.Quantity's String(), which is what a real server stores and returns."""
    from gpusched.testing.apivalidation import canonical_quantity

    assert canonical_quantity(written) == returned
