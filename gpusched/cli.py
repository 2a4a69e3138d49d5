"""The `gpusched` command line.

`plan` and `schema` live here; the other commands live beside the code they drive
(agents/cli.py, scheduler/cli.py, simulations/cli.py, workload/cli.py) and are registered
from _SUBCOMMANDS. Those modules import only typer at module level, so `gpusched --help` stays fast
and works without torch, NVML or a Kubernetes client installed.
"""

from __future__ import annotations

import importlib
import json
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from gpusched import defaults
from gpusched.cli_util import (
    EXIT_INPUT,
    EXIT_PLAN_INCOMPLETE,
    OneLineErrors,
    check_plan_size,
    duration_option,
    fail,
    finite_option,
    print_error,
    report_console,
    require_plotly,
    widen_piped_help,
)
from gpusched.config import InputError
from gpusched.model import POLICIES, Policy
from gpusched.safeio import shown
from gpusched.units import format_hours, parse_datetime

app = typer.Typer(
    name="gpusched",
    help="GPU/TPU scheduler and capacity planner: plan, run the operator and agents, simulate what-ifs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)


def _one_of(names: tuple[str, ...]) -> str:
    """'a, b or c', for help texts that list choices from one list."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


class SolverChoice(str, Enum):
    cbc = "cbc"
    highs = "highs"


@app.command()
def plan(
    cluster: Annotated[
        Path, typer.Option("--cluster", "-c", help="cluster.yaml: GPU types, nodes, maintenance.")
    ],
    jobs: Annotated[Path, typer.Option("--jobs", "-j", help="jobs.yaml: the queue to plan.")],
    policy: Annotated[Policy, typer.Option(help=f"Objective: {_one_of(POLICIES)}.")] = "cost",
    horizon: Annotated[str, typer.Option(help="Planning horizon, e.g. 48h.")] = format_hours(
        defaults.HORIZON_H
    ),
    slot: Annotated[str, typer.Option(help="Slot length, e.g. 15m.")] = format_hours(defaults.SLOT_H),
    solver: Annotated[
        SolverChoice, typer.Option(help="MILP backend: cbc (bundled) or highs.")
    ] = SolverChoice.cbc,
    time_limit: Annotated[
        float | None,
        typer.Option("--time-limit", help="Seconds; the best feasible plan found by then is returned."),
    ] = None,
    telemetry: Annotated[
        Path | None,
        typer.Option(
            help="Directory of agent JSON snapshots: nodes come from live hardware, types from --cluster."
        ),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="ISO time of plan start when jobs.yaml has no epoch (default: now).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the plan to .json or .yaml; '-' writes JSON to stdout."),
    ] = None,
    chart: Annotated[
        Path | None, typer.Option(help="Write a chart: .html (zoomable, offline) or .png (static).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the one-line result.")] = False,
) -> None:
    """Plan a queue of jobs on a cluster and explain the plan.

    Exit codes: 0 every job runs as asked; 3 the plan is returned (printed and written) but some jobs
    cannot run as asked (not planned, or late for their deadline); 2 bad input, option or output path.
    """
    from gpusched.config import check_inputs, load_inputs, model_text
    from gpusched.report import chart_data, incomplete, print_plan
    from gpusched.safeio import check_output_file, write_all_atomic
    from gpusched.solver import PlanOptions
    from gpusched.solver import plan as solve

    # Options first, then output paths, then the files: each error names what the user typed wrong.
    horizon_h = duration_option(horizon, "--horizon")
    slot_h = duration_option(slot, "--slot")
    check_plan_size(horizon_h, slot_h, horizon, slot)
    finite_option(time_limit, "--time-limit", maximum=MAX_TIME_LIMIT_S)
    start: datetime | None = None
    if now is not None:
        start = parse_datetime(now)
        if start is None:
            raise fail(
                f"--now: not a time (got {shown(now)}; expected an ISO datetime such as 2026-11-23T09:00:00Z)"
            )
    to_stdout = output is not None and str(output) == "-"
    try:
        if output is not None and not to_stdout:
            check_output_file(output, "--output", (".json", ".yaml", ".yml"))
        if chart is not None:
            check_output_file(chart, "--chart", (".png", ".html"))
            if chart.suffix.lower() == ".html":
                require_plotly("--chart")
        if output is not None and chart is not None and output.resolve() == chart.resolve():
            raise InputError(f"--chart: {shown(str(chart))} is also the --output file (expected two paths)")
        cluster_model, jobset = load_inputs(cluster, jobs, start, check=False)
        if telemetry is not None:
            from gpusched.telemetry_cluster import cluster_from_telemetry

            cluster_model = cluster_from_telemetry(telemetry, cluster_model, option="--telemetry")
        check_inputs(cluster_model, jobset, jobs)
    except InputError as exc:
        raise fail(str(exc)) from None
    options = PlanOptions(
        policy=policy,
        horizon=horizon_h,
        slot=slot_h,
        solver=solver.value,
        time_limit=time_limit,
        epoch=jobset.epoch,
    )
    from gpusched.plan_progress import plan_progress

    with plan_progress(quiet, time_limit) as progress:  # live on stderr, only on a terminal
        result = solve(cluster_model, jobset.jobs, options, progress=progress)
    # With -o -, stdout carries the plan document only; the report goes to stderr.
    console = report_console(stderr=to_stdout)
    print_plan(result, console, quiet=quiet)
    files: list[tuple[Path, str | bytes]] = []
    if output is not None and not to_stdout:
        files.append((output, model_text(result, output)))
    if chart is not None:
        files.append((chart, chart_data(result, chart, jobset.jobs)))
    try:
        write_all_atomic(files)
    except OSError as exc:
        raise fail(
            f"{exc.filename or 'output'}: cannot write: {exc.strerror or exc} (no output was written)"
        ) from None
    if to_stdout:
        sys.stdout.write(model_text(result, Path("plan.json")))
        sys.stdout.flush()
    if incomplete(result):
        raise typer.Exit(EXIT_PLAN_INCOMPLETE)


MAX_TIME_LIMIT_S = 7 * 24 * 3600.0
"""A week of solver time: a larger --time-limit is a typo (or a unit mix-up), not a plan."""


class SchemaChoice(str, Enum):
    cluster = "cluster"
    jobs = "jobs"
    plan = "plan"
    telemetry = "telemetry"


@app.command()
def schema(
    kind: Annotated[
        SchemaChoice, typer.Argument(help="Which file format: cluster, jobs, plan or telemetry.")
    ],
) -> None:
    """Print the JSON Schema of a file format."""
    from pydantic import BaseModel

    from gpusched.model import Cluster, JobSet
    from gpusched.model import Plan as PlanModel
    from gpusched.telemetry import NodeTelemetry

    models: dict[str, type[BaseModel]] = {
        "cluster": Cluster,
        "jobs": JobSet,
        "plan": PlanModel,
        "telemetry": NodeTelemetry,
    }
    model = models[kind.value]
    typer.echo(json.dumps(model.model_json_schema(), indent=2))


def _print_version(value: bool) -> None:
    if value:
        from gpusched import __version__

        typer.echo(f"gpusched {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """GPU/TPU scheduler and capacity planner: plan, run the operator and agents, simulate what-ifs."""


@app.command()
def version() -> None:
    """Print the gpusched version."""
    from gpusched import __version__

    typer.echo(__version__)


# name, module, function: commands that live beside the code they drive.
_SUBCOMMANDS = (
    ("agent", "gpusched.agents.cli", "agent"),
    ("operator", "gpusched.scheduler.cli", "operator"),
    ("simulate", "gpusched.simulations.cli", "simulate"),
    ("capacity", "gpusched.simulations.cli", "capacity"),
    ("validate", "gpusched.simulations.cli", "validate"),
    ("train", "gpusched.workload.cli", "train"),
)


def _register_subcommands() -> None:
    for name, module_name, attr in _SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that part of gpusched is not built yet
            raise
        command = getattr(module, attr, None)
        if command is None:
            raise RuntimeError(f"{module_name} has no command function {attr!r}")
        # COMMAND_SETTINGS: typer.command() arguments a module asks for (e.g. passing options through)
        app.command(name, **getattr(module, "COMMAND_SETTINGS", {}).get(attr, {}))(command)


_register_subcommands()


def main() -> None:
    from gpusched import logs

    widen_piped_help()
    try:
        logs.setup()  # warnings as text on stderr; `operator` and `agent` set their own level and format
        app(prog_name="gpusched")
    except InputError as exc:
        print_error(str(exc))
        sys.exit(EXIT_INPUT)


if __name__ == "__main__":
    main()
