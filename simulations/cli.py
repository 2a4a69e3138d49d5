"""`gpusched simulate` (replay a trace under one or several policies) and `gpusched capacity`
(the cheapest cluster that meets an SLO for a workload).

Only typer, rich and the standard library are imported at module level so `gpusched --help` stays fast;
the engine, matplotlib and rich are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpusched.cli_util import duration_option, fail, finite_option, report_console

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
            help="fifo, fifo-backfill, sjf, las, gavel, gpusched "
            "(= gpusched:jct) or gpusched:cost|jct|makespan|deadline|fair.",
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
    import itertools
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from gpusched.config import InputError, read_document
    from gpusched.safeio import check_output_dir, shown

    err = Console(stderr=True)

    def hours(value: str | None, name: str, allow_zero: bool = False) -> float | None:
        return None if value is None else duration_option(value, name, allow_zero=allow_zero)

    from gpusched.simulations import inputs
    from gpusched.simulations.engine import SimConfig, Simulator
    from gpusched.simulations.policies import make_policy, policy_names
    from gpusched.simulations.traces import FORMATS

    if fmt is not None and fmt not in FORMATS:
        raise fail(f"--format: unknown format {shown(fmt)} (expected one of {', '.join(FORMATS)})")
    names = [p.strip() for p in (compare.split(",") if compare else [policy]) if p.strip()]
    option = "--compare" if compare else "--policy"
    if not names:
        raise fail(f"{option}: no policy named")
    known = policy_names()
    for name in names:
        if name.lower() not in known and name.lower() != "tiresias":
            raise fail(f"{option}: unknown policy {shown(name)} (known: {', '.join(known)})")
    replan_h = hours(replan, "--replan")
    round_h = hours(gavel_round, "--gavel-round")
    starvation_h = hours(las_starvation, "--las-starvation")
    assert replan_h is not None and round_h is not None
    thresholds = number_list(las_thresholds, "--las-thresholds", "GPU-hours such as 1,16")
    if not thresholds or thresholds[0] <= 0 or any(b <= a for a, b in itertools.pairwise(thresholds)):
        raise fail(
            f"--las-thresholds: {shown(las_thresholds)} is not positive and increasing "
            "(expected GPU-hours such as 1,16)"
        )
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

    results = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not sys.stderr.isatty(),
    ) as progress:
        for name in names:
            task = progress.add_task(f"{name:>14}", total=len(jobs))
            pol = make_policy(
                name,
                replan_minutes=replan_h * 60,
                plan_window=plan_window,
                plan_time_limit=plan_time_limit,
                las_thresholds=thresholds,
                las_starvation=starvation_h,
                round_hours=round_h,
            )

            def tick(done: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=done)

            results.append(Simulator(the_cluster, jobs, pol, config, tick).run())

    from gpusched.simulations.metrics import summarise

    summaries = [summarise(r) for r in results]
    _print_table(summaries)
    for r in results:
        errors = int(r.extra.get("plan_errors", 0) or 0)
        if errors:
            err.print(
                f"[bold yellow]warning:[/] {r.policy}: {errors} of {r.extra.get('plans', '?')} planner calls "
                "failed and fell back to backfilling FIFO; last error: "
                f"{escape(' '.join(str(r.extra.get('last_plan_error', '')).split())[:200])}",
                highlight=False,
                soft_wrap=True,
            )
    if out is not None:
        from gpusched.simulations.report import write_outputs

        meta = {
            "trace": trace,
            "format": detected,
            "jobs": len(jobs),
            "cluster_gpus": the_cluster.total_gpus(),
            "policies": ", ".join(names),
            "seed": seed,
            "config": config.model_dump_json(),
        }
        try:
            write_outputs(results, out, meta)
        except OSError as exc:
            raise fail(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
        Console().print(f"wrote {out}/summary.json, summary.csv, jobs.csv, *.png, report.html")


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
        str, typer.Option("--policy", "-p", help="Scheduling policy used to validate candidates.")
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
) -> None:
    """Size a cluster for a workload: the cheapest GPU mix meeting an SLO, its monthly bill, what-ifs."""
    import json

    from rich.console import Console
    from rich.table import Table

    from gpusched.config import InputError, load_cluster, validate
    from gpusched.model import GpuType
    from gpusched.safeio import check_output_dir, shown, write_all_atomic
    from gpusched.simulations import capacity as cap
    from gpusched.simulations.engine import Simulator
    from gpusched.simulations.metrics import summarise
    from gpusched.simulations.policies import make_policy, policy_names
    from gpusched.simulations.traces import load_trace

    err = Console(stderr=True)
    console = report_console()

    try:
        objective = cap.parse_slo(slo)
    except ValueError as exc:
        raise fail(f"--slo: {exc}") from None
    if policy.lower() not in policy_names():
        raise fail(f"--policy: unknown policy {shown(policy)} (known: {', '.join(policy_names())})")
    finite_option(reserved_discount, "--reserved-discount", maximum=0.95, allow_min=True)
    finite_option(budget, "--budget", maximum=1e12, allow_min=True)
    try:
        if out is not None:
            check_output_dir(out, "--out")
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
                        {"name": bits[0], "memory_gib": 80, "price_per_hour": price[0] if price else None,
                         "speed": speed[0] if speed else None},
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
        sweep = number_list(utilisations, "--utilisations", "numbers in (0, 1] such as 0.6,0.8")
        if not sweep or any(not 0 < u <= 1 for u in sweep):
            raise InputError(f"--utilisations: {shown(utilisations)} is out of range (expected numbers in (0, 1])")
        for text in what_if or []:
            check_what_if(text, [t.name for t in types])
        from gpusched.simulations.inputs import detect_format

        the_fmt = fmt or detect_format(workload, "--workload")
        jobs = load_trace(the_fmt, workload, None, limit=limit, seed=seed, option="--workload")
        if not jobs:
            raise InputError(f"--workload: {workload}: no jobs")
    except InputError as exc:
        raise fail(str(exc)) from None

    demand, _, span = cap.workload_demand(jobs)
    try:
        classes = cap.demand_classes(jobs, types, node_gpus)
    except ValueError as exc:
        raise fail(f"--workload: {workload}: {exc}; add a type they may use to --gpu-types") from None
    type_map = {t.name: t for t in types}
    candidates: list[cap.Candidate] = []
    seen: set[str] = set()
    for u in sorted(sweep):
        c = cap.size(types, classes, node_gpus, u, reserved_discount, budget)
        if c is not None and c.describe() not in seen:
            seen.add(c.describe())
            candidates.append(c)
    if not candidates:
        raise fail(
            f"--budget: no cluster of {', '.join(type_map)} fits the workload within ${budget:,.0f}/month"
        )

    def evaluate(c: cap.Candidate, cluster_: object, jobs_: list[object]) -> dict[str, object]:
        result = Simulator(cluster_, jobs_, make_policy(policy)).run()  # type: ignore[arg-type]
        s = summarise(result)
        value = s[objective.metric]
        ok = s["unfinished"] == 0 and s["rejected"] == 0 and value == value and value <= objective.limit_h
        util = s["utilisation"] if s["utilisation"] == s["utilisation"] else 0.0
        bill = cap.monthly_bill(c, type_map, node_gpus, reserved_discount, util)
        return {"value": value, "meets": ok, "bill": bill, "utilisation": util}

    from rich.progress import Progress

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("validating candidates by simulation", total=len(candidates))
        for c in candidates:
            c.metrics = evaluate(c, cap.to_cluster(c, types, node_gpus), jobs)  # type: ignore[arg-type]
            progress.advance(task)
        # None met the SLO: keep adding headroom (lower target utilisation) a few more times.
        u = min(sweep)
        while (
            not any(c.metrics["meets"] for c in candidates) and u > 0.05 and len(candidates) < len(sweep) + 8
        ):
            u /= 1.5
            c = cap.size(types, classes, node_gpus, u, reserved_discount, budget)
            if c is None:
                break
            if c.describe() in seen:
                continue
            seen.add(c.describe())
            progress.update(task, total=len(candidates) + 1)
            c.metrics = evaluate(c, cap.to_cluster(c, types, node_gpus), jobs)  # type: ignore[arg-type]
            candidates.append(c)
            progress.advance(task)
        progress.update(task, description="refining between candidates")
        candidates += cap.refine(
            candidates,
            lambda c: evaluate(c, cap.to_cluster(c, types, node_gpus), jobs),  # type: ignore[arg-type]
            [t.name for t in types],
            budget,
        )

    table = Table(
        title=f"candidates for {len(jobs)} jobs (mean demand {demand:.1f} reference GPUs), SLO {slo}"
    )
    for col in ("sized at", "configuration", "monthly bill", objective.metric, "meets SLO"):
        table.add_column(col)
    for c in sorted(candidates, key=lambda c: float(c.metrics["bill"])):  # type: ignore[arg-type]
        table.add_row(
            c.label,
            c.describe(),
            f"${c.metrics['bill']:,.0f}",
            f"{c.metrics['value']:.3f}",
            "yes" if c.metrics["meets"] else "no",
        )
    console.print(table)
    meeting = [
        c for c in candidates if c.metrics["meets"] and (budget is None or float(c.metrics["bill"]) <= budget)
    ]  # type: ignore[arg-type]
    best = min(meeting, key=lambda c: float(c.metrics["bill"])) if meeting else None  # type: ignore[arg-type]
    report: dict[str, object] = {
        "slo": slo,
        "policy": policy,
        "jobs": len(jobs),
        "mean_demand_ref_gpus": demand,
        "span_h": span,
        "demand_classes": [
            {"gpu_types": dc.types, "jobs": dc.jobs, "largest_gang": dc.biggest, "mean_demand_ref_gpus": dc.demand}
            for dc in classes
        ],
        "candidates": [
            {"label": c.label, "reserved": c.reserved, "on_demand": c.on_demand, **c.metrics}
            for c in candidates
        ],
    }
    if best is None:
        console.print(
            f"[bold red]no candidate meets {slo}[/]: try higher --utilisations headroom "
            "(lower values) or a bigger --budget"
        )
    else:
        console.print(
            f"[bold green]cheapest configuration meeting {slo}:[/] {best.describe()} -- "
            f"{objective.metric} {best.metrics['value']:.3f} h, monthly bill ${best.metrics['bill']:,.0f}"
        )
        report["recommendation"] = {
            "label": best.label,
            "reserved": best.reserved,
            "on_demand": best.on_demand,
            **best.metrics,
        }
        whatifs: list[dict[str, object]] = []
        base_cluster = cap.to_cluster(best, types, node_gpus)
        for text in what_if or []:
            try:
                w_cluster, w_jobs = cap.apply_what_if(text, base_cluster, jobs, node_gpus)
            except ValueError as exc:
                # Known only now (the recommendation names the nodes): say so, keep the report and files.
                from rich.markup import escape

                whatifs.append({"what_if": text, "not_applied": str(exc)})
                console.print(f"what if {escape(text)}: not applied: {escape(str(exc))}", highlight=False)
                continue
            extra = sum(n.gpu_count for n in w_cluster.nodes) - sum(n.gpu_count for n in base_cluster.nodes)
            m = evaluate(best, w_cluster, w_jobs)  # type: ignore[arg-type]
            added = {t: 0.0 for t in type_map}
            for n in w_cluster.nodes:
                if n.name.startswith("whatif-"):
                    added[n.gpu_type] += n.gpu_count
            m["bill"] = float(m["bill"]) + sum(  # type: ignore[arg-type]
                g * cap.HOURS_PER_MONTH * type_map[t].price_per_hour * (1 - reserved_discount)
                for t, g in added.items()
            )
            if extra < 0:
                lost = -extra
                share = lost / max(1, sum(n.gpu_count for n in base_cluster.nodes))
                m["bill"] = float(m["bill"]) * (1 - share)  # type: ignore[arg-type]
            whatifs.append({"what_if": text, **m})
            console.print(
                f"what if {text}: {objective.metric} {m['value']:.3f} h "
                f"({'meets' if m['meets'] else 'misses'} the SLO), monthly bill ${m['bill']:,.0f}"
            )
        report["what_ifs"] = whatifs
    if out is not None:
        points = [
            (float(c.metrics["bill"]), float(c.metrics["value"]), c.label, bool(c.metrics["meets"]))  # type: ignore[arg-type]
            for c in candidates
        ]
        recommended = None if best is None else (float(best.metrics["bill"]), float(best.metrics["value"]))  # type: ignore[arg-type]
        files: list[tuple[Path, str | bytes]] = [
            (out / "frontier.png", cap.frontier_png(points, objective, recommended, budget)),
            (out / "capacity.json", json.dumps(report, indent=2, default=str) + "\n"),
        ]
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_all_atomic(files)
        except OSError as exc:
            raise fail(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
        console.print(f"wrote {out}/capacity.json and {out}/frontier.png")
    if best is None:
        raise typer.Exit(1)
