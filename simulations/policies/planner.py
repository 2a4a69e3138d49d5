"""gpusched's own planner as a simulation policy: the very `plan()` the operator calls.

At each re-plan event (arrival, completion, failure, or a planned start coming due), at most once per
`replan_minutes` of simulated time, the current state becomes a Cluster and a Job list and plan() is
called with a rolling horizon. Jobs planned to start in the first slot with an exact placement are
started on those GPUs; running jobs the plan preempts or migrates are stopped (and restarted where the
plan puts them). If a placement the plan names is no longer free the engine's own best fit on the
planned type is used (counted in `placement_fallbacks`).

What the planner is shown (`_snapshot`), chosen so the model stays small on 82k-job replays:

- **Queued jobs**: a core window of `window` jobs -- half the earliest arrivals (nobody starves),
  half the jobs the objective wants first (jct: least remaining work per unit of priority; deadline:
  earliest deadline; makespan: most remaining GPU-hours; cost and fair: earliest arrivals only) --
  plus the later jobs (up to `fill`, FILL_LIMIT) that fit in the GPUs the core leaves free (scanning at most
  SCAN_LIMIT queued jobs in arrival order), so free GPUs are never left idle because the job that
  fits sits past the window.
- **Running jobs**: the core is placed node by node (best fit, as the engine does) on the free GPUs.
  When some core job does not fit (contended: too few free GPUs of its types, or only fragments),
  the preemptible running jobs that such a job could displace -- on a type it may use, and of lower
  priority or with more remaining time than it -- are candidates; those on the nodes with the most
  reclaimable GPUs (free + candidates'), up to `window` jobs and twice the blocked GPUs, are passed
  as Job.running with their nodes, so the planner may preempt or migrate them. On clusters with
  several GPU types, a preemptible running job that would finish sooner on a faster type with free
  GPUs (by more than one slot after the restart overhead and the planner's migration penalty) is a
  candidate too, and such a job triggers a plan even with an empty queue (once per run of the job).
  Every other running job is occupied capacity: when contended or on several types, until its
  known finish (a maintenance window per node and end slot, so the planner sees GPUs coming free);
  otherwise for the whole horizon -- every queued job starts now anyway, and this keeps the
  uncontended plans (nearly all of them on Philly at 2,816 GPUs) small.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from gpusched import defaults
from gpusched.model import CapacityChange, Cluster, Job, Node, RunningState
from gpusched.simulations.policies.base import SchedPolicy
from gpusched.simulations.state import FULL
from gpusched.simulations.workload import SimJob
from gpusched.solver.freegpus import FreeGpus
from gpusched.solver.frontend import (
    Keep,
    Preempt,
    QueueFacts,
    Running,
    Selection,
    Start,
    Wait,
    Waiting,
    at_once,
    core_window,
    fill_window,
    interpret,
)
from gpusched.solver.placement import place
from gpusched.solver.preemption import Blocked, Holder, candidates, displaces, protected, restart_cost

log = logging.getLogger(__name__)

STALL_LIMIT = 20


def _facts(j: SimJob) -> QueueFacts:
    return QueueFacts((j.spec.release, j.idx), j.remaining, j.spec.priority, j.spec.deadline, j.spec.gpus)


def _take(free: FreeGpus, sim: Any, job: SimJob, types: Iterable[str]) -> bool:
    """Place a queued job on a scratch copy of the engine's free-GPU view as the engine would (the
    placement module's rule, the first allowed type with room), to tell which queued jobs fit now
    without touching the real state: the front-end's `fits` for the fill part of the window."""
    state = sim.state
    for t in types:
        shares = place(free, state.gang(job.spec.gpus, job.spec.gpu_milli, t))
        if shares is not None:
            free.take(shares)
            return True
    return False


def estimate_plan_calls(releases: list[float], replan_minutes: float = 5.0) -> int:
    """Planner calls an uncontended replay makes: one at an arrival at least `replan_minutes` after
    the previous plan, else one deferred to previous + interval covering every arrival until then.
    (Contention adds wake-ups for planned starts; on Philly@2,816 GPUs this matches measured counts
    within 1 %.) Used to extrapolate benchmark time by calls rather than by jobs."""
    interval = replan_minutes / 60.0
    last = -float("inf")
    deferred: float | None = None
    calls = 0
    for t in sorted(releases):
        if deferred is not None and t >= deferred:
            deferred = None
        if deferred is not None:
            continue
        if t >= last + interval:
            last = t
        else:
            deferred = last = last + interval
        calls += 1
    return calls


class PlannerPolicy(SchedPolicy):
    def __init__(
        self,
        objective: str = defaults.POLICY,
        replan_minutes: float = 5.0,
        window: int = defaults.WINDOW,
        horizon: float = defaults.HORIZON_H,
        slot: float = defaults.SLOT_H,
        time_limit: float = 5.0,
        fill: int = defaults.FILL_LIMIT,
    ) -> None:
        super().__init__()
        self.objective = objective
        self.name = f"gpusched:{objective}"
        self.interval = replan_minutes / 60.0
        self.window = window
        self.fill = fill
        self.horizon = horizon
        self.slot = slot
        self.time_limit = time_limit
        self.last_plan = -float("inf")
        self.plans = 0
        self.plan_seconds = 0.0
        self.plan_errors = 0
        self.placement_fallbacks = 0
        self.contended_plans = 0
        self.preemption_candidates = 0
        self.migration_plans = 0
        self.window_fill = 0
        self.idle_plans = 0
        self.at_once_plans = 0
        self._nodes: dict[tuple[int, int], Node] = {}
        """Rounds the front-end decided without a model (frontend.at_once)."""
        self.fruitless = 0
        """Re-plans in a row on an unchanged input that started nothing (see schedule)."""
        self.last_error = ""
        self._planned: tuple[int, ...] | None = None
        """State signature right after the last plan (see _signature)."""
        self._due = math.inf
        """When the last plan asked to be woken (its next planned start, or the next periodic look)."""
        self._protection_ends = math.inf
        """When the first running job a blocked one could displace stops being protected."""
        self._declined: dict[int, int] = {}
        """Running jobs passed to the planner that it kept in place: job -> finish_token; not
        proposed for migration again until the job stops or restarts."""

    def _signature(self) -> tuple[int, int, int, int, int]:
        """What can change the planner's input other than time: arrivals, completions, stops, failures."""
        sim = self.s
        return (sim.arrivals_left, sim.finished, sim.total_preemptions, sim.total_failures,
                sim.state.total_healthy)

    def schedule(self, now: float) -> None:
        sim = self.s
        if not sim.pending and not (len(sim.types) > 1 and self._migration_candidates(sim.state, limit=1)):
            return
        if self._signature() == self._planned and now < self._due - 1e-9:
            # A wake-up set by an earlier plan that a later one superseded: nothing new to plan for.
            return
        if now < self.last_plan + self.interval - 1e-9:
            sim.wake_at(self.last_plan + self.interval)
            return
        self.last_plan = now
        same_input = self._signature() == self._planned
        waiting = len(sim.pending)
        next_start = self._replan(now)
        # Re-planning an unchanged input that starts nothing (a gang kept out by fragments, planned
        # "next slot" again and again) backs off, doubling its wake-up; any event resets it.
        self.fruitless = self.fruitless + 1 if same_input and len(sim.pending) == waiting else 0
        # A plan that leaves every GPU idle while jobs wait, with no arrival to come, would be repeated
        # forever by the periodic wake-up: after STALL_LIMIT such plans stop waking; the simulation then
        # ends and reports those jobs as unfinished (only failures/repairs can still wake the planner).
        self.idle_plans = self.idle_plans + 1 if not sim.running else 0
        stalled = self.idle_plans >= STALL_LIMIT and sim.arrivals_left == 0
        self._planned = self._signature()
        self._due = math.inf
        if sim.pending and not stalled:
            # Every change of the input (arrival, finish, stop, failure, repair, maintenance) is an
            # event that re-plans anyway; the wake-up is only for what time alone brings: the next
            # planned start, or, when nothing starts within the horizon (a cluster busy with long
            # jobs), the horizon rolling on. Waking every slot there re-solved the same plan
            # thousands of times in congested replays.
            ahead = next_start if next_start is not None else self.horizon / 2
            if self.fruitless:
                ahead = max(ahead, min(self.horizon / 2, self.slot * 2**self.fruitless))
            self._due = now + max(self.interval, ahead)
            sim.wake_at(self._due)

    def on_stop(self, job: SimJob) -> None:
        self._declined.pop(job.idx, None)

    on_finish = on_stop

    # ------------------------------------------------------------------------------ what to show

    def _core(self) -> list[SimJob]:
        """`window` queued jobs: the front-end's core window (module docstring)."""
        return core_window(self.s.pending.values(), _facts, self.window, self.objective)

    def _fill(self, core: list[SimJob], free: FreeGpus) -> list[SimJob]:
        """Up to `window` queued jobs past the core that fit in the GPUs it leaves free."""
        sim = self.s
        if len(sim.pending) <= len(core):
            return []
        return fill_window(
            sim.pending.values(),
            core,
            _facts,
            lambda j: _take(free, sim, j, sim.allowed_types(j)),
            self.fill,
            free_left=lambda: free.total_free,
        )

    def _upcoming_windows(self, now: float) -> list[CapacityChange]:
        """The cluster's maintenance windows that start within the horizon, in plan time.

        Windows already under way are not repeated: their GPUs are out of service in the snapshot.
        Knowing the coming ones, the planner keeps a job that could not be drained in time (a
        non-preemptible one) off GPUs about to go, and counts on less capacity while they are away.
        """
        out = []
        for w in self.s.cluster.maintenance:
            if now + 1e-9 < w.start < now + self.horizon:
                out.append(w.model_copy(update={"start": w.start - now, "end": w.end - now}))
        return out

    def _remaining_wall(self, sj: SimJob) -> float:
        """Hours until a running job finishes where it is (overhead still to pay included)."""
        sim = self.s
        left_overhead = max(0.0, sj.run_start + sj.run_overhead - sim.now)
        return left_overhead + (sj.spec.work - sim.progress_now(sj)) / sj.run_speed

    def _overhead(self, sj: SimJob) -> float:
        return sj.spec.restart_overhead or self.s.config.default_restart_overhead

    def _protected(self, r: SimJob, top_priority: float) -> bool:
        """Preemption's hysteresis: a job (re)started less than MIN_RUN_H ago keeps its GPUs."""
        return protected(self.s.now - r.run_start, r.spec.priority, top_priority)

    def _preemption_candidates(self, blocked: list[SimJob]) -> list[SimJob]:
        """Preemptible running jobs a blocked job could displace (the preemption module's rule),
        on the nodes with the most reclaimable GPUs (module docstring)."""
        sim = self.s
        state = sim.state
        wants = [
            Blocked(b.spec.priority, {t: b.remaining / sim.speed(b, t) for t in sim.allowed_types(b)}, b.spec.gpus)
            for b in blocked
        ]
        top = max(b.spec.priority for b in blocked)
        holders = []
        for r in sim.running.values():
            if not r.spec.preemptible or r.spec.gpu_milli < FULL or r.gpu_type is None:
                continue
            nodes: dict[int, int] = {}
            for node, _, _ in r.placement:
                nodes[node] = nodes.get(node, 0) + 1
            movable = not self._protected(r, top)
            if not movable and displaces(Holder(r.idx, r.gpu_type, r.spec.priority, self._remaining_wall(r), {}, True), wants):
                # Protected now, a candidate once it has run its minimum: plan again then.
                ends = r.run_start + defaults.MIN_RUN_H
                self._protection_ends = min(self._protection_ends, ends)
            holders.append(Holder(r.idx, r.gpu_type, r.spec.priority, self._remaining_wall(r), nodes, movable))
        free = dict(enumerate(state.whole_free))
        return [sim.running[h.key] for h in candidates(wants, holders, free, self.window)]  # type: ignore[index]

    def _migration_candidates(self, free: FreeGpus, limit: int) -> list[SimJob]:
        """Running jobs that would finish more than a slot sooner on a faster type with free GPUs,
        restart overhead and migration penalty paid (only clusters with several GPU types)."""
        sim = self.s
        if len(sim.types) < 2 or not sim.running:
            return []
        out: list[SimJob] = []
        for r in sim.running.values():
            if (not r.spec.preemptible or r.spec.gpu_milli < FULL
                    or self._declined.get(r.idx) == r.finish_token or self._protected(r, 0.0)):
                continue
            here = self._remaining_wall(r)
            left = r.spec.work - sim.progress_now(r)
            for t in sim.allowed_types(r):
                speed = sim.speed(r, t)
                if speed <= r.run_speed:
                    break  # allowed_types is fastest first
                there = left / speed + self._overhead(r) + defaults.MIGRATION_PENALTY_H
                if here - there > self.slot and place(free, sim.state.gang(r.spec.gpus, FULL, t)) is not None:
                    out.append(r)
                    break
            if len(out) >= limit:
                break
        return out

    def _one_node(self, sj: SimJob, gpu_type: str | None = None) -> bool:
        """Whether the engine keeps this gang on one node (it fits on a node of every allowed type,
        or of `gpu_type`, and --spread is off): the planner is told so through max_nodes=1."""
        state = self.s.state
        if state.spread_small_jobs:
            return False
        types = [gpu_type] if gpu_type is not None else self.s.allowed_types(sj)
        return all(sj.spec.gpus <= state.max_node[t] for t in types)

    def _node(self, i: int, unavailable: int) -> Node:
        """Node i with `unavailable` GPUs out of the planner's reach; one object per (node, count),
        reused from plan to plan (validating hundreds of nodes per plan cost more than planning)."""
        node = self._nodes.get((i, unavailable))
        if node is None:
            state = self.s.state
            node = Node(name=state.node_name[i], gpu_type=state.node_type[i], gpu_count=state.node_size[i],
                        unhealthy_gpus=unavailable)
            self._nodes[i, unavailable] = node
        return node

    def _snapshot(self, now: float) -> tuple[Cluster, Cluster, list[Job], dict[str, SimJob]]:
        """The planner's view (module docstring): core + fill queued jobs, candidate running jobs
        with their nodes, every other running job as occupied capacity. Also the cluster as it
        stands (no end windows, no hidden GPUs), which the front-end's at_once reads."""
        sim = self.s
        state = sim.state
        core = self._core()
        free = state.copy()
        blocked = [sj for sj in core if not _take(free, sim, sj, sim.allowed_types(sj))]
        fill = self._fill(core, free)
        self.window_fill += len(fill)
        contended = bool(blocked)
        self.contended_plans += int(contended)
        candidates = self._preemption_candidates(blocked) if contended else []
        self.preemption_candidates += len(candidates)
        passed = {r.idx for r in candidates}
        migrants = [r for r in self._migration_candidates(free, limit=self.window) if r.idx not in passed]
        if migrants:
            self.migration_plans += 1
            candidates += migrants
            passed.update(r.idx for r in migrants)
        # GPUs per node held by passed running jobs (schedulable for the planner) and by the others
        # until their finish (maintenance windows), when the planner should see them come free.
        held = [0] * len(state.node_name)
        for r in candidates:
            for node, _, _ in r.placement:
                held[node] += 1
        held_by_candidates = list(held)
        holds_candidate = {node for r in candidates for node, _, _ in r.placement}
        windows: dict[tuple[int, int], int] = {}
        first_end: dict[int, int] = {}
        if contended or len(sim.types) > 1:
            for r in sim.running.values():
                if r.idx in passed or r.spec.gpu_milli < FULL:
                    continue
                end_slot = max(1, math.ceil(self._remaining_wall(r) / self.slot - 1e-9))
                for node, _, _ in r.placement:
                    held[node] += 1
                    windows[node, end_slot] = windows.get((node, end_slot), 0) + 1
                    first_end[node] = min(first_end.get(node, end_slot), end_slot)
        hidden = [0] * len(state.node_name)
        if contended and not state.spread_small_jobs:
            # The planner counts GPUs per type: free GPUs on a node too few for the smallest one-node
            # gang passed would let it believe a blocked gang can start now (the placement then fails
            # and the start is only deferred, never bought by a preemption). They are hidden until the
            # node's first running job ends, unless a candidate there may free more.
            need: dict[str, int] = {}
            for sj in [*core, *fill]:
                gpus = sj.spec.gpus if sj.spec.gpu_milli >= FULL else 1
                for t in sim.allowed_types(sj):
                    need[t] = min(need.get(t, gpus), gpus)
            for i, free_here in enumerate(state.whole_free):
                t = state.node_type[i]
                if (0 < free_here < need.get(t, 0) <= state.max_node[t]) and i not in holds_candidate:
                    if i in first_end:
                        windows[i, first_end[i]] += free_here
                    else:
                        hidden[i] = free_here
        nodes = [
            self._node(i, state.node_size[i] - state.whole_free[i] + hidden[i] - held[i])
            for i in range(len(state.node_name))
        ]
        maintenance = [
            CapacityChange.model_construct(start=0.0, end=end_slot * self.slot, node=state.node_name[node],
                                           gpu_type=None, gpus=gpus, reason="running")
            for (node, end_slot), gpus in windows.items()
        ]
        upcoming = self._upcoming_windows(now)
        cluster = Cluster(gpu_types=sim.cluster.gpu_types, nodes=nodes, maintenance=maintenance + upcoming)
        # The same cluster without the running jobs' end windows (their GPUs simply taken): what the
        # front-end's at_once reads, as the operator's cluster has no such windows either.
        bare = cluster
        if windows or any(hidden):
            bare = Cluster(gpu_types=sim.cluster.gpu_types, maintenance=upcoming, nodes=[
                self._node(i, state.node_size[i] - state.whole_free[i] - held_by_candidates[i])
                for i in range(len(state.node_name))
            ])
        jobs: list[Job] = []
        by_name: dict[str, SimJob] = {}
        for sj in [*candidates, *core, *fill]:
            spec = sj.spec
            name = f"j{sj.idx}"
            by_name[name] = sj
            running = None
            if sj.state == "running":
                per_node: dict[str, int] = {}
                for node, _, _ in sj.placement:
                    per_node[state.node_name[node]] = per_node.get(state.node_name[node], 0) + 1
                done = min(sim.progress_now(sj), spec.work * (1 - 1e-6))
                running = RunningState(nodes=per_node, done=done)
            deadline = None
            if spec.deadline is not None and spec.deadline - now > 1e-6:
                deadline = spec.deadline - now
            jobs.append(Job(
                name=name,
                gpus=spec.gpus,
                gpu_types=[t for t in spec.gpu_types if t in sim.types] if spec.gpu_types else None,
                duration=spec.work if running is not None else max(sj.remaining, 1e-6),
                speeds={t: v for t, v in spec.speeds.items() if t in sim.types},
                priority=spec.priority,
                team=spec.team,
                deadline=deadline,
                preemptible=spec.preemptible,
                restart_overhead=self._overhead(sj) if running is None else restart_cost(
                    self._overhead(sj), now - sj.run_start, spec.checkpoint_interval,
                    sim.config.checkpoint_on_preempt),
                checkpoint_interval=spec.checkpoint_interval,
                max_nodes=1 if self._one_node(sj) else None,
                running=running,
            ))
        return cluster, bare, jobs, by_name

    def _replan(self, now: float) -> float | None:
        from gpusched.solver import PlanOptions, plan

        sim = self.s
        self._protection_ends = math.inf
        cluster, bare, jobs, by_name = self._snapshot(now)
        queued = [Waiting(job, (by_name[job.name].spec.release, by_name[job.name].idx))
                  for job in jobs if job.running is None]
        running = [Running(job, now - by_name[job.name].run_start, movable=True)
                   for job in jobs if job.running is not None]
        started = time.perf_counter()
        try:
            # The front-end decides a forced round itself (every queued job starts now on its best
            # type), exactly as the operator does; plan() is called for every other one.
            result = at_once(bare, Selection(jobs, queued, running), self.objective, self.horizon, self.slot)
            if result is not None:
                self.at_once_plans += 1
            else:
                result = plan(cluster, jobs, PlanOptions(policy=self.objective, horizon=self.horizon,  # type: ignore[arg-type]
                                                         slot=self.slot, time_limit=self.time_limit))
        except Exception as exc:  # the planner is another component: a crash must not kill a sweep
            self.plan_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.plan_errors == 1:  # loud once, on the terminal; the count is in the summary
                log.warning(
                    "warning: %s: the planner failed at t=%.2fh (%s); this round and any later failed "
                    "one fall back to backfilling FIFO (plan_errors in the summary counts them)",
                    self.name, now, " ".join(self.last_error.split())[:200],
                )
            self._fallback()
            return None
        finally:
            self.plan_seconds += time.perf_counter() - started
            self.plans += 1
        # The front-end reads the plan, exactly as for the operator; this only applies it.
        free = sim.state.free_map()
        next_start: float | None = None
        for d in interpret(result, sim.cluster, queued, running, free, frees_at_once=True):
            sj = by_name[d.job]
            if isinstance(d, Preempt):
                if sj.state == "running" and sj.spec.preemptible:
                    sim.preempt(sj)
            elif isinstance(d, Keep):
                if sj.state == "running":
                    self._declined[sj.idx] = sj.finish_token
            elif isinstance(d, Wait):
                if d.scheduled and not d.no_room and d.start is not None:
                    next_start = d.start if next_start is None else min(next_start, d.start)
            elif isinstance(d, Start) and sj.state == "pending":
                if sj.spec.gpu_milli < FULL:
                    # The planner counts whole GPUs; a shared-GPU job is packed by the engine instead.
                    sim.try_start(sj, [d.gpu_type])
                    continue
                shares = sim.state.on_nodes({p.node: p.gpus for p in d.placement})
                if shares is not None:
                    sim.start(sj, shares, d.gpu_type)
                    self.placement_fallbacks += int(not d.as_planned)
                elif sim.try_start(sj, [d.gpu_type]):
                    self.placement_fallbacks += 1
        if self._protection_ends < math.inf and sim.pending:
            after = max(self._protection_ends - now, 0.0)
            next_start = after if next_start is None else min(next_start, after)
        return next_start

    def _fallback(self) -> None:
        """Backfilling FIFO for one round, so a planner error degrades the run instead of stalling it."""
        sim = self.s
        for sj in sorted(sim.pending.values(), key=lambda j: (j.spec.release, j.idx)):
            if sim.state.total_free == 0:
                break
            sim.try_start(sj)

    def stats(self) -> dict[str, Any]:
        return {
            "plans": self.plans,
            "plan_seconds": self.plan_seconds,
            "plan_errors": self.plan_errors,
            "at_once_plans": self.at_once_plans,
            "placement_fallbacks": self.placement_fallbacks,
            "contended_plans": self.contended_plans,
            "preemption_candidates": self.preemption_candidates,
            "migration_plans": self.migration_plans,
            "window_fill": self.window_fill,
            **({"last_plan_error": self.last_error} if self.last_error else {}),
        }
