"""Node-level GPU bookkeeping: which GPU of which node is free, shared, failed, and who holds it.

Jobs hold specific GPUs on specific nodes (gangs may span nodes), so fragmentation is a real,
measurable effect rather than an artefact of pooled counts. Shared GPUs (Alibaba's gpu_milli < 1000)
are tracked per GPU in thousandths. Best-fit lookups use per-type buckets of nodes keyed by their
number of wholly free GPUs, so placing a job costs O(GPUs per node), not O(nodes).
"""

from __future__ import annotations

from gpusched.model import Cluster

FULL = 1000
Share = tuple[int, int, int]
"""(node index, GPU index on the node, milli)."""


class ClusterState:
    """Free/used/failed state of every GPU of a Cluster."""

    def __init__(self, cluster: Cluster, spread_small_jobs: bool = False) -> None:
        self.cluster = cluster
        self.types = cluster.type_map()
        self.spread_small_jobs = spread_small_jobs
        self.node_name = [n.name for n in cluster.nodes]
        self.node_type = [n.gpu_type for n in cluster.nodes]
        self.node_size = [n.gpu_count for n in cluster.nodes]
        self.index = {n.name: i for i, n in enumerate(cluster.nodes)}
        self.milli: list[list[int]] = []
        self.ok: list[list[bool]] = []
        self.occupants: list[list[list[int]]] = []
        self.whole_free: list[int] = []
        self.max_node: dict[str, int] = dict.fromkeys(self.types, 0)
        self.buckets: dict[str, list[dict[int, None]]] = {}
        self.free_total: dict[str, int] = dict.fromkeys(self.types, 0)
        self.healthy: dict[str, int] = dict.fromkeys(self.types, 0)
        self.partial_nodes: dict[str, dict[int, None]] = {t: {} for t in self.types}
        for n in cluster.nodes:
            self.max_node[n.gpu_type] = max(self.max_node[n.gpu_type], n.gpu_count)
        for t in self.types:
            self.buckets[t] = [{} for _ in range(self.max_node[t] + 1)]
        for i, n in enumerate(cluster.nodes):
            usable = 0 if n.cordoned else n.gpu_count - n.unhealthy_gpus
            oks = [g < usable for g in range(n.gpu_count)]
            self.ok.append(oks)
            self.milli.append([FULL] * n.gpu_count)
            self.occupants.append([[] for _ in range(n.gpu_count)])
            self.whole_free.append(usable)
            self.buckets[n.gpu_type][usable][i] = None
            self.free_total[n.gpu_type] += usable
            self.healthy[n.gpu_type] += usable

    # ------------------------------------------------------------------------------------ queries

    @property
    def total_healthy(self) -> int:
        return sum(self.healthy.values())

    @property
    def total_free(self) -> int:
        return sum(self.free_total.values())

    def can_ever_fit(self, gpus: int, gpu_type: str) -> bool:
        """Whether the type's whole cluster (healthy or not) could ever hold the gang."""
        return self.cluster.total_gpus(gpu_type) >= gpus

    # ---------------------------------------------------------------------------------- placement

    def find(self, gpus: int, milli: int, gpu_type: str) -> list[Share] | None:
        """Where a gang of `gpus` (each `milli` of a GPU) fits on `gpu_type` now, or None.

        Best fit: the fullest node that still holds the whole gang, so big holes stay big; gangs
        larger than a node take the emptiest nodes first, to span as few nodes as possible. This is
        the placement module's rule (gpusched.solver.placement.place_gang: fewest nodes, then least
        left over), indexed by free-GPU buckets for the engine's hot path; a property test holds the
        two to the same ranks.
        """
        if milli < FULL:
            return self._find_shared(milli, gpu_type)
        if self.free_total.get(gpu_type, 0) < gpus:
            return None
        buckets = self.buckets[gpu_type]
        top = len(buckets) - 1
        if gpus <= top:
            for k in range(gpus, top + 1):
                bucket = buckets[k]
                if bucket:
                    node = next(iter(bucket))
                    return self._whole_gpus(node, gpus)
            if not self.spread_small_jobs:
                return None
        shares: list[Share] = []
        need = gpus
        used: set[int] = set()
        for k in range(top, 0, -1):
            for node in buckets[k]:
                if need >= k:
                    shares.extend(self._whole_gpus(node, k))
                    used.add(node)
                    need -= k
                    if need == 0:
                        return shares
                    continue
                # The remainder: best-fit the last piece rather than cutting into a big node.
                for k2 in range(need, top + 1):
                    for node2 in buckets[k2]:
                        if node2 not in used:
                            shares.extend(self._whole_gpus(node2, need))
                            return shares
                return None
        return None

    def _whole_gpus(self, node: int, count: int) -> list[Share]:
        out: list[Share] = []
        milli, ok = self.milli[node], self.ok[node]
        for g in range(len(milli)):
            if ok[g] and milli[g] == FULL:
                out.append((node, g, FULL))
                if len(out) == count:
                    break
        return out

    def _find_shared(self, milli: int, gpu_type: str) -> list[Share] | None:
        best: tuple[int, int, int] | None = None
        for node in self.partial_nodes[gpu_type]:
            ok, free = self.ok[node], self.milli[node]
            for g, f in enumerate(free):
                if ok[g] and milli <= f < FULL and (best is None or f < best[0]):
                    best = (f, node, g)
        if best is not None:
            return [(best[1], best[2], milli)]
        whole = self.find(1, FULL, gpu_type)
        if whole is None:
            return None
        return [(whole[0][0], whole[0][1], milli)]

    def find_on_nodes(self, wanted: dict[str, int]) -> list[Share] | None:
        """The exact placement a planner asked for (node name -> GPUs), if those GPUs are free."""
        shares: list[Share] = []
        for name, count in wanted.items():
            node = self.index.get(name)
            if node is None or self.whole_free[node] < count:
                return None
            shares.extend(self._whole_gpus(node, count))
        return shares

    # ------------------------------------------------------------------------------------ changes

    def allocate(self, shares: list[Share], job: int) -> None:
        for node, g, m in shares:
            t = self.node_type[node]
            before = self.whole_free[node]
            was_full = self.milli[node][g] == FULL and self.ok[node][g]
            self.milli[node][g] -= m
            self.occupants[node][g].append(job)
            if was_full:
                self._set_whole(node, t, before, before - 1)
            self._track_partial(node, t)

    def release(self, shares: list[Share], job: int) -> None:
        for node, g, m in shares:
            t = self.node_type[node]
            self.milli[node][g] += m
            self.occupants[node][g].remove(job)
            if self.milli[node][g] == FULL and self.ok[node][g]:
                before = self.whole_free[node]
                self._set_whole(node, t, before, before + 1)
            self._track_partial(node, t)

    def fail(self, node: int, g: int) -> list[int]:
        """Mark one GPU failed; returns the jobs that were using it (the engine stops them)."""
        if not self.ok[node][g]:
            return []
        t = self.node_type[node]
        if self.milli[node][g] == FULL:
            before = self.whole_free[node]
            self._set_whole(node, t, before, before - 1)
        self.ok[node][g] = False
        self.healthy[t] -= 1
        self._track_partial(node, t)
        return list(self.occupants[node][g])

    def repair(self, node: int, g: int) -> None:
        if self.ok[node][g]:
            return
        t = self.node_type[node]
        self.ok[node][g] = True
        self.healthy[t] += 1
        if self.milli[node][g] == FULL:
            before = self.whole_free[node]
            self._set_whole(node, t, before, before + 1)
        self._track_partial(node, t)

    def _set_whole(self, node: int, t: str, before: int, after: int) -> None:
        buckets = self.buckets[t]
        del buckets[before][node]
        buckets[after][node] = None
        self.whole_free[node] = after
        self.free_total[t] += after - before

    def _track_partial(self, node: int, t: str) -> None:
        ok, milli = self.ok[node], self.milli[node]
        if any(ok[g] and 0 < milli[g] < FULL for g in range(len(milli))):
            self.partial_nodes[t][node] = None
        else:
            self.partial_nodes[t].pop(node, None)

    # ------------------------------------------------------------------------------ measurements

    def fragmented(self, smallest_pending: dict[str, int]) -> int:
        """Free whole GPUs that no pending job can use: on nodes with fewer free GPUs than the
        smallest pending gang that may run on the node's type (gangs bigger than a node are counted
        as able to use any free GPU, since they may span nodes). Types no pending job wants count
        as fragmented only if some job is pending at all: those GPUs idle while work waits."""
        total = 0
        for t, buckets in self.buckets.items():
            need = smallest_pending.get(t)
            if need is None:
                total += self.free_total[t] if smallest_pending else 0
                continue
            if need > len(buckets) - 1 or self.spread_small_jobs:
                if self.free_total[t] < need:
                    total += self.free_total[t]
                continue
            for k in range(1, min(need, len(buckets))):
                total += k * len(buckets[k])
        return total
