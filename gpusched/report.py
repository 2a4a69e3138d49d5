"""Showing a plan to a person: the rich terminal summary, and the chart (PNG, or zoomable HTML).

The terminal report answers, in order: when and where does each job run, how busy is each GPU type
(idle spans collapsed), which jobs cannot run as asked and why, and what the numbers at the bottom
mean (the policy's objective is not the bill). The exit code of `gpusched plan` follows
`incomplete(plan)`: docs/errors.md.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gpusched.model import Job, JobPlan, Plan, SlotUsage
from gpusched.safeio import write_atomic
from gpusched.units import format_hours

MAX_UTILISATION_ROWS = 24
"""More spans than this are shown as peaks over equal windows: a screenful, not a wall."""

OBJECTIVE_MEANING = {
    "cost": "dollars of GPU time, plus 0.001 x completion hours to break ties",
    "jct": "sum of priority x (end - release) in hours, plus 0.001 x the bill to break ties",
    "makespan": "hours until the last job ends, plus weighted completion time to break ties",
    "deadline": "weighted missed deadlines first, then weighted tardiness, then completion time",
    "fair": "max-min share of each team's entitlement (as a loss), plus completion time",
}
"""What each policy's objective counts (gpusched/solver/policies.py), for the report's footnote."""


def incomplete(plan: Plan) -> list[JobPlan]:
    """Jobs that cannot run as asked: not planned in the horizon, or planned past their deadline."""
    return [jp for jp in plan.jobs if jp.status == "unscheduled" or jp.deadline_met is False]


def _time(plan: Plan, hours: float) -> str:
    """A date and time when the plan has an epoch, always with the offset from plan start."""
    offset = "+" + format_hours(hours)
    if plan.epoch is None:
        return offset
    return f"{_clock(plan.epoch + timedelta(hours=hours))} ({offset})"


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _zone(plan: Plan) -> str:
    if plan.epoch is None:
        return "hours from plan start"
    name = plan.epoch.tzname() or "local"
    return f"{name}; plan start {_clock(plan.epoch)}"


def backend_and_source(plan: Plan) -> tuple[str, str]:
    """(backend, which search found the plan in words), e.g. ('cbc', 'the fifo list-order heuristic').

    `found_by` names the heuristic or solve that produced the returned schedule, not the policy: a
    greedy order can be the optimum, which the MILP's bound then proves. (Plans written before
    `found_by` existed carried it in parentheses after the backend: 'cbc (fifo)'.)
    """
    backend, _, rest = plan.solver.partition(" (")
    source = plan.found_by or rest.rstrip(")")
    if not source:
        return backend, ""
    if source.startswith("lp-support-milp"):
        return backend, "the MILP over the LP relaxation's support"
    if source.startswith("milp"):
        return backend, "the MILP"
    if source.startswith("lagrangian-"):
        return backend, f"Lagrangian rounding ({source.removeprefix('lagrangian-')} order)"
    return backend, f"the {source} list-order heuristic"


def summary_line(plan: Plan) -> str:
    placed = sum(1 for jp in plan.jobs if jp.status != "unscheduled")
    backend, source = backend_and_source(plan)
    found = f"; best plan found by {source}" if source else ""
    return (
        f"{plan.status}: {placed}/{len(plan.jobs)} jobs planned, policy {plan.policy}, objective "
        f"{plan.objective:.6g}, lower bound {plan.lower_bound:.6g}, gap {plan.gap:.2%}, cost "
        f"${plan.total_cost:,.2f}, {plan.solve_time_s:.2f}s with {backend}{found}"
    )


def explanation(plan: Plan) -> list[str]:
    """Footnotes that say what the summary's numbers are (printed above it, unless --quiet)."""
    meaning = OBJECTIVE_MEANING.get(plan.policy, "the policy's score")
    lines = [
        f"objective: what policy {plan.policy} minimises ({meaning}), including penalties for jobs "
        "planned late or not at all: a score, not the bill",
        "cost: the bill of the plan, GPUs x hours x price per GPU-hour of every planned run",
        "lower bound / gap: no plan can score below the bound; gap is how far this one may be from the best",
    ]
    bad = incomplete(plan)
    if bad:
        lines.append(
            f"{len(bad)} of {len(plan.jobs)} jobs cannot run as asked (listed above): "
            "the plan is returned and written, and the command exits 3"
        )
    return lines


def print_plan(plan: Plan, console: Console, quiet: bool = False, max_rows: int = 200) -> None:
    if not quiet:
        console.print(_jobs_table(plan, max_rows))
        if plan.utilisation:
            console.print(_utilisation_table(plan))
        bad = incomplete(plan)
        if bad:
            console.print("[bold yellow]Jobs that cannot run as asked:[/]")
            for jp in bad:
                code = f"[{jp.reason_code}] " if jp.reason_code else ""
                console.print(escape(f"  {jp.job}: {code}{jp.reason or ''}"), highlight=False)
        for note in plan.notes:
            console.print(f"[dim]note: {escape(note)}[/]", highlight=False)
        for line in explanation(plan):
            console.print(f"[dim]{escape(line)}[/]", highlight=False)
    console.print(escape(summary_line(plan)), highlight=False)


def _jobs_table(plan: Plan, max_rows: int) -> Table:
    jobs = Table(title=f"Jobs (times {_zone(plan)})", show_lines=False)
    for col in ("job", "status", "start", "end", "type", "GPUs", "nodes", "cost $", "note"):
        jobs.add_column(col, overflow="fold")
    for jp in plan.jobs[:max_rows]:
        nodes = ", ".join(f"{p.node}:{p.gpus}" for p in jp.placement)
        note = jp.reason or ""
        if jp.preempted:
            note = ("preempted now; " + note).strip("; ")
        if jp.migrated:
            note = ("moved to new nodes; " + note).strip("; ")
        end = "-"
        if jp.status != "unscheduled" and jp.end is not None:
            end = _time(plan, jp.end) + ("" if jp.finishes or jp.end <= plan.horizon else " past horizon")
        jobs.add_row(
            escape(jp.job),
            jp.status,
            "-" if jp.start is None else _time(plan, jp.start),
            end,
            escape(jp.gpu_type or "-"),
            str(jp.gpus or "-"),
            escape(nodes or "-"),
            f"{jp.cost:,.2f}",
            escape(note),
        )
    if len(plan.jobs) > max_rows:
        jobs.caption = f"{len(plan.jobs) - max_rows} more jobs in the plan file (-o)"
    return jobs


Span = tuple[float, float, dict[str, int], dict[str, int]]


def utilisation_spans(usage: list[SlotUsage], horizon: float) -> list[Span]:
    """Consecutive slots with the same use and capacity as one span: (start, end, used, capacity).

    The last slot ends at the horizon; slots with nothing running are one 'idle' row, whatever
    their capacity (maintenance windows change it).
    """
    spans: list[Span] = []
    for i, u in enumerate(usage):
        end = usage[i + 1].start if i + 1 < len(usage) else horizon
        idle = not any(u.used.values())
        if spans and (
            (spans[-1][2] == u.used and spans[-1][3] == u.capacity)
            or (idle and not any(spans[-1][2].values()))
        ):
            spans[-1] = (spans[-1][0], end, spans[-1][2], spans[-1][3])
        else:
            spans.append((u.start, end, dict(u.used), dict(u.capacity)))
    return spans


def _utilisation_table(plan: Plan) -> Table:
    types = list(plan.utilisation[0].capacity)
    spans = utilisation_spans(plan.utilisation, plan.horizon)
    peak = len(spans) > MAX_UTILISATION_ROWS
    if peak:
        spans = _peak_windows(plan, types)
    title = "GPUs in use per type (" + ("peak " if peak else "") + "used / capacity; idle spans collapsed)"
    table = Table(title=title)
    table.add_column("from")
    table.add_column("to")
    for name in types:
        table.add_column(escape(name), justify="right")
    for start, end, used, cap in spans:
        idle = not any(used.values())
        cells = ["idle" if idle else f"{used.get(n, 0)}/{cap.get(n, 0)}" for n in types]
        table.add_row(_time(plan, start), _time(plan, end), *cells, style="dim" if idle else None)
    return table


def _peak_windows(plan: Plan, types: list[str]) -> list[Span]:
    usage = plan.utilisation
    per = -(-len(usage) // MAX_UTILISATION_ROWS)
    windows = []
    for i in range(0, len(usage), per):
        chunk = usage[i : i + per]
        end = usage[i + per].start if i + per < len(usage) else plan.horizon
        used = {n: max(u.used.get(n, 0) for u in chunk) for n in types}
        cap = {n: min(u.capacity.get(n, 0) for u in chunk) for n in types}
        windows.append((chunk[0].start, end, used, cap))
    return windows


def chart_data(plan: Plan, path: Path, jobs: Sequence[Job] = ()) -> str | bytes:
    """The chart for `path`: the zoomable HTML page for .html, PNG bytes otherwise."""
    if Path(path).suffix.lower() == ".html":
        from gpusched.plan_chart import plan_html

        return plan_html(plan, jobs)
    return gantt_png(plan)


def write_chart(plan: Plan, path: Path, jobs: Sequence[Job] = ()) -> None:
    write_atomic(Path(path), chart_data(plan, path, jobs))


def gantt_png(plan: Plan) -> bytes:
    """A static Gantt chart: one row per job (at most 80 rows; the HTML page shows them all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    placed = [jp for jp in plan.jobs if jp.segments]
    rows = placed[:PNG_ROWS]
    types = sorted({jp.gpu_type for jp in rows if jp.gpu_type})
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(types)}
    height = max(2.5, min(24.0, 0.22 * len(rows) + 1.8))
    fig, ax = plt.subplots(figsize=(11, height))
    epoch = plan.epoch

    def x(hours: float) -> float:
        if epoch is None:
            return hours
        return float(mdates.date2num(epoch + timedelta(hours=hours)))

    for y, jp in enumerate(rows):
        for seg in jp.segments:
            ax.barh(
                y,
                x(seg.end) - x(seg.start),
                left=x(seg.start),
                color=colours.get(jp.gpu_type or ""),
                edgecolor="#d62728" if jp.deadline_met is False else "black",
                linewidth=0.6,
            )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{jp.job} ({jp.gpus})" for jp in rows], fontsize=7)
    ax.invert_yaxis()
    from gpusched.plan_chart import busy_until

    ax.set_xlim(x(0), x(busy_until(plan) if rows else plan.horizon))
    if epoch is not None:
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel(f"time ({epoch.tzname() or 'local'})")
    else:
        ax.set_xlabel("hours from plan start")
    ax.grid(axis="x", alpha=0.3)
    more = f"; first {PNG_ROWS} of {len(placed)} jobs" if len(placed) > PNG_ROWS else ""
    ax.set_title(f"gpusched plan: policy {plan.policy}, cost ${plan.total_cost:,.0f}{more}", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[t]) for t in types]
    if handles:
        ax.legend(handles, types, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="GPU type")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


PNG_ROWS = 80
"""A PNG cannot be zoomed: more rows than this are unreadable, so the image shows the first ones."""
