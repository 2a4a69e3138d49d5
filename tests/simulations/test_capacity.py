"""The capacity sizing model and what-if parsing (the CLI path is in test_cli.py)."""

from __future__ import annotations

import pytest

from gpusched.model import GpuType
from gpusched.simulations import capacity as cap
from gpusched.simulations.workload import TraceJob

TYPES = [GpuType(name="A100", memory_gib=80, price_per_hour=3.0, speed=2.0),
         GpuType(name="V100", memory_gib=32, price_per_hour=1.0, speed=1.0)]


def test_parse_slo() -> None:
    s = cap.parse_slo("p95_queue<=90m")
    assert (s.metric, s.limit_h) == ("p95_queue_h", 1.5)
    assert cap.parse_slo("avg_jct <= 4h").metric == "avg_jct_h"
    for bad in ("p95_wait<=1h", "p95_queue>=1h", "p95_queue<=0h", "p95_queue<=soon"):
        with pytest.raises(ValueError):
            cap.parse_slo(bad)


def test_sizing_picks_cheapest_speed_per_dollar_and_covers_demand() -> None:
    # Demand 20 reference GPUs at 50 % target -> 40 reference-GPU capacity. V100 gives 1 unit per $1,
    # A100 2 units per $3: V100 is cheaper per unit, so only V100 nodes: 40 / 8 = 5 nodes.
    c = cap.size(TYPES, demand=20.0, biggest=8, per_node=8, util=0.5, discount=0.0)
    assert c is not None
    assert c.nodes("A100") == 0 and c.nodes("V100") == 5
    # at least 70 % reserved: 28 units -> 4 reserved nodes (32 units), the fifth may be on-demand
    assert c.reserved["V100"] >= 4


def test_sizing_respects_budget_and_gang() -> None:
    assert cap.size(TYPES, demand=20.0, biggest=8, per_node=8, util=0.5, discount=0.0, budget=100.0) is None
    big = cap.size(TYPES, demand=1.0, biggest=32, per_node=8, util=0.9, discount=0.0)
    assert big is not None and max(big.nodes("A100"), big.nodes("V100")) >= 4  # a 32-GPU gang fits one type


def test_what_ifs() -> None:
    c = cap.Candidate(reserved={"V100": 2}, on_demand={}, target_util=0.5)
    cluster = cap.to_cluster(c, TYPES, 8)
    jobs = [TraceJob(name="a", gpus=1, work=1.0, release=13.0)]
    more, _ = cap.apply_what_if("+12 A100", cluster, jobs, 8)
    assert more.total_gpus("A100") == 12 and len(more.nodes) == 4
    fewer, _ = cap.apply_what_if("lose node v100-r0", cluster, jobs, 8)
    assert fewer.total_gpus() == 8
    _, busier = cap.apply_what_if("demand +30%", cluster, jobs, 8)
    assert busier[0].release == pytest.approx(10.0)
    for bad in ("+4 H100", "lose node nowhere", "demand -100%", "more please"):
        with pytest.raises(ValueError):
            cap.apply_what_if(bad, cluster, jobs, 8)
