"""`gpusched simulate` (replay a trace under one or several policies), `gpusched capacity` (the
cheapest cluster that meets an SLO for a workload) and `gpusched validate` (the published-number checks).

Option parsing and printing only: the replay is simulations/runner.py, the sizing loop
simulations/sizing.py, the checks simulations/validate.py.

Only typer, rich, the standard library, the domain model and the policy names are imported at module
level so `gpusched --help` stays fast; the engine, matplotlib and rich are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpusched import defaults
from gpusched.cli_util import duration_option, fail, finite_option, report_console
from gpusched.model import POLICIES
from gpusched.simulations.policies import ALIASES, BASELINES, PLANNER_PREFIX

if TYPE_CHECKING:
    from rich.console import Console

    from gpusched.model import GpuType
    from gpusched.simulations.sizing import Sizing

def _with_aliases(names: tuple[str, ...]) -> list[str]:
    alias = {v: k for k, v in ALIASES.items()}
    return [f"{n} (alias {alias[n]})" if n in alias else n for n in names]


POLICY_HELP = (
    f"{', '.join(_with_aliases(BASELINES))}, {PLANNER_PREFIX} "
    f"(= {PLANNER_PREFIX}:{defaults.POLICY}) or {PLANNER_PREFIX}:{'|'.join(POLICIES)}."
)
"""The policies `make_policy` accepts, from its own registry and model.POLICIES (one list)."""

MAX_PLAN_WINDOW = 10_000
"""Queued jobs per planner call: past this the planner's model cannot be solved between events."""


def number_list(text: str, option: str, expected: str) -> list[float]:
    """'1,16' -> [1.0, 16.0]; NaN, infinities and words are refused naming the option."""
    import math

    from gpusched.safeio import shown

    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise fail(f"{option}: {shown(part)} is not a number (expected {expected})") from None
        if not math.isfinite(value):
            raise fail(f"{option}: {shown(part)} is not a finite number (expected {expected})")
        values.append(value)
    return values


def simulate(
    trace: Annotated[
        str,
        typer.Option(
            "--trace",
            "-t",
            help="Trace file (philly/openb/csv), or a synthetic "
            "spec such as 'jobs=500,load=0.8' or a YAML file of one.",
        ),
    ],
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--cluster",
            "-c",
            help="cluster.yaml, or an openb node list "
            "CSV; optional for openb (the node list beside the pods).",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="philly, openb, csv or synthetic (default: detected from the CSV header)."
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "-p",
            help=POLICY_HELP,
        ),
    ] = "fifo",
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare", help="Comma-separated policies to run side by side, e.g. fifo,las,gavel,gpusched."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for synthetic traces, failures and throughput mapping.")
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Directory for summary.json/csv, jobs.csv, PNG plots and report.html."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Replay only the first N jobs (after --start/--end).", min=1)
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Only jobs submitted at or after this offset, e.g. 24h.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Only jobs submitted before this offset, e.g. 7d.")] = None,
    replan: Annotated[
        str, typer.Option(help="gpusched policy: re-plan at most this often (sim time).")
    ] = "5m",
    plan_window: Annotated[
        int,
        typer.Option(
            help="gpusched policy: core window of queued jobs per plan (half earliest, half the objective's "
            "most urgent), plus up to as many that fit the free GPUs; also the cap on running jobs passed "
            "as preemption candidates.",
            min=1,
        ),
    ] = 64,
    plan_time_limit: Annotated[float, typer.Option(help="gpusched policy: planner seconds per call.")] = 5.0,
    mtbf: Annotated[
        str | None,
        typer.Option(help="Mean time between failures of one GPU, e.g. 5000h (default: no failures)."),
    ] = None,
    mttr: Annotated[str, typer.Option(help="Mean GPU repair time.")] = "2h",
    restart_overhead: Annotated[
        str, typer.Option(help="Restart cost for jobs whose trace gives none.")
    ] = "0m",
    checkpoint: Annotated[
        bool,
        typer.Option(
            "--checkpoint/--no-checkpoint", help="Preempted jobs save their progress (failures never do)."
        ),
    ] = True,
    spread: Annotated[bool, typer.Option(help="Let gangs that fit on one node span several nodes.")] = False,
    throughputs: Annotated[
        Path | None,
        typer.Option(
            help="Gavel simulation_throughputs.json: per-type job speeds, job types drawn by --seed."
        ),
    ] = None,
    las_thresholds: Annotated[
        str,
        typer.Option(
            help="LAS queue thresholds in GPU-hours of attained service, increasing, comma-separated."
        ),
    ] = "1,16",
    las_starvation: Annotated[
        str | None,
        typer.Option(
            help="LAS starvation guard: a job preempted into a lower queue that has waited this long "
            "(e.g. 4h) goes back to the top queue with a fresh quota. Default: off."
        ),
    ] = None,
    gavel_round: Annotated[str, typer.Option(help="Gavel round length (simulated time).")] = "6m",
) -> None:
    """Replay a job trace on a cluster and report JCT, queueing, utilisation, fragmentation and cost."""
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gpusched.config import InputError, read_document
    from gpusched.safeio import check_output_dir, shown

    err = Console(stderr=True)

    def hours(value: str | None, name: str, allow_zero: bool = False) -> float | None:
        return None if value is None else duration_option(value, name, allow_zero=allow_zero)

    from gpusched.simulations import inputs, runner
    from gpusched.simulations.engine import SimConfig
    from gpusched.simulations.runner import PolicyOptions, Replay
    from gpusched.simulations.traces import FORMATS

    if fmt is not None and fmt not in FORMATS:
        raise fail(f"--format: unknown format {shown(fmt)} (expected one of {', '.join(FORMATS)})")
    names = policy_list(policy, compare)
    replan_h = hours(replan, "--replan")
    round_h = hours(gavel_round, "--gavel-round")
    starvation_h = hours(las_starvation, "--las-starvation")
    assert replan_h is not None and round_h is not None
    thresholds = las_threshold_list(las_thresholds)
    finite_option(plan_time_limit, "--plan-time-limit", maximum=3600.0)
    if plan_window > MAX_PLAN_WINDOW:
        raise fail(f"--plan-window: {plan_window} is out of range (expected 1 to {MAX_PLAN_WINDOW})")
    try:
        if out is not None:
            check_output_dir(out, "--out")
        if throughputs is not None:
            read_document(throughputs)  # limits, encoding and finite numbers, before the replay
    except InputError as exc:
        raise fail(str(exc)) from None
    config = SimConfig(
        seed=seed,
        checkpoint_on_preempt=checkpoint,
        default_restart_overhead=hours(restart_overhead, "--restart-overhead", allow_zero=True) or 0.0,
        mtbf_hours=hours(mtbf, "--mtbf"),
        mttr_hours=hours(mttr, "--mttr") or 2.0,
        spread_small_jobs=spread,
    )
    try:
        the_cluster, jobs, detected = inputs.load(
            cluster,
            trace,
            fmt,
            limit=limit,
            start=hours(start, "--start", allow_zero=True),
            end=hours(end, "--end"),
            seed=seed,
            throughputs=throughputs,
        )
    except InputError as exc:
        raise fail(str(exc)) from None

    replay = Replay(
        cluster=the_cluster,
        jobs=jobs,
        policies=names,
        config=config,
        options=PolicyOptions(
            replan_minutes=replan_h * 60,
            plan_window=plan_window,
            plan_time_limit=plan_time_limit,
            las_thresholds=tuple(thresholds),
            las_starvation=starvation_h,
            round_hours=round_h,
        ),
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not sys.stderr.isatty(),
    ) as progress:
        tasks = {name: progress.add_task(f"{name:>14}", total=len(jobs)) for name in names}
        results = runner.run(replay, lambda name, done, _total: progress.update(tasks[name], completed=done))

    from gpusched.simulations.metrics import summarise

    _print_table([summarise(r) for r in results])
    for line in runner.planner_warnings(results):
        err.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if out is not None:
        try:
            runner.write_report(results, out, replay, trace, detected)
        except OSError as exc:
            raise fail(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
        Console().print(f"wrote {out}/summary.json, summary.csv, jobs.csv, *.png, report.html")


def policy_list(policy: str, compare: str | None) -> list[str]:
    """--compare's policies, else --policy; each checked against what make_policy accepts."""
    from gpusched.safeio import shown
    from gpusched.simulations.policies import policy_names

    names = [p.strip() for p in (compare.split(",") if compare else [policy]) if p.strip()]
    option = "--compare" if compare else "--policy"
    if not names:
        raise fail(f"{option}: no policy named")
    known = policy_names()
    for name in names:
        if name.lower() not in known and name.lower() not in ALIASES:
            raise fail(f"{option}: unknown policy {shown(name)} (known: {', '.join(known)})")
    return names


def las_threshold_list(text: str) -> list[float]:
    """--las-thresholds: positive, increasing GPU-hours."""
    import itertools

    from gpusched.safeio import shown

    thresholds = number_list(text, "--las-thresholds", "GPU-hours such as 1,16")
    if not thresholds or thresholds[0] <= 0 or any(b <= a for a, b in itertools.pairwise(thresholds)):
        raise fail(
            f"--las-thresholds: {shown(text)} is not positive and increasing (expected GPU-hours such as 1,16)"
        )
    return thresholds


def _print_table(summaries: list[dict[str, object]]) -> None:
    from rich.table import Table

    from gpusched.simulations.report import SUMMARY_FIELDS, _fmt

    table = Table(title="simulation summary (hours, $)")
    table.add_column("metric", no_wrap=True)
    for s in summaries:
        table.add_column(str(s["policy"]), justify="right", no_wrap=True)
    for key, label in SUMMARY_FIELDS:
        table.add_row(label, *(_fmt(s.get(key)) for s in summaries))
    report_console(26 + 16 * len(summaries)).print(table)


MAX_WHAT_IF_GPUS = 100_000


def check_what_if(text: str, type_names: list[str]) -> None:
    """A --what-if is checked before the sizing runs: a typo should not cost minutes of simulation."""
    import re

    from gpusched.config import InputError
    from gpusched.safeio import shown
    from gpusched.simulations import capacity as cap

    if m := cap.WHAT_IF_ADD.match(text):
        if int(m.group(1)) > MAX_WHAT_IF_GPUS:
            raise InputError(f"--what-if: {shown(text)} adds more than {MAX_WHAT_IF_GPUS:,} GPUs")
        if m.group(2) not in type_names:
            raise InputError(
                f"--what-if: {shown(text)}: unknown GPU type {shown(m.group(2))} (known: {', '.join(type_names)})"
            )
        return
    if m := cap.WHAT_IF_LOSE.match(text):
        kind = re.match(r"^(.+)-[ro]\d+$", m.group(1))
        if kind is None or kind.group(1) not in {t.lower() for t in type_names}:
            raise InputError(
                f"--what-if: {shown(text)}: candidate nodes are named <type>-r<i> (reserved) or <type>-o<i> "
                f"(on-demand), e.g. 'lose node {type_names[0].lower() if type_names else 'h100'}-r0'"
            )
        return
    if m := cap.WHAT_IF_DEMAND.match(text):
        if 1 + float(m.group(1).replace(" ", "")) / 100 <= 0:
            raise InputError(f"--what-if: {shown(text)}: demand change must leave some demand")
        return
    raise InputError(f"--what-if: {shown(text)} (expected '+16 H100', 'lose node NAME' or 'demand +30%')")


def candidate_types(gpu_types: str | None, cluster: Path | None, prices: str | None) -> list[GpuType]:
    """capacity's candidate GPU types: --gpu-types NAME:PRICE:SPEED,... or --cluster's, --prices applied.
    InputError names the option at fault."""
    from gpusched.config import InputError, load_cluster, validate
    from gpusched.model import GpuType
    from gpusched.safeio import shown

    if gpu_types:
        types = []
        for part in gpu_types.split(","):
            bits = part.strip().split(":")
            if len(bits) != 3:
                raise InputError(
                    f"--gpu-types: {shown(part.strip())} is not NAME:PRICE:SPEED (e.g. A100:2.5:1.4)"
                )
            spec = "NAME:PRICE:SPEED such as A100:2.5:1.4"
            price = number_list(bits[1], "--gpu-types", spec)
            speed = number_list(bits[2], "--gpu-types", spec)
            types.append(
                validate(
                    GpuType,
                    {
                        "name": bits[0],
                        "memory_gib": 80,
                        "price_per_hour": price[0] if price else None,
                        "speed": speed[0] if speed else None,
                    },
                    f"--gpu-types: {shown(part.strip())}",
                )
            )
    elif cluster is not None:
        types = list(load_cluster(cluster).gpu_types)
    else:
        raise InputError("--gpu-types or --cluster: name the candidate GPU types and their prices")
    if prices:
        known = {t.name: t for t in types}
        for part in prices.split(","):
            name, _, value = part.partition("=")
            if name.strip() not in known:
                raise InputError(
                    f"--prices: unknown GPU type {shown(name.strip())} (known: {', '.join(known)})"
                )
            amount = number_list(value, "--prices", "NAME=PRICE such as H100=3.5")
            if len(amount) != 1:
                raise InputError(f"--prices: {shown(part.strip())} is not NAME=PRICE (e.g. H100=3.5)")
            known[name.strip()] = validate(
                GpuType,
                {**known[name.strip()].model_dump(), "price_per_hour": amount[0]},
                f"--prices: {shown(part.strip())}",
            )
        types = list(known.values())
    return types


def capacity(
    workload: Annotated[
        str,
        typer.Option(
            "--workload",
            "-w",
            help="Workload trace (philly/openb/csv) or a "
            "synthetic spec such as 'jobs=2000,rate_per_hour=40'. Jobs' allowed GPU types "
            "(openb gpu_spec, a CSV's gpu_types) are honoured by the sizing.",
        ),
    ],
    slo: Annotated[
        str,
        typer.Option(
            help="Service objective: {avg,p50,p95,p99}_{queue,jct}<=DURATION, e.g. 'p95_queue<=1h'."
        ),
    ],
    gpu_types: Annotated[
        str | None,
        typer.Option(
            "--gpu-types",
            help="Candidate types NAME:PRICE_PER_HOUR:SPEED, "
            "comma-separated, e.g. 'H100:4.0:2.0,A100:2.5:1.4'.",
        ),
    ] = None,
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--cluster", "-c", help="Take the candidate GPU types (prices, speeds) from this cluster.yaml."
        ),
    ] = None,
    prices: Annotated[
        str | None, typer.Option(help="Override on-demand prices: 'H100=3.5,A100=2.1' ($/GPU-h).")
    ] = None,
    reserved_discount: Annotated[
        float, typer.Option(help="Reserved price = on-demand x (1 - discount).", min=0.0, max=0.95)
    ] = 0.4,
    budget: Annotated[
        float | None, typer.Option(help="Monthly budget ($): dearer candidates are dropped.", min=0.0)
    ] = None,
    what_if: Annotated[
        list[str] | None,
        typer.Option(
            "--what-if",
            help="Re-run the recommendation with a change: "
            "'+16 H100', 'lose node NAME', 'demand +30%'. Repeatable.",
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option("--policy", "-p", help=f"Scheduling policy used to validate candidates: {POLICY_HELP}"),
    ] = "fifo-backfill",
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="Trace format (default: detected).")
    ] = None,
    node_gpus: Annotated[int, typer.Option(help="GPUs per node of every candidate.", min=1, max=4096)] = 8,
    utilisations: Annotated[
        str, typer.Option(help="Target utilisations swept by the sizing model.")
    ] = "0.5,0.6,0.7,0.8,0.9",
    limit: Annotated[int | None, typer.Option(help="Use only the first N jobs of the trace.", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Seed for synthetic workloads.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Directory for capacity.json and frontier.png.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Candidates simulated side by side in local processes (default: one per core; "
            "1: one after the other in this process). The result is the same either way.",
            min=1,
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="Where candidates are simulated: local (processes on this machine), dask or ray "
            "(the user's cluster, for large sweeps; needs the gpusched[dask] / gpusched[ray] extra).",
        ),
    ] = "local",
    cluster_address: Annotated[
        str | None,
        typer.Option(
            "--cluster-address",
            help="--backend dask: the scheduler (tcp://host:8786); ray: the cluster ('auto', "
            "ray://host:10001; default: a local Ray).",
        ),
    ] = None,
) -> None:
    """Size a cluster for a workload: the cheapest GPU mix meeting an SLO, its monthly bill, what-ifs."""
    import json

    from rich.console import Console
    from rich.progress import Progress

    from gpusched.config import InputError
    from gpusched.safeio import check_output_dir, shown, write_all_atomic
    from gpusched.simulations import capacity as cap
    from gpusched.simulations import sizing
    from gpusched.simulations.policies import policy_names
    from gpusched.simulations.traces import load_trace

    err = Console(stderr=True)
    console = report_console()

    try:
        objective = cap.parse_slo(slo)
    except ValueError as exc:
        raise fail(f"--slo: {exc}") from None
    if policy.lower() not in policy_names() and policy.lower() not in ALIASES:
        raise fail(f"--policy: unknown policy {shown(policy)} (known: {', '.join(policy_names())})")
    finite_option(reserved_discount, "--reserved-discount", maximum=0.95, allow_min=True)
    finite_option(budget, "--budget", maximum=1e12, allow_min=True)
    try:
        if out is not None:
            check_output_dir(out, "--out")
        types = candidate_types(gpu_types, cluster, prices)
        sweep = number_list(utilisations, "--utilisations", "numbers in (0, 1] such as 0.6,0.8")
        if not sweep or any(not 0 < u <= 1 for u in sweep):
            raise InputError(
                f"--utilisations: {shown(utilisations)} is out of range (expected numbers in (0, 1])"
            )
        for text in what_if or []:
            check_what_if(text, [t.name for t in types])
        from gpusched.simulations.inputs import detect_format

        the_fmt = fmt or detect_format(workload, "--workload")
        jobs = load_trace(the_fmt, workload, None, limit=limit, seed=seed, option="--workload")
        if not jobs:
            raise InputError(f"--workload: {workload}: no jobs")
    except InputError as exc:
        raise fail(str(exc)) from None

    request = sizing.SizingRequest(
        jobs=jobs,
        types=types,
        slo=objective,
        policy=policy,
        node_gpus=node_gpus,
        utilisations=sweep,
        reserved_discount=reserved_discount,
        budget=budget,
        what_ifs=what_if or [],
        workers=workers,
        backend=backend,
        address=cluster_address,
    )
    from gpusched.simulations.parallel import BACKENDS, RunnerError

    if backend not in BACKENDS:
        raise fail(f"--backend: {shown(backend)} is not a backend (expected one of {', '.join(BACKENDS)})")
    if backend == "dask" and cluster_address is None:
        raise fail("--cluster-address: missing (expected the Dask scheduler's address for --backend dask, e.g. tcp://host:8786)")
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("sizing", total=None)
        try:
            result = sizing.run(
                request,
                lambda stage, done, total: progress.update(
                    task, description=stage, completed=done, total=total
                ),
            )
        except RunnerError as exc:
            raise fail(str(exc)) from None
        except sizing.SizingError as exc:
            where = {"workload": f"--workload: {workload}", "budget": "--budget", "what_ifs": "--what-if"}
            hint = "; add a type they may use to --gpu-types" if exc.field == "workload" else ""
            raise fail(f"{where.get(exc.field, exc.field)}: {exc}{hint}") from None
    _print_sizing(result, console)
    if out is not None:
        best = result.best
        recommended = None if best is None else (float(best.metrics["bill"]), float(best.metrics["value"]))  # type: ignore[arg-type]
        files: list[tuple[Path, str | bytes]] = [
            (
                out / "frontier.png",
                cap.frontier_png(result.frontier_points(), objective, recommended, budget),
            ),
            (out / "capacity.json", json.dumps(result.report(), indent=2, default=str) + "\n"),
        ]
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_all_atomic(files)
        except OSError as exc:
            raise fail(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
        console.print(f"wrote {out}/capacity.json and {out}/frontier.png")
    if result.best is None:
        raise typer.Exit(1)


def _print_sizing(result: Sizing, console: Console) -> None:
    """The candidates table, the recommendation (or why there is none) and each what-if."""
    from rich.table import Table

    request, metric = result.request, result.request.slo.metric
    slo = request.slo.text
    table = Table(
        title=f"candidates for {len(request.jobs)} jobs (mean demand {result.demand:.1f} reference GPUs), SLO {slo}"
    )
    for col in ("sized at", "configuration", "monthly bill", metric, "meets SLO"):
        table.add_column(col)
    for c in sorted(result.candidates, key=lambda c: float(c.metrics["bill"])):
        table.add_row(
            c.label,
            c.describe(),
            f"${c.metrics['bill']:,.0f}",
            f"{c.metrics['value']:.3f}",
            "yes" if c.metrics["meets"] else "no",
        )
    console.print(table)
    best = result.best
    if best is None:
        console.print(
            f"[bold red]no candidate meets {slo}[/]: try higher --utilisations headroom "
            "(lower values) or a bigger --budget"
        )
        return
    console.print(
        f"[bold green]cheapest configuration meeting {slo}:[/] {best.describe()} -- "
        f"{metric} {best.metrics['value']:.3f} h, monthly bill ${best.metrics['bill']:,.0f}"
    )
    for m in result.what_ifs:
        if "not_applied" in m:
            from rich.markup import escape

            console.print(
                f"what if {escape(m['what_if'])}: not applied: {escape(m['not_applied'])}", highlight=False
            )
            continue
        console.print(
            f"what if {m['what_if']}: {metric} {m['value']:.3f} h "
            f"({'meets' if m['meets'] else 'misses'} the SLO), monthly bill ${m['bill']:,.0f}"
        )


COMMAND_SETTINGS: dict[str, dict[str, object]] = {
    # validate's options are simulations/validate.py's argparse parser (shared with `python -m
    # gpusched.simulations.validate`): typer passes every argument through, --help included.
    "validate": {
        "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
        "add_help_option": False,
    },
}


def validate(ctx: typer.Context) -> None:
    """Reproduce published results: fgd, philly, helios or gavel (docs/validation.md; --help for options)."""
    from gpusched.simulations.validate import main

    raise typer.Exit(main(list(ctx.args), prog="gpusched validate"))
