"""The one placement module: which nodes (and GPUs) a gang gets now, over the one free-GPU view
(gpusched.solver.freegpus.FreeGpus), for the solver's first slot and packing, the operator's starts
(through the front-end) and the simulator's engine and planner policy.

In the kube-scheduler style: filters say which nodes may hold part of the gang, scores rank whole
picks. A gang is kept on as few nodes as possible, inside one topology domain (NVLink island /
rack) when one can hold it, and best-fit so that whole nodes stay whole for the next 8-GPU job
instead of being nibbled into 1-2 GPU holes. The rule, as docs/planning.md writes it:

1. Candidates: nodes of a type the type filters pass, with room for a whole worker now.
2. In each topology domain: the node that holds the whole gang with the fewest GPUs left over
   (then the latest maintenance); else, unless max_nodes is 1, nodes by most room first, each
   taken whole until the remainder fits on one node, which is the remaining node that holds it
   with the fewest left over; more than max_nodes nodes: no pick.
3. The domain whose pick ranks best (nodes used, GPUs left over, maintenance distance); when no
   single domain holds it, step 2 over all candidates.
4. A shared GPU (a single-GPU job asking `milli` < FULL thousandths): the open, partly shared GPU
   with the least room that holds it; else a wholly free GPU where a 1-GPU gang would go.

Ties between equal nodes go to any of them. Two ways to the same pick: `_bucket_fit` reads the
view's buckets (O(GPUs per node), the simulator's hot path: one topology domain, one GPU per
worker, no maintenance score), `_scan_fit` scans the candidates (everything else).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpusched.model import GpuType, Placement
from gpusched.model import Node as NodeSpec
from gpusched.solver.freegpus import FULL, FreeGpus, Share

if TYPE_CHECKING:  # annotations only: the simulator's engine imports this without the MILP stack
    from gpusched.solver.instance import Instance, JobInfo
    from gpusched.solver.schedule import Schedule

Pick = list[tuple[str, int]]
"""A placement by name: (node, GPUs) pairs."""
Spots = list[tuple[int, int]]
"""A placement on the view: (node index, GPUs) pairs."""
Types = Mapping[str, GpuType]


@dataclass(frozen=True, slots=True)
class Gang:
    """What a gang asks of the nodes: its size, the type the plan chose, how it splits."""

    gpus: int
    gpu_type: str | None = None
    """The type the plan gave it (None: any type the filters let through)."""
    per_node: int = 1
    """GPUs per worker: a node takes whole workers only."""
    max_nodes: int | None = None
    min_memory_gib: float = 0.0
    milli: int = FULL
    """Thousandths of a GPU it needs (< FULL: a single-GPU job sharing a GPU)."""


# ------------------------------------------------------------------- filters (kube-scheduler style)
# Type filters say whether a GPU type may hold the gang at all. Node filters say whether one node
# may hold part of it now; over the free-GPU view each is a threshold on the node's wholly free GPUs
# (health, cordon and held GPUs are the view's own rule: a GPU out of service is never free), so
# they run as one comparison per node, and as a bucket range in the indexed path. Maintenance
# within the run is `free_through`'s view; max_nodes is the pick's limit. `feasible` applies them.


def type_matches(gpu_type: str, gang: Gang, types: Types) -> bool:
    return gang.gpu_type is None or gpu_type == gang.gpu_type


def memory_fits(gpu_type: str, gang: Gang, types: Types) -> bool:
    t = types.get(gpu_type)
    return t is None or t.memory_gib >= gang.min_memory_gib


TYPE_FILTERS = (type_matches, memory_fits)


def open_to_new_work(gang: Gang) -> int:
    """Some GPU free for new work (healthy, not cordoned, not held, not in maintenance)."""
    return 1


def whole_workers(gang: Gang) -> int:
    """Room for at least one whole worker of the gang."""
    return gang.per_node


NODE_FILTERS = (open_to_new_work, whole_workers)
"""Each: the fewest wholly free GPUs a node needs to pass."""


def gpu_types(view: FreeGpus, gang: Gang, types: Types) -> list[str]:
    """The view's GPU types every type filter lets through."""
    if gang.gpu_type is not None:
        names = [gang.gpu_type] if gang.gpu_type in view.of_type else []
    else:
        names = list(view.of_type)
    return [t for t in names if all(f(t, gang, types) for f in TYPE_FILTERS)]


def feasible(view: FreeGpus, gang: Gang, types: Types) -> list[int]:
    """Nodes that pass every filter: of an allowed type, with a whole worker's room now."""
    need = max(f(gang) for f in NODE_FILTERS)
    free = view.whole_free
    return [n for t in gpu_types(view, gang, types) for n in view.of_type[t] if free[n] >= need]


# ---------------------------------------------------------------------------------------- scores
# Lower is better; `rank` orders whole picks by them, in this order.


def nodes_used(pick: Spots, view: FreeGpus) -> int:
    """Topology: a gang on fewer nodes talks over NVLink, not the network."""
    return len(pick)


def fragmentation(pick: Spots, view: FreeGpus) -> int:
    """GPUs left over on the nodes it touches: best fit keeps whole nodes whole for the next
    big gang instead of nibbling them into 1-2 GPU holes."""
    return sum(view.whole_free[n] - g for n, g in pick)


SCORES = (nodes_used, fragmentation)
"""Scores over the free view; `rank` adds the maintenance distance, which needs the windows."""


def maintenance_distance(pick: Spots, view: FreeGpus, until: Mapping[str, float] | None) -> float:
    """Distance to maintenance: a gang on nodes whose GPUs go out of service later (or never)
    leaves the nodes about to be drained to short work. Lower is better (minus the nearest)."""
    if not until:
        return 0.0
    return -min(until.get(view.node_name[n], math.inf) for n, _ in pick)


def rank(pick: Spots, view: FreeGpus, until: Mapping[str, float] | None = None) -> tuple[float, ...]:
    return (*(score(pick, view) for score in SCORES), maintenance_distance(pick, view, until))


# ------------------------------------------------------------------------------------- choosing


def place(
    view: FreeGpus, gang: Gang, types: Types | None = None, until: Mapping[str, float] | None = None
) -> list[Share] | None:
    """The one placement routine (module docstring): the GPU shares the gang gets now, or None.

    types: the GPU types by name, for the memory filter (None: not checked). until: per node name,
    when its GPUs next go out of service (absent: not in sight), for the maintenance score."""
    types = types or {}
    if gang.milli < FULL:
        return _shared(view, gang, types, until)
    spots = _spots(view, gang, types, until)
    if spots is None:
        return None
    return [s for n, g in spots for s in view.whole_gpus(n, g)]


def _spots(view: FreeGpus, gang: Gang, types: Types, until: Mapping[str, float] | None) -> Spots | None:
    """Whole-GPU steps 1-3: by the buckets where they decide alone, else by scanning."""
    t = gang.gpu_type
    if (
        gang.per_node == 1
        and not until
        and t is not None
        and len(view.domains.get(t, ())) <= 1
        and all(f(t, gang, types) for f in TYPE_FILTERS)
    ):
        return _bucket_fit(view, t, gang.gpus, gang.max_nodes)
    return _scan_fit(view, gang, types, until)


def place_gang(
    view: FreeGpus, gang: Gang, types: Types | None = None, until: Mapping[str, float] | None = None
) -> Pick | None:
    """`place` by node name: (node, GPUs) pairs, for callers that count GPUs per node (it names
    no GPUs, so the view's per-GPU state is never built for it)."""
    if gang.milli < FULL:
        shares = _shared(view, gang, types or {}, until)
        return None if shares is None else [(view.node_name[shares[0][0]], 1)]
    spots = _spots(view, gang, types or {}, until)
    return None if spots is None else [(view.node_name[n], g) for n, g in spots]


def _bucket_fit(view: FreeGpus, gpu_type: str, gpus: int, max_nodes: int | None) -> Spots | None:
    """Step 2 on one domain, one GPU per worker, read from the view's buckets."""
    view.build()
    if view.free_total.get(gpu_type, 0) < gpus:
        return None
    buckets = view.buckets[gpu_type]
    top = len(buckets) - 1
    if gpus <= top:
        for k in range(gpus, top + 1):
            bucket = buckets[k]
            if bucket:
                return [(next(iter(bucket)), gpus)]
    if max_nodes == 1:
        return None
    spots: Spots = []
    need = gpus
    used: set[int] = set()
    for k in range(top, 0, -1):
        for node in buckets[k]:
            if need >= k:
                spots.append((node, k))
                used.add(node)
                need -= k
                if need == 0:
                    return spots if max_nodes is None or len(spots) <= max_nodes else None
                continue
            # The remainder: best-fit the last piece rather than cutting into a big node.
            for k2 in range(need, top + 1):
                for node2 in buckets[k2]:
                    if node2 not in used:
                        spots.append((node2, need))
                        return spots if max_nodes is None or len(spots) <= max_nodes else None
            return None
    return None


def _scan_fit(view: FreeGpus, gang: Gang, types: Types, until: Mapping[str, float] | None) -> Spots | None:
    """Steps 1-3 by scanning the candidates (topology domains, whole workers, maintenance)."""
    ok = feasible(view, gang, types)
    domains: dict[str | None, list[int]] = defaultdict(list)
    for n in ok:
        domains[view.node_domain[n]].append(n)
    best: Spots | None = None
    for nodes in domains.values():
        pick = _pick(view, nodes, gang, until)
        if pick is not None and (best is None or rank(pick, view, until) < rank(best, view, until)):
            best = pick
    if best is None and len(domains) > 1:  # no single domain holds it: span domains
        best = _pick(view, ok, gang, until)
    return best


def _pick(
    view: FreeGpus, candidates: list[int], gang: Gang, until: Mapping[str, float] | None
) -> Spots | None:
    """Step 2 over `candidates`: fewest nodes, in whole workers; among equals, the tightest fit."""
    free, name, gpus, per_node = view.whole_free, view.node_name, gang.gpus, gang.per_node
    room = {n: free[n] // per_node * per_node for n in candidates}
    best: tuple[int, float, str, int] | None = None
    for n in candidates:  # one node: the one it fills best (one pass: this runs per queued job)
        if room[n] >= gpus:
            key = (free[n] - gpus, -until.get(name[n], math.inf) if until else 0.0, name[n], n)
            if best is None or key < best:
                best = key
    if best is not None:
        return [(best[3], gpus)]
    if gang.max_nodes == 1:
        return None
    # Several nodes: most room first so the gang spans few nodes, then best-fit for the remainder.
    pool = sorted((n for n in candidates if room[n] > 0), key=lambda n: (-room[n], name[n]))
    chosen: Spots = []
    left = gpus
    while left > 0 and pool:
        tail_fit = [n for n in pool if room[n] >= left]
        if tail_fit:
            node = min(tail_fit, key=lambda n: (free[n] - left, name[n]))
            chosen.append((node, left))
            left = 0
            break
        node = pool.pop(0)
        chosen.append((node, room[node]))
        left -= room[node]
    if left > 0 or (gang.max_nodes is not None and len(chosen) > gang.max_nodes):
        return None
    return chosen


def _shared(
    view: FreeGpus, gang: Gang, types: Types, until: Mapping[str, float] | None
) -> list[Share] | None:
    """Step 4: a share of one GPU."""
    if gang.gpus != 1:
        raise ValueError(
            f"a gang sharing GPUs ({gang.milli} thousandths each) must ask for 1 GPU, not {gang.gpus}"
        )
    view.build()
    best: tuple[int, int, int] | None = None
    for t in gpu_types(view, gang, types):
        for node in view.partial_nodes[t]:
            ok, free = view.ok[node], view.milli[node]
            for g, f in enumerate(free):
                if ok[g] and gang.milli <= f < FULL and (best is None or f < best[0]):
                    best = (f, node, g)
    if best is not None:
        return [(best[1], best[2], gang.milli)]
    whole = place(view, Gang(1, gang.gpu_type, 1, 1, gang.min_memory_gib), types, until)
    if whole is None:
        return None
    return [(whole[0][0], whole[0][1], gang.milli)]


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
    layouts: dict[int, FreeGpus] = {}
    # Most constrained first: gangs limited in how many nodes they may span, then the biggest.
    for info in sorted(starting, key=lambda i: (i.job.max_nodes or 1 << 30, -i.gpus, i.index)):
        choice = schedule[info.index]
        k = choice.option.type_index
        if k not in layouts:
            layouts[k] = FreeGpus(inst.nodes_by_type[k])
        # Only nodes that keep their GPUs for the whole run (a maintenance window on a node would
        # stop the job part-way): a gang that finds none is re-planned to start later.
        if lowest:
            end = max(1, min(choice.end(), inst.n_slots))
            nodes = inst.nodes_by_type[k]
            best = place_now(layouts[k].with_free(free_through(free, nodes, lowest, end)), info, until)
        else:
            best = place_now(layouts[k].with_free(free), info)
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


def free_through(
    free: dict[str, int], nodes: list[NodeSpec], lowest: dict[str, list[int]], end: int
) -> dict[str, int]:
    """The filter "free through maintenance": GPUs of each node free now that also stay in service
    until slot `end` (exclusive), for a view of the nodes that keep their GPUs for the whole run.

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


def place_on(view: FreeGpus, info: JobInfo, until: Mapping[str, float] | None = None) -> Pick | None:
    """The planner's use of `place_gang`: a view of the nodes of the type the plan chose, the job's
    max_nodes."""
    return place_gang(view, Gang(gpus=info.gpus, max_nodes=info.job.max_nodes), until=until)


def place_now(view: FreeGpus, info: JobInfo, until: Mapping[str, float] | None = None) -> Pick | None:
    """`place_on` for a start in slot 0: a running job that starts now (it does not go on in place)
    gets other GPUs than exactly the ones it holds (see `_elsewhere`)."""
    pick = place_on(view, info, until)
    if pick is not None and _same_nodes(pick, info):
        pick = _elsewhere(view, info, until)
    return pick


def _same_nodes(pick: Pick, info: JobInfo) -> bool:
    """A running job restarted now (it may not go on in place) on exactly the GPUs it holds."""
    running = info.job.running
    return running is not None and dict(pick) == dict(running.nodes)


def _elsewhere(view: FreeGpus, info: JobInfo, until: Mapping[str, float] | None) -> Pick | None:
    """A placement now for a running job that may not go on in place, other than the one it holds.

    Restarting it on exactly its own GPUs is no plan form of the specification (rule 8: a running
    job stopped now either waits, `preempted`, or runs now on other nodes, `migrated`); were those
    GPUs really free for it, it would be going on in place, which the keep-in-place rule decided
    against. So one of its nodes is left out at a time; when no other placement exists the job
    waits a slot (the caller delays it, and the gap shows the cost)."""
    running = info.job.running
    assert running is not None
    for name in sorted(running.nodes):
        without = view.copy()
        node = view.index.get(name)
        if node is not None:
            without.hold(node, without.whole_free[node])
        pick = place_on(without, info, until)
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
