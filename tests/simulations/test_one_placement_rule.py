"""The one placement module (gpusched.solver.placement over gpusched.solver.freegpus.FreeGpus),
which the solver, the operator and the simulator all place with, against an independent oracle:
a naive reference written here from the rule as docs/planning.md and the module docstring state it,
reading a plain per-GPU description of the cluster (no buckets, no index), brute force over nodes.

Generated clusters mix GPU types, node sizes, topology domains, cordoned nodes, unhealthy GPUs,
failed GPUs, GPUs shared in thousandths, held GPUs and maintenance distances; the view is built by
the same operations the engine applies (take, give back, close), so its bucket index has a history.
The module's pick must be valid (free, open GPUs of allowed types, whole workers, within max_nodes)
and rank exactly as the oracle's (nodes used, GPUs left over, maintenance distance; ties between
equal nodes may go either way), and it must find a pick exactly when the oracle does.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from gpusched.model import Cluster, GpuType, Node
from gpusched.simulations.state import ClusterState
from gpusched.solver.freegpus import FULL, FreeGpus
from gpusched.solver.placement import Gang, place

TYPES = {"A": GpuType(name="A", memory_gib=40), "B": GpuType(name="B", memory_gib=80)}


@dataclass
class World:
    """The plain description the oracle reads: per node, per GPU (open?, thousandths free)."""

    nodes: list[Node]
    open_: list[list[bool]]
    free: list[list[int]]
    until: dict[str, float]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n = draw(st.integers(1, 7))
    domains = draw(st.sampled_from([[None], ["r0", "r1"], ["r0"]]))
    shared = draw(st.booleans())
    nodes, open_, free = [], [], []
    for i in range(n):
        size = draw(st.sampled_from([1, 2, 4, 8]))
        node = Node(
            name=f"n{draw(st.integers(0, 99)):02d}-{i}",
            gpu_type=draw(st.sampled_from(["A", "B"])),
            gpu_count=size,
            unhealthy_gpus=draw(st.integers(0, size)) if draw(st.integers(0, 4)) == 0 else 0,
            topology_domain=draw(st.sampled_from(domains)),
            cordoned=draw(st.integers(0, 9)) == 0,
        )
        usable = node.healthy_gpus
        nodes.append(node)
        open_.append([g < usable for g in range(size)])
        levels = [FULL, 0, 250, 500, 750] if shared else [FULL, 0]
        free.append([draw(st.sampled_from(levels)) if g < usable else FULL for g in range(size)])
    until = {node.name: float(draw(st.integers(1, 4))) for node in nodes if draw(st.integers(0, 2)) == 0}
    return World(nodes, open_, free, until)


def gangs() -> st.SearchStrategy[Gang]:
    whole = st.builds(
        lambda workers, per_node, **rest: Gang(gpus=workers * per_node, per_node=per_node, **rest),
        workers=st.integers(1, 20),
        per_node=st.sampled_from([1, 1, 2]),
        gpu_type=st.sampled_from([None, "A", "B"]),
        max_nodes=st.sampled_from([None, None, 1, 2, 3]),
        min_memory_gib=st.sampled_from([0.0, 0.0, 60.0]),
    )
    shared = st.builds(
        Gang,
        gpus=st.just(1),
        gpu_type=st.sampled_from([None, "A", "B"]),
        milli=st.sampled_from([200, 500, 800]),
    )
    return st.one_of(whole, shared)


def build_view(world: World, engine: bool, closed: list[tuple[int, int]]) -> FreeGpus:
    """The view under test, built by the engine's own operations from the world."""
    if engine:
        cluster = Cluster(gpu_types=list(TYPES.values()), nodes=world.nodes)
        view: FreeGpus = ClusterState(cluster)
    else:
        view = FreeGpus(world.nodes)
    every = [(i, g) for i, node in enumerate(world.nodes) for g in range(node.healthy_gpus)]
    # A job that comes and goes first, so nodes move between buckets and back.
    passing = [(i, g, FULL) for i, g in every[::2]]
    view.take(passing)
    view.give(passing)
    view.take([(i, g, FULL - world.free[i][g]) for i, g in every if world.free[i][g] < FULL])
    for i, g in closed:  # GPU failures: the oracle sees them as not open
        view.close(i, g)
        world.open_[i][g] = False
    return view


# ------------------------------------------------------------------------------------- the oracle


def allowed(world: World, gang: Gang, i: int) -> bool:
    node = world.nodes[i]
    t = node.gpu_type
    return (gang.gpu_type is None or t == gang.gpu_type) and TYPES[t].memory_gib >= gang.min_memory_gib


def whole_free(world: World, i: int) -> int:
    return sum(1 for ok, f in zip(world.open_[i], world.free[i], strict=True) if ok and f == FULL)


def oracle_rank(world: World, gang: Gang) -> tuple[float, ...] | None:
    """The documented rule, naively: the rank of the pick it makes, or None."""
    per, gpus = gang.per_node, gang.gpus
    free = {i: whole_free(world, i) for i in range(len(world.nodes)) if allowed(world, gang, i)}
    room = {i: f // per * per for i, f in free.items() if f >= per}

    def distance(nodes: list[int]) -> float:
        if not world.until:
            return 0.0
        return -min(world.until.get(world.nodes[i].name, math.inf) for i in nodes)

    def step2(cands: list[int]) -> tuple[float, ...] | None:
        holders = [i for i in cands if room[i] >= gpus]
        if holders:
            return min((1, free[i] - gpus, distance([i])) for i in holders)
        if gang.max_nodes == 1:
            return None
        left, used, rest = gpus, [], sorted(cands, key=lambda i: (-room[i], world.nodes[i].name))
        leftover = 0
        while left > 0:
            holders = [i for i in rest if room[i] >= left]
            if holders:
                last = min(holders, key=lambda i: (free[i] - left, world.nodes[i].name))
                used.append(last)
                leftover += free[last] - left
                left = 0
                break
            if not rest:
                return None
            i = rest.pop(0)
            used.append(i)
            leftover += free[i] - room[i]
            left -= room[i]
        if gang.max_nodes is not None and len(used) > gang.max_nodes:
            return None
        return (len(used), leftover, distance(used))

    by_domain: dict[str | None, list[int]] = {}
    for i in room:
        by_domain.setdefault(world.nodes[i].topology_domain, []).append(i)
    ranks = [r for cands in by_domain.values() if (r := step2(cands)) is not None]
    if ranks:
        return min(ranks)
    return step2(list(room)) if len(by_domain) > 1 else None


def fewest_nodes(world: World, gang: Gang) -> int | None:
    """Brute force over every set of nodes: the fewest that hold the gang in whole workers."""
    rooms = [
        whole_free(world, i) // gang.per_node * gang.per_node
        for i in range(len(world.nodes))
        if allowed(world, gang, i)
    ]
    for k in range(1, len(rooms) + 1):
        if any(sum(c) >= gang.gpus for c in itertools.combinations(rooms, k)):
            return k
    return None


# ------------------------------------------------------------------------------------ the property


@settings(max_examples=300, deadline=None)
@given(
    world=worlds(),
    gang=gangs(),
    engine=st.booleans(),
    maintenance=st.booleans(),
    failures=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 7)), max_size=3),
)
def test_the_placement_module_places_as_the_written_rule(
    world: World, gang: Gang, engine: bool, maintenance: bool, failures: list[tuple[int, int]]
) -> None:
    closed = sorted(
        {
            (i, g)
            for i, g in failures
            if i < len(world.nodes) and g < world.nodes[i].gpu_count and world.open_[i][g]
        }
    )
    view = build_view(world, engine, closed)
    if not maintenance:
        world.until = {}
    before = {i: whole_free(world, i) for i in range(len(world.nodes))}
    shares = place(view, gang, TYPES, world.until or None)

    if gang.milli < FULL:
        partial = [
            f
            for i in range(len(world.nodes))
            if allowed(world, gang, i)
            for ok, f in zip(world.open_[i], world.free[i], strict=True)
            if ok and gang.milli <= f < FULL
        ]
        one = Gang(1, gang.gpu_type, 1, 1, gang.min_memory_gib)
        expected = min(partial) if partial else (FULL if oracle_rank(world, one) is not None else None)
        if expected is None:
            assert shares is None
            return
        assert shares is not None and len(shares) == 1
        i, g, m = shares[0]
        assert m == gang.milli and allowed(world, gang, i) and world.open_[i][g]
        assert world.free[i][g] == expected, (world.free[i][g], expected)
        if expected == FULL:  # a whole GPU, where a 1-GPU gang goes: its node ranks as the oracle's
            assert (1, before[i] - 1, _distance(world, [i])) == oracle_rank(world, one)
        return

    expected_rank = oracle_rank(world, gang)
    assert (shares is None) == (expected_rank is None), (shares, expected_rank)
    if shares is None:
        return
    # Valid: distinct, open, wholly free GPUs of allowed types; whole workers; within max_nodes.
    assert len(set(shares)) == len(shares) == gang.gpus
    per_node: dict[int, int] = {}
    for i, g, m in shares:
        assert m == FULL and world.open_[i][g] and world.free[i][g] == FULL and allowed(world, gang, i)
        per_node[i] = per_node.get(i, 0) + 1
    assert all(c % gang.per_node == 0 for c in per_node.values())
    assert gang.max_nodes is None or len(per_node) <= gang.max_nodes
    got = (len(per_node), sum(before[i] - c for i, c in per_node.items()), _distance(world, list(per_node)))
    assert got == expected_rank, (got, expected_rank)
    assert len(per_node) >= (fewest_nodes(world, gang) or 0)
    if len({world.nodes[i].topology_domain for i in range(len(world.nodes))}) == 1:
        assert len(per_node) == fewest_nodes(world, gang)  # one domain: no set of fewer nodes holds it


def _distance(world: World, nodes: list[int]) -> float:
    if not world.until:
        return 0.0
    return -min(world.until.get(world.nodes[i].name, math.inf) for i in nodes)


def test_taking_a_pick_moves_the_view_as_the_oracle_counts() -> None:
    """The view stays true after placements: each node's wholly free count and its bucket agree
    with a recount from the GPUs, through takes, shares, failures and repairs."""
    cluster = Cluster(
        gpu_types=list(TYPES.values()),
        nodes=[Node(name=f"n{i}", gpu_type="A", gpu_count=8, unhealthy_gpus=i % 3) for i in range(6)],
    )
    state = ClusterState(cluster)
    held = []
    for gpus, milli in [(3, FULL), (8, FULL), (1, 500), (1, 400), (12, FULL), (1, 300), (2, FULL)]:
        shares = place(state, state.gang(gpus, milli, "A"))
        assert shares is not None
        state.allocate(shares, job=len(held))
        held.append(shares)
    state.fail(0, 7)
    state.fail(2, 0)
    state.release(held[1], 1)
    state.repair(2, 0)
    for i in range(len(cluster.nodes)):
        recount = sum(1 for ok, f in zip(state.ok[i], state.milli[i], strict=True) if ok and f == FULL)
        assert state.whole_free[i] == recount
        assert i in state.buckets["A"][recount]
    assert state.free_total["A"] == sum(state.whole_free)
