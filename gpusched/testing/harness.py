"""The operator's test bench: an API server (the stand-in, or a real cluster), a kubelet, the operator.

Scenarios talk to the cluster only through the Kubernetes API with the official client, so the same
tests run against the in-process API server stand-in (default) or a real cluster when
GPUSCHED_E2E_KUBECONFIG names a kubeconfig (kind, k3s, kwok, a cloud cluster, or a bare
kube-apiserver + etcd as in controller-runtime's envtest). Either way the harness:

- installs the CRDs from deploy/ (replacing older versions) and waits until they are Established;
- removes what aborted earlier runs left behind (nodes whose Leases stopped being renewed, their
  namespaces);
- works in a fresh namespace labelled gpusched.io/e2e=<run id>, whose `default` ServiceAccount it
  creates (a bare kube-apiserver has no controller that would, and pod admission needs it);
- creates its fake GPU Nodes (labelled gpusched.io/e2e=<run id>) and keeps them alive the way a
  kubelet (or kwok) does: it renews their kube-node-lease Leases, keeps Ready=True and removes the
  not-ready/unreachable taints the node lifecycle controller may have added;
- plays their kubelet (Kubelet below): runs bound pods, finishes deleted ones with a checkpoint report;
- runs the operator with --node-selector gpusched.io/e2e=<run id>, so the cluster's real nodes
  never get test workers (and checks that none did);
- deletes all of it at the end, even when the test failed, without waiting for the namespace.

The stand-in runs with the real cluster's behaviours switched on (apiserver.REAL_CLUSTER: node
lifecycle controller, ServiceAccount admission, namespace lifecycle, PodGC, CRDs served only once
Established) and with two nodes of "its own" that the harness must leave alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from gpusched.model import GpuType
from gpusched.scheduler.crd import GROUP, LABEL_JOB, LABEL_MANAGED, MANAGED_VALUE, PLURAL, VERSION, job_label
from gpusched.scheduler.kube import GPUJOBS, GPUNODES, NODES, PODS, Kube, KubeError, load_api_client
from gpusched.scheduler.kubetime import micro_time, parse_time
from gpusched.scheduler.operator import Operator, OperatorSettings
from gpusched.testing.apiserver import REAL_CLUSTER, FakeKubeAPI
from gpusched.workload_contract import EXIT_PREEMPTED, WorkloadStatus

ROOT = Path(__file__).resolve().parents[2]
E2E_KUBECONFIG = os.environ.get("GPUSCHED_E2E_KUBECONFIG")
E2E_OPERATOR_KUBECONFIG = os.environ.get("GPUSCHED_E2E_OPERATOR_KUBECONFIG") or None
"""The operator's own identity on the real cluster (tests/e2e/run.py: a ServiceAccount token bound only
to deploy/'s RBAC); unset, the operator shares the harness' kubeconfig."""
E2E_OPERATOR_SA = os.environ.get("GPUSCHED_E2E_OPERATOR_SA") or None
"""<namespace>/<name> of that ServiceAccount: each test namespace grants it deploy/'s Lease rules."""
E2E_KWOK = os.environ.get("GPUSCHED_E2E_KWOK", "") not in ("", "0", "false")
"""Also annotate the fake nodes kwok.x-k8s.io/node=fake, for a kwok that manages only annotated
nodes. Off by default: kwok then also plays the pods' kubelet, and its default stages delete a
terminating pod at once, before the harness' kubelet writes the preempted worker's checkpoint report."""
E2E_LABEL = "gpusched.io/e2e"
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_LEASE_SECONDS = 40
LIFECYCLE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
CRD_FILES = (ROOT / "deploy/crds/gpujobs.yaml", ROOT / "deploy/agent/gpunode-crd.yaml")
GPU = "H100-80GB"
GPU_TYPES = [
    GpuType(name="H100-80GB", memory_gib=80, price_per_hour=4.0, speed=2.0),
    GpuType(name="A100-40GB", memory_gib=40, price_per_hour=2.0, speed=1.0),
]
Obj = dict[str, Any]


def wait_for(
    cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition", every: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _harness_log(message: str) -> None:
    print(f"[gpusched e2e harness] {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------ fake nodes


def ready_conditions(previous: list[Obj] | None = None) -> list[Obj]:
    """The node conditions a healthy kubelet posts, with a fresh heartbeat."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = {c.get("type"): c for c in previous or []}
    wanted = [
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    out = []
    for kind, status, reason, message in wanted:
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": since or now,
            }
        )
    return out


class NodeKeeper:
    """Keeps Node objects that no kubelet runs alive, as a kubelet or kwok does for its node.

    Every `renew_every` seconds, per node: renew the coordination.k8s.io/v1 Lease named after it in
    kube-node-lease (holderIdentity = node, leaseDurationSeconds 40, renewTime now), which is what the
    node lifecycle controller watches; re-post Ready=True with a fresh heartbeat when the node is not
    Ready (the controller marked it Unknown) or every `refresh_status_every` seconds (as a kubelet's
    periodic status report, rarely, since each node write wakes every node watcher); remove the
    not-ready/unreachable taints. A node that was deleted under us (a cloud node controller deletes
    Nodes without a machine) is handed to `on_missing`.
    """

    def __init__(
        self,
        kube: Kube,
        renew_every: float = 5.0,
        refresh_status_every: float = 60.0,
        labels: dict[str, str] | None = None,
        on_missing: Callable[[str], None] | None = None,
        remove_taints: bool = True,
    ) -> None:
        self.kube, self.renew_every, self.refresh_status_every = kube, renew_every, refresh_status_every
        self.remove_taints = remove_taints
        """False: a plain kubelet, which leaves the lifecycle taints to the node lifecycle controller."""
        self.labels = labels or {}
        self.on_missing = on_missing
        self.nodes: dict[str, float] = {}
        """node -> monotonic time of its last status report."""
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self.paused = threading.Event()
        """Set: no heartbeats (tests play a kubelet that died)."""
        self.thread = threading.Thread(target=self._loop, name="node-keeper", daemon=True)
        self.beats = 0
        self.repairs: list[str] = []
        """'node: what' for every time a node had to be brought back (NotReady, tainted, deleted)."""
        self.last_error: str | None = None

    def start(self) -> NodeKeeper:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def add(self, name: str) -> None:
        with self._lock:
            self.nodes[name] = time.monotonic()
        self.beat(name)

    def discard(self, name: str) -> None:
        with self._lock:
            self.nodes.pop(name, None)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.renew_every):
            if self.paused.is_set():
                continue
            with self._lock:
                names = list(self.nodes)
            for name in names:
                try:
                    self.beat(name)
                except Exception as exc:  # the next tick retries; a lasting failure shows in the test
                    self.last_error = f"{name}: {exc}"

    def beat(self, name: str) -> None:
        node = self.kube.call(
            "read node", lambda: self.kube.core.read_node(name, _preload_content=False), ok=(404,)
        )
        if node.get("_status") == 404:
            with self._lock:
                known = name in self.nodes
            if known and self.on_missing is not None:
                self.repairs.append(f"{name}: deleted")
                self.on_missing(name)
            return
        self._renew_lease(node)
        self._report_status(node)
        self.beats += 1

    def _renew_lease(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        lease = self.kube.read_lease(NODE_LEASE_NAMESPACE, name)
        spec = {"holderIdentity": name, "leaseDurationSeconds": NODE_LEASE_SECONDS, "renewTime": micro_time()}
        if lease.get("_status") == 404:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": NODE_LEASE_NAMESPACE,
                    "labels": dict(self.labels),
                    # As the kubelet's: owned by its Node, so deleting the node deletes the Lease.
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
                    ],
                },
                "spec": spec,
            }
            self.kube.create_lease(NODE_LEASE_NAMESPACE, body)  # 409: another beat won; fine
            return
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": lease["metadata"],
            "spec": {**(lease.get("spec") or {}), **spec},
        }
        self.kube.replace_lease(NODE_LEASE_NAMESPACE, name, body)  # 409: renewed by the next tick

    def _report_status(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        with self._lock:
            last = self.nodes.get(name, 0.0)
        due = time.monotonic() - last >= self.refresh_status_every
        if ready is None or ready.get("status") != "True" or due:
            if ready is not None and ready.get("status") != "True":
                self.repairs.append(f"{name}: Ready={ready.get('status')} ({ready.get('reason')})")
            self.kube.call(
                "node status",
                lambda: self.kube.core.patch_node_status(
                    name,
                    {"status": {"conditions": ready_conditions(conditions)}},
                    _preload_content=False,
                    _content_type="application/merge-patch+json",
                ),
            )
            with self._lock:
                if name in self.nodes:
                    self.nodes[name] = time.monotonic()
        taints = (node.get("spec") or {}).get("taints") or []
        keep = [t for t in taints if t.get("key") not in LIFECYCLE_TAINTS]
        if self.remove_taints and len(keep) != len(taints):
            self.repairs.append(f"{name}: taints {[t.get('key') for t in taints if t not in keep]}")
            # Conditional on the version read: the controller may be writing the node too.
            patch = {
                "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                "spec": {"taints": keep or None},
            }
            self.kube.call(
                "untaint node",
                lambda: self.kube.core.patch_node(
                    name, patch, _preload_content=False, _content_type="application/merge-patch+json"
                ),
                ok=(409,),
            )


def node_body(
    name: str,
    gpus: int,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
) -> tuple[Obj, Obj]:
    """A Node as its kubelet would register it, and the status it reports (allocatable, Ready)."""
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **labels},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", **(annotations or {})},
        },
        "spec": {},
    }
    if taints:
        body["spec"]["taints"] = taints
    resources = {"cpu": "64", "memory": "512Gi", "pods": "110"}
    if gpus:
        resources["nvidia.com/gpu"] = str(gpus)
    status = {
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "conditions": ready_conditions(),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "osImage": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }
    return body, status


def register_node(kube: Kube, body: Obj, status: Obj) -> None:
    name = body["metadata"]["name"]
    kube.call("create node", lambda: kube.core.create_node(body, _preload_content=False), ok=(409,))
    kube.call(
        "node status",
        lambda: kube.core.patch_node_status(
            name, status, _preload_content=False, _content_type="application/merge-patch+json"
        ),
    )


# ------------------------------------------------------------------------------------ the kubelet


class Kubelet:
    """Plays the kubelet of the harness' GPU nodes: runs bound pods, finishes deleted ones.

    A deleted (preempted) worker exits 75 with a WorkloadStatus termination message saying where
    its checkpoint is, as gpusched.workload does on SIGTERM; tests can finish or crash workers. Nodes
    without a kubelet never finish a graceful deletion on a real cluster, so this one must (and the
    API server only removes a bound pod once its kubelet deletes it with grace 0).
    """

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        nodes: list[str] | None = None,
        checkpoint_step: int = 120,
        total_steps: int = 1000,
    ) -> None:
        self.kube, self.namespace = kube, namespace
        self.nodes = nodes
        """The nodes this kubelet runs (None: any)."""
        self.checkpoint_step, self.total_steps = checkpoint_step, total_steps
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self.terminated: list[str] = []
        self.paused = threading.Event()

    def start(self) -> Kubelet:
        self.thread.start()
        return self

    def _status(self, name: str, body: Obj) -> None:
        self.kube.call(
            "kubelet patch",
            lambda: self.kube.core.patch_namespaced_pod_status(
                name,
                self.namespace,
                body,
                _preload_content=False,
                _content_type="application/merge-patch+json",
            ),
            ok=(404, 409),
        )

    def terminate(self, pod: Obj, phase: str, code: int, message: str) -> None:
        self._status(
            pod["metadata"]["name"],
            {
                "status": {
                    "phase": phase,
                    "containerStatuses": [
                        {
                            "name": "worker",
                            "ready": False,
                            "restartCount": 0,
                            "image": "x",
                            "imageID": "",
                            "state": {
                                "terminated": {
                                    "exitCode": code,
                                    "reason": "Completed" if code == 0 else "Error",
                                    "message": message,
                                }
                            },
                        }
                    ],
                }
            },
        )

    def _loop(self) -> None:
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            try:
                pods, _ = self.kube.list(PODS, self.namespace, f"{LABEL_MANAGED}={MANAGED_VALUE}")
            except Exception:
                time.sleep(0.1)
                continue
            for pod in pods:
                meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
                name = meta["name"]
                node = spec.get("nodeName")
                if self.nodes is not None and node and node not in self.nodes:
                    continue  # someone else's node: its own kubelet runs it
                try:
                    if meta.get("deletionTimestamp"):
                        if status.get("phase") not in ("Succeeded", "Failed"):
                            report = WorkloadStatus(
                                state="preempted",
                                step=self.checkpoint_step + 3,
                                total_steps=self.total_steps,
                                last_checkpoint_step=self.checkpoint_step,
                            )
                            self.terminate(pod, "Failed", EXIT_PREEMPTED, report.model_dump_json())
                            self.terminated.append(name)
                        self.kube.delete_pod(self.namespace, name, 0)
                    elif node and status.get("phase") == "Pending":
                        # Conditional on the version read: a test may have finished the pod meanwhile,
                        # and a terminated container must never be reported running again.
                        self._status(
                            name,
                            {
                                "metadata": {"resourceVersion": meta["resourceVersion"]},
                                "status": {
                                    "phase": "Running",
                                    "containerStatuses": [
                                        {
                                            "name": "worker",
                                            "ready": True,
                                            "restartCount": 0,
                                            "image": "x",
                                            "imageID": "",
                                            "state": {
                                                "running": {
                                                    "startedAt": datetime.now(timezone.utc).isoformat()
                                                }
                                            },
                                        }
                                    ],
                                },
                            },
                        )
                except Exception:
                    continue
            time.sleep(0.05)


# ------------------------------------------------------------------------------------ cluster setup


def install_crds(kube: Kube, timeout: float = 60.0) -> list[str]:
    """Create (or bring up to date) the gpusched CRDs and wait until the API server serves them.

    A CRD is usable only once its Established condition is True (the names are accepted and the
    handler is installed); before that its resources answer 404. A CRD left by an older checkout is
    replaced with this one's (as `kubectl apply` would), keeping its resourceVersion.
    """
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    names: list[str] = []
    for path in CRD_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            name = doc["metadata"]["name"]
            names.append(name)
            created = kube.request("create crd", "POST", base, doc, ok=(409,))
            if created.get("_status") != 409:
                continue
            for _ in range(10):  # someone else may be updating it too: re-read and retry on 409
                current = kube.request("read crd", "GET", f"{base}/{name}")
                if current.get("spec") == doc["spec"]:
                    break
                body = {
                    **doc,
                    "metadata": {
                        **doc["metadata"],
                        "resourceVersion": current["metadata"]["resourceVersion"],
                    },
                }
                if "_status" not in kube.request("replace crd", "PUT", f"{base}/{name}", body, ok=(409,)):
                    break

    def established() -> bool:
        for name in names:
            crd = kube.request("read crd", "GET", f"{base}/{name}")
            conditions = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}
            accepted = conditions.get("NamesAccepted") or {}
            if accepted.get("status") == "False":
                raise AssertionError(f"CRD {name}: names not accepted: {accepted.get('message')}")
            if (conditions.get("Established") or {}).get("status") != "True":
                return False
        return True

    wait_for(established, timeout, "the gpusched CRDs to be Established", every=0.2)

    def served() -> bool:
        for kind in (GPUJOBS, GPUNODES):
            try:
                kube.list(kind)
            except KubeError as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    wait_for(served, timeout, "the gpusched resources to be served", every=0.2)
    return names


def ensure_namespace(
    kube: Kube, namespace: str, labels: dict[str, str] | None = None, service_account: bool = True
) -> None:
    """The namespace and its `default` ServiceAccount, which pod admission insists on.

    On a full cluster the controller-manager creates the ServiceAccount a moment after the namespace
    (and pods created in between are refused); on a bare kube-apiserver it never does. Creating it
    ourselves covers both: a 409 means the controller was first.
    """
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels or {}}}
    kube.call("create ns", lambda: kube.core.create_namespace(body, _preload_content=False), ok=(409,))
    if not service_account:
        return
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": namespace},
    }
    kube.call(
        "create sa",
        lambda: kube.core.create_namespaced_service_account(namespace, sa, _preload_content=False),
        ok=(409,),
    )


def grant_lease_rules(kube: Kube, namespace: str, service_account: str) -> None:
    """Give the operator's ServiceAccount deploy/'s leader-election Role in a test namespace.

    The rules are read from deploy/operator/rbac.yaml, verbs and resources as shipped; only the
    resourceNames go, because each test names its own Lease (the shipped Role allows just one)."""
    sa_namespace, sa_name = service_account.split("/", 1)
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/operator/rbac.yaml").read_text()) if d]
    shipped = next(d for d in docs if d["kind"] == "Role")
    name = shipped["metadata"]["name"]
    rules = [{k: v for k, v in rule.items() if k != "resourceNames"} for rule in shipped["rules"]]
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/" + namespace
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": rules,
    }
    kube.request("create role", "POST", f"{rbac}/roles", role, ok=(409,))
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
    }
    kube.request("create rolebinding", "POST", f"{rbac}/rolebindings", binding, ok=(409,))


def force_delete_pods(kube: Kube, namespace: str) -> None:
    """Pods bound to nodes without a kubelet never finish a graceful deletion: delete with grace 0."""
    pods, _ = kube.list(PODS, namespace)
    for pod in pods:
        kube.delete_pod(namespace, pod["metadata"]["name"], 0)


def delete_node_objects(kube: Kube, node: str) -> None:
    """A fake node, its GPUNode and its node Lease."""
    kube.call("delete node", lambda: kube.core.delete_node(node, _preload_content=False), ok=(404,))
    kube.call(
        "delete gpunode",
        lambda: kube.custom.delete_cluster_custom_object(
            GROUP, VERSION, "gpunodes", node, _preload_content=False
        ),
        ok=(404,),
    )
    kube.call(
        "delete node lease",
        lambda: kube.coordination.delete_namespaced_lease(node, NODE_LEASE_NAMESPACE, _preload_content=False),
        ok=(404,),
    )


def sweep_stale_runs(
    kube: Kube, keep: str, dead_after_s: float = 3 * NODE_LEASE_SECONDS, namespace_min_age_s: float = 600.0
) -> list[str]:
    """Delete what aborted runs left (their fake nodes would otherwise go NotReady, get tainted and
    linger): nodes labelled gpusched.io/e2e whose Lease has not been renewed for dead_after_s, and
    namespaces labelled gpusched.io/e2e of runs with no live node, older than namespace_min_age_s (a
    run that has just created its namespace has no nodes yet). Returns what it deleted."""
    now = datetime.now(timezone.utc)
    alive: set[str] = set()
    removed: list[str] = []
    nodes, _ = kube.list(NODES, None, E2E_LABEL)
    for node in nodes:
        meta = node["metadata"]
        run = (meta.get("labels") or {}).get(E2E_LABEL, "")
        if run == keep:
            continue
        lease = kube.read_lease(NODE_LEASE_NAMESPACE, meta["name"])
        last = parse_time((lease.get("spec") or {}).get("renewTime")) or parse_time(
            meta.get("creationTimestamp")
        )
        if last is not None and (now - last).total_seconds() < dead_after_s:
            alive.add(run)
            continue
        delete_node_objects(kube, meta["name"])
        removed.append(f"node/{meta['name']}")
    # GPUNodes and node Leases whose Node is already gone (a cleanup cut short).
    gpunodes, _ = kube.list(GPUNODES, None, E2E_LABEL)
    leases = (
        kube.call(
            "list leases",
            lambda: kube.coordination.list_namespaced_lease(
                NODE_LEASE_NAMESPACE, label_selector=E2E_LABEL, _preload_content=False
            ),
        ).get("items")
        or []
    )
    nodes_left = {n["metadata"]["name"] for n in nodes} - {r.split("/", 1)[1] for r in removed}
    for obj, kind in [(g, "gpunode") for g in gpunodes] + [(le, "lease") for le in leases]:
        meta = obj["metadata"]
        run = (meta.get("labels") or {}).get(E2E_LABEL, "")
        if run == keep or run in alive or meta["name"] in nodes_left:
            continue
        delete_node_objects(kube, meta["name"])
        removed.append(f"{kind}/{meta['name']}")
    data = kube.call(
        "list ns", lambda: kube.core.list_namespace(label_selector=E2E_LABEL, _preload_content=False)
    )
    for ns in data.get("items") or []:
        meta = ns["metadata"]
        run = (meta.get("labels") or {}).get(E2E_LABEL, "")
        created = parse_time(meta.get("creationTimestamp"))
        if run == keep or run in alive or meta.get("deletionTimestamp"):
            continue
        if created is not None and (now - created).total_seconds() < namespace_min_age_s:
            continue
        force_delete_pods(kube, meta["name"])
        kube.call(
            "delete ns",
            functools.partial(kube.core.delete_namespace, meta["name"], _preload_content=False),
            ok=(404,),
        )
        removed.append(f"namespace/{meta['name']}")
    return removed


# ------------------------------------------------------------------------------------ the harness


class Harness:
    GPU = GPU
    wait_for = staticmethod(wait_for)

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        fake: FakeKubeAPI | None,
        tmp: Path,
        run_id: str,
        operator_kubeconfig: str | None = None,
        renew_every: float = 5.0,
    ) -> None:
        self.kubeconfig, self.namespace, self.fake, self.tmp = kubeconfig, namespace, fake, tmp
        self.run_id = run_id
        self.operator_kubeconfig = operator_kubeconfig or kubeconfig
        """The operator's identity: the stand-in tells its requests from the harness' by token."""
        self.kube = Kube(load_api_client(kubeconfig))
        self.prefix = f"e2e-{run_id}-"
        self.node_selector = f"{E2E_LABEL}={run_id}"
        """What the operator runs with: only this run's fake nodes, never the cluster's own."""
        self.nodes: list[str] = []
        self._node_specs: dict[str, tuple[int, str]] = {}
        self.keeper = NodeKeeper(
            Kube(load_api_client(kubeconfig), max_attempts=3),
            renew_every,
            labels={E2E_LABEL: run_id},
            on_missing=self._recreate_node,
        ).start()
        self.kubelet = Kubelet(self.kube, namespace, self.nodes).start()
        self.operators: list[tuple[Operator, threading.Thread]] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.closed = False
        self.allow_evictions = False
        """Tests that let a node die set this; otherwise an evicted test pod fails the test."""

    @classmethod
    def open(
        cls,
        kubeconfig: str,
        fake: FakeKubeAPI | None,
        tmp: Path,
        operator_kubeconfig: str | None = None,
        renew_every: float = 5.0,
        operator_sa: str | None = None,
    ) -> Harness:
        """Prepare the cluster (CRDs, leftovers, namespace + ServiceAccount), then the harness.

        operator_sa (<namespace>/<name>): the operator runs as that ServiceAccount, bound only to
        deploy/'s ClusterRole; its Leases live in the test namespace, so that namespace grants it
        deploy/'s Lease rules (grant_lease_rules)."""
        run_id = uuid.uuid4().hex[:6]
        kube = Kube(load_api_client(kubeconfig))
        install_crds(kube)
        for what in sweep_stale_runs(kube, keep=run_id):
            _harness_log(f"removed {what}, left by an aborted run")
        namespace = f"gpusched-e2e-{run_id}"
        ensure_namespace(kube, NODE_LEASE_NAMESPACE, service_account=False)  # there already: a 409
        ensure_namespace(kube, namespace, {E2E_LABEL: run_id})
        if operator_sa:
            grant_lease_rules(kube, namespace, operator_sa)
        return cls(kubeconfig, namespace, fake, tmp, run_id, operator_kubeconfig, renew_every)

    # ------------------------------------------------------------------ cluster objects

    def node(self, name: str) -> str:
        return self.prefix + name

    def add_node(self, name: str, gpus: int = 8, gpu_type: str = GPU) -> str:
        full = self.node(name)
        self._node_specs[full] = (gpus, gpu_type)
        self._register(full)
        self.nodes.append(full)
        self.keeper.add(full)
        return full

    def _register(self, full: str) -> None:
        gpus, gpu_type = self._node_specs[full]
        annotations = {"kwok.x-k8s.io/node": "fake"} if E2E_KWOK else {}
        body, status = node_body(
            full, gpus, {"gpusched.io/gpu-type": gpu_type, E2E_LABEL: self.run_id}, annotations
        )
        register_node(self.kube, body, status)

    def _recreate_node(self, full: str) -> None:
        if not self.closed and full in self._node_specs:
            self._register(full)

    def set_gpu_health(
        self, node: str, gpus: int = 8, unhealthy: tuple[int, ...] = (), age_s: float = 0
    ) -> None:
        """Publish the agent's GPUNode status for a node, as `gpusched agent` does."""
        stamp = (datetime.now(timezone.utc) - timedelta(seconds=age_s)).isoformat()
        status = {
            "node": node,
            "timestamp": stamp,
            "agentVersion": "test",
            "gpus": [
                {
                    "index": i,
                    "uuid": f"GPU-{node}-{i}",
                    "name": "NVIDIA H100 80GB HBM3",
                    "memoryTotalMib": 81559,
                    "health": "unhealthy" if i in unhealthy else "healthy",
                    "healthReasons": ["XID 79: GPU has fallen off the bus"] if i in unhealthy else [],
                }
                for i in range(gpus)
            ],
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GPUNode",
            "metadata": {"name": node, "labels": {E2E_LABEL: self.run_id}},
        }
        self.kube.call(
            "create gpunode",
            lambda: self.kube.custom.create_cluster_custom_object(
                GROUP, VERSION, "gpunodes", body, _preload_content=False
            ),
            ok=(409,),
        )
        self.kube.call(
            "gpunode status",
            lambda: self.kube.custom.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                "gpunodes",
                node,
                {"status": status},
                _preload_content=False,
                _content_type="application/merge-patch+json",
            ),
        )

    def add_foreign_pod(self, name: str, node: str, gpus: int) -> None:
        """A pod gpusched does not manage, holding GPUs on a node."""
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "c", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
                ],
            },
        }
        self.kube.call(
            "create pod",
            lambda: self.kube.core.create_namespaced_pod(self.namespace, body, _preload_content=False),
        )

    def submit(
        self,
        name: str,
        gpus: int,
        per_node: int | None = None,
        priority: float = 1.0,
        preemptible: bool = False,
        duration: str = "2h",
        max_restarts: int = 3,
        grace: int = 30,
        gpu_types: list[str] | None = None,
        team: str = "research",
        template: Obj | None = None,
    ) -> Obj:
        spec: Obj = {
            "gpus": gpus,
            "priority": priority,
            "preemptible": preemptible,
            "team": team,
            "work": {"duration": duration},
            "maxRestarts": max_restarts,
            "checkpoint": {
                "gracePeriodSeconds": grace,
                "interval": "30m",
                "volume": {"persistentVolumeClaim": {"claimName": "ckpt"}},
            },
            "template": {
                "image": "ghcr.io/gpusched/workload:0.1.0",
                "args": ["--steps", "1000"],
                **(template or {}),
            },
        }
        if per_node is not None:
            spec["gpusPerNode"] = per_node
        if gpu_types is not None:
            spec["gpuTypes"] = gpu_types
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GPUJob",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        return self.kube.call(
            "create gpujob",
            lambda: self.kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body, _preload_content=False
            ),
        )

    # ------------------------------------------------------------------ reading

    def job(self, name: str) -> Obj:
        return self.kube.call(
            "get gpujob",
            lambda: self.kube.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _preload_content=False
            ),
        )

    def phase(self, name: str) -> str | None:
        return (self.job(name).get("status") or {}).get("phase")

    def pods(self, job: str | None = None) -> list[Obj]:
        sel = f"{LABEL_MANAGED}={MANAGED_VALUE}" + (f",{LABEL_JOB}={job_label(job)}" if job else "")
        pods, _ = self.kube.list(PODS, self.namespace, sel)
        return pods

    def events(self, job: str) -> list[Obj]:
        data = self.kube.call(
            "list events",
            lambda: self.kube.core.list_namespaced_event(self.namespace, _preload_content=False),
        )
        return [e for e in data.get("items", []) if (e.get("involvedObject") or {}).get("name") == job]

    def wait_phase(self, name: str, phase: str, timeout: float = 20.0) -> Obj:
        wait_for(lambda: self.phase(name) == phase, timeout, f"{name} to be {phase}")
        return self.job(name)

    def finish(self, job: str) -> None:
        for pod in self.pods(job):
            if not pod["metadata"].get("deletionTimestamp"):
                self.kubelet.terminate(
                    pod,
                    "Succeeded",
                    0,
                    WorkloadStatus(
                        state="finished", step=1000, total_steps=1000, last_checkpoint_step=1000
                    ).model_dump_json(),
                )

    def crash(self, job: str, message: str = "CUDA error: an illegal memory access was encountered") -> None:
        pod = sorted(self.pods(job), key=lambda p: p["metadata"]["name"])[0]
        self.kubelet.terminate(
            pod, "Failed", 1, WorkloadStatus(state="failed", step=10, message=message).model_dump_json()
        )

    def foreign_bindings(self) -> list[str]:
        """Test pods placed on nodes that are not this run's: must never happen (--node-selector)."""
        found = [
            f"{p['metadata']['name']} on {p['spec']['nodeName']}"
            for p in self.pods()
            if (p.get("spec") or {}).get("nodeName") not in (None, *self.nodes)
        ]
        if self.fake is not None:  # every placement ever made, including pods deleted since
            for method, path, _ctype, body in list(self.fake.log):
                if method != "POST" or f"/namespaces/{self.namespace}/" not in path:
                    continue
                if path.endswith("/binding"):
                    target = ((body or {}).get("target") or {}).get("name")
                elif path.endswith("/pods") and isinstance(body, dict):  # created on its node
                    target = (body.get("spec") or {}).get("nodeName")
                    if target is None:
                        continue
                else:
                    continue
                if target not in self.nodes:
                    found.append(f"{path} -> {target}")
        return found

    # ------------------------------------------------------------------ operators

    def settings(self, **overrides: Any) -> OperatorSettings:
        base: dict[str, Any] = dict(
            gpu_types=GPU_TYPES,
            namespace=self.namespace,
            node_selector=self.node_selector,
            replan_interval=2.0,
            debounce=0.2,
            max_debounce=1.0,
            policy="jct",
            horizon=24.0,
            slot=0.25,
            time_limit=5.0,
            fast_time_limit=5.0,
            lease_namespace=self.namespace,
            lease_name=f"gpusched-{uuid.uuid4().hex[:6]}",
            lease_seconds=4,
            watch_timeout=30,
            backoff_base_s=0.3,
            apply_workers=4,
        )
        base.update(overrides)
        return OperatorSettings(**base)

    def start_operator(self, **overrides: Any) -> Operator:
        op = Operator(Kube(load_api_client(self.operator_kubeconfig)), self.settings(**overrides))
        thread = threading.Thread(target=op.run, name="operator", daemon=True)
        thread.start()
        self.operators.append((op, thread))
        return op

    def stop_operator(self, op: Operator) -> None:
        for o, thread in self.operators:
            if o is op:
                o.shutdown()
                thread.join(timeout=10)

    def cluster_file(self) -> Path:
        path = self.tmp / "cluster.yaml"
        path.write_text(yaml.safe_dump({"gpu_types": [t.model_dump() for t in GPU_TYPES]}))
        return path

    def spawn_operator(
        self, lease_name: str, metrics_port: int = 0, lease_duration: int = 3
    ) -> subprocess.Popen[bytes]:
        """`gpusched operator` as a separate process, to be killed with SIGKILL. Its Lease identity
        contains its pid (<host>-<pid>-<random>): a test tells which process leads from the Lease."""
        cmd = [
            sys.executable,
            "-c",
            "from gpusched.cli import main; main()",
            "operator",
            "--kubeconfig",
            self.operator_kubeconfig,
            "--cluster-config",
            str(self.cluster_file()),
            "--namespace",
            self.namespace,
            "--node-selector",
            self.node_selector,
            "--replan-interval",
            "2s",
            "--metrics-port",
            str(metrics_port),
            "--lease-namespace",
            self.namespace,
            "--time-limit",
            "5",
            "--log-level",
            "warning",
            "--lease-name",
            lease_name,
            "--lease-duration",
            str(lease_duration),
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.processes.append(proc)
        return proc

    # ------------------------------------------------------------------ the end

    def close(self) -> None:
        """Stop everything, check no test pod reached a foreign node, delete what the run created.

        Cleanup runs whatever happened before (a failed test, a failed check); its own failures are
        reported, not raised, so they never hide the test's. The namespace is deleted without waiting:
        a bare kube-apiserver has no namespace controller to ever finish it.
        """
        if self.closed:
            return
        self.kubelet.stop.set()
        for op, thread in self.operators:
            op.shutdown()
            thread.join(timeout=10)
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.kubelet.thread.join(timeout=5)
        foreign: list[str] = []
        evicted: list[str] = []
        try:
            foreign = self.foreign_bindings()
            if self.fake is not None and not self.allow_evictions:
                evicted = [p for p in self.fake.evicted if p.startswith(f"{self.namespace}/")]
        finally:
            self.closed = True
            self.keeper.stop()
            self.cleanup()
        assert not foreign, f"test workers were placed on nodes outside --node-selector: {foreign}"
        assert not evicted, (
            f"the node lifecycle controller evicted test pods (fake nodes not kept alive): {evicted}"
        )

    def cleanup(self) -> list[str]:
        kube = Kube(load_api_client(self.kubeconfig), max_attempts=3)
        problems: list[str] = []

        def attempt(what: str, fn: Callable[[], Any]) -> None:
            try:
                fn()
            except Exception as exc:
                problems.append(f"{what}: {exc}")

        attempt("delete pods", lambda: force_delete_pods(kube, self.namespace))
        attempt(
            "delete gpujobs",
            lambda: kube.call(
                "delete gpujobs",
                lambda: kube.custom.delete_collection_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, _preload_content=False
                ),
                ok=(404, 405),
            ),
        )
        attempt(
            "delete namespace",
            lambda: kube.call(
                "delete ns",
                lambda: kube.core.delete_namespace(self.namespace, _preload_content=False),
                ok=(404,),
            ),
        )
        for node in self.nodes:
            attempt(f"delete node {node}", functools.partial(delete_node_objects, kube, node))
        for problem in problems:
            _harness_log(f"cleanup: {problem}")
        return problems


# ------------------------------------------------------------------------------------ the stand-in cluster


CLUSTER_NODES = ("kind-control-plane", "gpu-node-1")
"""The stand-in cluster's own nodes, which the harness must neither touch nor place workers on: a
kind-style control plane and a real GPU node (of the very type the tests ask for)."""


def _seed_cluster_nodes(kube: Kube, renew_every: float) -> NodeKeeper:
    control, gpu = CLUSTER_NODES
    body, status = node_body(
        control,
        0,
        {"node-role.kubernetes.io/control-plane": ""},
        taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
    )
    register_node(kube, body, status)
    body, status = node_body(gpu, 8, {"gpusched.io/gpu-type": GPU})
    register_node(kube, body, status)
    keeper = NodeKeeper(kube, renew_every=renew_every, remove_taints=False).start()  # their own kubelets
    for name in CLUSTER_NODES:
        keeper.add(name)
    return keeper


@contextlib.contextmanager
def stand_in_harness(tmp_path: Path, **flags: Any) -> Iterator[Harness]:
    """A harness on the stand-in with the real cluster's behaviours (REAL_CLUSTER, overridden by
    flags) and the cluster's own two nodes, kept alive by "their kubelets"."""
    settings = {**REAL_CLUSTER, **flags}
    with FakeKubeAPI(**settings) as api:
        admin = api.write_kubeconfig(str(tmp_path / "kubeconfig"), token="harness")
        operator = api.write_kubeconfig(str(tmp_path / "operator-kubeconfig"), token="operator")
        renew_every = min(0.5, float(settings.get("node_grace_s", 40.0)) / 4)
        cluster = _seed_cluster_nodes(
            Kube(
                load_api_client(api.write_kubeconfig(str(tmp_path / "kubelets-kubeconfig"), token="kubelets"))
            ),
            renew_every,
        )
        try:
            h = Harness.open(admin, api, tmp_path, operator_kubeconfig=operator, renew_every=renew_every)
            try:
                yield h
            finally:
                h.close()
        finally:
            cluster.stop()


def pod_env(pod: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


Harness.pod_env = staticmethod(pod_env)  # type: ignore[attr-defined]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]
