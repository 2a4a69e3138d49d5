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
DEADLINE_TOL = 1e-9
"""Hours by which an end may pass its deadline and still meet it (float noise only)."""


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
    charge: int | None = None
    """GPUs it takes from its type's open capacity in each slot it runs, when not the whole gang:
    a running job going on in place on a cordoned node holds GPUs no one else may have, so those
    are not part of the open capacity and it is charged only for its GPUs elsewhere."""


@dataclass
class JobInfo:
    index: int
    job: Job
    gpus: int
    release_slot: int
    deadline_slot: int | None
    """The slot the deadline falls in (None without one); lateness is judged on the exact end
    time (see `Instance.late`), never on slot boundaries."""
    options: list[TypeOption] = field(default_factory=list)
    continue_option: TypeOption | None = None
    """For a running job that may keep its nodes: the option of running on without a restart."""
    running_type: int | None = None
    fixed: bool = False
    """A non-preemptible running job: it keeps its nodes; only the continue option exists."""
    reason: str | None = None
    reason_code: str | None = None
    stopped: str | None = None
    """A running job that cannot go on where it runs (its node lost GPUs, or goes into maintenance
    before the job would end): why. A non-preemptible one is stopped and not planned again."""

    def charge(self, opt: TypeOption) -> int:
        """GPUs the option takes from its type's open capacity per slot."""
        return self.gpus if opt.charge is None else opt.charge

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
    """Per node and slot: GPUs open to new work (none on a cordoned node; maintenance removed)."""
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

    def end_hours(self, opt: TypeOption, start: int) -> float:
        """Exact completion of a start: the slot-aligned start plus the exact run time."""
        return start * self.slot + opt.run_hours

    def late(self, info: JobInfo, opt: TypeOption, start: int) -> bool:
        """Misses its deadline: judged on the exact end time, as the plan reports it."""
        deadline = info.job.deadline
        return deadline is not None and self.end_hours(opt, start) > deadline + DEADLINE_TOL


def _slots_for(hours: float, slot: float) -> int:
    return max(1, math.ceil(hours / slot - EPS))


def _maintenance_rows(
    cluster: Cluster, types: list[GpuType], n_slots: int, slot: float
) -> tuple[dict[str, list[int]], list[list[int]]]:
    """GPUs each node loses per slot to its own maintenance windows, and each type loses to windows
    that name only a type (a slot loses them when the window overlaps any part of it)."""
    type_index = {t.name: i for i, t in enumerate(types)}
    node_cut = {n.name: [0] * n_slots for n in cluster.nodes}
    whole = {n.name: [False] * n_slots for n in cluster.nodes}
    type_cut = [[0] * n_slots for _ in types]
    for change in cluster.maintenance:
        first = max(0, math.floor(change.start / slot + EPS))
        last = min(n_slots, math.ceil(change.end / slot - EPS))
        for t in range(first, last):
            if change.node is not None:
                if change.gpus is None:
                    whole[change.node][t] = True
                else:
                    node_cut[change.node][t] += change.gpus
            else:
                assert change.gpu_type is not None and change.gpus is not None
                type_cut[type_index[change.gpu_type]][t] += change.gpus
    for name, row in whole.items():
        for t, off in enumerate(row):
            if off:
                node_cut[name][t] = 1 << 30
    return node_cut, type_cut


@dataclass
class _Kept:
    """Which running jobs may go on in place, decided before any optimisation (see `_keep_running`)."""

    continue_slots: dict[int, int]
    """Job index -> slots its remaining run takes in place, for the jobs that may go on."""
    stopped: dict[int, str]
    """Job index -> why it cannot go on where it runs."""


def _keep_running(
    cluster: Cluster,
    jobs: list[Job],
    types: list[GpuType],
    in_service: dict[str, list[int]],
    open_capacity: list[list[int]],
    n_slots: int,
    slot: float,
) -> _Kept:
    """Decide which running jobs keep their GPUs: a fixed rule, so that every plan (and the bound)
    answers the same question.

    Running jobs are taken non-preemptible first, then by priority (higher first), then by name.
    One goes on in place only if, in every slot of its remaining run inside the horizon, every node
    it holds still has its GPUs in service (working GPUs less the node's maintenance) beside the
    running jobs kept before it, and its GPUs on open (uncordoned) nodes fit its type's open
    capacity beside theirs. Unhealthy GPUs do not say which job they were under, so when a node
    lost some, the jobs taken last lose theirs. A job that cannot go on: a preemptible one may
    restart (now elsewhere, or later); a non-preemptible one is stopped and reported.
    """
    tmap = cluster.type_map()
    type_index = {t.name: i for i, t in enumerate(types)}
    nodes = {n.name: n for n in cluster.nodes}
    held = {name: [0] * n_slots for name in nodes}
    type_held = [[0] * n_slots for _ in types]
    kept = _Kept({}, {})
    running = [(j, job) for j, job in enumerate(jobs) if job.running is not None]
    running.sort(key=lambda e: (e[1].preemptible, -e[1].priority, e[1].name))
    for j, job in running:
        assert job.running is not None
        gtype = tmap[nodes[next(iter(job.running.nodes))].gpu_type]
        k = type_index[gtype.name]
        hours = job.remaining_work(tmap) / job.speed_on(gtype)
        slots = _slots_for(hours, slot)
        span = range(min(slots, n_slots))
        charge = sum(g for name, g in job.running.nodes.items() if not nodes[name].cordoned)
        why = None
        for t in span:
            for name, g in sorted(job.running.nodes.items()):
                free = in_service[name][t] - held[name][t]
                if free < g:
                    node = nodes[name]
                    if t == 0 and node.working_gpus < node.gpu_count:
                        why = (
                            f"node {name} has {max(0, free)} of its GPUs in service for it "
                            f"({node.unhealthy_gpus} unhealthy), it holds {g}"
                        )
                    else:
                        why = (
                            f"node {name} goes out of service at {_hours(t * slot)} (maintenance), "
                            f"before it would end at {_hours(hours)}"
                        )
                    break
            if why is None and charge and open_capacity[k][t] - type_held[k][t] < charge:
                why = f"{gtype.name} capacity is under maintenance at {_hours(t * slot)}, before it would end"
            if why is not None:
                break
        if why is not None:
            kept.stopped[j] = why
            continue
        kept.continue_slots[j] = slots
        for t in span:
            for name, g in job.running.nodes.items():
                held[name][t] += g
            type_held[k][t] += charge
    return kept


def _hours(h: float) -> str:
    from gpusched.units import format_hours

    return format_hours(h)


def build_instance(cluster: Cluster, jobs: list[Job], options: PlanOptions) -> Instance:
    slot = options.slot
    n_slots = max(1, math.ceil(options.horizon / slot - EPS))
    types = list(cluster.gpu_types)
    type_index = {t.name: i for i, t in enumerate(types)}
    nodes_by_type: list[list[Node]] = [[] for _ in types]
    for node in cluster.nodes:
        nodes_by_type[type_index[node.gpu_type]].append(node)

    node_cut, type_cut = _maintenance_rows(cluster, types, n_slots, slot)
    # GPUs in service (what running jobs may keep, cordoned or not) and open to new work.
    in_service = {n.name: [max(0, n.working_gpus - c) for c in node_cut[n.name]] for n in cluster.nodes}
    node_capacity = {n.name: [0] * n_slots if n.cordoned else list(in_service[n.name]) for n in cluster.nodes}
    capacity = [[0] * n_slots for _ in types]
    for k, nodes in enumerate(nodes_by_type):
        for t in range(n_slots):
            capacity[k][t] = max(0, sum(node_capacity[n.name][t] for n in nodes) - type_cut[k][t])
    kept = _keep_running(cluster, jobs, types, in_service, capacity, n_slots, slot)

    node_by_name = {n.name: n for n in cluster.nodes}
    tmap = cluster.type_map()
    pools = [sorted((n.healthy_gpus for n in nodes), reverse=True) for nodes in nodes_by_type]
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
            if j in kept.continue_slots:
                charge = sum(g for name, g in job.running.nodes.items() if not node_by_name[name].cordoned)
                info.continue_option = TypeOption(
                    k0, kept.continue_slots[j], hours, charge=None if charge == job.gpus else charge
                )
            info.stopped = kept.stopped.get(j)
            info.fixed = not job.preemptible and info.continue_option is not None
            if info.stopped is not None and not job.preemptible:
                info.reason_code = "capacity"
                info.reason = f"stopped: {info.stopped}; a non-preemptible job cannot be resumed, so it is not planned again"
                infos.append(info)
                continue
        if not info.fixed:
            restart_hours = job.restart_overhead + (options.migration_penalty if job.running else 0.0)
            for k, gtype in enumerate(types):
                if not job.allows(gtype):
                    continue
                hours = remaining / job.speed_on(gtype) + (restart_hours if job.running else 0.0)
                info.options.append(
                    TypeOption(k, _slots_for(hours, slot), hours, restart=job.running is not None)
                )
        _explain_unplannable(info, pools, types)
        infos.append(info)
    return Instance(cluster, options, types, slot, n_slots, capacity, node_capacity, nodes_by_type, infos)


def _explain_unplannable(info: JobInfo, pools: list[list[int]], types: list[GpuType]) -> None:
    """Drop options that can never run (gang too big for the pool) and say why none is left.

    pools[k]: the open GPUs of each node of type k, largest first."""
    job = info.job
    if info.continue_option is not None:
        return
    allowed_by_type = [t for t in types if job.gpu_types is None or t.name in job.gpu_types]
    if not allowed_by_type:
        info.reason_code, info.reason = (
            "type",
            f"none of its GPU types ({', '.join(job.gpu_types or [])}) is in the cluster",
        )
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
        pool = pools[opt.type_index]
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
