"""The e2e harness copes with what a real API server and its controllers do (gpusched/testing/harness.py).

Each case switches on the stand-in's emulation of a real cluster's behaviour (apiserver.REAL_CLUSTER,
sometimes with shorter timings) and checks the harness handles it, and, where it matters, that the
behaviour really was there to handle (a node nobody keeps alive does go NotReady in the same run).
The cleanup case also runs against a real cluster (GPUSCHED_E2E_KUBECONFIG).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpusched.scheduler.kube import GPUJOBS, GPUNODES, Kube, KubeError, load_api_client
from gpusched.testing.apiserver import REAL_CLUSTER, FakeKubeAPI

Harness = Any  # the `harness` fixture of conftest.py
Kit = Any  # the `e2e` fixture of conftest.py: its helpers
Obj = dict[str, Any]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NODE_LEASE_NAMESPACE = "kube-node-lease"
E2E_LABEL = "gpusched.io/e2e"


def _node(h: Harness, name: str) -> Obj:
    return h.kube.call("read node", lambda: h.kube.core.read_node(name, _preload_content=False), ok=(404,))


def _ready(node: Obj) -> str | None:
    return next(
        (c["status"] for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"),
        None,
    )


def _taints(node: Obj) -> list[str]:
    return sorted(f"{t['key']}:{t['effect']}" for t in (node.get("spec") or {}).get("taints") or [])


def _pod(name: str, node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_fake_nodes_stay_ready_through_many_lease_grace_periods(tmp_path: Path, e2e: Kit) -> None:
    grace = 1.2
    with e2e.stand_in_harness(tmp_path, node_grace_s=grace) as h:
        node = h.add_node("gpu-a")
        # The control: a node of the same run that nobody keeps alive, outside the operator's pool.
        unkept = h.node("unkept")
        body, status = e2e.node_body(unkept, 8, {"gpusched.io/gpu-type": h.GPU})
        e2e.register_node(h.kube, body, status)
        try:
            h.submit("steady", 8)
            h.start_operator()
            h.wait_phase("steady", "Running")
            beats = h.keeper.beats
            # Four grace periods of heartbeats (the keeper beats every grace / 4).
            e2e.wait_for(lambda: h.keeper.beats >= beats + 16, 60, "sixteen heartbeats")
            e2e.wait_for(lambda: _ready(_node(h, unkept)) == "Unknown", 30, "the unkept node to go NotReady")
            assert _taints(_node(h, unkept)) == [
                "node.kubernetes.io/unreachable:NoExecute",
                "node.kubernetes.io/unreachable:NoSchedule",
            ]
            kept = _node(h, node)
            assert _ready(kept) == "True" and _taints(kept) == []
            # Only the not-ready taint every new node gets at admission was ever removed: the node
            # itself never went NotReady.
            assert all(r.endswith("taints ['node.kubernetes.io/not-ready']") for r in h.keeper.repairs), (
                h.keeper.repairs
            )
            lease = h.kube.read_lease(NODE_LEASE_NAMESPACE, node)
            assert lease["spec"]["holderIdentity"] == node and lease["spec"]["leaseDurationSeconds"] == 40
            assert lease["metadata"]["ownerReferences"][0]["uid"] == kept["metadata"]["uid"]
            status = h.job("steady")["status"]
            assert status["phase"] == "Running" and status["attempt"] == 1 and not h.fake.evicted
            for name in e2e.CLUSTER_NODES:  # the cluster's own nodes are left to their own kubelets
                assert E2E_LABEL not in _node(h, name)["metadata"]["labels"]
        finally:
            h.kube.call("delete", lambda: h.kube.core.delete_node(unkept, _preload_content=False), ok=(404,))


def test_a_node_marked_unreachable_is_brought_back_and_its_job_runs_again(tmp_path: Path, e2e: Kit) -> None:
    with e2e.stand_in_harness(tmp_path, node_grace_s=1.2) as h:
        h.allow_evictions = True
        node = h.add_node("gpu-a")
        h.submit("survivor", 8, preemptible=True)
        h.start_operator()
        h.wait_phase("survivor", "Running")
        h.keeper.paused.set()  # the "kubelet" stops posting: the controller takes over
        e2e.wait_for(lambda: _taints(_node(h, node)), 30, "the unreachable taints")
        e2e.wait_for(
            lambda: any(p.startswith(f"{h.namespace}/survivor-a1-") for p in h.fake.evicted),
            30,
            "the worker to be evicted",
        )
        h.keeper.paused.clear()
        e2e.wait_for(
            lambda: _ready(_node(h, node)) == "True" and not _taints(_node(h, node)),
            30,
            "the node to be Ready and untainted again",
        )
        assert any(r.startswith(f"{node}: Ready=Unknown") for r in h.keeper.repairs), h.keeper.repairs
        # The evicted worker exited as preempted (kubelet's checkpoint report); the job runs again.
        e2e.wait_for(
            lambda: h.job("survivor")["status"].get("attempt") == 2 and h.phase("survivor") == "Running",
            60,
            "the job to run again",
        )
        assert "survivor-a1-w0" in h.kubelet.terminated


def test_on_a_bare_api_server_the_harness_removes_the_admission_taint_itself(
    tmp_path: Path, e2e: Kit
) -> None:
    # envtest: kube-apiserver's TaintNodesByCondition admission taints every new node not-ready, and
    # no node lifecycle controller (nor PodGC) runs to take the taint away.
    with e2e.stand_in_harness(tmp_path, node_lifecycle=False, pod_gc=False) as h:
        node = h.add_node("gpu-a")
        assert any(r.startswith(f"{node}: taints") for r in h.keeper.repairs), h.keeper.repairs
        assert _taints(_node(h, node)) == [] and _ready(_node(h, node)) == "True"
        assert _taints(_node(h, "gpu-node-1")) == ["node.kubernetes.io/not-ready:NoSchedule"]  # not ours
        h.submit("one", 8)
        h.start_operator()
        h.wait_phase("one", "Running")


def test_a_node_deleted_under_the_harness_is_registered_again(tmp_path: Path, e2e: Kit) -> None:
    with e2e.stand_in_harness(tmp_path) as h:
        node = h.add_node("gpu-a")
        h.kube.call("delete", lambda: h.kube.core.delete_node(node, _preload_content=False))
        e2e.wait_for(lambda: _ready(_node(h, node)) == "True", 20, "the node to be back and Ready")
        again = _node(h, node)
        assert again["metadata"]["labels"][E2E_LABEL] == h.run_id and _ready(again) == "True"
        assert again["status"]["allocatable"]["nvidia.com/gpu"] == "8"


def test_a_bare_api_server_gets_its_crds_namespace_and_service_account(tmp_path: Path, e2e: Kit) -> None:
    with FakeKubeAPI(**REAL_CLUSTER) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        # A CRD left by an older checkout: replaced by this one's.
        old = yaml.safe_load((e2e.ROOT / "deploy/crds/gpujobs.yaml").read_text())
        old["spec"]["names"]["shortNames"] = ["old"]
        kube.request("create crd", "POST", CRDS, old)
        with pytest.raises(KubeError):
            kube.list(GPUNODES)
        assert sorted(e2e.install_crds(kube)) == ["gpujobs.gpusched.io", "gpunodes.gpusched.io"]
        assert kube.list(GPUJOBS)[0] == [] and kube.list(GPUNODES)[0] == []  # served at once
        for name, path in (
            ("gpujobs.gpusched.io", "deploy/crds/gpujobs.yaml"),
            ("gpunodes.gpusched.io", "deploy/agent/gpunode-crd.yaml"),
        ):
            stored = kube.request("get crd", "GET", f"{CRDS}/{name}")
            assert stored["spec"] == yaml.safe_load((e2e.ROOT / path).read_text())["spec"]  # sent as is
        # Pod admission needs the namespace's default ServiceAccount, which nothing else creates here.
        e2e.ensure_namespace(kube, "bare", service_account=False)
        with pytest.raises(KubeError, match='serviceaccount "default" not found'):
            kube.create_pod("bare", _pod("first"))
        e2e.ensure_namespace(kube, "bare")
        e2e.ensure_namespace(kube, "bare")  # a 409 (the controller was first) is fine
        assert kube.create_pod("bare", _pod("first"))["spec"]["serviceAccountName"] == "default"


def test_leftovers_of_an_aborted_run_are_swept_and_live_runs_are_not(tmp_path: Path, e2e: Kit) -> None:
    with FakeKubeAPI(**REAL_CLUSTER) as api:
        kube = Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kc"))), max_attempts=1)
        e2e.install_crds(kube)
        long_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for run, renewed in (("dead01", long_ago), ("live01", now)):
            name = f"e2e-{run}-gpu-a"
            body, status = e2e.node_body(name, 8, {E2E_LABEL: run})
            e2e.register_node(kube, body, status)
            kube.create_lease(
                NODE_LEASE_NAMESPACE,
                {
                    "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
                    "spec": {"holderIdentity": name, "renewTime": renewed},
                },
            )
            kube.call(
                "gpunode",
                lambda n=name: kube.custom.create_cluster_custom_object(
                    "gpusched.io", "v1alpha1", "gpunodes", {"metadata": {"name": n}}, _preload_content=False
                ),
            )
            e2e.ensure_namespace(kube, f"gpusched-e2e-{run}", {E2E_LABEL: run})
            kube.create_pod(f"gpusched-e2e-{run}", _pod("worker", node=name))
        # A GPUNode whose Node was deleted by a cleanup cut short.
        kube.call(
            "gpunode",
            lambda: kube.custom.create_cluster_custom_object(
                "gpusched.io",
                "v1alpha1",
                "gpunodes",
                {"metadata": {"name": "e2e-gone01-gpu-a", "labels": {E2E_LABEL: "gone01"}}},
                _preload_content=False,
            ),
        )
        removed = e2e.sweep_stale_runs(kube, keep="mine01", namespace_min_age_s=0)
        assert sorted(removed) == [
            "gpunode/e2e-gone01-gpu-a",
            "namespace/gpusched-e2e-dead01",
            "node/e2e-dead01-gpu-a",
        ]
        names = {o["metadata"]["name"] for o in api.objects("nodes")}
        assert "e2e-live01-gpu-a" in names and "e2e-dead01-gpu-a" not in names
        assert {o["metadata"]["name"] for o in api.objects("gpunodes")} == {"e2e-live01-gpu-a"}
        assert [o["metadata"]["name"] for o in api.objects("leases", NODE_LEASE_NAMESPACE)] == [
            "e2e-live01-gpu-a"
        ]
        # The dead run's pods were force-deleted so that its namespace can finish terminating.
        assert not api.objects("pods", "gpusched-e2e-dead01") and api.objects("pods", "gpusched-e2e-live01")
        namespaces = {o["metadata"]["name"]: o for o in api.objects("namespaces")}
        assert namespaces["gpusched-e2e-dead01"]["metadata"]["deletionTimestamp"]
        assert not namespaces["gpusched-e2e-live01"]["metadata"].get("deletionTimestamp")
        # Young namespaces are spared: their run may not have created its nodes yet.
        e2e.ensure_namespace(kube, "gpusched-e2e-new001", {E2E_LABEL: "new001"})
        assert e2e.sweep_stale_runs(kube, keep="mine01") == []


def test_close_deletes_what_the_run_created_without_waiting_for_the_namespace(
    harness: Harness, e2e: Kit
) -> None:
    h = harness
    a = h.add_node("gpu-a")
    h.set_gpu_health(a)
    h.submit("one", 8)
    h.start_operator()
    h.wait_phase("one", "Running")
    h.close()
    for node in h.nodes:
        assert _node(h, node) == {"_status": 404}
        assert h.kube.read_lease(NODE_LEASE_NAMESPACE, node) == {"_status": 404}
    assert h.kube.call(
        "gpunode",
        lambda: h.kube.custom.get_cluster_custom_object(
            "gpusched.io", "v1alpha1", "gpunodes", a, _preload_content=False
        ),
        ok=(404,),
    ) == {"_status": 404}
    ns = h.kube.call("ns", lambda: h.kube.core.read_namespace(h.namespace, _preload_content=False), ok=(404,))
    assert ns.get("_status") == 404 or ns["metadata"].get("deletionTimestamp")
    assert not [p for p in h.pods() if not p["metadata"].get("deletionTimestamp")]
    if h.fake is not None:  # no namespace controller: it stays Terminating, and close did not wait for it
        assert ns["status"]["phase"] == "Terminating"
        assert not h.fake.objects("pods", h.namespace)
        assert {n["metadata"]["name"] for n in h.fake.objects("nodes")} == set(e2e.CLUSTER_NODES)
