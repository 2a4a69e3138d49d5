"""Gavel-style heterogeneity-aware max-min fairness (Narayanan et al., OSDI'20).

An LP over the throughput matrix gives each active job a time fraction x_jk on each GPU type k:
maximise z subject to  z <= (sum_k thr_jk x_jk) / (w_j thr_j^equal)  for every job j,
sum_k x_jk <= 1,  sum_j gpus_j x_jk <= n_k (healthy GPUs of type k),  x >= 0.
thr_j^equal is the job's throughput under an equal time split across the types (n_k / N on type k),
so jobs that are fast everywhere do not dominate. The LP is re-solved when the set of active jobs
changes; it is realised by rounds (Gavel's 6 minutes): each round, jobs are ranked by
x_jk / (fraction of their time spent on k so far) and greedily given GPUs, so the time each job gets
on each type converges to its LP share. Solved with PuLP (HiGHS in-process when available, else CBC).

Every active job is in the LP: jobs with the same usable types, speeds on them, gang size and
priority are interchangeable in it, so it is solved over those classes (x_ck for class c of m_c
jobs, capacity sum_c m_c gpus_c x_ck <= n_k), which is exact -- averaging an optimal per-job
solution over the jobs of a class keeps it feasible and keeps every job's normalised throughput
>= z -- and has as many columns as classes (a handful on Philly, a few hundred with Gavel's
throughput matrix) instead of jobs, so no cap on the active set is needed.
"""

from __future__ import annotations

from typing import Any

from gpusched.simulations.policies.base import SchedPolicy
from gpusched.simulations.workload import SimJob


class Gavel(SchedPolicy):
    name = "gavel"

    def __init__(self, round_hours: float = 0.1) -> None:
        super().__init__()
        if round_hours <= 0:
            raise ValueError(f"Gavel round must be positive (got {round_hours}h)")
        self.round_hours = round_hours
        self.alloc: dict[int, dict[str, float]] = {}
        self.received: dict[int, dict[str, float]] = {}
        self.active_changed = True
        self.lp_solves = 0
        self.lp_seconds = 0.0
        self._next_round: float | None = None

    def on_arrival(self, job: SimJob) -> None:
        self.received[job.idx] = {}
        self.active_changed = True

    def on_stop(self, job: SimJob) -> None:
        assert job.gpu_type is not None
        rec = self.received.setdefault(job.idx, {})
        rec[job.gpu_type] = rec.get(job.gpu_type, 0.0) + (self.s.now - job.run_start)

    def on_finish(self, job: SimJob) -> None:
        self.received.pop(job.idx, None)
        self.alloc.pop(job.idx, None)
        self.active_changed = True

    def _solve(self) -> None:
        import time

        import pulp

        sim = self.s
        started = time.perf_counter()
        n = {t: c for t, c in sim.state.healthy.items() if c > 0}
        total = sum(n.values())
        self.alloc = {}
        if total == 0 or not (sim.running or sim.pending):
            return
        # Classes of interchangeable jobs: usable types (healthy pool large enough for the gang),
        # the job's speeds on them, gang size, priority.
        classes: dict[tuple[Any, ...], list[SimJob]] = {}
        for j in [*sim.running.values(), *sim.pending.values()]:
            usable = tuple(t for t in sim.allowed_types(j) if n.get(t, 0) >= j.spec.gpus)
            if not usable:
                continue
            key = (usable, tuple(sim.speed(j, t) for t in usable), j.spec.gpus, j.spec.priority)
            classes.setdefault(key, []).append(j)
        if not classes:
            return
        prob = pulp.LpProblem("gavel_maxmin", pulp.LpMaximize)
        z = pulp.LpVariable("z", lowBound=0)
        prob += z
        x: dict[tuple[int, str], pulp.LpVariable] = {}
        per_type: dict[str, list[Any]] = {t: [] for t in n}
        members = list(classes.items())
        column = {t: k for k, t in enumerate(n)}
        for c, ((usable, speeds, gpus, priority), jobs) in enumerate(members):
            for t in usable:
                x[c, t] = pulp.LpVariable(f"x_{c}_{column[t]}", lowBound=0, upBound=1)
                per_type[t].append(len(jobs) * gpus * x[c, t])
            equal = sum(s * n[t] / total for t, s in zip(usable, speeds, strict=True))
            prob += pulp.lpSum(s * x[c, t] for t, s in zip(usable, speeds, strict=True)) >= z * priority * equal
            prob += pulp.lpSum(x[c, t] for t in usable) <= 1
        for t, cap in n.items():
            if per_type[t]:
                prob += pulp.lpSum(per_type[t]) <= cap
        solver = pulp.HiGHS(msg=False) if "HiGHS" in pulp.listSolvers(onlyAvailable=True) else pulp.PULP_CBC_CMD(
            msg=False)
        prob.solve(solver)
        for c, ((usable, _, _, _), jobs) in enumerate(members):
            shares = {t: value for t in usable if (value := x[c, t].value() or 0.0) > 1e-6}
            if shares:
                for j in jobs:
                    self.alloc[j.idx] = shares
        self.lp_solves += 1
        self.lp_seconds += time.perf_counter() - started

    def on_wakeup(self, payload: Any) -> bool:
        return True

    def schedule(self, now: float) -> None:
        sim = self.s
        if self.active_changed:
            self._solve()
            self.active_changed = False
        ranked: list[tuple[float, float, int, str]] = []
        for idx, shares in self.alloc.items():
            job = sim.jobs[idx]
            if job.state not in ("pending", "running"):
                continue
            in_system = max(now - job.spec.release, 1e-9)
            rec = self.received.get(idx, {})
            for t, x in shares.items():
                got = rec.get(t, 0.0)
                if job.state == "running" and job.gpu_type == t:
                    got += now - job.run_start
                frac = got / in_system
                priority = x / frac if frac > 1e-12 else float("inf")
                ranked.append((-priority, job.spec.release, idx, t))
        ranked.sort()
        free = dict(sim.state.healthy)
        chosen: dict[int, str] = {}
        for _, _, idx, t in ranked:
            job = sim.jobs[idx]
            if idx in chosen or free.get(t, 0) < job.spec.gpus:
                continue
            chosen[idx] = t
            free[t] -= job.spec.gpus
        for job in list(sim.running.values()):
            if chosen.get(job.idx) != job.gpu_type and job.spec.preemptible:
                sim.preempt(job)
        for idx, t in chosen.items():
            job = sim.jobs[idx]
            if job.state == "pending":
                sim.try_start(job, [t])
        if (sim.pending or sim.running) and (self._next_round is None or self._next_round <= now + 1e-9):
            self._next_round = now + self.round_hours
            sim.wake_at(self._next_round)

    def stats(self) -> dict[str, Any]:
        return {"lp_solves": self.lp_solves, "lp_seconds": self.lp_seconds}
