"""The simulation commands' entries: `gpusched validate` is the validation module's parser and code, and
the --help texts name what the code accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES, ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    (tmp_path / "philly").mkdir()
    shutil.copy(EXAMPLES / "traces" / "philly_sample.csv", tmp_path / "philly" / "philly.csv")
    return tmp_path


def test_subcommand_and_module_give_the_same_results(traces: Path) -> None:
    args = ["philly", "--traces", str(traces), "--policies", "fifo,sjf", "--gpus", "64", "--json"]
    sub = _run("-m", "gpusched.cli", "validate", *args)
    mod = _run("-m", "gpusched.simulations.validate", *args)
    assert sub.returncode == 0, sub.stderr
    assert mod.returncode == 0, mod.stderr
    drop = {"wall_s", "events_per_s"}  # timings differ run to run
    same = [[{k: v for k, v in r.items() if k not in drop} for r in json.loads(p.stdout)] for p in (sub, mod)]
    assert same[0] == same[1]
    assert [r["policy"] for r in same[0]] == ["fifo", "sjf"]


def test_help_is_the_parsers_own() -> None:
    result = _run("-m", "gpusched.cli", "validate", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gpusched validate")
    for option in ("--traces", "--policies", "--vc", "--rates", "--gavel-trace", "--json"):
        assert option in result.stdout
    listed = _run("-m", "gpusched.cli", "--help")
    assert "validate" in listed.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nope"], "invalid choice: 'nope'"),
        (["philly", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: check"),
    ],
)
def test_usage_mistakes_are_one_line(args: list[str], expected: str) -> None:
    result = _run("-m", "gpusched.cli", "validate", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert expected in result.stderr


def test_simulate_help_names_every_policy_the_code_accepts() -> None:
    from gpusched.simulations.policies import BASELINES, PLANNER_PREFIX

    result = _run("-m", "gpusched.cli", "simulate", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.replace("│", " ").split())
    for name in (*BASELINES, PLANNER_PREFIX, "tiresias"):
        assert name in text, name


def test_each_replay_is_announced_for_the_progress_line(traces: Path) -> None:
    from gpusched.simulations import validate

    seen: list[str] = []
    results = validate.run_philly(traces, ["fifo", "sjf"], 64, step=seen.append)
    assert seen == ["philly: fifo (1/2)", "philly: sjf (2/2)"]
    assert [r["policy"] for r in results] == ["fifo", "sjf"]
