"""Exact node placement for the jobs that run in the first slot.

The planning model aggregates GPUs by type; only the slot about to start needs real nodes. A gang
is kept on as few nodes as possible, inside one topology domain (NVLink island / rack) when one
can hold it, and best-fit so that whole nodes stay whole for the next 8-GPU job instead of being
nibbled into 1-2 GPU holes.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gpusched.model import GpuType, Placement
from gpusched.model import Node as NodeSpec
from gpusched.solver.instance import Instance, JobInfo
from gpusched.solver.schedule import Schedule

FreeView = Mapping[str, int]
"""The one free-GPU view every caller places on: node name -> GPUs free for new work now."""
Pick = list[tuple[str, int]]
"""A placement: (node, GPUs) pairs."""


@dataclass(frozen=True)
class Gang:
    """What a gang asks of the nodes: its size, the type the plan chose, how it splits."""

    gpus: int
    gpu_type: str | None = None
    """The type the plan gave it (None: any type the filters let through)."""
    per_node: int = 1
    """GPUs per worker: a node takes whole workers only."""
    max_nodes: int | None = None
    min_memory_gib: float = 0.0


# ------------------------------------------------------------------- filters (kube-scheduler style)
# Each says whether one node may hold any of the gang now; `feasible` applies them all.


def type_matches(node: NodeSpec, gang: Gang, types: Mapping[str, GpuType]) -> bool:
    return gang.gpu_type is None or node.gpu_type == gang.gpu_type


def memory_fits(node: NodeSpec, gang: Gang, types: Mapping[str, GpuType]) -> bool:
    t = types.get(node.gpu_type)
    return t is None or t.memory_gib >= gang.min_memory_gib


def open_to_new_work(node: NodeSpec, gang: Gang, types: Mapping[str, GpuType]) -> bool:
    """Not cordoned, and some GPU healthy (a node's unhealthy GPUs are never handed out)."""
    return node.healthy_gpus > 0


FILTERS = (type_matches, memory_fits, open_to_new_work)


def feasible(
    nodes: Iterable[NodeSpec], gang: Gang, types: Mapping[str, GpuType], free: FreeView
) -> list[NodeSpec]:
    """Nodes that pass every filter and hold at least one whole worker of the gang now.

    Free GPUs (`free`) already leave out GPUs that are unhealthy, held, or about to go into
    maintenance before the gang would end (see `free_through`)."""
    return [
        n for n in nodes if free.get(n.name, 0) >= gang.per_node and all(f(n, gang, types) for f in FILTERS)
    ]


def passing(nodes: Iterable[NodeSpec], gang: Gang, types: Mapping[str, GpuType]) -> list[NodeSpec]:
    """The nodes every filter lets through, whatever is free: a caller that places many gangs of one
    kind (the front-end's window fill) filters once and passes `filtered=True` to place_gang."""
    return [n for n in nodes if all(f(n, gang, types) for f in FILTERS)]


# ---------------------------------------------------------------------------------------- scores
# Lower is better; `rank` orders whole picks by them, in this order.


def nodes_used(pick: Pick, free: FreeView) -> int:
    """Topology: a gang on fewer nodes talks over NVLink, not the network."""
    return len(pick)


def fragmentation(pick: Pick, free: FreeView) -> int:
    """GPUs left over on the nodes it touches: best fit keeps whole nodes whole for the next
    big gang instead of nibbling them into 1-2 GPU holes."""
    return sum(free[n] - g for n, g in pick)


SCORES = (nodes_used, fragmentation)
"""Scores over the free view; `rank` adds the maintenance distance, which needs the windows."""


def maintenance_distance(pick: Pick, until: Mapping[str, float] | None) -> float:
    """Distance to maintenance: a gang on nodes whose GPUs go out of service later (or never)
    leaves the nodes about to be drained to short work. Lower is better (minus the nearest)."""
    if not until:
        return 0.0
    return -min(until.get(n, math.inf) for n, _ in pick)


def rank(pick: Pick, free: FreeView, until: Mapping[str, float] | None = None) -> tuple[float, ...]:
    return (*(score(pick, free) for score in SCORES), maintenance_distance(pick, until))


# ------------------------------------------------------------------------------------- choosing


def _pick(
    free: FreeView,
    candidates: list[str],
    gpus: int,
    max_nodes: int | None,
    per_node: int = 1,
    until: Mapping[str, float] | None = None,
) -> Pick | None:
    """Fewest nodes for `gpus` GPUs among candidates, in whole workers; among equals, the tightest fit."""
    room: Mapping[str, int] = (
        free if per_node == 1 else {n: free[n] // per_node * per_node for n in candidates}
    )
    best: tuple[int, float, str] | None = None
    for n in candidates:  # one node: the one it fills best (one pass: this runs per queued job)
        if room[n] >= gpus:
            key = (free[n] - gpus, -until.get(n, math.inf) if until else 0.0, n)
            if best is None or key < best:
                best = key
    if best is not None:
        return [(best[2], gpus)]
    if max_nodes == 1:
        return None
    usable = [n for n in candidates if room[n] > 0]
    # Several nodes: largest first so the gang spans few nodes, then best-fit for the remainder.
    ordered = sorted(usable, key=lambda n: (-room[n], n))
    chosen: list[tuple[str, int]] = []
    left = gpus
    pool = list(ordered)
    while left > 0 and pool:
        tail_fit = [n for n in pool if room[n] >= left]
        if tail_fit:
            node = min(tail_fit, key=lambda n: (free[n] - left, n))
            chosen.append((node, left))
            left = 0
            break
        node = pool.pop(0)
        chosen.append((node, room[node]))
        left -= room[node]
    if left > 0 or (max_nodes is not None and len(chosen) > max_nodes):
        return None
    return chosen


def place_gang(
    nodes: Iterable[NodeSpec],
    free: FreeView,
    gang: Gang,
    types: Mapping[str, GpuType] | None = None,
    filtered: bool = False,
    until: Mapping[str, float] | None = None,
) -> Pick | None:
    """The one placement routine: filter the nodes, then the best-ranked pick inside one topology
    domain, else across domains; None when nothing holds the gang now. filtered: `nodes` already
    passed the filters (see `passing`); only the free-GPU check is left. until: per node, when its
    GPUs next go out of service (absent: not in sight), for the maintenance-distance score."""
    if filtered:
        ok = [n for n in nodes if free.get(n.name, 0) >= gang.per_node]
    else:
        ok = feasible(nodes, gang, types or {}, free)
    domains: dict[str | None, list[str]] = defaultdict(list)
    for n in ok:
        domains[n.topology_domain].append(n.name)
    best: Pick | None = None
    for names in domains.values():
        pick = _pick(free, names, gang.gpus, gang.max_nodes, gang.per_node, until)
        if pick is not None and (best is None or rank(pick, free, until) < rank(best, free, until)):
            best = pick
    if best is None and len(domains) > 1:  # no single domain holds it: span domains
        best = _pick(free, [n.name for n in ok], gang.gpus, gang.max_nodes, gang.per_node, until)
    return best


def place_first_slot(inst: Instance, schedule: Schedule) -> tuple[dict[int, list[Placement]], list[int]]:
    """Placements for every job running in slot 0, and the jobs that could not be placed."""
    free = {name: caps[0] for name, caps in inst.node_capacity.items()}
    placements: dict[int, list[Placement]] = {}
    failed: list[int] = []
    starting: list[JobInfo] = []
    for j, choice in schedule.items():
        if choice.start != 0:
            continue
        info = inst.jobs[j]
        if choice.option is info.continue_option and info.job.running is not None:
            for node, g in info.job.running.nodes.items():
                free[node] -= g
            placements[j] = [Placement(node=n, gpus=g) for n, g in info.job.running.nodes.items()]
        else:
            starting.append(info)
    lowest = _lowest_ahead(inst)
    until = _until(lowest)
    # Most constrained first: gangs limited in how many nodes they may span, then the biggest.
    for info in sorted(starting, key=lambda i: (i.job.max_nodes or 1 << 30, -i.gpus, i.index)):
        choice = schedule[info.index]
        nodes = [n for n in inst.nodes_by_type[choice.option.type_index] if free[n.name] > 0]
        # Only nodes that keep their GPUs for the whole run (a maintenance window on a node would
        # stop the job part-way): a gang that finds none is re-planned to start later.
        if lowest:
            end = max(1, min(choice.end(), inst.n_slots))
            best = place_now(_free_through(free, nodes, lowest, end), nodes, info, until)
        else:
            best = place_now(free, nodes, info)
        if best is None:
            failed.append(info.index)
            continue
        for node, g in best:
            free[node] -= g
        placements[info.index] = [Placement(node=n, gpus=g) for n, g in best]
    return placements, failed


def _lowest_ahead(inst: Instance) -> dict[str, list[int]]:
    """Per node whose capacity changes in the horizon: the least it has over slots 0..t, for each t."""
    out = {}
    for name, caps in inst.node_capacity.items():
        if min(caps) != max(caps):
            out[name] = list(itertools.accumulate(caps, min))
    return out


def _free_through(
    free: dict[str, int], nodes: list[NodeSpec], lowest: dict[str, list[int]], end: int
) -> dict[str, int]:
    """GPUs of each node free now that also stay in service until slot `end` (exclusive).

    What is already placed on a node is assumed to hold it throughout: conservative, and exact for
    the jobs that outlast this one.
    """
    out = dict(free)
    for n in nodes:
        ahead = lowest.get(n.name)
        if ahead is not None:
            room = free[n.name]
            out[n.name] = max(0, min(room, ahead[end - 1] - (ahead[0] - room)))
    return out


def place_on(
    free: dict[str, int], nodes: list[NodeSpec], info: JobInfo, until: Mapping[str, float] | None = None
) -> list[tuple[str, int]] | None:
    """The planner's use of `place_gang`: nodes of the type the plan chose, the job's max_nodes."""
    return place_gang(nodes, free, Gang(gpus=info.gpus, max_nodes=info.job.max_nodes), until=until)


def place_now(
    free: dict[str, int], nodes: list[NodeSpec], info: JobInfo, until: Mapping[str, float] | None = None
) -> list[tuple[str, int]] | None:
    """`place_on` for a start in slot 0: a running job that starts now (it does not go on in place)
    gets other GPUs than exactly the ones it holds (see `_elsewhere`)."""
    pick = place_on(free, nodes, info, until)
    if pick is not None and _same_nodes(pick, info):
        pick = _elsewhere(free, nodes, info, until)
    return pick


def _same_nodes(pick: list[tuple[str, int]], info: JobInfo) -> bool:
    """A running job restarted now (it may not go on in place) on exactly the GPUs it holds."""
    running = info.job.running
    return running is not None and dict(pick) == dict(running.nodes)


def _elsewhere(
    room: dict[str, int], nodes: list[NodeSpec], info: JobInfo, until: Mapping[str, float] | None
) -> list[tuple[str, int]] | None:
    """A placement now for a running job that may not go on in place, other than the one it holds.

    Restarting it on exactly its own GPUs is no plan form of the specification (rule 8: a running
    job stopped now either waits, `preempted`, or runs now on other nodes, `migrated`); were those
    GPUs really free for it, it would be going on in place, which the keep-in-place rule decided
    against. So one of its nodes is left out at a time; when no other placement exists the job
    waits a slot (the caller delays it, and the gap shows the cost)."""
    running = info.job.running
    assert running is not None
    for name in sorted(running.nodes):
        pick = place_on({n: (0 if n == name else g) for n, g in room.items()}, nodes, info, until)
        if pick is not None and not _same_nodes(pick, info):
            return pick
    return None


def _until(lowest: dict[str, list[int]]) -> dict[str, float]:
    """Per node whose capacity drops in the horizon: the first slot it has less than now."""
    out: dict[str, float] = {}
    for name, ahead in lowest.items():
        drop = next((t for t, cap in enumerate(ahead) if cap < ahead[0]), None)
        if drop is not None:
            out[name] = float(drop)
    return out
