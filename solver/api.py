"""The planner's one entry point: plan(cluster, jobs, options) -> Plan.

Pipeline: build the slot instance; a portfolio of list schedules gives a feasible incumbent at
once; the start-time MILP (CBC or HiGHS through PuLP), warm-started from it, improves it within the
time limit; node placement fixes the exact nodes of the first slot, and a job that cannot be placed
there (fragmentation, max_nodes) is barred from starting now and the plan re-solved. Whatever
happens, the best feasible plan found is returned with its lower bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gpusched.model import Cluster, Job, JobPlan, Placement, Plan, Segment, SlotUsage
from gpusched.solver.bounds import trivial_bound
from gpusched.solver.budget import Budget
from gpusched.solver.colgen import Prepared, lagrangian, prepare, solve_colgen
from gpusched.solver.greedy import list_work, lp_guided, portfolio
from gpusched.solver.instance import Instance, JobInfo, TypeOption, build_instance
from gpusched.solver.milp import MIP_GAP, MilpResult, solve_bucket_relaxation, solve_milp
from gpusched.solver.options import PlanOptions
from gpusched.solver.packing import pack
from gpusched.solver.placement import place_first_slot
from gpusched.solver.policies import MakespanPolicy, Policy, make_policy
from gpusched.solver.preemption import preemption_room
from gpusched.solver.progress import Progress, ProgressCallback
from gpusched.solver.schedule import Schedule, is_late, usage
from gpusched.units import format_hours

DEFAULT_TIME_LIMIT = 60.0
COLUMN_BUDGET = 120_000
"""Largest slot model (start columns) worth solving: past it, CBC's root LP alone outruns a minute
and does not look at its time limit while it solves it."""
MAX_REPAIRS = 6
COLGEN_MIN_COLUMNS = 20_000
"""Below this the whole slot LP is one quick solve; column generation's rounds (a CBC process
each) only pay on bigger models (at M, 56,000 columns: 1 s against 2 s)."""
COLGEN_SHARE = 0.6
"""Most of the time left the column generation may take (it usually converges well before)."""
COLGEN_TOLERANCE = 5e-4
"""Relative distance between the master LP and its Lagrangian bound at which column generation
stops: the bound it hands on is proven either way, and 0.05 % of the LP is far inside the gaps a
plan reports (at L, each further CBC round cost 5-13 s for the fourth decimal)."""
LAGRANGE_SHARE = 0.2
"""Most of the time left the Lagrangian stage may take (it stops earlier once its bound stalls)."""
POOL_SHARE = 0.6
"""Most of the time left building the pool of starts may take: the Lagrangian stage and the
column generation need it, and it replaces the capacity-free bound's own pass over the starts."""
MIN_MILP_SECONDS = 3.0
"""Below this, CBC rarely gets past its root node with a better plan than the warm start."""
MIN_SUPPORT_SECONDS = 0.3
"""Below this (of the solver's own clock), the LP-support MILP is not started."""
SMALL_JOBS = 1000
"""Up to this many jobs the capacity-free bound is always computed (it is cheap and sometimes
beats the LP's); past it, only when no stage proved a bound."""
FINISH_MARGIN = 0.02
"""Share of the time limit kept back for the final bookkeeping (the plan's per-job records)."""


@dataclass
class _Search:
    """What the solve has learned so far: the incumbent, the best valid bound, notes for the user."""

    inst: Instance
    policy: Policy
    options: PlanOptions
    budget: Budget
    schedule: Schedule
    source: str
    value: float
    bound: float | None = None
    """The best proven lower bound of the slot model (never an incumbent's value)."""
    notes: list[str] = field(default_factory=list)
    master: list[tuple[int, TypeOption, int]] = field(default_factory=list)
    """Starts the last column-generation master used, to open the next one (after a repair)."""
    progress: ProgressCallback | None = None
    covers_trivial: bool = False
    """The proven bound is at least the capacity-free one (a Lagrangian bound: its first step, at
    zero prices, is that bound, except for makespan's term), which then need not be computed."""

    def left(self) -> float:
        return self.budget.left()

    def offer(self, schedule: Schedule, source: str) -> None:
        value = self.policy.evaluate(schedule)
        if value < self.value - 1e-9:
            self.schedule, self.source, self.value = schedule, source, value
        self.report(source)

    def prove(self, bound: float | None, stage: str, covers_trivial: bool = False) -> None:
        if bound is not None:
            self.bound = bound if self.bound is None else max(self.bound, bound)
            self.covers_trivial = self.covers_trivial or covers_trivial
            if len(self.inst.jobs) > SMALL_JOBS or self.covers_trivial:
                # The capacity-free bound is only computed without a proven one past this size:
                # the time kept for it goes back to the search (at L, 5 s of a loaded minute).
                self.budget.reserved_work.pop("bound", None)
            self.report(stage)

    def report(self, stage: str) -> None:
        if self.progress is not None:
            self.progress(Progress.of(stage, self.value, self.bound, self.budget.elapsed()))

    def closed(self) -> bool:
        return self.bound is not None and self.value <= self.bound + 1e-9 * max(1.0, abs(self.bound))


@dataclass
class _Relaxation:
    """What an LP stage hands on: its fractional starts, and the bound it proves, if any."""

    fractional: list[tuple[int, TypeOption, int, float]]
    bound: float | None
    """A valid lower bound for the slot MILP (None when the LP was thinned)."""
    on_slots: bool
    """Its starts are slot starts whose fractional solution respects capacity (the slot LP), not
    bucket starts: then the rounding may keep its integral starts and the support MILP applies."""


def _relax(search: _Search, forbid: frozenset[int], first: bool) -> None:
    """LP stage: a valid lower bound and an alpha-point rounding of it.

    The slot-by-slot LP: by column generation for big models, whole when it is small and fits the
    time left; else the time-bucket LP with the finest buckets that fit; none when even that
    would not. Which fits is judged at the rates this run has measured (Budget).
    """
    inst, policy, budget = search.inst, search.policy, search.budget
    columns = _estimated_columns(inst)
    # The Lagrangian stage, then column generation (an unconverged master still rounds, its
    # Lagrangian bound still holds), whenever their pool of starts can be built in a part of the
    # time left; that includes the time kept for the capacity-free bound, which the first step
    # of the Lagrangian stage computes anyway (except makespan's term).
    kept = None
    if first and not isinstance(policy, MakespanPolicy):
        kept = budget.reserved_work.pop("bound", None)
    use_pool = columns >= COLGEN_MIN_COLUMNS and budget.fits("pool_column", columns, POOL_SHARE)
    if kept is not None and not use_pool:
        budget.reserved_work["bound"] = kept
    if use_pool:
        prepared, prices = _lagrangian_stage(search, forbid, first, columns)
        relaxation = None
        if not search.closed():
            relaxation = _colgen_relaxation(search, forbid, first, columns, prepared, prices)
        else:
            budget.skip("colgen")
    elif (
        columns < COLGEN_MIN_COLUMNS
        and columns <= COLUMN_BUDGET
        and budget.solver_fits("lp_column", columns, columns, 0.7)
    ):
        relaxation = _whole_relaxation(search, forbid, columns)
    else:
        relaxation = _bucket_relaxation(search, columns, first)
    if relaxation is None:
        return
    if first and relaxation.bound is not None:
        search.prove(relaxation.bound, "lp")
    work = list_work(inst)
    if not budget.fits("list", work):
        budget.skip("lp-rounding")
        return
    rounded, name, _ = lp_guided(
        inst, policy, relaxation.fractional, forbid, exact=relaxation.on_slots, budget=budget
    )
    search.offer(rounded, name)
    # (Over a bucket LP's support, spread to every start of each bucket, the model is too loose to
    # beat the thinned MILP at L: measured 6.6 % against 3.6 % for cost.)
    if relaxation.on_slots and not search.closed():
        _support_milp(search, relaxation.fractional, forbid)
    # Time the MILP cannot use well goes to more alpha-points: each is one list schedule.
    if budget.left() < MIN_MILP_SECONDS and not search.closed() and budget.fits("list", work):
        rounded, name, _ = lp_guided(
            inst,
            policy,
            relaxation.fractional,
            forbid,
            exact=relaxation.on_slots,
            alphas=(0.1, 0.35, 0.65, 0.9),
            budget=budget,
        )
        search.offer(rounded, name)


def _lagrangian_stage(
    search: _Search, forbid: frozenset[int], first: bool, columns: int
) -> tuple[Prepared, np.ndarray | None]:
    """The Lagrangian bound of the slot model by subgradient steps (colgen.lagrangian), and a
    rounding of the jobs' own choices at its prices.

    A step is array arithmetic over every start, no solver process: where a simplex round of the
    column generation costs seconds (at L under load the master never answered within 10 s and
    the plan fell back to the capacity-free bound, 83-93 % gap), a tenth of the time limit brings
    the bound to within tenths of a percent of the slot LP's. The pool and the prices go on to
    the column generation, which then needs no warm-up of its own."""
    inst, policy, budget = search.inst, search.policy, search.budget
    # Its first step (zero prices) is the capacity-free bound, and one step always runs.
    covers = first and not isinstance(policy, MakespanPolicy)
    with budget.stage("lagrangian-pool", "pool_column", columns):
        prepared = prepare(inst, policy, forbid)
    seconds = max(0.0, LAGRANGE_SHARE * budget.left())
    with budget.stage("lagrangian"):
        result = lagrangian(prepared, time_limit=budget.solver_seconds(seconds), target=search.value)
    if first and result.bound is not None:
        # Summed in floating point over thousands of jobs: kept a hair below, so it stays a bound.
        search.prove(
            result.bound - 1e-9 * max(1.0, abs(result.bound)),
            "lagrangian",
            covers_trivial=covers,
        )
    if result.fractional and not search.closed() and budget.fits("list", list_work(inst)):
        rounded, name, _ = lp_guided(inst, policy, result.fractional, forbid, alphas=(0.5,), budget=budget)
        search.offer(rounded, f"lagrangian-{name}")
    return prepared, result.prices if result.bound is not None else None


def _colgen_relaxation(
    search: _Search,
    forbid: frozenset[int],
    first: bool,
    columns: int,
    prepared: Prepared | None = None,
    prices: np.ndarray | None = None,
) -> _Relaxation | None:
    """The slot LP by column generation; what it leaves unconverged still bounds and rounds."""
    inst, policy, options, budget = search.inst, search.policy, search.options, search.budget
    share = COLGEN_SHARE * budget.left()  # the rest is the MILP stages'
    with budget.stage("colgen"):
        result = solve_colgen(
            inst,
            policy,
            solver=options.solver,
            time_limit=budget.solver_seconds(share),
            threads=options.threads,
            forbid_now=forbid,
            seeds=[(j, c.option, c.start) for j, c in search.schedule.items()] + search.master,
            tolerance=COLGEN_TOLERANCE,
            prepared=prepared,
            warm_prices=prices,
        )
    if result.converged:  # a run cut by its limit says how long the limit was, not the rate
        budget.observe("colgen_column", columns, budget.stages[-1].seconds)
    if not result.converged and first:
        search.notes.append(
            f"the slot LP did not converge in its share of the time limit ({result.rounds} rounds of column "
            "generation): the bound is its best Lagrangian bound"
        )
    if result.objective is None:
        if first and result.bound is not None:
            search.prove(result.bound, "colgen")
        if result.lagrangian and budget.fits("list", list_work(inst)):
            # No master solution in time: round the jobs' own choices at the best prices.
            rounded, name, _ = lp_guided(
                inst, policy, result.lagrangian, forbid, alphas=(0.5,), budget=budget
            )
            search.offer(rounded, f"lagrangian-{name}")
            # Those choices and the incumbent's starts also make a small MILP (the incumbent keeps
            # it feasible): what the LP-support MILP does with a master's solution.
            if not search.closed():
                _support_milp(search, result.lagrangian, forbid)
        return None
    search.master = [(j, opt, s) for j, opt, s, _ in result.fractional]
    return _Relaxation(result.fractional, result.bound, on_slots=True)


def _whole_relaxation(search: _Search, forbid: frozenset[int], columns: int) -> _Relaxation | None:
    budget = search.budget
    with budget.stage("lp", "lp_column", columns):
        relaxed = solve_milp(
            search.inst,
            search.policy,
            solver=search.options.solver,
            time_limit=budget.solver_seconds(budget.left()),
            threads=search.options.threads,
            forbid_now=forbid,
            column_budget=COLUMN_BUDGET,
            relax=True,
            hard_limit=budget.solver_seconds(budget.left()),
        )
    if relaxed.objective is None:
        return None
    return _Relaxation(relaxed.fractional, None if relaxed.thinned else relaxed.bound, on_slots=True)


def _bucket_relaxation(search: _Search, columns: int, first: bool) -> _Relaxation | None:
    """A relaxation of the slot model: its optimum is a valid bound, but its starts are bucket
    starts, not a capacity-feasible placement."""
    inst, budget = search.inst, search.budget
    bucket = next(
        (b for b in (2, 4, 8, 16, 32) if budget.solver_fits("bucket_column", columns / b, columns // b, 0.4)),
        None,
    )
    if bucket is None:
        budget.skip("lp")
        if first:
            search.notes.append(
                f"the {columns}-column model does not fit the time left: the best heuristic plan is "
                "returned with a capacity-free bound (raise --time-limit for an optimised plan)"
            )
        return None
    with budget.stage("bucket-lp", "bucket_column", columns / bucket):
        relaxed = solve_bucket_relaxation(
            inst,
            search.policy,
            bucket,
            solver=search.options.solver,
            time_limit=budget.solver_seconds(budget.left()),
            threads=search.options.threads,
            hard_limit=budget.solver_seconds(budget.left()),
        )
    if first:
        search.notes.append(
            f"lower bound from the LP over {format_hours(bucket * inst.slot)} buckets (the slot model is too "
            "big for the time limit)"
        )
    if relaxed.objective is None:
        return None
    return _Relaxation(relaxed.fractional, relaxed.objective, on_slots=False)


def _solve_bounded(
    search: _Search, stage: str, n_columns: int, share: float, **kwargs: object
) -> MilpResult | None:
    """solve_milp with its time limit from the time actually left less the solver's measured
    overhead, killed at the deadline; None (and the stage recorded as skipped) when what is left
    would not give it `MIN_SUPPORT_SECONDS`."""
    budget = search.budget
    limit = budget.solver_limit(n_columns, share) - budget.estimate("build_column", n_columns)
    if limit < MIN_SUPPORT_SECONDS:
        budget.skip(stage)
        return None
    with budget.stage(stage):
        result = solve_milp(
            search.inst,
            search.policy,
            solver=search.options.solver,
            time_limit=budget.solver_seconds(limit),
            threads=search.options.threads,
            hard_limit=budget.solver_seconds(budget.left()),
            # Building past half the time left leaves the search too little to be worth it.
            build_limit=budget.solver_seconds(0.5 * share * budget.left()),
            **kwargs,  # type: ignore[arg-type]
        )
    budget.observe("build_column", n_columns, result.build_s)
    budget.note_solver(n_columns, limit, budget.stages[-1].seconds - result.build_s)
    return result


def _support_milp(
    search: _Search, fractional: list[tuple[int, TypeOption, int, float]], forbid: frozenset[int]
) -> None:
    """The MILP over the starts the LP uses plus the incumbent's: a small model CBC closes fast.

    Where the LP is nearly integral (as under the cost policy) its support holds a near-optimal
    plan; the incumbent's starts keep the small model feasible.
    """
    inst = search.inst
    # Straight from the starts (not by scanning every start of the model: 800,000 at L), in the
    # model's own order: job, option, start.
    starts = [(j, opt, s) for j, opt, s, _ in fractional]
    starts += [(j, c.option, c.start) for j, c in search.schedule.items()]
    unique = {(j, id(opt), s): (j, opt, s) for j, opt, s in starts if not (s == 0 and j in forbid)}

    def position(start: tuple[int, TypeOption, int]) -> tuple[int, int, int]:
        j, opt, s = start
        return j, next(i for i, o in enumerate(inst.all_options(inst.jobs[j])) if o is opt), s

    columns = [(inst.jobs[j], opt, s) for j, opt, s in sorted(unique.values(), key=position)]
    # Half the time when the thinned MILP comes next and half would leave it enough, else all of it.
    share = 0.5 if _thinned_milp_follows(search) and search.left() >= 2.5 * MIN_MILP_SECONDS else 1.0
    result = _solve_bounded(
        search, "support-milp", len(columns), share, warm=search.schedule, forbid_now=forbid, columns=columns
    )
    if result is not None and result.schedule is not None:
        search.offer(result.schedule, f"lp-support-milp-{search.options.solver}")


def _thinned_milp_follows(search: _Search) -> bool:
    """Past the column budget, the thinned MILP only pays where no slot LP guided the plan: after
    column generation the LP-support MILP is the better use of the time (at L, 0.3 % against
    several % for the thinned model, which also overran its limit)."""
    return _estimated_columns(search.inst) <= COLUMN_BUDGET or not search.master


def _improve(search: _Search, forbid: frozenset[int], first: bool) -> None:
    """MILP stage, warm-started from the incumbent, for whatever time is left."""
    inst, budget = search.inst, search.budget
    if not _thinned_milp_follows(search):
        return
    # A model that fits the time left (at the rate this run measured); else the same model with
    # far-future starts on a coarser grid (still feasible plans, no longer a bound), as long as
    # that leaves a useful model.
    columns = int(min(COLUMN_BUDGET, budget.affordable("build_column", 0.3 * budget.left())))
    search_seconds = budget.solver_limit(columns) - budget.estimate("build_column", columns)
    if (
        search.closed()
        or search_seconds < MIN_MILP_SECONDS
        or columns < 0.25 * min(_estimated_columns(inst), COLUMN_BUDGET)
    ):
        if not search.closed():
            budget.skip("milp")
        return
    result = _solve_bounded(
        search, "milp", columns, 1.0, warm=search.schedule, forbid_now=forbid, column_budget=columns
    )
    if result is None:
        return
    if result.schedule is not None:
        search.offer(result.schedule, f"milp-{search.options.solver}")
    if first and not result.thinned:
        search.prove(result.bound, "milp")


@dataclass
class _Outcome:
    search: _Search
    schedule: Schedule
    placements: dict[int, list[Placement]]
    forbid: frozenset[int]
    notes: list[str]
    room: tuple[frozenset[int], int] | None = None
    """At the first placement failure: running jobs whose stop would let a failed gang start now,
    and that gang."""
    room_forbid: frozenset[int] = frozenset()
    """The jobs barred from starting now when that failure happened."""


def _plan_with_repairs(
    inst: Instance,
    policy: Policy,
    options: PlanOptions,
    plannable: bool,
    forbid: frozenset[int],
    budget: Budget,
    previous: _Search | None = None,
    progress: ProgressCallback | None = None,
) -> _Outcome:
    """Search, place the first slot, and re-plan with the jobs that could not be placed barred from
    starting now, until every job that starts now has nodes.

    A re-plan runs FIFO and the list order that won before (not the whole portfolio: at L that is
    seconds per order), and only when the time left holds another attempt as long as the last."""
    notes: list[str] = []
    room: tuple[frozenset[int], int] | None = None
    room_forbid: frozenset[int] = frozenset()
    search: _Search | None = None
    failed: list[int] = []
    orders: tuple[str, ...] | None = None
    for attempt in range(MAX_REPAIRS + 1):
        first = attempt == 0 and previous is None
        attempt_started = budget.now()
        schedule, source, _ = portfolio(inst, policy, forbid, budget=budget, names=orders)
        orders = (source,)
        search = _Search(
            inst, policy, options, budget, schedule, source, policy.evaluate(schedule), progress=progress
        )
        if previous is not None:
            search.bound, search.notes, search.master = previous.bound, list(previous.notes), previous.master
            search.covers_trivial = previous.covers_trivial
        search.report("greedy")
        if plannable:
            _relax(search, forbid, first=first)
            _improve(search, forbid, first=first)
        previous = search
        schedule = search.schedule
        placements, failed = place_first_slot(inst, schedule)
        if not failed:
            break
        if room is None and attempt == 0:
            room = preemption_room(inst, schedule, placements, failed)
            room_forbid = forbid
        names = ", ".join(inst.jobs[j].job.name for j in failed)
        forbid = forbid | frozenset(failed)
        if budget.left() < 2 * (budget.now() - attempt_started):
            # No time for another search: the packing (plan()) delays what does not fit now.
            budget.skip("repair")
            notes.append(f"no node placement for {names} now (fragmentation or max_nodes): delayed")
            break
        notes.append(
            f"no node placement for {names} now (fragmentation or max_nodes): re-planned to start later"
        )
    assert search is not None
    return _Outcome(search, schedule, placements, forbid, search.notes + notes, room, room_forbid)


def plan(
    cluster: Cluster,
    jobs: list[Job],
    options: PlanOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    clock: Callable[[], float] | None = None,
) -> Plan:
    """The best plan found within the time limit, with its proven lower bound.

    `progress` is called at each stage with the incumbent, the bound and the gap so far (the CLI
    shows them live). `clock` replaces the monotonic clock the time limit is kept on (tests model a
    slower machine with budget.ScaledClock)."""
    options = options or PlanOptions()
    time_limit = options.time_limit if options.time_limit is not None else DEFAULT_TIME_LIMIT
    budget = Budget(time_limit, clock or time.perf_counter)
    with budget.stage("build"):
        inst = build_instance(cluster, jobs, options)
    policy = make_policy(options.policy, inst)
    plannable = any(info.plannable for info in inst.jobs)
    small = len(inst.jobs) <= SMALL_JOBS
    columns = _estimated_columns(inst)
    # Kept for the end whatever happens: the node packing, the capacity-free bound (needed when no
    # LP proves one), the plan's records; at the rates measured as the search goes.
    # Packing's cost per job grows with the square root of the nodes (a placement over the nodes
    # with room; measured per job side by side: 4.5e-4 s at M's 64 nodes, 1.2e-3 s at L's 512).
    pack_work = len(inst.jobs) * max(1, len(cluster.nodes)) ** 0.5
    budget.reserve(FINISH_MARGIN * budget.limit, pack=pack_work, bound=columns, finish=len(inst.jobs))

    outcome = _plan_with_repairs(inst, policy, options, plannable, frozenset(), budget, progress=progress)
    first_took = budget.elapsed()
    work = list_work(inst)
    if outcome.room is not None:
        if budget.left() > max(2 * budget.estimate("list", work), 0.2 * first_took):
            # A gang that fits the type but not the nodes now: also try stopping the lower-priority
            # jobs in its way, and keep whichever plan is better.
            victims, for_job = outcome.room
            preempting = _plan_with_repairs(
                inst,
                policy,
                options,
                plannable,
                outcome.room_forbid | victims,
                budget,
                outcome.search,
                progress,
            )
            if policy.evaluate(preempting.schedule) < policy.evaluate(outcome.schedule) - 1e-9:
                names = ", ".join(sorted(inst.jobs[v].job.name for v in victims))
                preempting.notes.insert(
                    0, f"preempted {names} to make room on whole nodes for {inst.jobs[for_job].job.name} now"
                )
                outcome = preempting
        else:
            budget.skip("preempting-replan")
    search, source = outcome.search, outcome.search.source
    notes = outcome.notes
    budget.reserve(0.0)  # what was kept back is the packing's now
    # Every job gets nodes for its whole run; what does not fit where planned is delayed.
    with budget.stage("pack", "pack", pack_work):
        packed = pack(inst, outcome.schedule, outcome.forbid)
    schedule, placements = packed.schedule, packed.placements
    if packed.delayed or packed.dropped:
        moved = ", ".join(inst.jobs[j].job.name for j in packed.delayed + packed.dropped)
        notes.append(f"no nodes hold {moved} for the whole run where the type-level plan put them: delayed")
    notes.extend(_stopped_notes(inst))
    if budget.skipped:
        notes.append(
            "time limit: stages shortened or skipped to hold it ("
            + ", ".join(dict.fromkeys(budget.skipped))
            + f"; this machine ran {budget.slowdown():.1f}x the reference time)"
        )

    bound = search.bound
    objective = policy.evaluate(schedule)
    # The capacity-free bound rarely beats an LP bound and costs seconds at L: only when cheap or alone.
    lower = float("-inf")
    if bound is None or (small and not search.covers_trivial and budget.fits("bound", columns, 0.5)):
        with budget.stage("bound", "bound", columns):
            lower = trivial_bound(inst, policy)
    if bound is not None:
        lower = max(lower, min(bound, objective))
    gap = 0.0 if objective <= lower + 1e-9 else (objective - lower) / max(abs(objective), 1e-9)
    with budget.stage("finish", "finish", len(inst.jobs)):
        job_plans = [_job_plan(inst, policy, info, schedule, placements) for info in inst.jobs]
        utilisation = _utilisation(inst, schedule)
    late = any(jp.deadline_met is False for jp in job_plans)
    # A non-preemptible running job whose GPUs go away cannot run as asked, whatever the search did.
    stopped = any(info.stopped is not None and not info.job.preemptible for info in inst.jobs)
    optimal = gap <= MIP_GAP
    status = "infeasible" if late or stopped else ("optimal" if optimal else "feasible")
    if optimal:
        notes.append(
            f"optimal: the objective is within a relative gap of {MIP_GAP:g} of the proven lower bound "
            f"({lower:.6g})"
        )
    if late:
        notes.append("some deadlines cannot be met: see the jobs with deadline_met = false")
    if progress is not None:
        progress(Progress.of("done", objective, lower if lower > float("-inf") else None, budget.elapsed()))
    return Plan(
        policy=options.policy,
        solver=options.solver,
        found_by=source,
        status=status,
        epoch=options.epoch,
        horizon=inst.n_slots * inst.slot,
        slot=inst.slot,
        objective=objective,
        lower_bound=lower,
        gap=gap,
        solve_time_s=budget.elapsed(),
        total_cost=sum(jp.cost for jp in job_plans),
        jobs=job_plans,
        utilisation=utilisation,
        notes=notes,
    )


def _stopped_notes(inst: Instance) -> list[str]:
    """Running jobs whose GPUs go away under them: say so, whatever else the plan does."""
    out = []
    for info in inst.jobs:
        if info.stopped is None:
            continue
        then = "stopped, not planned again" if not info.job.preemptible else "cannot go on in place"
        out.append(f"running job {info.job.name} {then}: {info.stopped}")
    return out


def _estimated_columns(inst: Instance) -> int:
    return sum(len(inst.start_range(info, o)) for info in inst.jobs for o in inst.all_options(info))


def _job_plan(
    inst: Instance, policy: Policy, info: JobInfo, schedule: Schedule, placements: dict[int, list[Placement]]
) -> JobPlan:
    job = info.job
    choice = schedule.get(info.index)
    running = job.running is not None
    if choice is None:
        why_code, why = _why_unscheduled(inst, info)
        return JobPlan(
            job=job.name,
            status="unscheduled",
            preempted=running,
            deadline_met=False if job.deadline is not None else None,
            reason=why,
            reason_code=why_code,  # type: ignore[arg-type]
        )
    opt = choice.option
    gtype = inst.types[opt.type_index]
    start = inst.slot_start(choice.start)
    end = start + opt.run_hours
    horizon = inst.n_slots * inst.slot
    keeps = opt is info.continue_option
    late = is_late(inst, info, choice)
    reason = None
    code = None
    if late:
        code = "deadline"
        alone = min(o.run_hours for o in inst.all_options(info)) + inst.slot_start(info.release_slot)
        if alone > (job.deadline or 0.0) + 1e-9:
            reason = (
                f"cannot finish by its deadline {format_hours(job.deadline or 0.0)}: even alone on its fastest "
                f"type it would end at {format_hours(alone)}"
            )
        else:
            reason = (
                f"misses its deadline {format_hours(job.deadline or 0.0)} (ends {format_hours(end)}): the capacity "
                "before it is taken by jobs of higher priority or earlier deadlines"
            )
    elif choice.start > info.release_slot:
        reason = f"waiting for {info.gpus} x {gtype.name}; planned start {format_hours(start)} from now"
    return JobPlan(
        job=job.name,
        status="running" if running and choice.start == 0 else "scheduled",
        gpu_type=gtype.name,
        gpus=info.gpus,
        start=start,
        end=end,
        finishes=end <= horizon + 1e-9,
        segments=[Segment(start=start, end=min(end, horizon))],
        placement=placements.get(info.index, []),
        cost=info.gpus * opt.run_hours * gtype.price_per_hour,
        preempted=running and choice.start > 0,
        migrated=running and choice.start == 0 and not keeps,
        restarts=1 if running and not keeps else 0,
        deadline_met=None if job.deadline is None else not late,
        tardiness=max(0.0, end - job.deadline) if job.deadline is not None else 0.0,
        reason=reason,
        reason_code=code,  # type: ignore[arg-type]
    )


def _why_unscheduled(inst: Instance, info: JobInfo) -> tuple[str, str]:
    if not info.plannable:
        return info.reason_code or "capacity", info.reason or "no GPU type can run it"
    horizon = inst.n_slots * inst.slot
    if info.release_slot >= inst.n_slots:
        return (
            "horizon",
            f"released at {format_hours(info.job.release)}, after the {format_hours(horizon)} horizon",
        )
    types = sorted({inst.types[o.type_index].name for o in inst.all_options(info)})
    return "capacity", (
        f"waiting for {info.gpus} x {'/'.join(types)}: no free capacity inside the {format_hours(horizon)} horizon"
    )


def _utilisation(inst: Instance, schedule: Schedule) -> list[SlotUsage]:
    used = usage(inst, schedule)
    return [
        SlotUsage(
            slot=t,
            start=inst.slot_start(t),
            used={g.name: int(used[k, t]) for k, g in enumerate(inst.types)},
            capacity={g.name: int(inst.capacity[k][t]) for k, g in enumerate(inst.types)},
        )
        for t in range(inst.n_slots)
    ]
