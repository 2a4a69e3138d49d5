"""The API server stand-in keeps the Kubernetes semantics the operator relies on.

Driven through the official client, as the operator drives it; each case is what a real API server
does (and what a too-simple mock would get wrong).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpusched.scheduler.kube import PODS, Gone, Kube, load_api_client
from gpusched.scheduler.testserver import FakeKubeAPI, label_matcher

Obj = dict[str, Any]


@pytest.fixture
def kube(fake_api: FakeKubeAPI, tmp_path: Path) -> Iterator[Kube]:
    yield Kube(load_api_client(fake_api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)


def _pod(name: str, labels: dict[str, str] | None = None, node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


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
    data = kube.call("list", lambda: kube.core.list_pod_for_all_namespaces(
        field_selector="spec.nodeName=n2,metadata.namespace=a", _preload_content=False))
    assert [p["metadata"]["name"] for p in data["items"]] == ["p2"]


def test_create_conflicts_and_stale_updates_conflict(kube: Kube) -> None:
    first = kube.create_pod("a", _pod("p"))
    assert kube.create_pod("a", _pod("p")) == {"_status": 409}
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l", "namespace": "a"},
             "spec": {"holderIdentity": "one"}}
    created = kube.create_lease("a", lease)
    mine = {**created, "spec": {"holderIdentity": "two"}}
    assert "_status" not in kube.replace_lease("a", "l", mine)
    assert kube.replace_lease("a", "l", {**created, "spec": {"holderIdentity": "three"}}) == {"_status": 409}
    assert first["metadata"]["uid"] and first["status"]["phase"] == "Pending"


def test_status_subresource_separates_spec_and_status(kube: Kube, fake_api: FakeKubeAPI) -> None:
    gj = {"apiVersion": "gpusched.io/v1alpha1", "kind": "GPUJob", "metadata": {"name": "j"},
          "spec": {"gpus": 8}, "status": {"phase": "Ignored"}}
    created = kube.call("create", lambda: kube.custom.create_namespaced_custom_object(
        "gpusched.io", "v1alpha1", "a", "gpujobs", gj, _preload_content=False))
    assert "status" not in created and created["metadata"]["generation"] == 1
    patched = kube.patch_job_status("a", "j", {"phase": "Running"})
    assert patched["status"]["phase"] == "Running" and patched["metadata"]["generation"] == 1
    spec_change = kube.call("patch", lambda: kube.custom.patch_namespaced_custom_object(
        "gpusched.io", "v1alpha1", "a", "gpujobs", "j", {"spec": {"gpus": 16}, "status": {"phase": "X"}},
        _preload_content=False, _content_type="application/merge-patch+json"))
    assert spec_change["metadata"]["generation"] == 2 and spec_change["status"]["phase"] == "Running"


def test_binding_sets_the_node_once(kube: Kube) -> None:
    kube.call("node", lambda: kube.core.create_node({"metadata": {"name": "n1"}}, _preload_content=False))
    kube.create_pod("a", _pod("p"))
    assert kube.bind_pod("a", "p", "n1")["status"] == "Success"
    assert kube.bind_pod("a", "p", "n1") == {"_status": 409}
    assert kube.read_pod("a", "p")["spec"]["nodeName"] == "n1"
    kube.create_pod("a", _pod("q"))
    with pytest.raises(Exception, match="404"):
        kube.bind_pod("a", "q", "no-such-node")


def test_graceful_deletion_and_owner_garbage_collection(kube: Kube, fake_api: FakeKubeAPI) -> None:
    owner = kube.create_service("a", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                                      "spec": {"clusterIP": "None"}})
    child = _pod("bound", node="n1")
    child["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": "svc",
                                             "uid": owner["metadata"]["uid"]}]
    kube.create_pod("a", child)
    terminating = kube.delete_pod("a", "bound", 30)
    assert terminating["metadata"]["deletionTimestamp"] and terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert kube.read_pod("a", "bound")["metadata"]["deletionTimestamp"]  # still there: the kubelet finishes it
    kube.delete_pod("a", "bound", 0)
    assert kube.read_pod("a", "bound") == {"_status": 404}
    kube.create_pod("a", child)
    kube.call("del svc", lambda: kube.core.delete_namespaced_service("svc", "a", _preload_content=False))
    assert kube.read_pod("a", "bound")["metadata"]["deletionTimestamp"]  # collected with its owner


def test_watch_resumes_from_a_resource_version_and_expires_with_410(kube: Kube, fake_api: FakeKubeAPI) -> None:
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
