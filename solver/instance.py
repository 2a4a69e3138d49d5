"""The planning instance: the cluster and jobs turned into slots, capacity profiles and options.

Everything downstream (greedy, MILP, placement) works on integers: slots, GPU counts, and for
each job the (type, start slot, duration in slots) options it may take. Building the options once
here keeps every algorithm on exactly the same feasible set, which is what makes their objectives
comparable and the lower bound meaningful.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpusched.model import Cluster, GpuType, Job, Node
from gpusched.solver.options import PlanOptions

EPS = 1e-9


@dataclass(frozen=True)
class TypeOption:
    """Running job j on GPU type k: how many slots it needs and what each start costs."""

    type_index: int
    slots: int
    """Slots the job occupies once started."""
    run_hours: float
    """Exact hours of GPU time per GPU (work / speed + overheads), for the bill."""
    restart: bool = False
    """This option restarts a running job (it pays the restart overhead and migration penalty)."""


@dataclass
class JobInfo:
    index: int
    job: Job
    gpus: int
    release_slot: int
    deadline_slot: int | None
    """Last slot boundary by which the job must be finished (exclusive end slot), if any."""
    options: list[TypeOption] = field(default_factory=list)
    continue_option: TypeOption | None = None
    """For a running job that may keep its nodes: the option of running on without a restart."""
    running_type: int | None = None
    fixed: bool = False
    """A non-preemptible running job: it keeps its nodes; only the continue option exists."""
    reason: str | None = None
    reason_code: str | None = None

    @property
    def weight(self) -> float:
        return self.job.priority

    @property
    def plannable(self) -> bool:
        return bool(self.options) or self.continue_option is not None


@dataclass
class Instance:
    cluster: Cluster
    options: PlanOptions
    types: list[GpuType]
    slot: float
    n_slots: int
    capacity: list[list[int]]
    """capacity[k][t]: schedulable GPUs of type k in slot t."""
    node_capacity: dict[str, list[int]]
    """Per node and slot: schedulable GPUs (for the placement of the slots that start now)."""
    nodes_by_type: list[list[Node]]
    jobs: list[JobInfo]

    def slot_start(self, t: int) -> float:
        return t * self.slot

    def start_range(self, info: JobInfo, opt: TypeOption) -> range:
        """Start slots of an option: a job may start in any slot of the horizon and run past it."""
        if opt is info.continue_option:
            return range(0, 1)
        return range(info.release_slot, self.n_slots)

    def all_options(self, info: JobInfo) -> list[TypeOption]:
        return ([info.continue_option] if info.continue_option else []) + info.options


def _slots_for(hours: float, slot: float) -> int:
    return max(1, math.ceil(hours / slot - EPS))


def _keep_running_on_cordoned(
    cluster: Cluster, jobs: list[Job], node_capacity: dict[str, list[int]], slot: float
) -> None:
    """A cordoned node takes no new work, but the jobs already on it keep their GPUs.

    Its capacity is what those jobs hold, for the slots their remaining run covers if they go on in
    place, never more than its working GPUs: so they may continue, and nothing new fits there.
    """
    cordoned = {n.name: n for n in cluster.nodes if n.cordoned}
    if not cordoned:
        return
    tmap = cluster.type_map()
    for job in jobs:
        if job.running is None:
            continue
        for name, gpus in job.running.nodes.items():
            node = cordoned.get(name)
            if node is None:
                continue
            hours = job.remaining_work(tmap) / job.speed_on(tmap[node.gpu_type])
            row = node_capacity[name]
            for t in range(min(len(row), _slots_for(hours, slot))):
                row[t] = min(node.working_gpus, row[t] + gpus)


def build_instance(cluster: Cluster, jobs: list[Job], options: PlanOptions) -> Instance:
    slot = options.slot
    n_slots = max(1, math.ceil(options.horizon / slot - EPS))
    types = list(cluster.gpu_types)
    type_index = {t.name: i for i, t in enumerate(types)}
    nodes_by_type: list[list[Node]] = [[] for _ in types]
    for node in cluster.nodes:
        nodes_by_type[type_index[node.gpu_type]].append(node)

    node_capacity = {n.name: [n.healthy_gpus] * n_slots for n in cluster.nodes}
    _keep_running_on_cordoned(cluster, jobs, node_capacity, slot)
    type_cut = [[0] * n_slots for _ in types]
    for change in cluster.maintenance:
        first = max(0, math.floor(change.start / slot + EPS))
        last = min(n_slots, math.ceil(change.end / slot - EPS))
        for t in range(first, last):
            if change.node is not None:
                row = node_capacity[change.node]
                row[t] = max(0, row[t] - (change.gpus if change.gpus is not None else row[t]))
            else:
                assert change.gpu_type is not None and change.gpus is not None
                type_cut[type_index[change.gpu_type]][t] += change.gpus
    capacity = [[0] * n_slots for _ in types]
    for k, nodes in enumerate(nodes_by_type):
        for t in range(n_slots):
            capacity[k][t] = max(0, sum(node_capacity[n.name][t] for n in nodes) - type_cut[k][t])

    node_by_name = {n.name: n for n in cluster.nodes}
    tmap = cluster.type_map()
    infos: list[JobInfo] = []
    for j, job in enumerate(jobs):
        info = JobInfo(
            index=j,
            job=job,
            gpus=job.gpus,
            release_slot=min(n_slots, math.ceil(job.release / slot - EPS)),
            deadline_slot=None if job.deadline is None else math.floor(job.deadline / slot + EPS),
        )
        remaining = job.remaining_work(tmap)
        if job.running is not None:
            running_types = {node_by_name[name].gpu_type for name in job.running.nodes}
            info.running_type = type_index[running_types.pop()]
            info.release_slot = 0
            k0 = info.running_type
            hours = remaining / job.speed_on(types[k0])
            if all(node_capacity[name][0] >= g for name, g in job.running.nodes.items()):
                info.continue_option = TypeOption(k0, _slots_for(hours, slot), hours)
            info.fixed = not job.preemptible and info.continue_option is not None
        if not info.fixed:
            restart_hours = job.restart_overhead + (options.migration_penalty if job.running else 0.0)
            for k, gtype in enumerate(types):
                if not job.allows(gtype):
                    continue
                hours = remaining / job.speed_on(gtype) + (restart_hours if job.running else 0.0)
                info.options.append(
                    TypeOption(k, _slots_for(hours, slot), hours, restart=job.running is not None)
                )
        _explain_unplannable(info, cluster, nodes_by_type, types)
        infos.append(info)
    return Instance(cluster, options, types, slot, n_slots, capacity, node_capacity, nodes_by_type, infos)


def _explain_unplannable(
    info: JobInfo, cluster: Cluster, nodes_by_type: list[list[Node]], types: list[GpuType]
) -> None:
    """Drop options that can never run (gang too big for the pool) and say why none is left."""
    job = info.job
    if info.continue_option is not None:
        return
    allowed_by_type = [t for t in types if job.gpu_types is None or t.name in job.gpu_types]
    if not allowed_by_type:
        info.reason_code, info.reason = "type", f"none of its GPU types ({', '.join(job.gpu_types or [])}) is in the cluster"
        info.options = []
        return
    if not any(t.memory_gib >= job.min_gpu_memory_gib for t in allowed_by_type):
        best = max(t.memory_gib for t in allowed_by_type)
        info.reason_code = "memory"
        info.reason = f"needs {job.min_gpu_memory_gib:g} GiB per GPU; allowed types have at most {best:g} GiB"
        info.options = []
        return
    kept = []
    largest = 0
    for opt in info.options:
        pool = sorted((n.healthy_gpus for n in nodes_by_type[opt.type_index]), reverse=True)
        reachable = sum(pool[: job.max_nodes] if job.max_nodes else pool)
        largest = max(largest, reachable)
        if reachable >= job.gpus:
            kept.append(opt)
    if not kept:
        names = [types[o.type_index].name for o in info.options]
        spread = f" on at most {job.max_nodes} node(s)" if job.max_nodes else ""
        info.reason_code = "gang"
        info.reason = (
            f"gang of {job.gpus} GPUs is larger than any allowed pool{spread} "
            f"({', '.join(names)}: at most {largest})"
        )
    info.options = kept
