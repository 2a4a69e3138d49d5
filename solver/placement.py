"""Exact node placement for the jobs that run in the first slot.

The planning model aggregates GPUs by type; only the slot about to start needs real nodes. A gang
is kept on as few nodes as possible, inside one topology domain (NVLink island / rack) when one
can hold it, and best-fit so that whole nodes stay whole for the next 8-GPU job instead of being
nibbled into 1-2 GPU holes.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from gpusched.model import Node as NodeSpec
from gpusched.model import Placement
from gpusched.solver.instance import Instance, JobInfo
from gpusched.solver.schedule import Schedule


def _pick(
    free: dict[str, int], candidates: list[str], gpus: int, max_nodes: int | None
) -> list[tuple[str, int]] | None:
    """Fewest nodes for `gpus` GPUs among candidates; among equals, the tightest fit."""
    usable = [n for n in candidates if free[n] > 0]
    fitting = [n for n in usable if free[n] >= gpus]
    if fitting:  # one node: the one it fills best
        best = min(fitting, key=lambda n: (free[n] - gpus, n))
        return [(best, gpus)]
    if max_nodes == 1:
        return None
    # Several nodes: largest first so the gang spans few nodes, then best-fit for the remainder.
    ordered = sorted(usable, key=lambda n: (-free[n], n))
    chosen: list[tuple[str, int]] = []
    left = gpus
    pool = list(ordered)
    while left > 0 and pool:
        tail_fit = [n for n in pool if free[n] >= left]
        if tail_fit:
            node = min(tail_fit, key=lambda n: (free[n] - left, n))
            chosen.append((node, left))
            left = 0
            break
        node = pool.pop(0)
        chosen.append((node, free[node]))
        left -= free[node]
    if left > 0 or (max_nodes is not None and len(chosen) > max_nodes):
        return None
    return chosen


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
    # Most constrained first: gangs limited in how many nodes they may span, then the biggest.
    for info in sorted(starting, key=lambda i: (i.job.max_nodes or 1 << 30, -i.gpus, i.index)):
        choice = schedule[info.index]
        nodes = [n for n in inst.nodes_by_type[choice.option.type_index] if free[n.name] > 0]
        # Only nodes that keep their GPUs for the whole run (a maintenance window on a node would
        # stop the job part-way): a gang that finds none is re-planned to start later.
        if lowest:
            end = max(1, min(choice.end(), inst.n_slots))
            best = place_on(_free_through(free, nodes, lowest, end), nodes, info)
        else:
            best = place_on(free, nodes, info)
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


def place_on(free: dict[str, int], nodes: list[NodeSpec], info: JobInfo) -> list[tuple[str, int]] | None:
    """The best pick inside one topology domain, else across domains; None when nothing holds it."""
    domains: dict[str | None, list[str]] = defaultdict(list)
    for n in nodes:
        domains[n.topology_domain].append(n.name)
    best: list[tuple[str, int]] | None = None
    for names in domains.values():
        pick = _pick(free, names, info.gpus, info.job.max_nodes)
        if pick is not None and (best is None or _rank(pick, free) < _rank(best, free)):
            best = pick
    if best is None:  # no single domain holds it: span domains
        best = _pick(free, [n.name for n in nodes], info.gpus, info.job.max_nodes)
    return best


def _rank(pick: list[tuple[str, int]], free: dict[str, int]) -> tuple[int, int]:
    # Fewer nodes first, then less left over on the nodes it touches (less fragmentation).
    return (len(pick), sum(free[n] - g for n, g in pick))


def preemption_room(
    inst: Instance, schedule: Schedule, placements: dict[int, list[Placement]], failed: list[int]
) -> tuple[frozenset[int], int] | None:
    """Running jobs whose stop would give a gang that could not be placed now its nodes.

    The planning model counts GPUs per type, so a gang can fit the type yet find no node with room:
    small jobs scattered over the nodes (fragmentation), with a gang that must stay on few nodes.
    Like Kueue's and KAI's preemption, only preemptible running jobs of strictly lower priority are
    candidates, on the nodes of the type the plan gives the gang; the fewest-priority-weighted GPUs
    are stopped. Returns (victims, the gang) for the first gang, by priority, that such a stop
    places, or None. The caller re-plans with the victims barred from running now and keeps the
    better of the two plans: this only proposes.
    """
    free = {name: caps[0] for name, caps in inst.node_capacity.items()}
    holders: dict[str, list[int]] = defaultdict(list)
    for j, where in placements.items():
        for p in where:
            free[p.node] -= p.gpus
            holders[p.node].append(j)
    for j in sorted(failed, key=lambda f: (-inst.jobs[f].weight, f)):
        info = inst.jobs[j]
        choice = schedule[j]
        most = info.job.max_nodes or len(inst.nodes_by_type[choice.option.type_index])

        candidates = {
            n.name: sorted(
                (
                    v
                    for v in holders[n.name]
                    if schedule[v].option is inst.jobs[v].continue_option
                    and not inst.jobs[v].fixed
                    and inst.jobs[v].weight < info.weight
                ),
                key=lambda v: (inst.jobs[v].weight * inst.jobs[v].gpus, v),
            )
            for n in inst.nodes_by_type[choice.option.type_index]
        }
        # Nodes with the most room once their candidates stop; fewer victims among equals.
        nodes = sorted(
            candidates,
            key=lambda n: (
                -(free[n] + sum(_held(placements, v, n) for v in candidates[n])),
                len(candidates[n]),
                n,
            ),
        )[:most]
        victims: set[int] = set()
        room = 0
        for node in nodes:
            room += free[node]
            for v in candidates[node]:
                if room >= info.gpus:
                    break
                victims.add(v)
                room += _held(placements, v, node)
        if room >= info.gpus and victims:
            return frozenset(victims), j
    return None


def _held(placements: dict[int, list[Placement]], job: int, node: str) -> int:
    return sum(p.gpus for p in placements.get(job, []) if p.node == node)
