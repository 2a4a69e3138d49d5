"""Publishing to Kubernetes: the node's GPUNode status, and an Event on the Node per health change.

GPUNode (gpusched.io/v1alpha1, cluster-scoped, named after the node) carries
NodeTelemetry.model_dump(mode="json", by_alias=True) as its `.status`. Why a custom resource and
not Node annotations: every annotation write is a Node update that wakes every Node watcher in the
cluster (kube-scheduler, kubelet-adjacent controllers, CNI, autoscalers); a CR has its own schema,
RBAC and watch stream, so only gpusched's operator pays for it.

Writes are rate-limited: the status is written when something the scheduler cares about changed
(GPU set, health, reasons, MIG layout, topology, driver) and otherwise only as a heartbeat, every
`heartbeat` seconds; the heartbeat's `timestamp` is how consumers tell a live agent from a dead one
(a stale heartbeat means the node's GPUs are unknown).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid as uuidlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from gpusched.agents.health import Transition
from gpusched.telemetry import NodeTelemetry

log = logging.getLogger(__name__)

GROUP = "gpusched.io"
VERSION = "v1alpha1"
PLURAL = "gpunodes"
KIND = "GPUNode"
EVENT_NAMESPACE = "default"  # where kubelet records Node events; `kubectl describe node` finds them there
COMPONENT = "gpusched-agent"

_VOLATILE_GPU_FIELDS = {
    "memory_used_mib",
    "memory_free_mib",
    "utilization_gpu",
    "utilization_memory",
    "temperature_c",
    "power_w",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "processes",
    "throttle_reasons",
    "memory_temperature_c",
    "energy_mj",
    "pcie_tx_kbps",
    "pcie_rx_kbps",
    "pcie_replay_count",
    "nvlink_traffic",
}


def fingerprint(snapshot: NodeTelemetry) -> str:
    """A digest of what the scheduler acts on; readings that move every poll are left out."""
    data = snapshot.model_dump(
        mode="json", exclude={"timestamp": True, "gpus": {"__all__": _VOLATILE_GPU_FIELDS}}
    )
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def status_body(snapshot: NodeTelemetry) -> dict[str, Any]:
    return snapshot.model_dump(mode="json", by_alias=True)


def load_kube_client() -> Any:
    """The official client, configured in-cluster (ServiceAccount) or from the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class GpuNodePublisher:
    """Create-if-missing, then JSON-patch `/status` on change plus a heartbeat; Events on transitions."""

    def __init__(
        self,
        api_client: Any,
        node: str,
        heartbeat: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        from kubernetes import client

        self.client = client
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        # Not client.CoreV1Api: building that class costs ~21 MiB (thousands of validated methods) and
        # would break the agent's 80 MiB budget for two calls; the same ApiClient (auth, TLS, retries)
        # sends them, with the client's own models and (de)serialisation, see _core().
        self.node = node
        self.heartbeat = heartbeat
        self.monotonic = monotonic
        self._exists = False
        self._last_fp: str | None = None
        self._last_write = -float("inf")
        self.writes = 0
        self.events = 0
        self.event_errors = 0

    def publish(self, snapshot: NodeTelemetry, transitions: list[Transition]) -> None:
        from kubernetes.client.exceptions import ApiException

        failed: list[str] = []
        for t in transitions:
            if t.old is None and t.new == "healthy":
                continue  # a healthy GPU seen at start-up is not news
            try:
                self.emit_event(t)
            except Exception as exc:  # the status below must still go out
                self.event_errors += 1
                failed.append(f"Event for GPU {t.index}: {exc}")
        fp = fingerprint(snapshot)
        now = self.monotonic()
        if fp != self._last_fp or now - self._last_write >= self.heartbeat:
            try:
                self._write_status(snapshot)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._exists = False  # deleted behind our back: recreate it and write again
                self._write_status(snapshot)
            self._last_fp, self._last_write = fp, now
            self.writes += 1
        if failed:
            raise RuntimeError("; ".join(failed))

    def _write_status(self, snapshot: NodeTelemetry) -> None:
        self._ensure_exists()
        body = [{"op": "add", "path": "/status", "value": status_body(snapshot)}]
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, self.node, body, _content_type="application/json-patch+json"
        )

    def _ensure_exists(self) -> None:
        if self._exists:
            return
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, self.node)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body: dict[str, Any] = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "metadata": {"name": self.node, "labels": {"app.kubernetes.io/managed-by": COMPONENT}},
                "spec": {"nodeName": self.node},
            }
            owner = self._node_owner()
            if owner is not None:
                body["metadata"]["ownerReferences"] = [owner]  # deleted with its Node
            try:
                self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
                log.info("created GPUNode %s", self.node)
            except ApiException as exc2:
                if exc2.status != 409:  # created meanwhile by a previous incarnation: fine
                    raise
        self._exists = True

    def _node_owner(self) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            node = self._core("GET", "/api/v1/nodes/{name}", {"name": self.node})
        except ApiException as exc:
            log.warning("cannot read Node %s (%s): GPUNode will have no owner", self.node, exc.status)
            return None
        uid = (node.get("metadata") or {}).get("uid") if isinstance(node, dict) else None
        if not uid:
            return None
        return {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": uid}

    def emit_event(self, t: Transition) -> None:
        c = self.client
        now = datetime.now(timezone.utc).replace(microsecond=0)  # metav1.Time is whole seconds
        reason = {
            "healthy": "GPUHealthy",
            "degraded": "GPUDegraded",
            "unhealthy": "GPUUnhealthy",
            "unknown": "GPUUnknown",
        }[t.new]
        event = c.CoreV1Event(
            metadata=c.V1ObjectMeta(
                name=f"{self.node}.gpu{t.index}.{uuidlib.uuid4().hex[:10]}", namespace=EVENT_NAMESPACE
            ),
            # kubelet's convention for Node events: uid = node name, so `kubectl describe node` lists them
            involved_object=c.V1ObjectReference(kind="Node", name=self.node, uid=self.node, api_version="v1"),
            reason=reason,
            message=t.message(),
            type="Normal" if t.new == "healthy" else "Warning",
            source=c.V1EventSource(component=COMPONENT, host=self.node),
            reporting_component=COMPONENT,
            reporting_instance=self.node,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        self._core(
            "POST",
            "/api/v1/namespaces/{namespace}/events",
            {"namespace": EVENT_NAMESPACE},
            self.api_client.sanitize_for_serialization(event),
        )
        self.events += 1

    def _core(self, method: str, path: str, path_params: dict[str, str], body: Any = None) -> Any:
        """A core/v1 request through the official ApiClient (what CoreV1Api does, minus the class)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            path_params=path_params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*params)
        response.read()
        return self.api_client.response_deserialize(response, {"200": "object", "201": "object"}).data


class FilePublisher:
    """Atomically rewrites <dir>/<node>.json (NodeTelemetry.model_dump(mode='json')) every poll."""

    def __init__(self, directory: Any, node: str) -> None:
        from pathlib import Path

        self.path = Path(directory) / f"{node}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def publish(self, snapshot: NodeTelemetry, transitions: list[Transition]) -> None:
        from gpusched.safeio import write_atomic

        write_atomic(self.path, json.dumps(snapshot.model_dump(mode="json"), indent=1) + "\n")
