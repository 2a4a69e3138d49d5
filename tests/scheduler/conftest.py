"""The operator's test bench: an API server (the stand-in, or a real cluster), a kubelet, the operator.

Scenarios talk to the cluster only through the Kubernetes API with the official client, so the same
tests run against the in-process API server stand-in (default) or a real cluster when
GPUSCHED_E2E_KUBECONFIG names a kubeconfig. On a real cluster the GPU nodes are kwok-style Node
objects this harness creates, and the kubelet below plays their kubelet (use a kwok cluster or one
whose node lifecycle controller leaves such nodes alone); the CRDs from deploy/ are installed first.
"""

from __future__ import annotations

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

import pytest
import yaml

from gpusched.model import GpuType
from gpusched.scheduler.crd import GROUP, LABEL_JOB, LABEL_MANAGED, MANAGED_VALUE, PLURAL, VERSION
from gpusched.scheduler.kube import PODS, Kube, load_api_client
from gpusched.scheduler.operator import Operator, OperatorSettings
from gpusched.scheduler.testserver import FakeKubeAPI
from gpusched.workload_contract import EXIT_PREEMPTED, WorkloadStatus

ROOT = Path(__file__).resolve().parents[2]
E2E_KUBECONFIG = os.environ.get("GPUSCHED_E2E_KUBECONFIG")
GPU = "H100-80GB"
GPU_TYPES = [
    GpuType(name="H100-80GB", memory_gib=80, price_per_hour=4.0, speed=2.0),
    GpuType(name="A100-40GB", memory_gib=40, price_per_hour=2.0, speed=1.0),
]
Obj = dict[str, Any]


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition", every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Kubelet:
    """Plays the kubelet of the harness' GPU nodes: runs bound pods, finishes deleted ones.

    A deleted (preempted) worker exits 75 with a WorkloadStatus termination message saying where
    its checkpoint is, as gpusched.workload does on SIGTERM; tests can finish or crash workers.
    """

    def __init__(self, kube: Kube, namespace: str, checkpoint_step: int = 120, total_steps: int = 1000) -> None:
        self.kube, self.namespace = kube, namespace
        self.checkpoint_step, self.total_steps = checkpoint_step, total_steps
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self.terminated: list[str] = []
        self.paused = threading.Event()

    def start(self) -> Kubelet:
        self.thread.start()
        return self

    def _status(self, name: str, body: Obj) -> None:
        self.kube.call("kubelet patch", lambda: self.kube.core.patch_namespaced_pod_status(
            name, self.namespace, body, _preload_content=False,
            _content_type="application/merge-patch+json"), ok=(404,))

    def terminate(self, pod: Obj, phase: str, code: int, message: str) -> None:
        self._status(pod["metadata"]["name"], {"status": {
            "phase": phase,
            "containerStatuses": [{
                "name": "worker", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                         "message": message}},
            }],
        }})

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
                try:
                    if meta.get("deletionTimestamp"):
                        if status.get("phase") not in ("Succeeded", "Failed"):
                            report = WorkloadStatus(state="preempted", step=self.checkpoint_step + 3,
                                                    total_steps=self.total_steps,
                                                    last_checkpoint_step=self.checkpoint_step)
                            self.terminate(pod, "Failed", EXIT_PREEMPTED, report.model_dump_json())
                            self.terminated.append(name)
                        self.kube.delete_pod(self.namespace, name, 0)
                    elif spec.get("nodeName") and status.get("phase") == "Pending":
                        self._status(name, {"status": {"phase": "Running", "containerStatuses": [{
                            "name": "worker", "ready": True, "restartCount": 0, "image": "x", "imageID": "",
                            "state": {"running": {"startedAt": datetime.now(timezone.utc).isoformat()}}}]}})
                except Exception:
                    continue
            time.sleep(0.05)


class Harness:
    GPU = GPU
    wait_for = staticmethod(wait_for)

    def __init__(self, kubeconfig: str, namespace: str, fake: FakeKubeAPI | None, tmp: Path) -> None:
        self.kubeconfig, self.namespace, self.fake, self.tmp = kubeconfig, namespace, fake, tmp
        self.kube = Kube(load_api_client(kubeconfig))
        self.prefix = "" if fake is not None else f"e2e-{uuid.uuid4().hex[:5]}-"
        self.nodes: list[str] = []
        self.kubelet = Kubelet(self.kube, namespace).start()
        self.operators: list[tuple[Operator, threading.Thread]] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    # ------------------------------------------------------------------ cluster objects

    def node(self, name: str) -> str:
        return self.prefix + name

    def add_node(self, name: str, gpus: int = 8, gpu_type: str = GPU) -> str:
        full = self.node(name)
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": full, "labels": {"gpusched.io/gpu-type": gpu_type, "type": "kwok"}}}
        self.kube.call("create node", lambda: self.kube.core.create_node(body, _preload_content=False), ok=(409,))
        status = {"status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64", "memory": "512Gi", "pods": "110"},
            "capacity": {"nvidia.com/gpu": str(gpus), "cpu": "64", "memory": "512Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kwok"}],
        }}
        self.kube.call("node status", lambda: self.kube.core.patch_node_status(
            full, status, _preload_content=False, _content_type="application/merge-patch+json"))
        self.nodes.append(full)
        return full

    def set_gpu_health(self, node: str, gpus: int = 8, unhealthy: tuple[int, ...] = (), age_s: float = 0) -> None:
        """Publish the agent's GPUNode status for a node, as `gpusched agent` does."""
        stamp = (datetime.now(timezone.utc) - timedelta(seconds=age_s)).isoformat()
        status = {
            "node": node, "timestamp": stamp, "agentVersion": "test",
            "gpus": [{"index": i, "uuid": f"GPU-{node}-{i}", "name": "NVIDIA H100 80GB HBM3",
                      "memoryTotalMib": 81559, "health": "unhealthy" if i in unhealthy else "healthy",
                      "healthReasons": ["XID 79: GPU has fallen off the bus"] if i in unhealthy else []}
                     for i in range(gpus)],
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUNode", "metadata": {"name": node}}
        self.kube.call("create gpunode", lambda: self.kube.custom.create_cluster_custom_object(
            GROUP, VERSION, "gpunodes", body, _preload_content=False), ok=(409,))
        self.kube.call("gpunode status", lambda: self.kube.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "gpunodes", node, {"status": status}, _preload_content=False,
            _content_type="application/merge-patch+json"))

    def add_foreign_pod(self, name: str, node: str, gpus: int) -> None:
        """A pod gpusched does not manage, holding GPUs on a node."""
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
                                                           "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}}
        self.kube.call("create pod", lambda: self.kube.core.create_namespaced_pod(
            self.namespace, body, _preload_content=False))

    def submit(self, name: str, gpus: int, per_node: int | None = None, priority: float = 1.0,
               preemptible: bool = False, duration: str = "2h", max_restarts: int = 3, grace: int = 30,
               gpu_types: list[str] | None = None, team: str = "research") -> Obj:
        spec: Obj = {"gpus": gpus, "priority": priority, "preemptible": preemptible, "team": team,
                     "work": {"duration": duration}, "maxRestarts": max_restarts,
                     "checkpoint": {"gracePeriodSeconds": grace, "interval": "30m",
                                    "volume": {"persistentVolumeClaim": {"claimName": "ckpt"}}},
                     "template": {"image": "ghcr.io/gpusched/workload:0.1.0", "args": ["--steps", "1000"]}}
        if per_node is not None:
            spec["gpusPerNode"] = per_node
        if gpu_types is not None:
            spec["gpuTypes"] = gpu_types
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GPUJob",
                "metadata": {"name": name, "namespace": self.namespace}, "spec": spec}
        return self.kube.call("create gpujob", lambda: self.kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body, _preload_content=False))

    # ------------------------------------------------------------------ reading

    def job(self, name: str) -> Obj:
        return self.kube.call("get gpujob", lambda: self.kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, _preload_content=False))

    def phase(self, name: str) -> str | None:
        return (self.job(name).get("status") or {}).get("phase")

    def pods(self, job: str | None = None) -> list[Obj]:
        sel = f"{LABEL_MANAGED}={MANAGED_VALUE}" + (f",{LABEL_JOB}={job}" if job else "")
        pods, _ = self.kube.list(PODS, self.namespace, sel)
        return pods

    def events(self, job: str) -> list[Obj]:
        data = self.kube.call("list events", lambda: self.kube.core.list_namespaced_event(
            self.namespace, _preload_content=False))
        return [e for e in data.get("items", []) if (e.get("involvedObject") or {}).get("name") == job]

    def wait_phase(self, name: str, phase: str, timeout: float = 20.0) -> Obj:
        wait_for(lambda: self.phase(name) == phase, timeout, f"{name} to be {phase}")
        return self.job(name)

    def finish(self, job: str) -> None:
        for pod in self.pods(job):
            if not pod["metadata"].get("deletionTimestamp"):
                self.kubelet.terminate(pod, "Succeeded", 0, WorkloadStatus(state="finished", step=1000,
                                       total_steps=1000, last_checkpoint_step=1000).model_dump_json())

    def crash(self, job: str, message: str = "CUDA error: an illegal memory access was encountered") -> None:
        pod = sorted(self.pods(job), key=lambda p: p["metadata"]["name"])[0]
        self.kubelet.terminate(pod, "Failed", 1, WorkloadStatus(state="failed", step=10, message=message)
                               .model_dump_json())

    # ------------------------------------------------------------------ operators

    def settings(self, **overrides: Any) -> OperatorSettings:
        base: dict[str, Any] = dict(
            gpu_types=GPU_TYPES, namespace=self.namespace, replan_interval=2.0, debounce=0.2, max_debounce=1.0,
            policy="jct", horizon=24.0, slot=0.25, time_limit=5.0, fast_time_limit=5.0, lease_namespace=self.namespace,
            lease_name=f"gpusched-{uuid.uuid4().hex[:6]}", lease_seconds=4, watch_timeout=30,
            backoff_base_s=0.3, apply_workers=4,
        )
        base.update(overrides)
        return OperatorSettings(**base)

    def start_operator(self, **overrides: Any) -> Operator:
        op = Operator(Kube(load_api_client(self.kubeconfig)), self.settings(**overrides))
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

    def spawn_operator(self, lease_name: str) -> subprocess.Popen[bytes]:
        """`gpusched operator` as a separate process, to be killed with SIGKILL."""
        cmd = [sys.executable, "-c", "from gpusched.cli import main; main()", "operator",
               "--kubeconfig", self.kubeconfig, "--cluster-config", str(self.cluster_file()),
               "--namespace", self.namespace, "--replan-interval", "2s", "--metrics-port", "0",
               "--lease-namespace", self.namespace, "--time-limit", "5", "--log-level", "warning", "--lease-name", lease_name,
               "--lease-duration", "3"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        self.kubelet.stop.set()
        for op, thread in self.operators:
            op.shutdown()
            thread.join(timeout=10)
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.kubelet.thread.join(timeout=5)
        if self.fake is None:
            self._cleanup_real()

    def _cleanup_real(self) -> None:
        for node in self.nodes:
            self.kube.call("delete node", lambda n=node: self.kube.core.delete_node(n, _preload_content=False),
                           ok=(404,))
            self.kube.call("delete gpunode", lambda n=node: self.kube.custom.delete_cluster_custom_object(
                GROUP, VERSION, "gpunodes", n, _preload_content=False), ok=(404,))
        self.kube.call("delete ns", lambda: self.kube.core.delete_namespace(
            self.namespace, _preload_content=False), ok=(404,))


def _install_crds(kube: Kube) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(kube.api_client)
    for path in [ROOT / "deploy/crds/gpujobs.yaml", *sorted((ROOT / "deploy/agent").glob("*crd*.yaml"))]:
        if not path.exists():
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                kube.call("create crd", lambda d=doc: ext.create_custom_resource_definition(
                    d, _preload_content=False), ok=(409,))
    time.sleep(2)  # let the new resources become served


@pytest.fixture
def fake_api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    if E2E_KUBECONFIG:
        kube = Kube(load_api_client(E2E_KUBECONFIG))
        _install_crds(kube)
        ns = f"gpusched-e2e-{uuid.uuid4().hex[:6]}"
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        kube.call("create ns", lambda: kube.core.create_namespace(body, _preload_content=False))
        h = Harness(E2E_KUBECONFIG, ns, None, tmp_path)
        try:
            yield h
        finally:
            h.close()
        return
    with FakeKubeAPI() as api:
        h = Harness(api.write_kubeconfig(str(tmp_path / "kubeconfig")), "default", api, tmp_path)
        try:
            yield h
        finally:
            h.close()


def pod_env(pod: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


Harness.pod_env = staticmethod(pod_env)  # type: ignore[attr-defined]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]
