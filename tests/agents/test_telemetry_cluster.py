"""`gpusched plan --telemetry DIR`: a Cluster from agent snapshots."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gpusched.agents.agent import Agent
from gpusched.agents.k8s import FilePublisher
from gpusched.config import InputError
from gpusched.model import CapacityChange, Cluster, GpuType
from gpusched.telemetry import GpuTelemetry, NodeTelemetry
from gpusched.telemetry_cluster import cluster_from_telemetry

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def base(*names: tuple[str, float]) -> Cluster:
    return Cluster(gpu_types=[GpuType(name=n, memory_gib=m, price_per_hour=2.0) for n, m in names])


def snapshot(
    node: str,
    name: str,
    count: int,
    memory_mib: float = 81559,
    unhealthy: tuple[int, ...] = (),
    at: datetime = NOW,
    **extra: Any,
) -> NodeTelemetry:
    gpus = [
        GpuTelemetry(
            index=i,
            uuid=f"GPU-{node}-{i}",
            name=name,
            memory_total_mib=memory_mib,
            health="unhealthy" if i in unhealthy else "healthy",
        )
        for i in range(count)
    ]
    return NodeTelemetry(node=node, timestamp=at, gpus=gpus, **extra)


def write(directory: Path, snap: NodeTelemetry) -> Path:
    path = directory / f"{snap.node}.json"
    path.write_text(json.dumps(snap.model_dump(mode="json")))
    return path


def test_exact_canonical_and_prefix_matches(tmp_path: Path) -> None:
    write(tmp_path, snapshot("a", "H100-80GB", 8))  # exact
    write(tmp_path, snapshot("b", "NVIDIA H100 80GB HBM3", 8, unhealthy=(3,)))  # canonical
    write(tmp_path, snapshot("c", "NVIDIA A100-SXM4-40GB", 4, memory_mib=40960))  # prefix 'A100'
    cluster = cluster_from_telemetry(tmp_path, base(("H100-80GB", 80), ("A100", 40)), now=NOW)
    nodes = {n.name: n for n in cluster.nodes}
    assert nodes["a"].gpu_type == "H100-80GB" and nodes["a"].gpu_count == 8 and nodes["a"].unhealthy_gpus == 0
    assert (
        nodes["b"].gpu_type == "H100-80GB" and nodes["b"].unhealthy_gpus == 1 and nodes["b"].healthy_gpus == 7
    )
    assert nodes["c"].gpu_type == "A100" and nodes["c"].gpu_count == 4
    assert [t.name for t in cluster.gpu_types] == ["H100-80GB", "A100"]


def test_degraded_counts_as_usable_unknown_does_not(tmp_path: Path) -> None:
    snap = snapshot("a", "NVIDIA H100 80GB HBM3", 4)
    snap.gpus[0].health = "degraded"
    snap.gpus[1].health = "unknown"
    write(tmp_path, snap)
    node = cluster_from_telemetry(tmp_path, base(("H100-80GB", 80)), now=NOW).nodes[0]
    assert node.unhealthy_gpus == 1


def test_stale_snapshot_makes_every_gpu_unhealthy(tmp_path: Path) -> None:
    write(tmp_path, snapshot("old", "NVIDIA H100 80GB HBM3", 8, at=NOW - timedelta(minutes=5)))
    write(tmp_path, snapshot("new", "NVIDIA H100 80GB HBM3", 8, at=NOW - timedelta(seconds=10)))
    cluster = cluster_from_telemetry(tmp_path, base(("H100-80GB", 80)), max_age=timedelta(minutes=2), now=NOW)
    nodes = {n.name: n for n in cluster.nodes}
    assert nodes["old"].unhealthy_gpus == 8 and nodes["new"].unhealthy_gpus == 0
    # without max_age nothing is stale
    assert cluster_from_telemetry(tmp_path, base(("H100-80GB", 80)), now=NOW).healthy_gpus() == 16


def test_labels_topology_domain_and_maintenance_carried_over(tmp_path: Path) -> None:
    write(
        tmp_path, snapshot("a", "NVIDIA H100 80GB HBM3", 8, labels={"rack": "r1"}, topology_domain="island-1")
    )
    b = base(("H100-80GB", 80))
    b = Cluster(
        gpu_types=b.gpu_types,
        nodes=[],
        maintenance=[
            CapacityChange(start=1, end=2, gpu_type="H100-80GB", gpus=2),
        ],
    )
    cluster = cluster_from_telemetry(tmp_path, b, now=NOW)
    assert cluster.nodes[0].labels == {"rack": "r1"} and cluster.nodes[0].topology_domain == "island-1"
    assert cluster.maintenance == b.maintenance


def test_unknown_type_names_snapshot_gpu_and_known_types(tmp_path: Path) -> None:
    path = write(tmp_path, snapshot("l4box", "NVIDIA L4", 1, memory_mib=23034))
    with pytest.raises(InputError) as err:
        cluster_from_telemetry(tmp_path, base(("H100-80GB", 80), ("A100-40GB", 40)), now=NOW)
    msg = str(err.value)
    assert str(path) in msg and "gpus[0].name" in msg and "GPU-l4box-0" in msg and "'NVIDIA L4'" in msg
    assert "['A100-40GB', 'H100-80GB']" in msg and "L4-24GB" in msg


def test_bad_snapshot_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"node": "x", "timestamp": "yesterday", "gpus": []}))
    with pytest.raises(InputError, match=r"x\.json: timestamp: "):
        cluster_from_telemetry(tmp_path, base(("H100-80GB", 80)), now=NOW)
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"x\.json: line 1 column 2: malformed JSON"):
        cluster_from_telemetry(tmp_path, base(("H100-80GB", 80)), now=NOW)
    with pytest.raises(InputError, match="not a directory"):
        cluster_from_telemetry(tmp_path / "nope", base(("H100-80GB", 80)), now=NOW)


def test_snapshots_written_by_the_agent_on_the_stub(tmp_path: Path, make_agent: Callable[..., Any]) -> None:
    out = tmp_path / "snaps"
    agent: Agent = make_agent(
        "profile h100x8\nlost 6\necc 1 1\n", node="dgx-1", publishers=[FilePublisher(out, "dgx-1")]
    )
    agent.poll_once()
    a100: Agent = make_agent("profile a100x4mig\n", node="a100-1", publishers=[FilePublisher(out, "a100-1")])
    a100.poll_once()
    cluster = cluster_from_telemetry(out, base(("H100-80GB", 80), ("A100-40GB", 40)))
    nodes = {n.name: n for n in cluster.nodes}
    # the lost GPU could not even be named: it counts as unhealthy on its node's type
    assert (nodes["dgx-1"].gpu_type, nodes["dgx-1"].gpu_count, nodes["dgx-1"].unhealthy_gpus) == (
        "H100-80GB",
        8,
        2,
    )
    assert (nodes["a100-1"].gpu_type, nodes["a100-1"].gpu_count, nodes["a100-1"].unhealthy_gpus) == (
        "A100-40GB",
        4,
        0,
    )
    # the file is exactly NodeTelemetry.model_dump(mode="json")
    data = json.loads((out / "dgx-1.json").read_text())
    assert NodeTelemetry.model_validate(data).model_dump(mode="json") == data
