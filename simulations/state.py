"""Node-level GPU bookkeeping: which GPU of which node is free, shared, failed, and who holds it.

Jobs hold specific GPUs on specific nodes (gangs may span nodes), so fragmentation is a real,
measurable effect rather than an artefact of pooled counts. The free side is the one free-GPU view
(gpusched.solver.freegpus.FreeGpus: GPUs in thousandths, nodes bucketed per type by wholly free
GPUs) that the solver and the operator place on too; where a job goes is the placement module's
choice (gpusched.solver.placement.place). This adds who holds each GPU (a failure stops them) and
the fragmentation measurement.
"""

from __future__ import annotations

from gpusched.model import Cluster
from gpusched.solver.freegpus import FULL, FreeGpus, Share
from gpusched.solver.placement import Gang

__all__ = ["FULL", "ClusterState", "Share"]


class ClusterState(FreeGpus):
    """Free/used/failed state of every GPU of a Cluster, and the jobs on each GPU."""

    def __init__(self, cluster: Cluster, spread_small_jobs: bool = False) -> None:
        super().__init__(cluster.nodes, types=cluster.type_map())
        self.build()  # the engine, outages and Helios read the index and the GPUs directly
        self.cluster = cluster
        self.types = cluster.type_map()
        self.spread_small_jobs = spread_small_jobs
        self.occupants: list[list[list[int]]] = [[[] for _ in range(n.gpu_count)] for n in cluster.nodes]

    def can_ever_fit(self, gpus: int, gpu_type: str) -> bool:
        """Whether the type's whole cluster (healthy or not) could ever hold the gang."""
        return self.cluster.total_gpus(gpu_type) >= gpus

    def gang(self, gpus: int, milli: int, gpu_type: str) -> Gang:
        """What the engine asks of the placement module: a gang that fits on one node of its type
        stays on one node unless small jobs may spread (SimConfig.spread_small_jobs)."""
        one_node = not self.spread_small_jobs and gpus <= self.max_node.get(gpu_type, 0)
        return Gang(gpus=gpus, gpu_type=gpu_type, max_nodes=1 if one_node else None, milli=milli)

    # ------------------------------------------------------------------------------------ changes

    def allocate(self, shares: list[Share], job: int) -> None:
        self.take(shares)
        occupants = self.occupants
        for node, g, _ in shares:
            occupants[node][g].append(job)

    def release(self, shares: list[Share], job: int) -> None:
        self.give(shares)
        occupants = self.occupants
        for node, g, _ in shares:
            occupants[node][g].remove(job)

    def fail(self, node: int, g: int) -> list[int]:
        """Mark one GPU failed; returns the jobs that were using it (the engine stops them)."""
        if not self.close(node, g):
            return []
        return list(self.occupants[node][g])

    def repair(self, node: int, g: int) -> None:
        self.reopen(node, g)

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
