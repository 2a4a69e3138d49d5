"""Node by node, over the whole horizon: every start of a type-level schedule gets named nodes.

The optimisation model counts GPUs per type and slot, so it cannot see that no single node has
8 GPUs free when two nodes have 4 each, nor that a node's maintenance or a running job that cannot
move splits its free GPUs. This pass makes the plan's future realisable. Jobs are taken in the
order of their planned start (the most constrained first among equals); each gets nodes that hold
its whole gang for its whole run, [start, end) (one segment per job: it keeps its nodes for as
long as it runs), inside one topology domain when possible, within max_nodes, best-fit. Running
jobs that go on in place keep their own nodes. A job that does not fit on nodes at its planned
start is delayed to the first slot where it does (its type's open capacity permitting too), or
left out when none is left in the horizon. The result is a plan whose every job has nodes for its
whole run: its objective is that of the realised plan, and the type-level bound still bounds it
(the node-level problem only has fewer choices).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gpusched.model import Placement
from gpusched.solver.freegpus import FreeGpus
from gpusched.solver.instance import Instance
from gpusched.solver.placement import place_now, place_on
from gpusched.solver.schedule import Choice, Schedule


@dataclass
class Packing:
    schedule: Schedule
    """The realisable schedule: the input's, with the jobs that did not fit delayed or left out."""
    placements: dict[int, list[Placement]]
    """The nodes each scheduled job holds for its whole run."""
    delayed: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)


def pack(inst: Instance, schedule: Schedule, forbid_now: frozenset[int] = frozenset()) -> Packing:
    names = list(inst.node_capacity)
    row_of = {name: r for r, name in enumerate(names)}
    free = np.array([inst.node_capacity[name] for name in names], dtype=np.int64).reshape(
        len(names), inst.n_slots
    )
    cap = np.asarray(inst.capacity, dtype=np.int64)
    used = np.zeros_like(cap)
    type_rows = [np.array([row_of[n.name] for n in nodes], dtype=np.int64) for nodes in inst.nodes_by_type]
    layouts = [FreeGpus(nodes) for nodes in inst.nodes_by_type]
    out = Packing({}, {})
    cordoned = {n.name for n in inst.cluster.nodes if n.cordoned}

    # Running jobs that go on in place keep their nodes: their GPUs come off those nodes first.
    for j, choice in schedule.items():
        info = inst.jobs[j]
        if choice.option is not info.continue_option or info.job.running is None:
            continue
        end = min(choice.end(), inst.n_slots)
        for name, g in info.job.running.nodes.items():
            if name not in cordoned:  # a cordoned node's GPUs are not open capacity: nothing to take
                free[row_of[name], :end] -= g
        used[choice.option.type_index, :end] += info.charge(choice.option)
        out.schedule[j] = choice
        out.placements[j] = [Placement(node=n, gpus=g) for n, g in info.job.running.nodes.items()]

    # Nodes whose capacity drops inside the horizon (maintenance): for the maintenance-distance score.
    drops = {
        name: [t for t in range(1, inst.n_slots) if caps[t] < caps[t - 1]]
        for name, caps in inst.node_capacity.items()
        if min(caps) != max(caps)
    }
    rest = [j for j in schedule if j not in out.schedule]
    rest.sort(key=lambda j: (schedule[j].start, inst.jobs[j].job.max_nodes or 1 << 30, -inst.jobs[j].gpus, j))
    for j in rest:
        info, choice = inst.jobs[j], schedule[j]
        opt, k = choice.option, choice.option.type_index
        rows = type_rows[k]
        charge = info.charge(opt)
        found = None
        for s in range(choice.start, inst.n_slots):
            if s == 0 and j in forbid_now:
                continue
            end = min(s + opt.slots, inst.n_slots)
            if (used[k, s:end] + charge > cap[k, s:end]).any():
                continue
            window = free[rows, s:end].min(axis=1) if rows.size else np.zeros(0, dtype=np.int64)
            if int(window.sum()) < info.gpus:
                continue
            until = _until(drops, s) if drops else None
            pick = (place_now if s == 0 else place_on)(layouts[k].with_free(window.tolist()), info, until)
            if pick is not None:
                found = (s, end, pick)
                break
        if found is None:
            out.dropped.append(j)
            continue
        s, end, pick = found
        for name, g in pick:
            free[row_of[name], s:end] -= g
        used[k, s:end] += charge
        if s != choice.start:
            out.delayed.append(j)
        out.schedule[j] = Choice(opt, s)
        out.placements[j] = [Placement(node=n, gpus=g) for n, g in pick]
    return out


def _until(drops: dict[str, list[int]], start: int) -> dict[str, float]:
    """Slots from `start` until each node's capacity next drops (nodes with no drop ahead: absent)."""
    out: dict[str, float] = {}
    for name, slots in drops.items():
        nxt = next((t for t in slots if t > start), None)
        if nxt is not None:
            out[name] = float(nxt - start)
    return out
