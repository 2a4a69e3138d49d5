"""Shared fixtures: tiny clusters, the project's sample traces, and the shared real traces (if present)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpusched.model import Cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SHARED_TRACES = (ROOT / ".." / "shared" / "traces").resolve()


def one_node(gpus: int = 4, speed: float = 1.0, price: float = 1.0) -> Cluster:
    return Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80, "speed": speed, "price_per_hour": price}],
        "nodes": [{"name": "n0", "gpu_type": "GPU", "gpu_count": gpus}],
    })


@pytest.fixture
def shared_traces() -> Path:
    if not SHARED_TRACES.is_dir():
        pytest.skip(f"real traces not present at {SHARED_TRACES} (only on machines with ../shared/traces)")
    return SHARED_TRACES
