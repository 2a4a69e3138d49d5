"""Run outputs: summary JSON/CSV, per-job CSV, PNG plots and one self-contained HTML report.

Every file is rendered in memory and written atomically (temporary file renamed into place), so an
interrupted run never leaves a half-written report. matplotlib runs on the Agg backend (no display).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from gpusched.safeio import write_all_atomic
from gpusched.simulations.engine import SimResult
from gpusched.simulations.metrics import job_rows, summarise

MAX_POINTS = 2000

SUMMARY_FIELDS = [
    ("avg_jct_h", "avg JCT (h)"), ("p50_jct_h", "p50 JCT (h)"), ("p95_jct_h", "p95 JCT (h)"),
    ("p99_jct_h", "p99 JCT (h)"), ("avg_queue_h", "avg queue (h)"), ("p50_queue_h", "p50 queue (h)"),
    ("p95_queue_h", "p95 queue (h)"), ("p99_queue_h", "p99 queue (h)"), ("makespan_h", "makespan (h)"),
    ("utilisation", "GPU utilisation"), ("avg_fragmented_gpus", "fragmented GPUs (avg)"),
    ("deadline_attainment", "deadline attainment"), ("preemptions", "preemptions"),
    ("failures", "GPU failures"), ("maintenance_stops", "maintenance stops"), ("lost_gpu_hours", "lost GPU-hours"),
    ("total_cost", "total cost ($)"), ("jobs", "jobs in trace"), ("completed", "completed"),
    ("rejected", "rejected (never fit)"), ("unfinished", "unfinished"),
    ("events_per_s", "events/s"), ("wall_s", "wall (s)"),
]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _downsample(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    if len(xs) <= MAX_POINTS:
        return xs, ys
    step = len(xs) / MAX_POINTS
    idx = [int(i * step) for i in range(MAX_POINTS)]
    return [xs[i] for i in idx], [ys[i] for i in idx]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(results: list[SimResult]) -> dict[str, bytes]:
    """PNG bytes by file name: utilisation and queue length over time, JCT CDF per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out: dict[str, bytes] = {}
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for r in results:
        t = [s.time for s in r.samples]
        util = [s.busy / s.healthy if s.healthy else 0.0 for s in r.samples]
        queue = [float(s.pending) for s in r.samples]
        ax1.step(*_downsample(t, util), where="post", label=r.policy, linewidth=0.9)
        ax2.step(*_downsample(t, queue), where="post", label=r.policy, linewidth=0.9)
    ax1.set_ylabel("GPU utilisation")
    ax1.set_ylim(0, 1.05)
    # Waiting jobs are whole numbers from 0 up: an empty queue is a flat line at 0, not -0.04..0.04.
    top = max((s.pending for r in results for s in r.samples), default=0)
    ax2.set_ylim(0, max(1, top) * 1.05)
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax2.set_ylabel("jobs waiting")
    ax2.set_xlabel("simulated time (h)")
    ax1.legend(loc="upper right", fontsize="small")
    ax1.set_title("Utilisation and queue length over time")
    out["utilisation_queue.png"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        jct = sorted(j.finish - j.spec.release for j in r.jobs if j.finish is not None)
        if not jct:
            continue
        ys = [(i + 1) / len(jct) for i in range(len(jct))]
        ax.step(*_downsample(jct, ys), where="post", label=r.policy)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (h, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("JCT CDF per policy")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, alpha=0.3)
    out["jct_cdf.png"] = _png(fig)
    plt.close(fig)
    return out


def timeseries_rows(results: list[SimResult]) -> list[dict[str, Any]]:
    """Utilisation, waiting/running jobs and fragmented GPUs over time (at most MAX_POINTS per policy)."""
    rows: list[dict[str, Any]] = []
    for r in results:
        samples = r.samples
        if len(samples) > MAX_POINTS:
            step = len(samples) / MAX_POINTS
            samples = [samples[int(i * step)] for i in range(MAX_POINTS)] + [samples[-1]]
        for smp in samples:
            rows.append({"policy": r.policy, "time_h": smp.time, "busy_gpus": smp.busy, "healthy_gpus": smp.healthy,
                         "utilisation": smp.busy / smp.healthy if smp.healthy else 0.0, "waiting_jobs": smp.pending,
                         "running_jobs": smp.running, "fragmented_gpus": smp.fragmented})
    return rows


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def html_report(
    summaries: list[dict[str, Any]],
    images: dict[str, bytes],
    meta: dict[str, Any],
    results: list[SimResult] | None = None,
) -> str:
    """One page: the per-policy table (rejected jobs included), then zoomable plotly charts of the
    JCT CDFs, the queue and the utilisation over time (JavaScript inlined: works offline). Without
    plotly, or without `results`, the PNGs are embedded instead."""
    head = "".join(f"<th>{html.escape(s['policy'])}</th>" for s in summaries)
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{_fmt(s.get(key))}</td>" for s in summaries) + "</tr>"
        for key, label in SUMMARY_FIELDS
    )
    meta_rows = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in meta.items())
    charts = _plotly_charts(results) if results else None
    if charts is None:
        charts = "".join(
            f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
            for name, data in images.items()
        )
    rejected = [s for s in summaries if s.get("rejected")]
    warn = "".join(
        f"<p class=warn>{html.escape(str(s['policy']))}: {s['rejected']} of {s.get('jobs', '?')} jobs were rejected "
        "(no allowed GPU type can ever hold them); JCT and queueing are over completed jobs only.</p>"
        for s in rejected
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gpusched simulation report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}
img{{max-width:100%}}.warn{{color:#a15c00}}li{{overflow-wrap:anywhere}}</style></head><body>
<h1>gpusched simulation report</h1><ul>{meta_rows}</ul>
<h2>Per policy</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>{warn}
<p>Times in hours. JCT = finish - submit; queueing delay = first start - submit; utilisation = busy
GPU-hours / healthy GPU-hours between the first submit and the last completion; fragmented GPUs =
time-average of free GPUs that no waiting job could use while some job waited.</p>
<h2>Charts</h2><p>Drag to zoom, double-click to reset; click a policy in a legend to hide it.</p>{charts}</body></html>
"""


def _plotly_charts(results: list[SimResult]) -> str | None:
    try:
        import plotly.io as pio
    except ImportError:
        return None
    cdf: list[dict[str, Any]] = []
    queue: list[dict[str, Any]] = []
    util: list[dict[str, Any]] = []
    top = 0
    for r in results:
        jct = sorted(j.finish - j.spec.release for j in r.jobs if j.finish is not None)
        if jct:
            ys = [(i + 1) / len(jct) for i in range(len(jct))]
            xs, ys = _downsample(jct, ys)
            cdf.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv"}, "name": r.policy,
                        "x": xs, "y": ys})
        t = [smp.time for smp in r.samples]
        waiting = [smp.pending for smp in r.samples]
        top = max([top, *waiting])
        qx, qy = _downsample(t, [float(w) for w in waiting])
        queue.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv"}, "name": r.policy, "x": qx, "y": qy})
        ux, uy = _downsample(t, [smp.busy / smp.healthy if smp.healthy else 0.0 for smp in r.samples])
        util.append({"type": "scatter", "mode": "lines", "line": {"shape": "hv"}, "name": r.policy, "x": ux, "y": uy})
    time_axis = {"title": {"text": "simulated time (h)"}, "rangemode": "tozero"}
    figures = [
        ("jct-cdf", {"data": cdf, "layout": {
            "title": {"text": "Job completion time: CDF per policy (left and high is better)"},
            "xaxis": {"title": {"text": "JCT (h, log scale)"}, "type": "log"},
            "yaxis": {"title": {"text": "fraction of completed jobs"}, "range": [0, 1.02]}, "height": 420}}),
        ("queue", {"data": queue, "layout": {
            "title": {"text": "Jobs waiting over time"}, "xaxis": time_axis,
            "yaxis": {"title": {"text": "jobs waiting"}, "range": [0, max(1, top) * 1.05], "rangemode": "tozero",
                      "tickformat": "d", "dtick": None if top > 5 else 1}, "height": 380}}),
        ("utilisation", {"data": util, "layout": {
            "title": {"text": "GPU utilisation over time"}, "xaxis": time_axis,
            "yaxis": {"title": {"text": "busy / healthy GPUs"}, "range": [0, 1.05], "tickformat": ".0%"},
            "height": 380}}),
    ]  # fmt: skip
    return "".join(
        pio.to_html(figure, include_plotlyjs=(i == 0), full_html=False, div_id=f"chart-{name}",
                    config={"displaylogo": False, "responsive": True})
        for i, (name, figure) in enumerate(figures)
    )  # fmt: skip


def write_outputs(results: list[SimResult], outdir: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Write every output file for `results` into `outdir`; returns the summaries.

    Every file is rendered in memory first and then written with write_all_atomic: a failure
    (matplotlib, a full disk) leaves none of this run's files rather than a summary without plots.
    """
    outdir = Path(outdir)
    summaries = [summarise(r) for r in results]
    payload = {"meta": meta, "summaries": [{k: _json_safe(v) for k, v in s.items()} for s in summaries]}
    rows: list[dict[str, Any]] = []
    for r in results:
        rows.extend(job_rows(r))
    images = plots(results)
    files: list[tuple[Path, str | bytes]] = [
        (outdir / "summary.json", json.dumps(payload, indent=2) + "\n"),
        (outdir / "summary.csv", _csv_text(summaries)),
        (outdir / "jobs.csv", _csv_text(rows)),
        (outdir / "timeseries.csv", _csv_text(timeseries_rows(results))),
        *((outdir / name, data) for name, data in images.items()),
        (outdir / "report.html", html_report(summaries, images, meta, results)),
    ]
    outdir.mkdir(parents=True, exist_ok=True)
    write_all_atomic(files)
    return summaries
