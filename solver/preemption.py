"""Preemption, in one place: who may be stopped, what a stop costs, and why it happened.

Used by the planner (the second pass that makes room on whole nodes), by the planning front-end
(which running jobs the plan may move, and the reason each stop is given) and so by both the
operator and the simulator. As in Kueue and KAI, preemption has its own rules instead of being a
side effect of the objective:

- **candidates**: a running job may be stopped only if it is preemptible and, unless the work
  waiting for it has strictly higher priority, it has run at least `min_run_h` since it (re)started
  (hysteresis: a gang stopped moments after it started never pays for itself, and without this
  a plan re-solved a minute later can flip its mind back and forth);
- **cost**: a stop costs the job's restart overhead plus the work done since its last checkpoint
  when it cannot checkpoint on the way out (checkpoint age); the planner charges that to the
  restart option, so a preemption is only chosen when the objective gains more than it pays;
- **reasons**: every stop is explained by what it is for (which jobs start in its place, of which
  priority), never by a stock phrase.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpusched.defaults import MIN_RUN_H
from gpusched.model import Placement
from gpusched.solver.instance import Instance
from gpusched.solver.schedule import Schedule


def protected(
    ran_h: float, priority: float, top_waiting_priority: float, min_run_h: float = MIN_RUN_H
) -> bool:
    """A job that (re)started less than `min_run_h` ago keeps its GPUs against waiting work of the
    same or lower priority (only strictly higher priority may stop it at once)."""
    return ran_h < min_run_h - 1e-9 and top_waiting_priority <= priority


def restart_cost(
    restart_overhead: float,
    ran_h: float,
    checkpoint_interval: float | None,
    checkpoints_on_stop: bool,
) -> float:
    """Wall hours a stop costs the job: its restart overhead, plus the run since its last
    checkpoint when it cannot write one as it stops (the checkpoint's age)."""
    lost = 0.0
    if not checkpoints_on_stop:
        if checkpoint_interval:
            lost = ran_h - math.floor(ran_h / checkpoint_interval + 1e-9) * checkpoint_interval
        else:
            lost = ran_h
    return restart_overhead + max(0.0, lost)


# ------------------------------------------------------------------------------------ candidates


@dataclass(frozen=True)
class Holder:
    """A running job as preemption sees it."""

    key: Hashable
    gpu_type: str
    priority: float
    remaining_h: float
    """Wall hours until it finishes where it runs."""
    nodes: Mapping[Any, int]
    """Node (name or index) -> GPUs it holds there."""
    movable: bool
    """Preemptible, and not protected (see `protected`)."""


@dataclass
class Blocked:
    """A queued job that found no room now."""

    priority: float
    wall_h: dict[str, float] = field(default_factory=dict)
    """Per GPU type it may use: wall hours it needs there."""
    gpus: int = 1


def displaces(victim: Holder, blocked: Iterable[Blocked]) -> bool:
    """Whether some blocked job could justify stopping `victim`: it may use the victim's type, and is
    of strictly higher priority or needs less time than the victim has left (shortest first)."""
    return victim.movable and any(
        victim.gpu_type in b.wall_h
        and (victim.priority < b.priority or victim.remaining_h > b.wall_h[victim.gpu_type])
        for b in blocked
    )


def candidates(
    blocked: Sequence[Blocked], holders: Iterable[Holder], free: Mapping[Any, int], limit: int
) -> list[Holder]:
    """The running jobs to offer the planner for stopping: those a blocked job could displace, on
    the nodes with the most reclaimable GPUs (free + candidates'), up to `limit` jobs and twice the
    blocked GPUs."""
    by_node: dict[Any, list[Holder]] = defaultdict(list)
    for h in holders:
        if displaces(h, blocked):
            for node in h.nodes:
                by_node[node].append(h)
    if not by_node:
        return []

    def reclaim(node: Any) -> int:
        return free.get(node, 0) + sum(h.nodes[node] for h in by_node[node])

    goal = 2 * sum(b.gpus for b in blocked)
    chosen: dict[Hashable, Holder] = {}
    got = 0
    for node in sorted(by_node, key=lambda n: (-reclaim(n), n)):
        if got >= goal or len(chosen) >= limit:
            break
        for h in by_node[node]:
            if h.key not in chosen and len(chosen) < limit:
                chosen[h.key] = h
        got += reclaim(node)
    return list(chosen.values())


# ------------------------------------------------------------------------------------- reasons


@dataclass(frozen=True)
class Beneficiary:
    name: str
    priority: float
    gpus: int


def reason(
    victim_priority: float, moved_to: Sequence[str] | None, beneficiaries: Sequence[Beneficiary], policy: str
) -> str:
    """Why the plan stops a running job, from what the stop is for.

    moved_to: the nodes it restarts on now (a migration), or None. beneficiaries: jobs that start
    now on GPUs it held."""
    if moved_to:
        return f"moved by the plan to {', '.join(moved_to)}"
    if not beneficiaries:
        return f"stopped by the plan (policy {policy}): it resumes later, when it finishes the queue sooner"
    names = ", ".join(b.name for b in beneficiaries[:3]) + (" and others" if len(beneficiaries) > 3 else "")
    if any(b.priority > victim_priority for b in beneficiaries):
        return f"preempted for higher-priority {names}"
    return (
        f"preempted so that {names} start now: under policy {policy} that finishes the queue sooner "
        "than running on (same or lower priority)"
    )


# ------------------------------------------------------------------ making room on whole nodes


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

        cands = {
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
            cands,
            key=lambda n: (
                -(free[n] + sum(_held(placements, v, n) for v in cands[n])),
                len(cands[n]),
                n,
            ),
        )[:most]
        victims: set[int] = set()
        room = 0
        for node in nodes:
            room += free[node]
            for v in cands[node]:
                if room >= info.gpus:
                    break
                victims.add(v)
                room += _held(placements, v, node)
        if room >= info.gpus and victims:
            return frozenset(victims), j
    return None


def _held(placements: dict[int, list[Placement]], job: int, node: str) -> int:
    return sum(p.gpus for p in placements.get(job, []) if p.node == node)
