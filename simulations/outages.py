"""Which GPUs are out of service, and why: random failures and the cluster's maintenance windows.

A GPU is usable only when no cause holds it: a failure awaiting repair, or one or more maintenance
windows (`Cluster.maintenance`, in hours of simulated time). Keeping the causes apart means a
repair during a window does not bring the GPU back early, and a window's end does not revive a GPU
that failed inside it. The engine owns the events; this module owns the bookkeeping and the choice
of GPUs a window takes, so every policy sees the same outages.
"""

from __future__ import annotations

from collections import Counter

from gpusched.model import CapacityChange
from gpusched.simulations.state import FULL, ClusterState

Gpu = tuple[int, int]
"""(node index, GPU index on the node)."""


class Outages:
    def __init__(self, state: ClusterState, windows: list[CapacityChange]) -> None:
        self.state = state
        self.windows = windows
        self.failed: set[Gpu] = set()
        self.held: Counter[Gpu] = Counter()
        self.taken: dict[int, list[Gpu]] = {}

    def fail(self, gpu: Gpu) -> list[int]:
        """A random failure; returns the jobs that were using the GPU."""
        self.failed.add(gpu)
        return self.state.fail(*gpu)

    def repair(self, gpu: Gpu) -> None:
        self.failed.discard(gpu)
        if not self.held[gpu]:
            self.state.repair(*gpu)

    def begin(self, window: int) -> list[int]:
        """Window `window` starts: take its GPUs; returns the jobs running on them (to be drained)."""
        gpus = self._choose(self.windows[window])
        self.taken[window] = gpus
        victims: list[int] = []
        for gpu in gpus:
            self.held[gpu] += 1
            if self.held[gpu] == 1 and gpu not in self.failed:
                victims.extend(self.state.fail(*gpu))
        return list(dict.fromkeys(victims))

    def end(self, window: int) -> None:
        for gpu in self.taken.pop(window, []):
            self.held[gpu] -= 1
            if not self.held[gpu]:
                del self.held[gpu]
                if gpu not in self.failed:
                    self.state.repair(*gpu)

    def _choose(self, window: CapacityChange) -> list[Gpu]:
        """The GPUs a window takes, least disruptive first.

        A named node gives all its GPUs, or `gpus` of them; a GPU type gives `gpus` from all its
        nodes. Free GPUs go first, taken from the nodes with the fewest free ones (fragments rather
        than whole nodes that a large gang could use), then partly used, then busy GPUs; GPUs already
        out of service count last, so a window removes capacity whenever there is some to remove.
        """
        state = self.state
        if window.node is not None:
            nodes = [state.index[window.node]]
            want = window.gpus or state.node_size[nodes[0]]
        else:
            nodes = [i for i, t in enumerate(state.node_type) if t == window.gpu_type]
            want = window.gpus or 0

        def rank(gpu: Gpu) -> tuple[int, int, int, int]:
            node, g = gpu
            if not state.ok[node][g] or self.held[gpu]:
                kind = 3
            elif state.milli[node][g] == FULL:
                kind = 0
            elif state.occupants[node][g] and state.milli[node][g] > 0:
                kind = 1
            else:
                kind = 2
            return (kind, state.whole_free[node], node, g)

        every = [(node, g) for node in nodes for g in range(state.node_size[node])]
        return sorted(every, key=rank)[:want]
