"""Pod, namespace and container labels from the kubelet's pod-resources socket (--kubernetes-pod-labels).

The kubelet is stood in for by a real gRPC server on a unix socket (kubelet_pods.py); the agent's
client, the generated stubs and the transport are the real ones.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpusched.agents.agent import Agent
from gpusched.agents.metrics import make_registry
from gpusched.agents.podresources import PodRef, PodResourcesClient, PodResourcesError, gpu_assignments
from gpusched.agents.podresources.v1 import api_pb2

from .conftest import agent_cmd, agent_env
from .kubelet_pods import Assignment, serve

MakeAgent = Callable[..., Any]


def uuid_of(i: int) -> str:
    """The stub's h100x8 UUIDs."""
    return f"GPU-{0x5A1E0000 + i:08x}-{0x1000 + i:04x}-{0x2000 + i:04x}-{0x3000 + i:04x}-{0xABC000 + i:012x}"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # unix socket paths are limited to 107 bytes: pytest's tmp_path can be longer
    path = Path(tempfile.mkdtemp(prefix="pr", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


ASSIGNED = [
    Assignment("team-a", "train-0", "worker", "nvidia.com/gpu", [uuid_of(2), uuid_of(3)]),
    Assignment("team-a", "train-0", "sidecar", "example.com/nic", ["eth1"]),  # not a GPU: ignored
    Assignment("team-b", "infer-1", "server", "nvidia.com/gpu", [f"{uuid_of(5)}::0"]),  # time-sliced
    Assignment("team-b", "infer-2", "server", "nvidia.com/gpu", [f"{uuid_of(5)}::1"]),
    Assignment("team-c", "by-index", "main", "nvidia.com/gpu", ["7"]),  # --device-id-strategy=index
]


def test_client_maps_devices_to_containers(sock_dir: Path) -> None:
    path = sock_dir / "kubelet.sock"
    with serve(path, ASSIGNED) as service:
        client = PodResourcesClient(path, timeout=5)
        pods = client.gpu_pods()
        client.close()
    assert service.calls == 1
    assert pods[uuid_of(2)] == pods[uuid_of(3)] == PodRef("team-a", "train-0", "worker")
    assert pods[uuid_of(5)] == PodRef("team-b", "infer-1", "server")  # shared: the first, stably
    assert pods["7"] == PodRef("team-c", "by-index", "main")
    assert "eth1" not in pods and uuid_of(0) not in pods


def test_fields_the_agent_does_not_read_are_skipped() -> None:
    """Upstream ContainerResources carries cpu_ids (field 3), memory, topology...: a newer kubelet's
    answer still parses (unknown fields), and the devices are still found."""
    devices = api_pb2.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=[uuid_of(1)])
    container = api_pb2.ContainerResources(name="c", devices=[devices]).SerializeToString()
    container += b"\x1a\x02\x04\x05"  # field 3 (cpu_ids), packed varints 4, 5
    pod = api_pb2.PodResources(name="p", namespace="n").SerializeToString()
    pod += b"\x1a" + bytes([len(container)]) + container
    response = b"\x0a" + bytes([len(pod)]) + pod
    parsed = api_pb2.ListPodResourcesResponse.FromString(response)
    assert gpu_assignments(parsed) == {uuid_of(1): PodRef("n", "p", "c")}


def samples(agent: Agent, name: str) -> dict[str, dict[str, str]]:
    text = generate_latest(make_registry(agent)).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    return {s.labels["gpu"]: s.labels for s in fams[name].samples}


def test_metrics_carry_pod_labels_and_drop_them_when_the_kubelet_goes(
    make_agent: MakeAgent, sock_dir: Path
) -> None:
    path = sock_dir / "kubelet.sock"
    with serve(path, ASSIGNED):
        client = PodResourcesClient(path, timeout=2)
        agent: Agent = make_agent("profile h100x8\n", pod_resources=client)
        agent.poll_once()
        temp = samples(agent, "DCGM_FI_DEV_GPU_TEMP")
        assert {k: temp["2"][k] for k in ("pod", "namespace", "container")} == {
            "pod": "train-0",
            "namespace": "team-a",
            "container": "worker",
        }
        assert temp["5"]["pod"] == "infer-1" and temp["7"]["pod"] == "by-index"
        assert temp["0"].get("pod", "") == ""  # held by no container: empty, which Prometheus reads as absent
        health = samples(agent, "gpusched_gpu_health")
        assert health["3"]["container"] == "worker"
    agent.poll_once()  # the kubelet is gone: no stale labels, the agent keeps going
    temp = samples(agent, "DCGM_FI_DEV_GPU_TEMP")
    assert temp["2"].get("pod", "") == "" and len(temp) == 8
    assert agent.stats.pod_resources_errors == 1


def test_without_the_flag_no_pod_labels(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\n")
    agent.poll_once()
    assert "pod" not in samples(agent, "DCGM_FI_DEV_GPU_TEMP")["0"]


def test_missing_socket_or_a_plain_file_is_one_line(sock_dir: Path) -> None:
    client = PodResourcesClient(sock_dir / "nothing.sock", timeout=1)
    with pytest.raises(PodResourcesError, match=r"nothing\.sock: no such socket$"):
        client.gpu_pods()
    (sock_dir / "file.sock").write_text("")
    with pytest.raises(PodResourcesError, match=r"file\.sock: not a unix socket$"):
        PodResourcesClient(sock_dir / "file.sock", timeout=1).gpu_pods()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_agent(stub_lib: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "stub.conf"
    config.write_text("profile h100x8\n")
    return subprocess.run(
        agent_cmd("--node-name", "n1", "--kubernetes-pod-labels", *args),
        capture_output=True,
        text=True,
        env=agent_env(stub_lib, config),
        timeout=60,
    )


def test_cli_missing_socket_exits_2_with_one_line(stub_lib: Path, tmp_path: Path, sock_dir: Path) -> None:
    result = run_agent(
        stub_lib, tmp_path, "--port", str(free_port()), "--pod-resources-socket", str(sock_dir / "k.sock")
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --kubernetes-pod-labels: ") and "no such socket" in lines[0]
    assert "--pod-resources-socket" in lines[0]


def test_cli_refusing_socket_exits_2_with_one_line(stub_lib: Path, tmp_path: Path, sock_dir: Path) -> None:
    path = sock_dir / "k.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))  # a socket file nobody listens on: connections are refused
    try:
        result = run_agent(
            stub_lib, tmp_path, "--port", str(free_port()), "--pod-resources-socket", str(path)
        )
    finally:
        dead.close()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --kubernetes-pod-labels: ") and "UNAVAILABLE" in lines[0]


def test_cli_refuses_the_flag_without_metrics(stub_lib: Path, tmp_path: Path) -> None:
    result = run_agent(stub_lib, tmp_path, "--once")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --kubernetes-pod-labels: ")


def test_cli_serves_pod_labels(stub_lib: Path, tmp_path: Path, sock_dir: Path) -> None:
    path = sock_dir / "kubelet.sock"
    port = free_port()
    config = tmp_path / "stub.conf"
    config.write_text("profile h100x8\n")
    with serve(path, ASSIGNED):
        proc = subprocess.Popen(
            agent_cmd(
                "--node-name", "n1", "--interval", "200ms", "--port", str(port),
                "--kubernetes-pod-labels", "--pod-resources-socket", str(path),
            ),
            env=agent_env(stub_lib, config),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            labels: dict[str, str] = {}
            while time.monotonic() < deadline and not labels.get("pod"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                        text = resp.read().decode()
                except OSError:
                    time.sleep(0.1)
                    continue
                fams = {f.name: f for f in text_string_to_metric_families(text)}
                if "DCGM_FI_DEV_GPU_TEMP" in fams:
                    labels = {s.labels["gpu"]: s.labels for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples}.get(
                        "2", {}
                    )
                time.sleep(0.1)
            assert labels.get("pod") == "train-0" and labels.get("namespace") == "team-a", labels
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    assert proc.returncode == 0
