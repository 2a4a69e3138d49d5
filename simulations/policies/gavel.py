"""Gavel's max-min fairness (Narayanan et al., OSDI'20), realised by Gavel's rounds.

Allocation (an LP over the throughput matrix): each active job j gets a time fraction x_jk on each
GPU type k, maximising the smallest normalised throughput
    min_j  s_j / w_j * (sum_k thr_jk x_jk) / thr_j^equal
subject to  sum_k x_jk <= 1,  sum_j s_j x_jk <= n_k,  x >= 0,
where s_j is the job's scale factor (gang size: a job on s GPUs is charged s GPUs of each type's
time and, at equal throughput, needs s times less of it), w_j its priority weight, n_k the GPUs of
type k, and thr_j^equal its throughput under an equal split of the cluster's time (n_k / N on type
k). Heterogeneity-aware (Gavel's `max_min_fairness_perf`) uses the measured throughputs;
heterogeneity-agnostic (`max_min_fairness`) sets every thr_jk to 1, so all types look alike.

The LP only fixes the minimum; many allocations reach it. Gavel solves it with an interior-point
method (cvxpy + ECOS), which returns a point in the middle of the optimal face, so jobs that are not
the bottleneck also get time spread over the types. We solve it the same way (HiGHS' interior
point, no crossover to a vertex); a vertex solver would hand the slack to a few jobs instead.

Realisation (Gavel's rounds, `scheduler.py`): time is cut into rounds (6 minutes). At each round
boundary every job's time received on each type since the last reset is known; its priority on type
k is x_jk / (time received on k / time all jobs received on k), every job starting each reset with
half a round received on every type. The allocation is recomputed, and the received times reset,
only when jobs arrived or finished AND at least `reset_hours` (Gavel: 1,920 s) passed since the last
reset, so a job that arrived since has no allocation yet: priority 0. Types are then filled in turn
(heterogeneity-aware: fastest first, V100, P100, K80; agnostic: in a seeded random order each
round), each with its jobs in decreasing (priority, deficit, allocation), a job taking its gang of
GPUs if it fits and is not placed yet; jobs with priority 0 thus fill GPUs nobody with an allocation
took. Chosen jobs run the whole round (or until they finish; the GPU then idles until the round
ends); jobs that arrive mid-round wait for its end; a round ends early when every job in it has
finished. A deficit per job and type (allocation x time between resets - time received) breaks ties.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

from gpusched.simulations.policies.base import SchedPolicy
from gpusched.simulations.workload import SimJob

EPS = 1e-9
GAVEL_RESET_HOURS = 1920 / 3600
"""Gavel's minimum time between allocation resets (`minimum_time_between_allocation_resets`)."""


_banner_hidden = False


def _highs() -> Any:
    """A HiGHS instance; the first one of the process is made with stdout closed, since highspy prints
    its banner there once, whatever output_flag says, and that would corrupt --json output."""
    global _banner_hidden
    import highspy

    if _banner_hidden:
        return highspy.Highs()
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _banner_hidden = True
    return h


def maxmin_allocation(
    speeds: Sequence[dict[str, float]],
    scale: Sequence[int],
    capacity: dict[str, int],
    weights: Sequence[float] | None = None,
    aware: bool = True,
) -> list[dict[str, float]]:
    """Gavel's max-min fair time fractions, one {type: x} per job (see the module docstring).

    `speeds[j]` holds job j's throughput on each type it may use (any unit: each job is normalised
    by its own equal-split throughput); types absent from it get no time. Solved with HiGHS'
    interior-point method without crossover, as Gavel's ECOS does (highspy, the `highs` extra);
    without highspy, with scipy's bundled HiGHS, whose answer may be a vertex of the optimal face.
    """
    types = [t for t, n in capacity.items() if n > 0]
    total = sum(capacity[t] for t in types)
    if not speeds or total == 0:
        return [{} for _ in speeds]
    weights = weights or [1.0] * len(speeds)
    cols: list[tuple[int, str]] = []
    coef: list[float] = []
    for j, sp in enumerate(speeds):
        thr = {t: (sp[t] if aware else 1.0) for t in types if sp.get(t, 0.0) > 0}
        if not thr:
            continue  # fits no type now: no allocation (a row without columns would force z = 0)
        if not aware:
            equal = 1.0  # Gavel's agnostic LP: all throughputs 1, so the equal split gives sum n_k / N = 1
        else:
            equal = sum(thr.get(t, 0.0) * capacity[t] / total for t in types)
        for t, speed in thr.items():
            cols.append((j, t))
            coef.append(scale[j] * speed / (weights[j] * equal) if equal > 0 else 0.0)
    if not cols:
        return [{} for _ in speeds]
    z = len(cols)
    by_job: dict[int, list[int]] = {}
    by_type: dict[str, list[int]] = {t: [] for t in types}
    for c, (j, t) in enumerate(cols):
        by_job.setdefault(j, []).append(c)
        by_type[t].append(c)
    # Rows as (columns, coefficients, upper bound) of  row . (x, z) <= upper.
    rows: list[tuple[list[int], list[float], float]] = []
    for members in by_job.values():
        rows.append(([*members, z], [*(-coef[c] for c in members), 1.0], 0.0))  # z <= normalised throughput
        rows.append((members, [1.0] * len(members), 1.0))  # sum_k x_jk <= 1
    for t, members in by_type.items():
        if members:
            rows.append((members, [float(scale[cols[c][0]]) for c in members], float(capacity[t])))
    x = _solve_max_z(z, rows)
    out: list[dict[str, float]] = [{} for _ in speeds]
    for c, (j, t) in enumerate(cols):
        out[j][t] = min(1.0, max(0.0, x[c]))
    return out


def _solve_max_z(z: int, rows: list[tuple[list[int], list[float], float]]) -> list[float]:
    """Maximise column `z` (>= 0) over columns 0..z-1 in [0, 1] subject to `rows`."""
    import numpy as np

    starts = np.cumsum([0, *(len(r[0]) for r in rows)])
    index = np.array([i for r in rows for i in r[0]], dtype=np.int32)
    value = np.array([v for r in rows for v in r[1]])
    upper = np.array([r[2] for r in rows])
    try:
        import highspy
    except ImportError:
        from scipy.optimize import linprog
        from scipy.sparse import csr_matrix

        a = csr_matrix((value, index, starts), shape=(len(rows), z + 1))
        res = linprog(np.array([0.0] * z + [-1.0]), A_ub=a, b_ub=upper, bounds=[(0, 1)] * z + [(0, None)],
                      method="highs-ipm")
        return list(res.x) if res.x is not None else [0.0] * (z + 1)
    lp = highspy.HighsLp()
    lp.num_col_ = z + 1
    lp.num_row_ = len(rows)
    lp.col_cost_ = np.array([0.0] * z + [1.0])
    lp.col_lower_ = np.zeros(z + 1)
    lp.col_upper_ = np.array([1.0] * z + [highspy.kHighsInf])
    lp.row_lower_ = np.full(len(rows), -highspy.kHighsInf)
    lp.row_upper_ = upper
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = z + 1
    lp.a_matrix_.num_row_ = len(rows)
    lp.a_matrix_.start_ = starts.astype(np.int32)
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    h = _highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("solver", "ipm")
    h.setOptionValue("run_crossover", "off")
    h.passModel(lp)
    h.run()
    return list(h.getSolution().col_value)


class Gavel(SchedPolicy):
    """Gavel's max-min fairness with its round-based mechanism (module docstring)."""

    name = "gavel"

    def __init__(self, round_hours: float = 0.1, aware: bool = True, reset_hours: float = GAVEL_RESET_HOURS,
                 seed: int = 0) -> None:
        super().__init__()
        if round_hours <= 0:
            raise ValueError(f"Gavel round must be positive (got {round_hours}h)")
        if reset_hours < 0:
            raise ValueError(f"Gavel reset interval must be >= 0 (got {reset_hours}h)")
        self.round_hours = round_hours
        self.aware = aware
        self.reset_hours = reset_hours
        if not aware:
            self.name = "gavel-agnostic"
        self._shuffle = random.Random(seed + 5)
        self.alloc: dict[int, dict[str, float]] = {}
        self.received: dict[int, dict[str, float]] = {}
        """Hours run on each type since the last reset (plus Gavel's half-round head start)."""
        self.type_time: dict[str, float] = {}
        self.deficit: dict[int, dict[str, float]] = {}
        self.active: dict[int, None] = {}
        """Jobs in the system in arrival order (Gavel's priority lists keep insertion order)."""
        self._credit_from: dict[int, float] = {}
        self.last_reset: float | None = None
        self.need_update = False
        self.round_end: float | None = None
        self.rounds = 0
        self.lp_solves = 0
        self.lp_seconds = 0.0
        self._order: list[str] | None = None

    # ------------------------------------------------------------------------------------ hooks

    def on_arrival(self, job: SimJob) -> None:
        self.active[job.idx] = None
        half = self.round_hours / 2
        self.received[job.idx] = dict.fromkeys(self.s.types, half)
        self.deficit[job.idx] = dict.fromkeys(self.s.types, 0.0)
        self.need_update = True

    def on_start(self, job: SimJob) -> None:
        self._credit_from[job.idx] = self.s.now

    def _credit(self, job: SimJob) -> None:
        start = self._credit_from.pop(job.idx, None)
        if start is None or job.gpu_type is None:
            return
        ran = self.s.now - start
        if job.idx in self.received:
            self.received[job.idx][job.gpu_type] += ran
        self.type_time[job.gpu_type] = self.type_time.get(job.gpu_type, 0.0) + ran

    def on_stop(self, job: SimJob) -> None:
        self._credit(job)

    def on_finish(self, job: SimJob) -> None:
        self._credit(job)
        self.active.pop(job.idx, None)
        self.received.pop(job.idx, None)
        self.deficit.pop(job.idx, None)
        self.alloc.pop(job.idx, None)
        self.need_update = True

    def on_wakeup(self, payload: Any) -> bool:
        return True

    # -------------------------------------------------------------------------------- allocation

    def _type_order(self) -> list[str]:
        """Types fastest first for most jobs (a Borda count over each job's own speed order, so a few
        job types with odd speeds do not reorder the cluster): Gavel's V100, P100, K80."""
        if self._order is None:
            sim = self.s
            points = dict.fromkeys(sim.types, 0)
            for job in sim.jobs:
                order = sim.allowed_types(job)
                for rank, t in enumerate(order):
                    points[t] += len(order) - rank
            self._order = sorted(sim.types, key=lambda t: (-points[t], t))
        return list(self._order)

    def _reset(self, now: float) -> None:
        """Gavel's _reset_time_run_so_far, then a fresh allocation over every active job."""
        sim = self.s
        elapsed = now - (self.last_reset or 0.0)
        half = self.round_hours / 2
        self.type_time = dict.fromkeys(sim.types, 0.0)
        for idx in self.active:
            rec = self.received[idx]
            shares = self.alloc.get(idx, {})
            for t in sim.types:
                self.deficit[idx][t] += shares.get(t, 0.0) * elapsed - (rec[t] - half)
                rec[t] = half
                self.type_time[t] += half
        self.last_reset = now
        self._solve()

    def _solve(self) -> None:
        sim = self.s
        started = time.perf_counter()
        capacity = {t: c for t, c in sim.state.healthy.items() if c > 0}
        jobs = [sim.jobs[i] for i in self.active]
        speeds = [{t: sim.speed(j, t) for t in sim.allowed_types(j) if capacity.get(t, 0) >= j.spec.gpus}
                  for j in jobs]
        shares = maxmin_allocation(speeds, [j.spec.gpus for j in jobs], capacity,
                                   [j.spec.priority for j in jobs], aware=self.aware)
        self.alloc = {j.idx: s for j, s in zip(jobs, shares, strict=True)}
        self.lp_solves += 1
        self.lp_seconds += time.perf_counter() - started

    # --------------------------------------------------------------------------------- schedule

    def schedule(self, now: float) -> None:
        sim = self.s
        in_round = self.round_end is not None and now < self.round_end - EPS and sim.running
        if in_round:
            return  # Gavel acts only at round boundaries: arrivals wait, freed GPUs idle
        self._round(now)

    def _round(self, now: float) -> None:
        sim = self.s
        self.rounds += 1
        for job in sim.running.values():
            self._credit(job)
            self._credit_from[job.idx] = now
        if not self.active:
            self.round_end = None
            return
        reset_due = self.last_reset is None or self.last_reset <= 0 or now - self.last_reset >= self.reset_hours - EPS
        if self.need_update and reset_due:
            self._reset(now)
            self.need_update = False
        order = self._type_order()
        if not self.aware:
            self._shuffle.shuffle(order)
        left = {t: sim.state.healthy.get(t, 0) for t in order}
        chosen: dict[int, str] = {}
        for job in sim.running.values():
            if not job.spec.preemptible and job.gpu_type is not None:
                chosen[job.idx] = job.gpu_type  # cannot be stopped: keeps its GPUs this round
                left[job.gpu_type] = left.get(job.gpu_type, 0) - job.spec.gpus
        for t in order:
            total_t = self.type_time.get(t, 0.0)
            entries = []
            for pos, idx in enumerate(self.active):
                job = sim.jobs[idx]
                x = self.alloc.get(idx, {}).get(t, 0.0) if idx in self.alloc else 0.0
                if idx not in self.alloc or x == 0.0:
                    priority = 0.0
                elif total_t > 0:
                    priority = x / (self.received[idx][t] / total_t)
                else:
                    priority = x * 1e9
                entries.append((-priority, -self.deficit[idx][t], -x, pos, job))
            entries.sort(key=lambda e: e[:4])
            allowed_cache: dict[int, bool] = {}
            for _, _, _, _, job in entries:
                if left[t] <= 0:
                    break
                if job.idx in chosen or job.spec.gpus > left[t]:
                    continue
                ok = allowed_cache.get(job.idx)
                if ok is None:
                    ok = t in sim.allowed_types(job) and sim.speed(job, t) > 0
                    allowed_cache[job.idx] = ok
                if not ok:
                    continue
                chosen[job.idx] = t
                left[t] -= job.spec.gpus
        for job in list(sim.running.values()):
            if chosen.get(job.idx) != job.gpu_type:
                sim.preempt(job)
        for idx, t in chosen.items():
            job = sim.jobs[idx]
            # A job with no allocation yet (it arrived since the last reset) holds its slot in the
            # greedy pass but is not given workers, as in Gavel; it starts after the next reset.
            if job.state == "pending" and idx in self.alloc:
                sim.try_start(job, [t])
        self.round_end = now + self.round_hours
        sim.wake_at(self.round_end)

    def stats(self) -> dict[str, Any]:
        return {"lp_solves": self.lp_solves, "lp_seconds": self.lp_seconds, "rounds": self.rounds}
