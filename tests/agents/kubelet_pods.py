"""A stand-in for the kubelet's pod-resources service: a real gRPC server on a unix socket.

It serves PodResourcesLister.List from the same generated modules the agent's client uses, over
the same transport the kubelet uses (gRPC on a unix socket), so the client, its channel, deadlines
and error paths run for real; only the answer (which pod holds which device) is the test's.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from gpusched.agents.podresources.v1 import api_pb2, api_pb2_grpc


@dataclass
class Assignment:
    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: list[str] = field(default_factory=list)


class FakePodResources(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self, assignments: list[Assignment]) -> None:
        self.assignments = assignments
        self.calls = 0

    def List(self, request: Any, context: Any) -> Any:
        self.calls += 1
        pods: dict[tuple[str, str], Any] = {}
        for a in self.assignments:
            pod = pods.get((a.namespace, a.pod))
            if pod is None:
                pod = pods[(a.namespace, a.pod)] = api_pb2.PodResources(name=a.pod, namespace=a.namespace)
            container = next((c for c in pod.containers if c.name == a.container), None)
            if container is None:
                container = pod.containers.add(name=a.container)
            container.devices.add(resource_name=a.resource, device_ids=a.device_ids)
        return api_pb2.ListPodResourcesResponse(pod_resources=list(pods.values()))


@contextmanager
def serve(socket_path: Path, assignments: list[Assignment]) -> Iterator[FakePodResources]:
    service = FakePodResources(assignments)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(service, server)
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    try:
        yield service
    finally:
        server.stop(grace=None).wait(5)
