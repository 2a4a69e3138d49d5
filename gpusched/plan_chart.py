"""The plan as a zoomable HTML page (plotly, its JavaScript inlined so the file works offline).

Three views answer three questions: *when does each job run* (one row per job, coloured by GPU
type, deadlines as ticks, late jobs outlined red), *what runs on each node* (one row per node), and
*how full is each GPU type* (GPUs in use against capacity over time). Every view has a date axis with
a range slider; jobs that cannot run as asked are listed under the charts with the reason.
A 500-job plan stays readable: the job view is tall enough for one row per job and can be zoomed
along both axes; bars are one trace per GPU type, so the page stays light.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from gpusched.model import Job, JobPlan, Plan

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac")
ROW_PX = 16
"""Pixels per row of the job and node views: 500 jobs make an 8,000 px page one can scroll and zoom."""


def _moment(plan: Plan, hours: float) -> datetime:
    epoch = plan.epoch or datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + timedelta(hours=hours)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _types(plan: Plan) -> list[str]:
    seen: dict[str, None] = {}
    for jp in plan.jobs:
        if jp.gpu_type:
            seen.setdefault(jp.gpu_type, None)
    for usage in plan.utilisation[:1]:
        for name in usage.capacity:
            seen.setdefault(name, None)
    return list(seen)


def _colour(types: Sequence[str]) -> dict[str, str]:
    return {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(types)}


def _hover(plan: Plan, jp: JobPlan, start: float, end: float) -> str:
    nodes = ", ".join(f"{p.node}:{p.gpus}" for p in jp.placement) or "-"
    late = "<br><b>misses its deadline</b>" if jp.deadline_met is False else ""
    return (
        f"<b>{html.escape(jp.job)}</b><br>{jp.gpus} x {html.escape(jp.gpu_type or '-')} on {html.escape(nodes)}"
        f"<br>{_iso(_moment(plan, start))} - {_iso(_moment(plan, end))}<br>cost ${jp.cost:,.2f}{late}"
    )


def _bars(
    plan: Plan, rows: Iterable[tuple[str, JobPlan]], colour: dict[str, str], legend: bool
) -> list[dict[str, Any]]:
    """One horizontal-bar trace per GPU type: base = start (a date), x = length in milliseconds."""
    by_type: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for row, jp in rows:
        for seg in jp.segments:
            cell = by_type[jp.gpu_type or "-"]
            cell["y"].append(row)
            cell["base"].append(_iso(_moment(plan, seg.start)))
            cell["x"].append((seg.end - seg.start) * 3_600_000)
            cell["text"].append(_hover(plan, jp, seg.start, seg.end))
            cell["line"].append("#d62728" if jp.deadline_met is False else "rgba(0,0,0,0.35)")
    traces = []
    for name, cell in by_type.items():
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": name,
                "legendgroup": name,
                "showlegend": legend,
                "y": cell["y"],
                "base": cell["base"],
                "x": cell["x"],
                "hovertext": cell["text"],
                "hoverinfo": "text",
                "opacity": 0.85,
                "marker": {"color": colour.get(name, "#999"), "line": {"color": cell["line"], "width": 1}},
            }
        )
    return traces


def _layout(plan: Plan, title: str, rows: int, ytitle: str) -> dict[str, Any]:
    height = max(320, min(60 + ROW_PX * rows, 12_000) + 160)
    return {
        "title": {"text": title},
        "height": height,
        "barmode": "overlay",
        "margin": {"l": 160, "r": 30, "t": 60, "b": 40},
        "xaxis": {
            "type": "date",
            "title": {"text": f"time ({(plan.epoch.tzname() if plan.epoch else None) or 'from plan start'})"},
            "range": [_iso(_moment(plan, 0)), _iso(_moment(plan, busy_until(plan)))],
            "rangeslider": {
                "visible": True,
                "thickness": 0.04,
                "range": [_iso(_moment(plan, 0)), _iso(_moment(plan, max(plan.horizon, _last_end(plan))))],
            },
            "showgrid": True,
        },
        "yaxis": {"title": {"text": ytitle}, "autorange": "reversed", "type": "category", "automargin": True},
        "legend": {"title": {"text": "GPU type"}, "orientation": "h", "y": 1.02, "yanchor": "bottom"},
        "shapes": [_horizon_line(plan)],
    }


def _last_end(plan: Plan) -> float:
    return max((seg.end for jp in plan.jobs for seg in jp.segments), default=0.0)


def busy_until(plan: Plan) -> float:
    """The first view ends a little after the last planned run, not at an empty horizon's end."""
    last = _last_end(plan)
    if last <= 0:
        return plan.horizon
    return max(last * 1.05, last + plan.slot)


def _horizon_line(plan: Plan) -> dict[str, Any]:
    at = _iso(_moment(plan, plan.horizon))
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": at,
        "x1": at,
        "y0": 0,
        "y1": 1,
        "line": {"dash": "dot", "color": "#555", "width": 1},
    }


def job_figure(plan: Plan, jobs: Sequence[Job] = ()) -> dict[str, Any]:
    types = _types(plan)
    colour = _colour(types)
    placed = [jp for jp in plan.jobs if jp.segments]
    rows = [(f"{jp.job} ({jp.gpus})", jp) for jp in placed]
    data = _bars(plan, rows, colour, legend=True)
    deadlines = {j.name: j.deadline for j in jobs if j.deadline is not None}
    ticks = [(label, deadlines[jp.job], jp) for label, jp in rows if jp.job in deadlines]
    if ticks:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "deadline",
                "y": [label for label, _, _ in ticks],
                "x": [_iso(_moment(plan, d)) for _, d, _ in ticks],
                "marker": {
                    "symbol": "line-ns-open",
                    "size": 14,
                    "line": {"width": 2},
                    "color": ["#d62728" if jp.deadline_met is False else "#222" for _, _, jp in ticks],
                },
                "hovertext": [
                    f"{html.escape(jp.job)}: deadline {_iso(_moment(plan, d))}" for _, d, jp in ticks
                ],
                "hoverinfo": "text",
            }
        )
    return {"data": data, "layout": _layout(plan, "Jobs: when each runs", len(rows), "job (GPUs)")}


def node_figure(plan: Plan) -> dict[str, Any]:
    colour = _colour(_types(plan))
    rows: list[tuple[str, JobPlan]] = []
    for jp in plan.jobs:
        if not jp.segments:
            continue
        for p in jp.placement:
            rows.append((p.node, jp))
    nodes = sorted({node for node, _ in rows})
    layout = _layout(plan, "Nodes: what runs where (hover for the job)", len(nodes), "node")
    layout["yaxis"]["categoryorder"] = "array"
    layout["yaxis"]["categoryarray"] = nodes
    figure: dict[str, Any] = {"data": _bars(plan, rows, colour, legend=True), "layout": layout}
    return figure


def type_figure(plan: Plan) -> dict[str, Any]:
    """GPUs in use per type as steps, with the capacity as a dashed line of the same colour."""
    types = _types(plan)
    colour = _colour(types)
    data: list[dict[str, Any]] = []
    usage = plan.utilisation
    times = [_iso(_moment(plan, u.start)) for u in usage] + [_iso(_moment(plan, plan.horizon))]
    for name in types:
        used = [u.used.get(name, 0) for u in usage]
        cap = [u.capacity.get(name, 0) for u in usage]
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hv", "color": colour[name], "width": 2},
                "fill": "tozeroy",
                "name": f"{name} in use",
                "x": times,
                "y": [*used, used[-1] if used else 0],
            }
        )
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hv", "color": colour[name], "dash": "dash", "width": 1},
                "name": f"{name} capacity",
                "x": times,
                "y": [*cap, cap[-1] if cap else 0],
            }
        )
    top = max((c for u in usage for c in u.capacity.values()), default=1)
    layout = _layout(plan, "GPU types: GPUs in use against capacity", 0, "GPUs")
    layout["height"] = 380
    layout["yaxis"] = {"title": {"text": "GPUs"}, "rangemode": "tozero", "range": [0, top * 1.08 + 0.5]}
    layout["legend"] = {"orientation": "h", "y": 1.02, "yanchor": "bottom"}
    return {"data": data, "layout": layout}


def plan_html(plan: Plan, jobs: Sequence[Job] = ()) -> str:
    """The whole page: summary, the three views, and the jobs that cannot run as asked."""
    import plotly.io as pio

    from gpusched.report import explanation, incomplete, summary_line

    figures = [("jobs", job_figure(plan, jobs)), ("nodes", node_figure(plan)), ("types", type_figure(plan))]
    divs = []
    for i, (name, figure) in enumerate(figures):
        divs.append(
            pio.to_html(
                figure,
                include_plotlyjs=(i == 0),
                full_html=False,
                div_id=f"view-{name}",
                config={"displaylogo": False, "responsive": True},
                validate=True,
            )
        )
    bad = incomplete(plan)
    rows = "".join(
        f"<tr><td>{html.escape(jp.job)}</td><td>{html.escape(jp.status)}</td>"
        f"<td>{html.escape(str(jp.reason_code or ''))}</td><td>{html.escape(jp.reason or '')}</td></tr>"
        for jp in bad
    )
    table = (
        "<h2>Jobs that cannot run as asked</h2><table><tr><th>job</th><th>status</th><th>code</th>"
        f"<th>why</th></tr>{rows}</table>"
        if bad
        else "<p>Every job runs as asked.</p>"
    )
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in [*plan.notes, *explanation(plan)])
    nav = " | ".join(f'<a href="#view-{name}">{name}</a>' for name, _ in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gpusched plan</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1em 2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}}
.summary{{font-family:monospace;background:#f4f4f4;padding:.5em}}
</style></head><body>
<h1>gpusched plan</h1>
<p class="summary">{html.escape(summary_line(plan))}</p>
<p>Views: {nav}. Drag to zoom, double-click to reset, use the slider under each chart to pan.</p>
{"".join(divs)}
{table}
<ul>{notes}</ul>
</body></html>
"""
