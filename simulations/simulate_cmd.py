"""`gpusched simulate`: replay a trace on a cluster under one or several policies.

Only typer and the standard library are imported at module level so `gpusched --help` stays fast;
the engine, matplotlib and rich are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def simulate(
    trace: Annotated[str, typer.Option("--trace", "-t", help="Trace file (philly/openb/csv), or a synthetic "
                                       "spec such as 'jobs=500,load=0.8' or a YAML file of one.")],
    cluster: Annotated[Path | None, typer.Option("--cluster", "-c", help="cluster.yaml, or an openb node list "
                                                 "CSV; optional for openb (the node list beside the pods).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="philly, openb, csv or synthetic "
                                            "(default: detected from the CSV header).")] = None,
    policy: Annotated[str, typer.Option("--policy", "-p", help="fifo, fifo-backfill, sjf, las, gavel, gpusched "
                                        "(= gpusched:jct) or gpusched:cost|jct|makespan|deadline|fair.")] = "fifo",
    compare: Annotated[str | None, typer.Option("--compare", help="Comma-separated policies to run side by "
                                                "side, e.g. fifo,las,gavel,gpusched.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for synthetic traces, failures and throughput mapping.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory for summary.json/csv, jobs.csv, "
                                             "PNG plots and report.html.")] = None,
    limit: Annotated[int | None, typer.Option(help="Replay only the first N jobs (after --start/--end).",
                                              min=1)] = None,
    start: Annotated[str | None, typer.Option(help="Only jobs submitted at or after this offset, e.g. 24h.")] = None,
    end: Annotated[str | None, typer.Option(help="Only jobs submitted before this offset, e.g. 7d.")] = None,
    replan: Annotated[str, typer.Option(help="gpusched policy: re-plan at most this often (sim time).")] = "5m",
    plan_window: Annotated[int, typer.Option(help="gpusched policy: queued jobs passed to the planner.",
                                             min=1)] = 64,
    plan_time_limit: Annotated[float, typer.Option(help="gpusched policy: planner seconds per call.")] = 5.0,
    mtbf: Annotated[str | None, typer.Option(help="Mean time between failures of one GPU, e.g. 5000h "
                                             "(default: no failures).")] = None,
    mttr: Annotated[str, typer.Option(help="Mean GPU repair time.")] = "2h",
    restart_overhead: Annotated[str, typer.Option(help="Restart cost for jobs whose trace gives none.")] = "0m",
    checkpoint: Annotated[bool, typer.Option("--checkpoint/--no-checkpoint", help="Preempted jobs save their "
                                             "progress (failures never do).")] = True,
    spread: Annotated[bool, typer.Option(help="Let gangs that fit on one node span several nodes.")] = False,
    throughputs: Annotated[Path | None, typer.Option(help="Gavel simulation_throughputs.json: per-type job "
                                                     "speeds, job types drawn by --seed.")] = None,
) -> None:
    """Replay a job trace on a cluster and report JCT, queueing, utilisation, fragmentation and cost."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gpusched.config import InputError
    from gpusched.units import parse_duration_hours

    err = Console(stderr=True)

    def fail(message: str) -> typer.Exit:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return typer.Exit(2)

    def hours(value: str | None, name: str, allow_zero: bool = False) -> float | None:
        if value is None:
            return None
        try:
            h = parse_duration_hours(value)
        except ValueError as exc:
            raise fail(f"{name}: {exc}") from None
        if h < 0 or (h == 0 and not allow_zero):
            raise fail(f"{name}: must be {'non-negative' if allow_zero else 'positive'} (got {value!r})")
        return h

    from gpusched.simulations import inputs
    from gpusched.simulations.engine import SimConfig, Simulator
    from gpusched.simulations.policies import make_policy, policy_names
    from gpusched.simulations.traces import FORMATS

    if fmt is not None and fmt not in FORMATS:
        raise fail(f"--format: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    names = [p.strip() for p in (compare.split(",") if compare else [policy]) if p.strip()]
    option = "--compare" if compare else "--policy"
    if not names:
        raise fail(f"{option}: no policy named")
    known = policy_names()
    for name in names:
        if name.lower() not in known and name.lower() != "tiresias":
            raise fail(f"{option}: unknown policy {name!r} (known: {', '.join(known)})")
    replan_h = hours(replan, "--replan")
    assert replan_h is not None
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
            cluster, trace, fmt, limit=limit, start=hours(start, "--start", allow_zero=True),
            end=hours(end, "--end"), seed=seed, throughputs=throughputs,
        )
    except InputError as exc:
        raise fail(str(exc)) from None

    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False, disable=not sys.stderr.isatty()) as progress:
        for name in names:
            task = progress.add_task(f"{name:>14}", total=len(jobs))
            pol = make_policy(name, replan_minutes=replan_h * 60, plan_window=plan_window,
                              plan_time_limit=plan_time_limit)

            def tick(done: int, total: int, task: int = task) -> None:
                progress.update(task, completed=done)

            results.append(Simulator(the_cluster, jobs, pol, config, tick).run())

    from gpusched.simulations.metrics import summarise

    summaries = [summarise(r) for r in results]
    _print_table(summaries)
    if out is not None:
        from gpusched.simulations.report import write_outputs

        meta = {"trace": trace, "format": detected, "jobs": len(jobs), "cluster_gpus": the_cluster.total_gpus(),
                "policies": ", ".join(names), "seed": seed, "config": config.model_dump_json()}
        try:
            write_outputs(results, out, meta)
        except OSError as exc:
            raise fail(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
        Console().print(f"wrote {out}/summary.json, summary.csv, jobs.csv, *.png, report.html")


def _print_table(summaries: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from gpusched.simulations.report import SUMMARY_FIELDS, _fmt

    table = Table(title="simulation summary (hours, $)")
    table.add_column("metric")
    for s in summaries:
        table.add_column(str(s["policy"]), justify="right")
    for key, label in SUMMARY_FIELDS:
        table.add_row(label, *(_fmt(s.get(key)) for s in summaries))
    Console().print(table)
