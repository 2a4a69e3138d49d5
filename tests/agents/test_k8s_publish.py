"""--publish k8s: GPUNode status and Node Events through the real kubernetes client over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from gpusched.agents.agent import Agent
from gpusched.agents.k8s import PLURAL, GpuNodePublisher
from gpusched.telemetry import NodeTelemetry

from .kube_api import KubeAPI


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def kube() -> Iterator[KubeAPI]:
    api = KubeAPI()
    yield api
    api.close()


def api_client(kube: KubeAPI) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = kube.url
    return client.ApiClient(cfg)


def publisher(kube: KubeAPI, node: str, clock: FakeClock, heartbeat: float = 30.0) -> GpuNodePublisher:
    return GpuNodePublisher(api_client(kube), node, heartbeat=heartbeat, monotonic=clock)


def status_writes(kube: KubeAPI) -> list[Any]:
    return [r for r in kube.requests if r[0] == "PATCH" and r[1].endswith("/status")]


def test_creates_gpunode_owned_by_its_node_and_writes_camelcase_status(
    kube: KubeAPI, make_agent: Callable[..., Any]
) -> None:
    node = kube.add_node("dgx-1")
    pub = publisher(kube, "dgx-1", FakeClock())
    agent: Agent = make_agent("profile h100x8\nprocess 2 4242 30000\n", node="dgx-1", publishers=[pub])
    snap = agent.poll_once()
    obj = kube.objects[(PLURAL, "dgx-1")]
    assert obj["kind"] == "GPUNode" and obj["spec"] == {"nodeName": "dgx-1"}
    assert obj["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "dgx-1", "uid": node["metadata"]["uid"]}
    ]
    status = obj["status"]
    assert status == snap.model_dump(mode="json", by_alias=True)
    assert status["gpus"][0]["memoryTotalMib"] == 81559 and status["driverVersion"] == "550.54.15"
    # what the operator reads back is the same NodeTelemetry
    assert NodeTelemetry.model_validate(status) == snap
    assert [r[2] for r in status_writes(kube)] == ["application/json-patch+json"]
    # no Events for GPUs that were simply healthy at start-up
    assert kube.events == []


def test_writes_on_change_and_heartbeat_only(
    kube: KubeAPI, make_agent: Callable[..., Any], stub_config: Callable[[str], Any]
) -> None:
    kube.add_node("dgx-1")
    clock = FakeClock()
    pub = publisher(kube, "dgx-1", clock, heartbeat=30)
    agent: Agent = make_agent("profile h100x8\n", node="dgx-1", publishers=[pub])
    agent.poll_once()
    assert len(status_writes(kube)) == 1
    # readings move (utilisation, temperature) but nothing the scheduler acts on: no write
    stub_config(
        "profile h100x8\nutil 0 99 50\ntemp 1 60\nmemtemp 2 70\nenergy 3 9999999999\npcie 4 9000 8000\n"
        "replay 5 3\nnvlink_data 6 123456 654321\n"
    )
    clock.t += 5
    agent.poll_once()
    clock.t += 5
    agent.poll_once()
    assert len(status_writes(kube)) == 1
    # the heartbeat is due: write, with the new timestamp
    clock.t += 25
    snap = agent.poll_once()
    assert len(status_writes(kube)) == 2
    assert kube.objects[(PLURAL, "dgx-1")]["status"]["timestamp"] == snap.model_dump(mode="json")["timestamp"]
    # a health change is written at once
    stub_config("profile h100x8\necc 3 1\n")
    clock.t += 1
    agent.poll_once()
    assert len(status_writes(kube)) == 3
    assert kube.objects[(PLURAL, "dgx-1")]["status"]["gpus"][3]["health"] == "unhealthy"


def test_health_change_is_an_event_on_the_node(
    kube: KubeAPI, make_agent: Callable[..., Any], stub_config: Callable[[str], Any]
) -> None:
    kube.add_node("dgx-1")
    agent: Agent = make_agent(
        "profile h100x8\n", node="dgx-1", publishers=[publisher(kube, "dgx-1", FakeClock())]
    )
    agent.poll_once()
    stub_config("profile h100x8\nlost 6\n")
    agent.poll_once()
    assert len(kube.events) == 1
    ev = kube.events[0]
    assert ev["metadata"]["namespace"] == "default"
    assert ev["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "dgx-1", "uid": "dgx-1"}
    assert ev["reason"] == "GPUUnhealthy" and ev["type"] == "Warning"
    assert (
        "GPU 6" in ev["message"] and "healthy -> unhealthy" in ev["message"] and "GPU lost" in ev["message"]
    )
    assert ev["source"] == {"component": "gpusched-agent", "host": "dgx-1"}


def test_existing_gpunode_is_reused_and_missing_node_means_no_owner(kube: KubeAPI) -> None:
    from datetime import datetime, timezone

    pub = publisher(kube, "n1", FakeClock())
    snap = NodeTelemetry(node="n1", timestamp=datetime(2026, 11, 23, tzinfo=timezone.utc))
    pub.publish(snap, [])
    assert "ownerReferences" not in kube.objects[(PLURAL, "n1")]["metadata"]
    again = publisher(kube, "n1", FakeClock())  # an agent restart: 409-free reuse of the object
    again.publish(snap, [])
    assert [r[0] for r in kube.requests if r[1].startswith("/apis") and not r[1].endswith("/status")] == [
        "GET",
        "POST",
        "GET",
    ]
    assert len(status_writes(kube)) == 2


def test_api_errors_never_stop_the_agent(kube: KubeAPI, make_agent: Callable[..., Any]) -> None:
    kube.add_node("dgx-1")
    clock = FakeClock()
    agent: Agent = make_agent("profile h100x8\n", node="dgx-1", publishers=[publisher(kube, "dgx-1", clock)])
    kube.fail_next = [500]
    agent.poll_once()  # the GET fails with 500
    assert agent.stats.publish_errors == {"GpuNodePublisher": 1}
    assert (PLURAL, "dgx-1") not in kube.objects
    agent.poll_once()  # retried on the next poll
    assert kube.objects[(PLURAL, "dgx-1")]["status"]["node"] == "dgx-1"


def test_deleted_gpunode_is_recreated(kube: KubeAPI) -> None:
    from datetime import datetime, timezone

    clock = FakeClock()
    pub = publisher(kube, "n1", clock, heartbeat=10)
    snap = NodeTelemetry(node="n1", timestamp=datetime(2026, 11, 23, tzinfo=timezone.utc))
    pub.publish(snap, [])
    del kube.objects[(PLURAL, "n1")]  # e.g. kubectl delete gpunode n1
    clock.t += 11
    pub.publish(snap, [])
    assert kube.objects[(PLURAL, "n1")]["status"]["node"] == "n1"


def test_a_failed_event_does_not_hold_back_the_status(
    kube: KubeAPI, make_agent: Callable[..., Any], stub_config: Callable[[str], Any]
) -> None:
    kube.add_node("dgx-1")
    agent: Agent = make_agent(
        "profile h100x8\n", node="dgx-1", publishers=[publisher(kube, "dgx-1", FakeClock())]
    )
    agent.poll_once()
    stub_config("profile h100x8\nlost 1\n")
    kube.fail_next = [500]  # the Event POST fails
    agent.poll_once()
    assert kube.events == []
    assert kube.objects[(PLURAL, "dgx-1")]["status"]["gpus"][1]["health"] == "unhealthy"
    assert agent.stats.publish_errors == {"GpuNodePublisher": 1}
