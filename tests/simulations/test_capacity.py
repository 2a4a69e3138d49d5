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
    c = cap.size(TYPES, [cap.DemandClass(types=None, demand=20.0, biggest=8)], per_node=8, util=0.5, discount=0.0)
    assert c is not None
    assert c.nodes("A100") == 0 and c.nodes("V100") == 5
    # at least 70 % reserved: 28 units -> 4 reserved nodes (32 units), the fifth may be on-demand
    assert c.reserved["V100"] >= 4


def test_sizing_respects_budget_and_gang() -> None:
    assert cap.size(TYPES, [cap.DemandClass(types=None, demand=20.0, biggest=8)], per_node=8, util=0.5,
                    discount=0.0, budget=100.0) is None
    big = cap.size(TYPES, [cap.DemandClass(types=None, demand=1.0, biggest=32)], per_node=8, util=0.9, discount=0.0)
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


# Two types where the faster one is cheaper per unit of work: H100 $4/GPU-h at speed 4 ($1 per
# reference GPU-hour), A100 $3/GPU-h at speed 1.5 ($2). One 8-GPU node per month: H100 8 x 730 x 4 =
# $23,360, A100 $17,520. With discount 0 and target u = 0.5, an on-demand node costs half a reserved one.
FAST_CHEAP = [GpuType(name="H100", memory_gib=80, price_per_hour=4.0, speed=4.0),
              GpuType(name="A100", memory_gib=80, price_per_hour=3.0, speed=1.5)]
NODE = {"H100": 23_360.0, "A100": 17_520.0}


def _bill(c: cap.Candidate) -> float:
    return sum(NODE[t] * (c.reserved.get(t, 0) + 0.5 * c.on_demand.get(t, 0)) for t in NODE)


def test_restricted_jobs_get_their_type_even_when_another_is_cheaper_per_unit() -> None:
    # 48 reference GPUs of demand. Pooled (any type): H100 busy GPUs 48/4 = 12, capacity 8 x 0.5 per
    # node -> 3 nodes; reserved >= 0.7 x 12 / 4 = 2.1 -> all 3 reserved: $70,080 (A100 would need
    # 48/1.5/4 = 8 nodes). Restricted to A100: 32 busy GPUs -> 8 nodes, reserved >= 0.7 x 32 / 4 = 5.6
    # -> 6 reserved + 2 on-demand: 6 x 17,520 + 2 x 8,760 = $122,640.
    pooled = cap.size(FAST_CHEAP, [cap.DemandClass(types=None, demand=48.0)], per_node=8, util=0.5, discount=0.0)
    assert pooled is not None
    assert (pooled.reserved, pooled.on_demand) == ({"H100": 3, "A100": 0}, {"H100": 0, "A100": 0})
    only_a100 = cap.size(FAST_CHEAP, [cap.DemandClass(types=("A100",), demand=48.0)], per_node=8, util=0.5,
                         discount=0.0)
    assert only_a100 is not None
    assert (only_a100.reserved, only_a100.on_demand) == ({"H100": 0, "A100": 6}, {"H100": 0, "A100": 2})
    assert _bill(only_a100) == pytest.approx(122_640.0)


def test_each_class_flows_to_its_own_types() -> None:
    # Discount 0.5 = 1 - u: reserved and on-demand nodes cost the same, so only node counts matter.
    # A100-only demand 6 = 4 busy A100 GPUs = exactly one node at u = 0.5; 48 of any-type demand =
    # 12 busy H100 GPUs = exactly 3 H100 nodes (on A100 it would take 8 nodes). Bill 0.5 x (17,520 +
    # 3 x 23,360) = $43,800.
    classes = [cap.DemandClass(types=("A100",), demand=6.0), cap.DemandClass(types=None, demand=48.0)]
    c = cap.size(FAST_CHEAP, classes, per_node=8, util=0.5, discount=0.5)
    assert c is not None
    assert (c.nodes("A100"), c.nodes("H100")) == (1, 3)
    assert cap.monthly_bill(c, {t.name: t for t in FAST_CHEAP}, 8, 0.5, 0.5) == pytest.approx(43_800.0)


def test_a_class_gang_must_fit_on_one_of_its_types() -> None:
    # The A100-only work (demand 1) includes a 32-GPU gang: 4 A100 nodes, whose spare capacity
    # (16 - 1/1.5 busy GPUs = 23 reference units) then takes part of the any-type demand, so H100 needs
    # only ceil((48 - 23) / 4 / 4) = 2 nodes. Pooled (largest gang on any type, as before classes),
    # the 49 units and the gang all land on 4 H100 nodes and the A100-only jobs get no A100 at all.
    classes = [cap.DemandClass(types=("A100",), demand=1.0, biggest=32), cap.DemandClass(types=None, demand=48.0)]
    c = cap.size(FAST_CHEAP, classes, per_node=8, util=0.5, discount=0.5)
    assert c is not None
    assert (c.nodes("A100"), c.nodes("H100")) == (4, 2)
    pooled = cap.size(FAST_CHEAP, [cap.DemandClass(types=None, demand=49.0, biggest=32)], per_node=8, util=0.5,
                      discount=0.5)
    assert pooled is not None and (pooled.nodes("H100"), pooled.nodes("A100")) == (4, 0)


def test_a_spanning_class_is_served_only_where_its_gang_fits() -> None:
    # Any-type work in 16-GPU gangs (2 nodes each), demand 1.5: on A100 it is 1 busy GPU (1 node for
    # the load) but the gang needs 2 A100 nodes: 1 reserved + 1 on-demand = $26,280; on H100 0.375
    # busy GPUs, 2 nodes: 1 reserved + 1 on-demand = $35,040. A100 is cheaper.
    c = cap.size(FAST_CHEAP, [cap.DemandClass(types=None, demand=1.5, biggest=16)], per_node=8, util=0.5,
                 discount=0.0)
    assert c is not None and (c.reserved, c.on_demand) == ({"H100": 0, "A100": 1}, {"H100": 0, "A100": 1})


def test_demand_classes_group_by_allowed_types_and_gang_nodes() -> None:
    jobs = [
        TraceJob(name="a", gpus=1, work=2.0, release=0.0, gpu_types=("A100",)),
        TraceJob(name="b", gpus=2, work=1.0, release=1.0, gpu_types=("A100", "V100")),  # V100 not a candidate
        TraceJob(name="c", gpus=1, work=4.0, release=0.0, gpu_types=("H100", "A100")),  # = any candidate
        TraceJob(name="d", gpus=1, work=4.0, release=0.0, gpu_milli=250),
        TraceJob(name="e", gpus=16, work=1.0, release=2.0),
    ]
    # span: from 0 to max(release + work) = 4 h
    classes = {(c.types, c.biggest): c for c in cap.demand_classes(jobs, FAST_CHEAP, per_node=8)}
    assert set(classes) == {(("A100",), 2), (None, 1), (None, 16)}
    assert classes[("A100",), 2].demand == pytest.approx((2.0 + 2 * 1.0) / 4)
    assert classes[("A100",), 2].jobs == 2
    assert classes[None, 1].demand == pytest.approx((4.0 + 0.25 * 4.0) / 4)  # a quarter GPU counts a quarter
    assert classes[None, 16].demand == pytest.approx(16 / 4)
    with pytest.raises(ValueError, match=r"1 jobs \(e.g. v\) may only run on V100, none of which is a candidate"):
        cap.demand_classes([*jobs, TraceJob(name="v", gpus=1, work=1.0, gpu_types=("V100",))], FAST_CHEAP, 8)


def _analytic(prices: dict[str, float], cut: dict[str, float], start: float, limit: float) -> cap.Evaluate:
    """Metric = start minus a fixed cut per node of each type; bill = nodes x price (hand-checkable)."""

    def evaluate(c: cap.Candidate) -> dict[str, object]:
        value = max(0.0, start - sum(cut[t] * c.nodes(t) for t in prices))
        return {"value": value, "meets": value <= limit, "bill": sum(prices[t] * c.nodes(t) for t in prices)}

    return evaluate


def test_refine_adds_the_node_that_cuts_the_metric_most_per_dollar() -> None:
    # A cuts 1.0 per $100, B 1.5 per $300: A is the better buy per dollar. From 1 A (metric 9),
    # metric <= 6.5 needs 3 more A nodes (bill $400), well under the sweep's best ($1,000).
    evaluate = _analytic({"A": 100, "B": 300}, {"A": 1.0, "B": 1.5}, start=10.0, limit=6.5)
    low = cap.Candidate(reserved={"A": 1}, on_demand={}, target_util=0.6, label="u=60%")
    high = cap.Candidate(reserved={"A": 1, "B": 3}, on_demand={}, target_util=0.2, label="u=20%")
    for c in (low, high):
        c.metrics = evaluate(c)
    assert not low.metrics["meets"] and high.metrics["meets"] and high.metrics["bill"] == 1000
    # Greedy: +A (8 at $200), then +B meets at $500 (6.5) but +A (7 at $300) is the better buy
    # and goes on: +A meets at $400 (6.0). The search does not stop at the first fit it sees.
    found = cap.refine([low, high], evaluate, ["A", "B"])
    assert [(c.on_demand, c.metrics["bill"], c.metrics["meets"]) for c in found] == [
        ({"A": 1}, 200, False),
        ({"A": 1, "B": 1}, 500, True),
        ({"A": 2}, 300, False),
        ({"A": 3}, 400, True),
    ]
    assert {c.label for c in found} == {"refined"} and all(c.reserved == {"A": 1} for c in found)


def test_refine_stops_at_the_best_bill_and_when_nothing_helps() -> None:
    # Every extra node costs as much as the candidate already meeting the SLO: nothing to gain.
    evaluate = _analytic({"A": 100}, {"A": 1.0}, start=10.0, limit=5.0)
    low = cap.Candidate(reserved={"A": 4}, on_demand={}, target_util=0.5)
    high = cap.Candidate(reserved={"A": 5}, on_demand={}, target_util=0.2)
    for c in (low, high):
        c.metrics = evaluate(c)
    assert cap.refine([low, high], evaluate, ["A"]) == []
    # A type that does not move the metric is never bought, and the search ends.
    flat = _analytic({"A": 100, "B": 10}, {"A": 1.0, "B": 0.0}, start=10.0, limit=2.0)
    low.metrics, high.metrics = flat(low), {"value": 0.0, "meets": True, "bill": 5000.0}
    found = cap.refine([low, high], flat, ["B"])
    assert found == []
    # Nothing meets the SLO: there is no ceiling to search under.
    assert cap.refine([low], flat, ["A", "B"]) == []
