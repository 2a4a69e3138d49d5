"""`gpusched plan` and `gpusched schema` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed"
SEED_PLAN = [
    "plan",
    "-c",
    str(SEED / "cluster.yaml"),
    "-j",
    str(SEED / "jobs.yaml"),
    "--horizon",
    "3h",
    "--slot",
    "1h",
]
"""The seed example: its three one-hour periods as three slots."""


def gpusched(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpusched.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_plan_seed_prints_summary_and_writes_files(tmp_path: Path) -> None:
    out, chart, html = tmp_path / "plan.json", tmp_path / "plan.png", tmp_path / "plan.html"
    args = SEED_PLAN
    result = gpusched(*args, "-o", str(out), "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    assert "optimal: 3/3 jobs planned" in " ".join(result.stdout.split())
    data = json.loads(out.read_text())
    assert [u["used"]["GPU"] for u in data["utilisation"]] == [2, 3, 1]
    assert {"objective", "lower_bound", "gap", "solve_time_s", "status", "total_cost"} <= set(data)
    # The backend and the search that found the plan are two fields: "(fifo)" is no policy.
    assert data["solver"] == "cbc" and data["found_by"] and "(" not in data["solver"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    yaml_out = tmp_path / "plan.yaml"
    assert gpusched(*args, "-q", "-o", str(yaml_out), "--chart", str(html)).returncode == 0
    assert yaml.safe_load(yaml_out.read_text())["policy"] == "cost"
    assert "<html" in html.read_text() and "plotly" in html.read_text()


def test_piped_summary_is_not_wrapped_at_80_columns() -> None:
    """Piped to a file or CI log, the report is wide; an explicit COLUMNS still wins."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    cmd = [sys.executable, "-m", "gpusched.cli", *SEED_PLAN]
    piped = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    status = [line for line in piped.stdout.splitlines() if line.startswith("optimal:")]
    assert len(status) == 1 and "with cbc" in status[0], piped.stdout  # one line, not wrapped
    narrow = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**env, "COLUMNS": "80"})
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    assert max(len(line) for line in piped.stdout.splitlines()) > 80


def test_piped_help_is_not_cut_with_ellipses() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    cmd = [sys.executable, "-m", "gpusched.cli", "capacity", "--help"]
    piped = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert piped.returncode == 0 and "…" not in piped.stdout
    assert "'jobs=2000,rate_per_hour=40'" in piped.stdout
    narrow = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**env, "COLUMNS": "80"})
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80


def test_every_policy_and_solver_runs(tmp_path: Path) -> None:
    for policy in ("cost", "jct", "makespan", "deadline", "fair"):
        for solver in ("cbc", "highs"):
            result = gpusched(*SEED_PLAN, "--policy", policy, "--solver", solver, "-q")
            assert result.returncode == 0, (policy, solver, result.stderr)
            assert f"policy {policy}" in result.stdout


def test_schema_prints_json_schema() -> None:
    for kind in ("cluster", "jobs", "plan", "telemetry"):
        result = gpusched("schema", kind)
        assert result.returncode == 0
        assert "properties" in json.loads(result.stdout)


CLUSTER = {
    "gpu_types": [{"name": "A100", "memory_gib": 40, "price_per_hour": 2}],
    "nodes": [{"name": "n0", "gpu_type": "A100", "gpu_count": 8}],
}
JOB = {"name": "j", "gpus": 2, "duration": "1h"}


@pytest.mark.parametrize(
    ("cluster", "jobs", "extra", "expected"),
    [
        ("gpu_types: [\n  - name: A\n  memory_gib", None, [], "malformed YAML"),
        (
            CLUSTER,
            {"jobs": [{**JOB, "gpu_types": ["H100"]}]},
            [],
            "jobs[0].gpu_types: unknown GPU type 'H100'",
        ),
        (
            {**CLUSTER, "nodes": [{"name": "n0", "gpu_type": "B200", "gpu_count": 8}]},
            None,
            [],
            "unknown GPU type 'B200'",
        ),
        (
            {**CLUSTER, "nodes": [{"name": "n0", "gpu_type": "A100", "gpu_count": -1}]},
            None,
            [],
            "nodes[0].gpu_count",
        ),
        (CLUSTER, {"jobs": [{**JOB, "gpus": 0}]}, [], "jobs[0].gpus"),
        (
            CLUSTER,
            {"jobs": [{**JOB, "gpus": 16}]},
            [],
            "jobs[0].gpus: gang of 16 GPUs is larger than every pool",
        ),
        (
            CLUSTER,
            {"jobs": [{**JOB, "release": "3h", "deadline": "2h"}]},
            [],
            "deadline (2.0h) must be after release",
        ),
        (CLUSTER, {"jobs": [JOB, JOB]}, [], "jobs[1].name: duplicate name 'j'"),
        (CLUSTER, {"jobs": [{**JOB, "duration": "soon"}]}, [], "jobs[0].duration"),
        (CLUSTER, {"jobs": [{**JOB, "gpuz": 3}]}, [], "jobs[0].gpuz"),
        (CLUSTER, None, ["--policy", "cheapest"], "cheapest"),
        (CLUSTER, None, ["--horizon", "forever"], "--horizon"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    tmp_path: Path, cluster: object, jobs: object, extra: list[str], expected: str
) -> None:
    cpath, jpath, out = tmp_path / "cluster.yaml", tmp_path / "jobs.yaml", tmp_path / "plan.json"
    cpath.write_text(cluster if isinstance(cluster, str) else yaml.safe_dump(cluster))
    jpath.write_text(yaml.safe_dump(jobs if jobs is not None else {"jobs": [JOB]}))
    result = gpusched("plan", "-c", str(cpath), "-j", str(jpath), "-o", str(out), *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in " ".join(result.stderr.split()), result.stderr
    if "--policy" not in extra:  # typer's own usage error is a small box; ours are one line
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert str(cpath) in result.stderr or str(jpath) in result.stderr or "--" in result.stderr
    assert not out.exists()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = gpusched("plan", "-c", str(tmp_path / "nope.yaml"), "-j", str(SEED / "jobs.yaml"))
    assert result.returncode == 2 and "file not found" in result.stderr


def test_plan_from_agent_telemetry_directory(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from gpusched.telemetry import GpuTelemetry, NodeTelemetry

    snapshots = tmp_path / "telemetry"
    snapshots.mkdir()
    gpus = [
        GpuTelemetry(
            index=i,
            uuid=f"GPU-{i}",
            name="NVIDIA H100 80GB HBM3",
            memory_total_mib=81559,
            health="unhealthy" if i == 7 else "healthy",
        )
        for i in range(8)
    ]
    node = NodeTelemetry(node="gpu-node-1", timestamp=datetime.now(timezone.utc), gpus=gpus)
    (snapshots / "gpu-node-1.json").write_text(node.model_dump_json())
    cluster = tmp_path / "types.yaml"  # GPU types and prices only: the nodes come from the agents
    cluster.write_text(
        yaml.safe_dump({"gpu_types": [{"name": "H100-80GB", "memory_gib": 80, "price_per_hour": 4}]})
    )
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        yaml.safe_dump(
            {
                "jobs": [
                    {"name": "fits", "gpus": 7, "duration": "1h"},
                    {"name": "too-big", "gpus": 8, "duration": "1h"},
                ]
            }
        )
    )
    out = tmp_path / "plan.json"
    result = gpusched(
        "plan", "-c", str(cluster), "-j", str(jobs), "--telemetry", str(snapshots), "-o", str(out)
    )
    assert result.returncode == 3, result.stderr  # too-big cannot run: the plan is written, exit 3
    plan = json.loads(out.read_text())
    by_name = {jp["job"]: jp for jp in plan["jobs"]}
    assert by_name["fits"]["placement"] == [{"node": "gpu-node-1", "gpus": 7}]
    assert by_name["too-big"]["status"] == "unscheduled"  # one GPU is unhealthy: 7 schedulable


def test_cli_choices_and_defaults_are_the_shared_ones() -> None:
    """One list of policies (model.POLICIES) and one horizon/slot/policy default (gpusched.defaults)
    for `plan` and the operator: a CLI cannot drift from what the simulator and the operator use."""
    from typing import get_args

    import typer

    from gpusched import defaults
    from gpusched.cli import app
    from gpusched.model import POLICIES
    from gpusched.simulations.cli import POLICY_HELP
    from gpusched.simulations.policies import policy_names
    from gpusched.units import parse_duration_hours

    group = typer.main.get_command(app)
    for name in ("plan", "operator"):
        (option,) = [p for p in group.commands[name].params if p.name == "policy"]  # type: ignore[attr-defined]
        assert get_args(option.type_descriptor.annotation) == POLICIES
        assert all(p in option.help for p in POLICIES)
    # The simulator's --policy help lists exactly what make_policy accepts.
    for known in policy_names():
        base, _, objective = known.partition(":")
        assert (objective or base) in POLICY_HELP
    for name in ("plan", "operator"):
        params = {p.name: p.default for p in group.commands[name].params}  # type: ignore[attr-defined]
        assert parse_duration_hours(params["horizon"]) == defaults.HORIZON_H
        assert parse_duration_hours(params["slot"]) == defaults.SLOT_H
    operator = {p.name: p.default for p in group.commands["operator"].params}  # type: ignore[attr-defined]
    assert operator["policy"] == defaults.POLICY
