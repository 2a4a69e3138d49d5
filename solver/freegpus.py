"""The one free-GPU view every placement looks at: the solver's first slot and packing, the
operator's starts (through the front-end) and the simulator's engine and planner policy.

Per node and GPU it holds the thousandths of the GPU still free ("milli": a wholly free GPU has
FULL = 1000, a shared one less; Alibaba's gpu_milli pods share a GPU) and whether the GPU is open to
new work (healthy, node not cordoned, not taken by a maintenance window). Per GPU type, nodes are
bucketed by their number of wholly free GPUs, so the best fit for a gang that fits on one node is
the first non-empty bucket at or above its size: O(GPUs per node) per lookup, not O(nodes), which
82k-job replays on 2,816-GPU (Philly) and 6,212-GPU (openb) clusters need. What to pick is decided
by gpusched.solver.placement; this module only keeps the view true and the index in step with it.

Pure: no I/O, no clock, no simulator or operator imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gpusched.model import Node as NodeSpec

FULL = 1000
"""Thousandths of a GPU in one whole GPU."""
Share = tuple[int, int, int]
"""(node index, GPU index on the node, milli): one GPU's share a job holds."""


class FreeGpus:
    """Free/open state of every GPU of a list of nodes, indexed for best-fit lookups.

    Built open (every healthy GPU of a node that is not cordoned is free), or from `free`: per node
    name, how many wholly free GPUs it has for new work (the rest of its open GPUs count as held
    by someone). Changed only through take/give/close/reopen (and hold/unhold by count), which keep
    the buckets in step.
    """

    def __init__(
        self, nodes: Sequence[NodeSpec], free: Mapping[str, int] | None = None, types: Iterable[str] = ()
    ) -> None:
        self.nodes = list(nodes)
        self.node_name = [n.name for n in self.nodes]
        self.node_type = [n.gpu_type for n in self.nodes]
        self.node_size = [n.gpu_count for n in self.nodes]
        self.node_domain = [n.topology_domain for n in self.nodes]
        self.index = {name: i for i, name in enumerate(self.node_name)}
        self.max_node: dict[str, int] = dict.fromkeys(types, 0)
        for n in self.nodes:
            self.max_node[n.gpu_type] = max(self.max_node.get(n.gpu_type, 0), n.gpu_count)
        self.of_type: dict[str, list[int]] = {t: [] for t in self.max_node}
        self.domains: dict[str, set[str | None]] = {t: set() for t in self.max_node}
        for i, (t, domain) in enumerate(zip(self.node_type, self.node_domain, strict=True)):
            self.of_type[t].append(i)
            self.domains[t].add(domain)
        self._usable = [0 if n.cordoned else n.gpu_count - n.unhealthy_gpus for n in self.nodes]
        """Per node, GPUs open to new work when the view was built (healthy, not cordoned)."""
        self._open(free)

    def with_free(self, free: Mapping[str, int] | Sequence[int]) -> FreeGpus:
        """A view of the same nodes with other GPUs free: per name, or a list in node order (the
        solver's packing builds one per job and slot; the node layout is shared, not rebuilt)."""
        out = object.__new__(FreeGpus)
        out.nodes, out.node_name, out.node_type = self.nodes, self.node_name, self.node_type
        out.node_size, out.node_domain, out.index = self.node_size, self.node_domain, self.index
        out.max_node, out.of_type, out.domains, out._usable = (
            self.max_node,
            self.of_type,
            self.domains,
            self._usable,
        )
        out._open(free)
        return out

    def _open(self, free: Mapping[str, int] | Sequence[int] | None) -> None:
        """The free side: every open GPU free (None), or as many per node as `free` says."""
        usable = self._usable
        if free is None:
            rooms = usable[:]
        else:
            given = [free.get(name, 0) for name in self.node_name] if isinstance(free, Mapping) else free
            rooms = [r if r > 0 else 0 for r in map(min, given, usable)]
        self.whole_free: list[int] = rooms
        """Per node, wholly free open GPUs."""
        self.buckets: dict[str, list[dict[int, None]]] = {}
        """Per type, per count k of wholly free GPUs: the nodes with exactly k (insertion-ordered)."""
        self.free_total: dict[str, int] = {}
        """Per type, wholly free GPUs."""
        self.healthy: dict[str, int] = {}
        """Per type, GPUs open to new work (free or not)."""
        self.partial_nodes: dict[str, dict[int, None]] = {}
        """Per type, nodes with an open GPU partly shared (0 < milli < FULL free)."""
        self.milli: list[list[int]] = []
        """Per node, per GPU: thousandths free."""
        self.ok: list[list[bool]] = []
        """Per node, per GPU: open to new work."""
        self.built = False
        """Whether the index and the per-GPU state above exist yet (see `build`)."""

    def build(self) -> None:
        """Build the bucket index and the per-GPU state, on first need: the scanning placements
        read only `whole_free`, so a view the solver builds per job and slot to count GPUs per node
        (packing) never pays for them; the engine's view builds them at once."""
        if self.built:
            return
        self.built = True
        self.buckets = {t: [{} for _ in range(top + 1)] for t, top in self.max_node.items()}
        self.free_total = dict.fromkeys(self.max_node, 0)
        self.healthy = dict.fromkeys(self.max_node, 0)
        self.partial_nodes = {t: {} for t in self.max_node}
        buckets, free_total, healthy = self.buckets, self.free_total, self.healthy
        rooms = zip(self.node_type, self.node_size, self._usable, self.whole_free, strict=True)
        for i, (t, size, usable, room) in enumerate(rooms):
            buckets[t][room][i] = None
            free_total[t] += room
            healthy[t] += usable
            # Out-of-service GPUs count as free-but-closed (milli FULL, ok False), so a repair
            # reopens them; GPUs held by others count as open and taken (milli 0).
            self.ok.append([True] * usable + [False] * (size - usable))
            self.milli.append([FULL] * room + [0] * (usable - room) + [FULL] * (size - usable))

    # ------------------------------------------------------------------------------------ queries

    @property
    def total_healthy(self) -> int:
        self.build()
        return sum(self.healthy.values())

    @property
    def total_free(self) -> int:
        self.build()
        return sum(self.free_total.values())

    def free_map(self) -> dict[str, int]:
        """Node name -> wholly free GPUs."""
        return dict(zip(self.node_name, self.whole_free, strict=True))

    def whole_gpus(self, node: int, count: int) -> list[Share]:
        """`count` wholly free open GPUs of `node` (lowest indices first)."""
        out: list[Share] = []
        if count <= 0:
            return out
        self.build()
        milli, ok = self.milli[node], self.ok[node]
        for g in range(len(milli)):
            if ok[g] and milli[g] == FULL:
                out.append((node, g, FULL))
                if len(out) == count:
                    break
        return out

    def on_nodes(self, wanted: Mapping[str, int]) -> list[Share] | None:
        """Whole GPUs on exactly the named nodes (name -> GPUs), if that many are free there."""
        shares: list[Share] = []
        for name, count in wanted.items():
            node = self.index.get(name)
            if node is None or self.whole_free[node] < count:
                return None
            shares.extend(self.whole_gpus(node, count))
        return shares

    def copy(self) -> FreeGpus:
        """A scratch view to try placements on without touching this one."""
        out = object.__new__(FreeGpus)
        out.nodes = self.nodes
        out.node_name, out.node_type, out.node_size = self.node_name, self.node_type, self.node_size
        out.node_domain, out.index, out.max_node = self.node_domain, self.index, self.max_node
        out.of_type, out.domains = self.of_type, self.domains
        out.buckets = {t: [dict(b) for b in bs] for t, bs in self.buckets.items()}
        out.free_total = dict(self.free_total)
        out.healthy = dict(self.healthy)
        out.partial_nodes = {t: dict(p) for t, p in self.partial_nodes.items()}
        out.milli = [m[:] for m in self.milli]
        out.ok = [o[:] for o in self.ok]
        out.whole_free = self.whole_free[:]
        out._usable, out.built = self._usable, self.built
        return out

    # ------------------------------------------------------------------------------------ changes

    def take(self, shares: Iterable[Share]) -> None:
        """Hand out GPU shares (a placement starting)."""
        if not self.built:
            self.build()
        for node, g, m in shares:
            milli, ok = self.milli[node], self.ok[node]
            was_full = milli[g] == FULL and ok[g]
            milli[g] -= m
            t = self.node_type[node]
            if was_full:
                self._set_whole(node, t, self.whole_free[node] - 1)
            if m < FULL or not was_full:
                self._track_partial(node, t)

    def give(self, shares: Iterable[Share]) -> None:
        """Take back GPU shares (a placement ending)."""
        if not self.built:
            self.build()
        for node, g, m in shares:
            milli, ok = self.milli[node], self.ok[node]
            milli[g] += m
            t = self.node_type[node]
            if milli[g] == FULL and ok[g]:
                self._set_whole(node, t, self.whole_free[node] + 1)
            if m < FULL or milli[g] != FULL:
                self._track_partial(node, t)

    def hold(self, node: int, count: int) -> None:
        """Mark `count` wholly free GPUs of `node` taken (callers that count GPUs per node)."""
        self.take(self.whole_gpus(node, count))

    def unhold(self, node: int, count: int) -> None:
        """Free `count` open GPUs of `node` that are wholly taken (a gang there stopped)."""
        self.build()
        milli, ok = self.milli[node], self.ok[node]
        back = [(node, g, FULL) for g in range(len(milli)) if ok[g] and milli[g] == 0][:count]
        self.give(back)

    def close(self, node: int, g: int) -> bool:
        """Close one GPU to new work (failure, maintenance); False if it already was."""
        self.build()
        ok = self.ok[node]
        if not ok[g]:
            return False
        t = self.node_type[node]
        if self.milli[node][g] == FULL:
            self._set_whole(node, t, self.whole_free[node] - 1)
        ok[g] = False
        self.healthy[t] -= 1
        self._track_partial(node, t)
        return True

    def reopen(self, node: int, g: int) -> None:
        """Open one GPU again (repaired, maintenance over)."""
        self.build()
        ok = self.ok[node]
        if ok[g]:
            return
        t = self.node_type[node]
        ok[g] = True
        self.healthy[t] += 1
        if self.milli[node][g] == FULL:
            self._set_whole(node, t, self.whole_free[node] + 1)
        self._track_partial(node, t)

    def _set_whole(self, node: int, t: str, after: int) -> None:
        before = self.whole_free[node]
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
