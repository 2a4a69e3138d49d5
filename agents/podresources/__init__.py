"""Which pod holds which GPU, from the kubelet's pod-resources gRPC socket (as dcgm-exporter does).

The kubelet serves `k8s.io/kubelet/pkg/apis/podresources/v1` PodResourcesLister on a unix socket
(default /var/lib/kubelet/pod-resources/kubelet.sock). `List` names, for every container, the
devices the device plugins gave it; for `nvidia.com/gpu` (and the MIG resources `nvidia.com/mig-*`)
those are the NVIDIA device plugin's device ids: GPU UUIDs by default, MIG UUIDs, GPU indexes with
`--device-id-strategy=index`, with a `::N` replica suffix when the GPU is time-sliced. The agent
matches them to its GPUs by UUID (or index) and labels their metrics with pod, namespace, container.

grpcio and protobuf are the `agent` extra; they are imported only when the feature is switched on.
The Python modules in v1/ are generated from v1/api.proto (see its header).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


class PodResourcesError(Exception):
    """The socket is missing, refuses, or the call failed; the message is one line."""


@dataclass(frozen=True, order=True)
class PodRef:
    """The container a GPU is assigned to."""

    namespace: str
    pod: str
    container: str


def device_key(device_id: str) -> str:
    """The GPU a device-plugin id names: 'GPU-abc::3' (time-slicing replica 3) -> 'GPU-abc'."""
    return device_id.split("::", 1)[0]


def gpu_assignments(response: Any) -> dict[str, PodRef]:
    """Device id (UUID, MIG UUID or index, replica suffix removed) -> the container holding it.

    A GPU shared by several containers (time-slicing) maps to the first of them in (namespace, pod,
    container) order, so its series keep one stable set of labels.
    """
    out: dict[str, PodRef] = {}
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                name = devices.resource_name
                if name != GPU_RESOURCE and not name.startswith(MIG_RESOURCE_PREFIX):
                    continue
                ref = PodRef(pod.namespace, pod.name, container.name)
                for device_id in devices.device_ids:
                    key = device_key(device_id)
                    if key not in out or ref < out[key]:
                        out[key] = ref
    return out


class PodResourcesClient:
    """One gRPC channel to the kubelet's socket; `gpu_pods()` calls List with a deadline."""

    def __init__(self, socket_path: Path = DEFAULT_SOCKET, timeout: float = 2.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        try:
            import grpc

            from gpusched.agents.podresources.v1 import api_pb2, api_pb2_grpc
        except ImportError as exc:
            raise PodResourcesError(
                f"needs grpcio and protobuf ({exc}; pip install 'gpusched[agent]')"
            ) from None
        self._grpc = grpc
        self._request = api_pb2.ListPodResourcesRequest()
        self._channel = grpc.insecure_channel(f"unix://{self.socket_path.resolve()}")
        self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)

    def gpu_pods(self) -> dict[str, PodRef]:
        """Device id -> container, now; PodResourcesError (one line) when the kubelet cannot say."""
        self._check_socket()
        try:
            response = self._stub.List(self._request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            name = code.name if code is not None else "error"
            raise PodResourcesError(
                f"{self.socket_path}: List failed: {name}: {' '.join(str(detail).split())}"
            ) from None
        return gpu_assignments(response)

    def _check_socket(self) -> None:
        try:
            mode = os.stat(self.socket_path).st_mode
        except FileNotFoundError:
            raise PodResourcesError(f"{self.socket_path}: no such socket") from None
        except OSError as exc:
            raise PodResourcesError(f"{self.socket_path}: {exc.strerror}") from None
        if not stat.S_ISSOCK(mode):
            raise PodResourcesError(f"{self.socket_path}: not a unix socket")

    def close(self) -> None:
        self._channel.close()
