"""Showing a plan to a person: the rich terminal summary and the Gantt chart (PNG or HTML)."""

from __future__ import annotations

import html
import io
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gpusched.model import Plan
from gpusched.safeio import write_atomic
from gpusched.units import format_hours


def _when(plan: Plan, hours: float | None) -> str:
    if hours is None:
        return "after horizon"
    text = format_hours(hours)
    if plan.epoch is not None:
        from datetime import timedelta

        text += f" ({(plan.epoch + timedelta(hours=hours)).strftime('%m-%d %H:%M')})"
    return text


def summary_line(plan: Plan) -> str:
    placed = sum(1 for jp in plan.jobs if jp.status != "unscheduled")
    return (
        f"{plan.status}: {placed}/{len(plan.jobs)} jobs planned, policy {plan.policy}, objective "
        f"{plan.objective:.6g}, lower bound {plan.lower_bound:.6g}, gap {plan.gap:.2%}, cost "
        f"${plan.total_cost:,.2f}, {plan.solve_time_s:.2f}s with {plan.solver}"
    )


def print_plan(plan: Plan, console: Console, quiet: bool = False, max_rows: int = 200) -> None:
    if not quiet:
        jobs = Table(title="Jobs", show_lines=False)
        for col in ("job", "status", "start", "end", "type", "GPUs", "nodes", "cost $", "note"):
            jobs.add_column(col, overflow="fold")
        for jp in plan.jobs[:max_rows]:
            nodes = ", ".join(f"{p.node}:{p.gpus}" for p in jp.placement)
            note = jp.reason or ""
            if jp.preempted:
                note = ("preempted now; " + note).strip("; ")
            if jp.migrated:
                note = ("moved to new nodes; " + note).strip("; ")
            jobs.add_row(
                jp.job,
                jp.status,
                "-" if jp.start is None else _when(plan, jp.start),
                "-" if jp.status == "unscheduled" else _when(plan, jp.end),
                jp.gpu_type or "-",
                str(jp.gpus or "-"),
                nodes or "-",
                f"{jp.cost:,.2f}",
                note,
            )
        if len(plan.jobs) > max_rows:
            jobs.caption = f"{len(plan.jobs) - max_rows} more jobs in the plan file"
        console.print(jobs)
        if plan.utilisation:
            util = Table(title="Utilisation per slot (used / capacity)")
            util.add_column("slot")
            types = list(plan.utilisation[0].capacity)
            for name in types:
                util.add_column(name, justify="right")
            step = max(1, len(plan.utilisation) // 24)
            for usage in plan.utilisation[::step]:
                util.add_row(
                    format_hours(usage.start),
                    *(f"{usage.used[n]}/{usage.capacity[n]}" for n in types),
                )
            console.print(util)
        unscheduled = [jp for jp in plan.jobs if jp.status == "unscheduled" or jp.deadline_met is False]
        if unscheduled:
            console.print("[bold yellow]Jobs that cannot run as asked:[/]")
            for jp in unscheduled:
                console.print(f"  {jp.job}: [{jp.reason_code}] {jp.reason}", highlight=False)
        for note in plan.notes:
            console.print(f"[dim]note: {note}[/]", highlight=False)
    console.print(summary_line(plan), highlight=False)


def chart_data(plan: Plan, path: Path) -> str | bytes:
    """The Gantt chart for `path`: HTML text for .html, PNG bytes otherwise."""
    return gantt_html(plan) if Path(path).suffix.lower() == ".html" else gantt_png(plan)


def write_chart(plan: Plan, path: Path) -> None:
    write_atomic(Path(path), chart_data(plan, path))


def gantt_png(plan: Plan) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [jp for jp in plan.jobs if jp.segments]
    types = sorted({jp.gpu_type for jp in rows if jp.gpu_type})
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(types)}
    height = max(2.5, min(40.0, 0.25 * len(rows) + 1.5))
    fig, ax = plt.subplots(figsize=(11, height))
    for y, jp in enumerate(rows):
        for seg in jp.segments:
            ax.barh(
                y,
                seg.end - seg.start,
                left=seg.start,
                color=colours.get(jp.gpu_type or ""),
                edgecolor="black",
            )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{jp.job} ({jp.gpus})" for jp in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, plan.horizon)
    ax.set_xlabel("hours from plan start")
    ax.set_title(f"gpusched plan: policy {plan.policy}, cost ${plan.total_cost:,.0f}, gap {plan.gap:.2%}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[t]) for t in types]
    if handles:
        ax.legend(handles, types, loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def gantt_html(plan: Plan) -> str:
    """A self-contained HTML Gantt chart (no scripts, no external assets)."""
    rows = [jp for jp in plan.jobs if jp.segments]
    palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
    types = sorted({jp.gpu_type for jp in rows if jp.gpu_type})
    colour = {t: palette[i % len(palette)] for i, t in enumerate(types)}
    bars = []
    for jp in rows:
        cells = []
        for seg in jp.segments:
            left = 100 * seg.start / plan.horizon
            width = max(0.3, 100 * (seg.end - seg.start) / plan.horizon)
            title = html.escape(
                f"{jp.job}: {jp.gpus} x {jp.gpu_type}, {format_hours(seg.start)}-{format_hours(seg.end)}"
            )
            cells.append(
                f'<div class="bar" title="{title}" style="left:{left:.3f}%;width:{width:.3f}%;'
                f'background:{colour.get(jp.gpu_type or "", "#999")}"></div>'
            )
        bars.append(
            f'<div class="row"><div class="name">{html.escape(jp.job)} ({jp.gpus})</div>'
            f'<div class="lane">{"".join(cells)}</div></div>'
        )
    legend = " ".join(f'<span style="color:{c}">&#9632;</span> {html.escape(t)}' for t, c in colour.items())
    waiting = "".join(
        f"<li>{html.escape(jp.job)}: {html.escape(jp.reason or '')}</li>"
        for jp in plan.jobs
        if jp.status == "unscheduled" or jp.deadline_met is False
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>gpusched plan</title>
<style>
body{{font-family:sans-serif;margin:1.5em}} .row{{display:flex;align-items:center;height:18px}}
.name{{width:220px;font-size:12px;overflow:hidden;white-space:nowrap}}
.lane{{position:relative;flex:1;height:14px;background:#f4f4f4}}
.bar{{position:absolute;top:1px;height:12px;border-radius:2px}}
</style></head><body>
<h2>gpusched plan</h2>
<p>{html.escape(summary_line(plan))}</p>
<p>{legend}</p>
{"".join(bars)}
{"<h3>Jobs that cannot run as asked</h3><ul>" + waiting + "</ul>" if waiting else ""}
</body></html>
"""
