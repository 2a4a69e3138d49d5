"""The simulator's indexed best fit (ClusterState.find, buckets of nodes by free GPUs, O(GPUs per
node) per lookup for 82k-job replays) places by the placement module's rule (place_gang): on random
free-GPU views both pick placements of the same rank (nodes used, then GPUs left over on them), and
both find one exactly when the other does. Ties between equal nodes may go to different names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gpusched.model import Cluster, Node
from gpusched.simulations.state import FULL, ClusterState
from gpusched.solver.placement import Gang, place_gang, rank


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([4, 8]), min_size=1, max_size=8),
    used=st.lists(st.integers(0, 8), min_size=8, max_size=8),
    gpus=st.integers(1, 24),
)
def test_engine_best_fit_ranks_as_the_placement_module(sizes: list[int], used: list[int], gpus: int) -> None:
    cluster = Cluster.model_validate(
        {
            "gpu_types": [{"name": "G", "memory_gib": 80}],
            "nodes": [{"name": f"n{i}", "gpu_type": "G", "gpu_count": s} for i, s in enumerate(sizes)],
        }
    )
    state = ClusterState(cluster)
    for i, size in enumerate(sizes):
        take = min(used[i], size)
        if take:
            state.allocate([(i, g, FULL) for g in range(take)], job=1000 + i)
    free = {n.name: state.whole_free[i] for i, n in enumerate(cluster.nodes)}
    nodes: list[Node] = cluster.nodes
    one_node = gpus <= max(sizes)  # the engine keeps a gang that fits on a node on one node
    picked = place_gang(nodes, free, Gang(gpus=gpus, gpu_type="G", max_nodes=1 if one_node else None))
    shares = state.find(gpus, FULL, "G")
    assert (picked is None) == (shares is None), (free, gpus, picked, shares)
    if picked is None or shares is None:
        return
    found: dict[str, int] = {}
    for node, _, _ in shares:
        name = state.node_name[node]
        found[name] = found.get(name, 0) + 1
    assert sum(found.values()) == gpus
    assert rank(sorted(found.items()), free) == rank(picked, free), (free, gpus, picked, found)
