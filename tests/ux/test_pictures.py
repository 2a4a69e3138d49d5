"""The simulator report and the capacity frontier answer their questions (opened in a real browser)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gpusched.model import Cluster
from gpusched.simulations import TraceJob
from gpusched.simulations.engine import Simulator
from gpusched.simulations.frontier_chart import frontier_figure
from gpusched.simulations.policies import make_policy
from gpusched.simulations.report import write_outputs

ROOT = Path(__file__).resolve().parents[2]


def test_simulator_report_separates_policies_and_opens_in_a_browser(tmp_path: Path, browser: Any) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "gpusched.cli", "simulate", "--cluster", str(ROOT / "examples/sim/cluster.yaml"),
         "--trace", "jobs=200,load=2.5,max_duration_h=24", "--seed", "3", "--compare", "fifo,sjf,las,gavel",
         "-o", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summaries = {s["policy"]: s for s in json.loads((out / "summary.json").read_text())["summaries"]}
    # The flagship example separates the policies: FIFO's head-of-line blocking is plain to see.
    assert summaries["fifo"]["avg_jct_h"] > 3 * max(
        summaries[p]["avg_jct_h"] for p in ("sjf", "las", "gavel")
    )
    page = browser(out / "report.html")
    assert page.errors == []
    assert page.plots == 3
    assert {"JCT (h, log scale)", "fraction of completed jobs", "jobs waiting", "simulated time (h)"} <= set(
        page.axis_titles
    ), page.axis_titles
    assert "rejected (never fit)" in page.text and "jobs in trace" in page.text


def test_report_of_an_empty_queue_has_whole_job_ticks_from_zero(tmp_path: Path, browser: Any) -> None:
    """One job on an idle cluster: the queue axis starts at 0 with whole numbers, not -0.04..0.04."""
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "GPU", "memory_gib": 80, "price_per_hour": 1.0}],
        "nodes": [{"name": "n0", "gpu_type": "GPU", "gpu_count": 4}],
        })  # fmt: skip
    results = [Simulator(cluster, [TraceJob(name="a", gpus=1, work=1.0)], make_policy(p)).run()
               for p in ("fifo", "las")]  # fmt: skip
    write_outputs(results, tmp_path, {"trace": "one job"})
    page = browser(tmp_path / "report.html")
    assert page.errors == []
    numbers = [t.replace("\u2212", "-") for t in page.tick_labels]
    assert "-0.04" not in numbers and "0.5" not in numbers and "2.5" not in numbers
    assert "0" in numbers and "1" in numbers


def test_frontier_marks_recommendation_slo_and_budget_with_a_legend_and_one_label() -> None:
    points = [(25_000.0, 70.0, "u=90%", False), (30_000.0, 40.0, "u=80%", False), (40_000.0, 2.0, "refined", False),
              (44_000.0, 0.9, "refined", True), (49_000.0, 0.45, "u=50%", True)]  # fmt: skip
    fig = frontier_figure(
        points, "p95_queue<=1h", 1.0, "p95_queue_h", recommended=(44_000.0, 0.9), budget=60_000
    )
    try:
        ax = fig.axes[0]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "SLO p95_queue<=1h" in legend and "budget $60,000/month" in legend
        assert "recommended (cheapest meeting the SLO)" in legend
        assert {"meets the SLO (sweep)", "meets the SLO (refined)", "misses the SLO (sweep)"} <= set(legend)
        labels = [t.get_text() for t in ax.texts]
        assert labels == ["$44,000/month, 0.90 h"]  # one label, not one per point
        assert ax.get_xlim()[1] >= 60_000  # the budget line is inside the picture
    finally:
        plt.close(fig)
