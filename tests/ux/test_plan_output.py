"""What `gpusched plan` shows a person and tells a script: exit codes, times, nodes, the HTML page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpusched.model import JobPlan, Plan, SlotUsage
from gpusched.report import backend_and_source, utilisation_spans

ROOT = Path(__file__).resolve().parents[2]
DEMO = ["plan", "-c", str(ROOT / "examples/demo/cluster.yaml"), "-j", str(ROOT / "examples/demo/jobs.yaml")]
SEED = ["plan", "-c", str(ROOT / "examples/seed/cluster.yaml"), "-j", str(ROOT / "examples/seed/jobs.yaml"),
        "--horizon", "3h", "--slot", "1h"]  # fmt: skip


def gpusched(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpusched.cli", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_a_plan_with_jobs_that_cannot_run_as_asked_exits_3_and_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = gpusched(*DEMO, "--policy", "jct", "-o", str(out))
    assert result.returncode == 3, result.stdout + result.stderr
    plan = json.loads(out.read_text())
    assert {j["job"] for j in plan["jobs"] if j["status"] == "unscheduled"} == {"huge-memory"}
    text = " ".join(result.stdout.split())
    assert "2 of 8 jobs cannot run as asked" in text and "exits 3" in text
    # The reason code is shown, not eaten as rich markup.
    assert "huge-memory: [memory] needs 120 GiB" in text


def test_a_complete_plan_exits_0() -> None:
    assert gpusched(*SEED, "-q").returncode == 0


def test_report_explains_objective_and_cost_and_which_search_found_the_plan() -> None:
    text = " ".join(gpusched(*SEED).stdout.split())
    assert "objective: what policy cost minimises" in text and "a score, not the bill" in text
    assert "cost: the bill of the plan" in text
    summary = text.splitlines()[-1] if "\n" in text else text[text.rindex("optimal:") :]
    assert "best plan found by the" in summary and "(fifo)" not in summary


def test_times_carry_a_date_and_idle_slots_are_one_row() -> None:
    result = gpusched(*DEMO, "--policy", "jct", env={"COLUMNS": "250"})
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ 2026-11-2")]
    assert rows, result.stdout
    assert sum("idle" in line for line in rows) == 1, result.stdout
    assert not re.search(r"\s0/23", result.stdout), result.stdout
    assert "2026-11-23 09:00 (+1h)" in result.stdout  # llm-pretrain's planned start, with its date


def test_jobs_that_start_later_show_their_nodes() -> None:
    result = gpusched(*DEMO, "--policy", "jct", "-o", "-")
    plan = json.loads(result.stdout)
    later = [j for j in plan["jobs"] if j["status"] == "scheduled" and j["start"] > 0]
    assert later and all(j["placement"] for j in later)
    for job in later:
        nodes = ", ".join(f"{p['node']}:{p['gpus']}" for p in job["placement"])
        assert nodes in " ".join(result.stderr.split()) or nodes[:10] in result.stderr


def test_dash_o_writes_the_plan_to_stdout_and_the_report_to_stderr() -> None:
    result = gpusched(*SEED, "-o", "-")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["policy"] == "cost" and len(plan["jobs"]) == 3
    assert "optimal: 3/3 jobs planned" in result.stderr


def test_version_option_and_command() -> None:
    for args in (["--version"], ["-V"], ["version"]):
        result = gpusched(*args)
        assert result.returncode == 0 and "0." in result.stdout


def test_bracketed_help_text_is_shown_not_eaten_by_rich_markup() -> None:
    """Every command's --help keeps the '[default: ...]' texts its authors wrote."""
    env = {"COLUMNS": "300"}
    sources = {
        "operator": ROOT / "scheduler/cli.py",
        "train": ROOT / "workload/cli.py",
        "plan": ROOT / "gpusched/cli.py",
        "simulate": ROOT / "simulations/cli.py",
        "capacity": ROOT / "simulations/cli.py",
        "agent": ROOT / "agents/cli.py",
    }
    for command, source in sources.items():
        wanted = [m for m in re.findall(r"\[default: [^\]\"]{1,40}\]", source.read_text()) if "{" not in m]
        shown = " ".join(gpusched(command, "--help", env=env).stdout.split())
        for text in wanted:
            if text.split()[-1].rstrip("].") in source.read_text():
                assert " ".join(text.split()) in shown, (command, text)


def _plan(**kwargs: Any) -> Plan:
    base: dict[str, Any] = {
        "policy": "cost", "solver": "cbc (fifo)", "status": "optimal", "horizon": 4.0, "slot": 1.0,
        "objective": 1.0, "lower_bound": 1.0, "gap": 0.0, "solve_time_s": 0.1, "total_cost": 1.0,
        "jobs": [], "epoch": datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc),
    }  # fmt: skip
    base.update(kwargs)
    return Plan(**base)


def test_utilisation_spans_merge_equal_and_idle_slots() -> None:
    usage = [
        SlotUsage(slot=0, start=0, used={"A": 2}, capacity={"A": 4}),
        SlotUsage(slot=1, start=1, used={"A": 2}, capacity={"A": 4}),
        SlotUsage(slot=2, start=2, used={"A": 0}, capacity={"A": 4}),
        SlotUsage(slot=3, start=3, used={"A": 0}, capacity={"A": 2}),
    ]
    spans = utilisation_spans(usage, 4.0)
    assert [(s, e) for s, e, _, _ in spans] == [(0, 2), (2, 4.0)]


def test_the_source_in_parentheses_is_named_as_a_search_not_a_policy() -> None:
    fifo = ("cbc", "the fifo list-order heuristic")
    assert backend_and_source(_plan(solver="cbc", found_by="fifo")) == fifo
    assert backend_and_source(_plan(solver="cbc (fifo)")) == fifo  # a plan file written before found_by
    assert backend_and_source(_plan(solver="highs (milp-highs)")) == ("highs", "the MILP")
    assert backend_and_source(_plan(solver="cbc")) == ("cbc", "")


def test_html_plan_opens_in_a_browser_with_time_axis_views_and_unplannable_jobs(
    tmp_path: Path, browser: Any
) -> None:
    chart = tmp_path / "plan.html"
    result = gpusched(*DEMO, "--policy", "jct", "--chart", str(chart), "-q")
    assert result.returncode == 3, result.stderr
    page = browser(chart)
    assert page.errors == []
    assert page.plots == 3  # jobs, nodes, GPU types
    assert any(t.startswith("time (UTC") for t in page.axis_titles), page.axis_titles
    assert {"job (GPUs)", "node", "GPUs"} <= set(page.axis_titles)
    assert any("Nov 23, 2026" in t or "2026" in t for t in page.tick_labels), page.tick_labels[:20]
    assert "h100-0" in page.tick_labels and "llm-pretrain (16)" in page.tick_labels
    assert "Jobs that cannot run as asked" in page.text and "huge-memory" in page.text


def test_html_plan_of_500_jobs_has_a_row_per_job_and_stays_offline(tmp_path: Path, browser: Any) -> None:
    from gpusched.plan_chart import plan_html

    jobs = [
        JobPlan(job=f"job-{i:03d}", status="scheduled", gpu_type="A" if i % 2 else "B", gpus=1 + i % 8,
                start=(i % 40) * 0.5, end=(i % 40) * 0.5 + 2, finishes=True,
                segments=[{"start": (i % 40) * 0.5, "end": (i % 40) * 0.5 + 2}],
                placement=[{"node": f"n{i % 30}", "gpus": 1 + i % 8}])
        for i in range(500)
    ]  # fmt: skip
    jobs.append(
        JobPlan(job="too-big", status="unscheduled", reason="needs 4096 GPUs", reason_code="capacity")
    )
    page_file = tmp_path / "big.html"
    page_file.write_text(plan_html(_plan(jobs=jobs, horizon=24.0, status="infeasible")))
    page = browser(page_file)
    assert page.errors == []
    assert "job-499 (4)" in page.tick_labels and "job-000 (1)" in page.tick_labels
    assert "too-big" in page.text
