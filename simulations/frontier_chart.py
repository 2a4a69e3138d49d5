"""The capacity frontier as a picture: each candidate cluster's monthly bill against the SLO metric.

It answers "what does meeting the SLO cost, and what would a bit more or less buy": candidates that
meet the SLO and those that miss it are told apart by colour and marker (legend), the sweep's points
and the refinement's by shape, the SLO is a horizontal line, the budget a vertical one, and only
the recommended point carries a text label (labels on every point overlapped).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

Point = tuple[float, float, str, bool]
"""(monthly bill $, SLO metric in hours, label such as 'u=70%' or 'refined', meets the SLO)."""


def frontier_png(
    points: Sequence[Point],
    slo_text: str,
    slo_limit_h: float,
    metric: str,
    recommended: tuple[float, float] | None = None,
    budget: float | None = None,
) -> bytes:
    import matplotlib.pyplot as plt

    fig = frontier_figure(points, slo_text, slo_limit_h, metric, recommended, budget)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def frontier_figure(
    points: Sequence[Point],
    slo_text: str,
    slo_limit_h: float,
    metric: str,
    recommended: tuple[float, float] | None = None,
    budget: float | None = None,
) -> Any:
    """The matplotlib Figure (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(8, 5))
    groups = {
        (True, False): ("meets the SLO (sweep)", "tab:green", "o"),
        (True, True): ("meets the SLO (refined)", "tab:green", "D"),
        (False, False): ("misses the SLO (sweep)", "tab:red", "o"),
        (False, True): ("misses the SLO (refined)", "tab:red", "D"),
    }
    for (meets, refined), (label, colour, marker) in groups.items():
        chosen = [(b, v) for b, v, lab, m in points if m == meets and (lab == "refined") == refined]
        if chosen:
            xs, ys = [b for b, _ in chosen], [v for _, v in chosen]
            ax.scatter(xs, ys, color=colour, marker=marker, s=36, alpha=0.85, label=label, zorder=3)
    ax.axhline(slo_limit_h, linestyle="--", color="0.35", linewidth=1, label=f"SLO {slo_text}")
    if budget is not None:
        ax.axvline(
            budget, linestyle=":", color="tab:purple", linewidth=1.2, label=f"budget ${budget:,.0f}/month"
        )
    if recommended is not None:
        bill, value = recommended
        ax.scatter([bill], [value], s=220, facecolors="none", edgecolors="black", linewidths=1.8,
                   label="recommended (cheapest meeting the SLO)", zorder=4)  # fmt: skip
        ax.annotate(
            f"${bill:,.0f}/month, {value:.2f} h",
            (bill, value),
            xytext=(12, 18),
            textcoords="offset points",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "black", "linewidth": 0.8},
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.6"},
        )
    values = [v for _, v, _, _ in points if v == v]
    if values and max(values) > 20 * max(min(values), 1e-3) and min(values) > 0:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.set_ylabel(f"{metric} (h, log scale)")
    else:
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"{metric} (h)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"${x:,.0f}"))
    ax.set_xlabel("monthly bill")
    ax.set_title("Capacity frontier: cost against delay of each candidate cluster")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig
