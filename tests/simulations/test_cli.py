"""`gpusched simulate` and `gpusched capacity` end to end through the real CLI (typer runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpusched.cli import app

from .conftest import EXAMPLES

runner = CliRunner()
CLUSTER = str(EXAMPLES / "sim" / "cluster.yaml")
TINY = str(EXAMPLES / "traces" / "tiny.csv")


def test_compare_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["simulate", "--cluster", CLUSTER, "--trace", TINY,
                                 "--compare", "fifo,las,gavel,sjf", "-o", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("fifo", "las", "gavel", "sjf", "avg JCT (h)", "p99 queue (h)", "fragmented GPUs"):
        assert name in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [s["policy"] for s in summary["summaries"]] == ["fifo", "las", "gavel", "sjf"]
    assert all(s["completed"] == 6 for s in summary["summaries"])
    assert (out / "summary.csv").read_text().count("\n") == 5
    assert (out / "jobs.csv").read_text().count("\n") == 1 + 4 * 6
    assert (out / "timeseries.csv").read_text().startswith("policy,time_h,busy_gpus")
    for png in ("utilisation_queue.png", "jct_cdf.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count('class="plotly-graph-div"') == 3  # JCT CDF, queue, utilisation (plotly, inlined)
    assert "src=\"http" not in html and "<link" not in html  # self-contained


def test_openb_sample_without_cluster_flag() -> None:
    pods = str(EXAMPLES / "traces" / "openb-sample" / "openb_pod_list_default.csv")
    result = runner.invoke(app, ["simulate", "--trace", pods, "--policy", "las", "--limit", "100"])
    assert result.exit_code == 0, result.output
    assert "las" in result.output


def test_synthetic_with_failures() -> None:
    result = runner.invoke(app, ["simulate", "--cluster", CLUSTER, "--trace", "jobs=60,load=0.7,max_gpus=8",
                                 "--seed", "3", "--mtbf", "500h", "--restart-overhead", "2m", "--policy", "fifo"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--policy", "roundrobin"], "--policy: unknown policy 'roundrobin'"),
        (["--compare", "fifo,nope"], "--compare: unknown policy 'nope'"),
        (["--format", "parquet"], "--format: unknown format 'parquet'"),
        (["--mtbf", "soon"], "--mtbf"),
        (["--start", "10d"], "no jobs left"),
        (["--las-thresholds", "16,1"], "--las-thresholds"),
        (["--gavel-round", "0m"], "--gavel-round"),
        (["--las-starvation", "soon"], "--las-starvation"),
        (["--las-starvation", "0h"], "--las-starvation: must be positive"),
    ],
)
def test_bad_options_one_line_exit_2(args: list[str], expected: str, tmp_path: Path) -> None:
    out = tmp_path / "never"
    result = runner.invoke(app, ["simulate", "--cluster", CLUSTER, "--trace", TINY, "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert not out.exists()  # nothing half-written


def test_las_starvation_option(tmp_path: Path) -> None:
    # The trace of test_engine_handchecked.test_las_starvation_guard_changes_who_runs, through the CLI:
    # one 4-GPU node, threshold 1 GPU-h. Without the guard JCTs are A 1.45 and 0.2 for each of the five
    # S jobs (mean 2.45/6); with --las-starvation 30m A is promoted at 0.75 h and finishes at 0.95,
    # delaying S2-S4 to 0.4 each (mean 2.55/6).
    cluster = tmp_path / "one.yaml"
    cluster.write_text("gpu_types:\n  - {name: GPU, memory_gib: 80}\nnodes:\n  - {name: n0, gpu_type: GPU, gpu_count: 4}\n")
    trace = tmp_path / "starved.csv"
    trace.write_text("name,submit,duration,gpus\nA,0,1620,4\n"
                     + "".join(f"S{i},{900 + 720 * i},720,4\n" for i in range(5)))
    summaries = []
    for extra in ([], ["--las-starvation", "30m"]):
        out = tmp_path / f"out{len(extra)}"
        result = runner.invoke(app, ["simulate", "--cluster", str(cluster), "--trace", str(trace), "--policy", "las",
                                     "--las-thresholds", "1", "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        summaries.append(json.loads((out / "summary.json").read_text())["summaries"][0])
    plain, guarded = summaries
    assert plain["avg_jct_h"] == pytest.approx(2.45 / 6)
    assert "promotions" not in plain
    assert guarded["avg_jct_h"] == pytest.approx(2.55 / 6)
    assert guarded["promotions"] == 1


def test_bad_trace_row_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("submit,duration,gpus\n0,100,2\n5,abc,1\n")
    result = runner.invoke(app, ["simulate", "--cluster", CLUSTER, "--trace", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: row 3: column duration" in result.output.replace("\n", "")
    assert "'abc'" in result.output


def test_bad_cluster_reported(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text("gpu_types:\n  - {name: A, memory_gib: 80}\nnodes:\n  - {name: n, gpu_type: B, gpu_count: 8}\n")
    result = runner.invoke(app, ["simulate", "--cluster", str(bad), "--trace", TINY])
    assert result.exit_code == 2
    assert "unknown GPU type 'B'" in result.output


def test_capacity_recommends_and_runs_what_ifs(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    result = runner.invoke(app, [
        "capacity", "--workload", "jobs=150,rate_per_hour=10,max_gpus=8", "--slo", "p95_queue<=1h",
        "--gpu-types", "A100:3.0:1.6,V100:1.5:1.0", "--what-if", "+8 A100", "--what-if", "demand +30%",
        "--seed", "1", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "cheapest configuration meeting p95_queue<=1h" in result.output.replace("\n", " ")
    report = json.loads((out / "capacity.json").read_text())
    best = report["recommendation"]
    assert best["meets"] and best["value"] <= 1.0
    # the recommendation is the cheapest of the candidates that meet the SLO
    assert best["bill"] == min(c["bill"] for c in report["candidates"] if c["meets"])
    assert [w["what_if"] for w in report["what_ifs"]] == ["+8 A100", "demand +30%"]
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_capacity_refines_between_the_sweep_points(tmp_path: Path) -> None:
    """One swept utilisation misses the SLO; its fallback overshoots; refinement finds a cheaper fit."""
    args = ["capacity", "--workload", "jobs=300,rate_per_hour=20,seed=3", "--slo", "p95_queue<=30m",
            "--gpu-types", "H100:4.0:2.0,A100:2.0:1.0"]
    out = tmp_path / "cap"
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "capacity.json").read_text())
    swept = [c for c in report["candidates"] if c["label"] != "refined"]
    refined = [c for c in report["candidates"] if c["label"] == "refined"]
    best_swept = min(c["bill"] for c in swept if c["meets"])
    best = report["recommendation"]
    assert refined and best["label"] == "refined" and best["meets"] and best["value"] <= 0.5
    assert best["bill"] < best_swept
    # each refined step adds exactly one on-demand node to the one before
    nodes = [sum(c["reserved"].values()) + sum(c["on_demand"].values()) for c in refined]
    assert nodes == sorted(nodes) and len(set(nodes)) == len(nodes)


def test_capacity_workers_give_the_serial_answer(tmp_path: Path) -> None:
    """--workers 3 (candidates simulated side by side in processes) writes the very capacity.json
    that --workers 1 (one after the other, in this process) writes."""
    args = ["capacity", "--workload", "jobs=300,rate_per_hour=20,seed=3", "--slo", "p95_queue<=30m",
            "--gpu-types", "H100:4.0:2.0,A100:2.0:1.0", "--what-if", "+8 H100"]
    reports = []
    for workers in ("1", "3"):
        out = tmp_path / f"w{workers}"
        result = runner.invoke(app, [*args, "--workers", workers, "-o", str(out)])
        assert result.exit_code == 0, result.output
        reports.append((out / "capacity.json").read_text())
    assert reports[0] == reports[1]
    assert '"refined"' in reports[0]


def _restricted_workload(tmp_path: Path, gpu_types: str) -> str:
    """24 one-GPU half-hour jobs, one every 15 minutes, that may only run on `gpu_types`."""
    path = tmp_path / "restricted.csv"
    rows = [f"{i * 900},1800,1,{gpu_types}" for i in range(24)]
    path.write_text("submit,duration,gpus,gpu_types\n" + "\n".join(rows) + "\n")
    return str(path)


def test_capacity_honours_per_job_gpu_types(tmp_path: Path) -> None:
    # H100 is cheaper per unit of work ($4 at speed 4 vs $3 at speed 1.5), so sizing that pooled the
    # demand would buy only H100 -- on which these A100-only jobs can never run (every candidate rejected
    # by the simulation). Sized by class, the cluster is A100 and meets the SLO.
    out = tmp_path / "cap"
    result = runner.invoke(app, [
        "capacity", "--workload", _restricted_workload(tmp_path, "A100"), "--slo", "p95_queue<=1h",
        "--gpu-types", "H100:4.0:4.0,A100:3.0:1.5", "--reserved-discount", "0.4", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "capacity.json").read_text())
    assert [c["gpu_types"] for c in report["demand_classes"]] == [["A100"]]
    best = report["recommendation"]
    assert best["meets"] and best["value"] == 0.0
    assert best["reserved"]["H100"] + best["on_demand"]["H100"] == 0
    assert best["reserved"]["A100"] >= 1
    assert all(c["reserved"]["H100"] + c["on_demand"]["H100"] == 0 for c in report["candidates"])


def test_capacity_jobs_on_no_candidate_type(tmp_path: Path) -> None:
    result = runner.invoke(app, [
        "capacity", "--workload", _restricted_workload(tmp_path, "V100"), "--slo", "p95_queue<=1h",
        "--gpu-types", "H100:4.0:4.0,A100:3.0:1.5",
    ])
    assert result.exit_code == 2, result.output
    assert "24 jobs (e.g. job-1) may only run on V100, none of which is a candidate GPU type" in " ".join(
        result.output.split())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--slo", "p95_wait<=1h"], "--slo"),
        (["--slo", "p95_queue<=1h", "--gpu-types", "A100:cheap:1"], "--gpu-types"),
        (["--slo", "p95_queue<=1h"], "--gpu-types or --cluster"),
        (["--slo", "p95_queue<=1h", "--gpu-types", "A100:3:1", "--what-if", "+4 H100"], "--what-if"),
        (["--slo", "p95_queue<=1h", "--gpu-types", "A100:3:1", "--workers", "0"], "--workers"),
        (["--slo", "p95_queue<=1h", "--gpu-types", "A100:3:1", "--backend", "spark"], "--backend: 'spark'"),
        (["--slo", "p95_queue<=1h", "--gpu-types", "A100:3:1", "--backend", "dask"], "--cluster-address"),
    ],
)
def test_capacity_bad_input(args: list[str], expected: str) -> None:
    result = runner.invoke(app, ["capacity", "--workload", "jobs=20,rate_per_hour=5,max_gpus=4", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_compare_includes_the_planner() -> None:
    result = runner.invoke(app, ["simulate", "--cluster", CLUSTER, "--trace", TINY, "--compare",
                                 "fifo,gpusched,gpusched:cost", "--plan-time-limit", "2"])
    assert result.exit_code == 0, result.output
    assert "gpusched:jct" in result.output and "gpusched:cost" in result.output


def test_gavel_with_measured_throughputs(shared_traces: Path, tmp_path: Path) -> None:
    matrix = shared_traces / "gavel" / "simulation_throughputs.json"
    result = runner.invoke(app, ["simulate", "--cluster", str(EXAMPLES / "sim" / "gavel-cluster.yaml"),
                                 "--trace", str(EXAMPLES / "traces" / "philly_sample.csv"), "--limit", "60",
                                 "--throughputs", str(matrix), "--compare", "fifo,gavel", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "jobs.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 60
    types_used = {line.split(",")[11] for line in rows[1:]}
    assert len(types_used - {""}) >= 2  # heterogeneous placement happened


def test_simulate_honours_maintenance_windows_in_the_cluster_file(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    base = (
        "gpu_types: [{name: GPU, memory_gib: 80}]\n"
        "nodes: [{name: n0, gpu_type: GPU, gpu_count: 4}]\n"
    )
    trace = tmp_path / "trace.csv"
    trace.write_text("submit,duration,gpus\n0,36000,4\n")  # 10 h on the whole node
    cluster.write_text(base + "maintenance: [{node: n0, start: 2h, end: 5h}]\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", "-c", str(cluster), "-t", str(trace), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    summary = summary["summaries"][0]
    assert summary["maintenance_stops"] == 1 and summary["avg_jct_h"] == pytest.approx(13.0)
    # Cut at --start 3h, the window (now -1h..2h) still holds the node for its last 2 h.
    later = tmp_path / "later.csv"
    later.write_text("submit,duration,gpus\n10800,3600,4\n")
    result = runner.invoke(app, ["simulate", "-c", str(cluster), "-t", str(later), "--start", "3h", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    summary = summary["summaries"][0]
    assert summary["avg_queue_h"] == pytest.approx(2.0)
    # A date means nothing in a replay: one clear line, exit 2.
    cluster.write_text(base + "maintenance: [{node: n0, start: 2h, end: '2026-12-01T00:00:00Z'}]\n")
    result = runner.invoke(app, ["simulate", "-c", str(cluster), "-t", str(trace)])
    assert result.exit_code == 2
    assert "maintenance[0].end: 2026-12-01T00:00:00+00:00: the simulator counts time from the trace's first job" in (
        " ".join(result.output.split()))


def test_capacity_names_its_own_option_in_workload_errors() -> None:
    args = ["--slo", "p95_queue<=1h", "--gpu-types", "A100:3:1"]
    for workload, expected in (("jobs=5,rate_per_h=2", "--workload: rate_per_h"), ("no-such.csv", "--workload: file not found")):
        result = runner.invoke(app, ["capacity", "--workload", workload, *args])
        assert result.exit_code == 2 and expected in result.output, result.output
