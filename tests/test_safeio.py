"""Input boundaries (gpusched.safeio, gpusched.config, the model) and the one-line error shape."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpusched.cli import app
from gpusched.config import load_cluster, load_inputs, load_jobs
from gpusched.safeio import InputError, read_document, write_all_atomic

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed"
runner = CliRunner()

CLUSTER = "gpu_types:\n  - {name: A, memory_gib: 80}\nnodes:\n  - {name: n0, gpu_type: A, gpu_count: 4}\n"


def _error(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(InputError) as info:
        read_document(path)
    return str(info.value)


def test_duplicate_yaml_key_is_refused_with_its_line(tmp_path: Path) -> None:
    msg = _error(tmp_path, "c.yaml", "a: 1\nb: 2\na: 3\n")
    assert "line 3" in msg and "duplicate key 'a'" in msg


def test_duplicate_json_key_and_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    assert "duplicate key" in _error(tmp_path, "a.json", '{"a": 1, "a": 2}')
    assert "NaN" in _error(tmp_path, "b.json", '{"a": NaN}')
    assert "overflows" in _error(tmp_path, "c.json", '{"a": 1e999}')


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_deep_nesting_is_one_error_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    msg = _error(tmp_path, "deep.yaml", "a: " + "[" * depth + "]" * depth)
    assert "nested too deeply" in msg or "malformed YAML" in msg


def test_encodings_binary_and_directories_are_named(tmp_path: Path) -> None:
    assert "UTF-16" in _error(tmp_path, "u.yaml", "a: 1\n".encode("utf-16"))
    assert "binary" in _error(tmp_path, "b.yaml", b"a: \x00\x01")
    assert "not UTF-8" in _error(tmp_path, "l.yaml", "name: n\xe4me".encode("latin-1"))
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        read_document(tmp_path / "d.yaml")


def test_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSCHED_MAX_INPUT_BYTES", "1000")
    msg = _error(tmp_path, "big.yaml", "# " + "x" * 5000 + "\na: 1\n")
    assert "limit" in msg and len(msg) < 200


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        ("{name: n0, gpu_type: A, gpu_count: true}", "nodes[0].gpu_count"),
        ("{name: n0, gpu_type: A, gpu_count: '4'}", "nodes[0].gpu_count"),
        ("{name: n0, gpu_type: A, gpu_count: 9223372036854775808}", "nodes[0].gpu_count"),
        ("{name: n0, gpu_type: A, gpu_count: 4, cordoned: 1}", "nodes[0].cordoned"),
    ],
)
def test_counts_and_flags_are_strictly_typed(tmp_path: Path, node: str, needle: str) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(f"gpu_types:\n  - {{name: A, memory_gib: 80}}\nnodes:\n  - {node}\n")
    with pytest.raises(InputError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_cluster(path)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e30"])
def test_non_finite_and_absurd_prices_are_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(f"gpu_types:\n  - {{name: A, memory_gib: 80, price_per_hour: {value}}}\n")
    with pytest.raises(InputError, match=r"gpu_types\[0\]\.price_per_hour"):
        load_cluster(path)


@pytest.mark.parametrize("duration", ["nan", ".nan", "inf", "1e30h", "99999999999h"])
def test_non_finite_durations_are_refused(tmp_path: Path, duration: str) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(f"jobs:\n  - {{name: j, gpus: 1, duration: {duration}}}\n")
    with pytest.raises(InputError, match=r"jobs\[0\]\.duration"):
        load_jobs(path)


@pytest.mark.parametrize("epoch", ["yesterday", "12", "2026-13-45T00:00:00Z"])
def test_an_epoch_that_is_not_a_time_is_refused(tmp_path: Path, epoch: str) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(f"epoch: '{epoch}'\njobs: []\n")
    with pytest.raises(InputError, match="epoch: not a time"):
        load_jobs(path)


def test_running_job_cannot_hold_more_gpus_than_its_node(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CLUSTER)
    (tmp_path / "j.yaml").write_text(
        "jobs:\n  - {name: a, gpus: 6, duration: 1h, running: {nodes: {n0: 6}}}\n"
    )
    with pytest.raises(InputError, match=r"running\.nodes\.n0: holds 6 GPUs but the node has 4"):
        load_inputs(tmp_path / "c.yaml", tmp_path / "j.yaml")
    (tmp_path / "j.yaml").write_text(
        "jobs:\n  - {name: a, gpus: 3, duration: 1h, running: {nodes: {n0: 3}}}\n"
        "  - {name: b, gpus: 3, duration: 1h, running: {nodes: {n0: 3}}}\n"
    )
    with pytest.raises(InputError, match="running jobs hold 6 GPUs on a node of 4"):
        load_inputs(tmp_path / "c.yaml", tmp_path / "j.yaml")


def test_huge_value_is_not_echoed_back(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs:\n  - {name: j, gpus: '" + "9" * 1_000_000 + "', duration: 1h}\n")
    with pytest.raises(InputError) as info:
        load_jobs(path)
    assert len(str(info.value)) < 300


def _plan(*args: str) -> object:
    return runner.invoke(app, ["plan", "-c", str(SEED / "cluster.yaml"), "-j", str(SEED / "jobs.yaml"),
                               "--horizon", "3h", "--slot", "1h", "-q", *args])  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--policy", "bogus"], "error: --policy: 'bogus' is not one of"),
        (["--bogus"], "error: --bogus: no such option"),
        (["--time-limit", "nan"], "error: --time-limit: nan is not a finite number"),
        (["--time-limit", "0"], "error: --time-limit: 0 is out of range"),
        (["--horizon", "nan"], "error: --horizon: "),
        (["--horizon", "10000h", "--slot", "1m"], "error: --horizon/--slot: "),
    ],
)
def test_plan_option_errors_are_one_line(args: list[str], needle: str) -> None:
    result = _plan(*args)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith(needle), lines


def test_plan_outputs_are_checked_before_work_and_all_or_none(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = _plan("-o", str(out), "--chart", str(tmp_path / "missing" / "chart.png"))
    assert result.exit_code == 2 and "--chart: directory" in result.stderr  # type: ignore[attr-defined]
    assert not out.exists()
    (tmp_path / "d.json").mkdir()
    result = _plan("-o", str(tmp_path / "d.json"), "--chart", str(tmp_path / "c.html"))
    assert result.exit_code == 2 and "is a directory" in result.stderr  # type: ignore[attr-defined]
    (tmp_path / "d.json").rmdir()
    result = _plan("-o", str(out), "--chart", str(tmp_path / "c.html"))
    assert result.exit_code == 0 and out.exists() and (tmp_path / "c.html").exists()  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.html", "plan.json"]  # no temporaries left


def test_write_all_atomic_leaves_nothing_when_one_output_fails(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(OSError):
        write_all_atomic([(tmp_path / "a.json", "{}"), (tmp_path / "blocker" / "b.json", "{}")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_simulate_warns_on_the_terminal_when_the_planner_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    from gpusched.simulations.engine import Simulator
    from gpusched.simulations.policies import make_policy
    from gpusched.simulations.traces import load_generic

    cluster = load_cluster(ROOT / "examples" / "sim" / "cluster.yaml")
    jobs = load_generic(ROOT / "examples" / "traces" / "tiny.csv")
    # The solver refuses a zero time limit. Under `cost` every round goes to plan() (under `jct` a round
    # whose queue all starts at once on its best types is decided without the solver: frontend.at_once).
    policy = make_policy("gpusched:cost", plan_time_limit=0)
    with caplog.at_level(logging.WARNING, logger="gpusched.simulations.policies.planner"):
        result = Simulator(cluster, jobs, policy).run()
    assert result.extra["plan_errors"] > 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "gpusched.simulations.policies.planner"]
    assert len(warnings) == 1 and "fall back to backfilling FIFO" in warnings[0]


def test_telemetry_snapshot_with_nan_is_refused(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    (snaps / "n0.json").write_text(
        json.dumps({"node": "n0", "timestamp": "2026-01-01T00:00:00Z"}).replace("}", ', "x": NaN}')
    )
    result = _plan("--telemetry", str(snaps))
    assert result.exit_code == 2 and "n0.json" in result.stderr  # type: ignore[attr-defined]


def test_a_bug_still_shows_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only input problems become one line: nothing swallows an unexpected exception."""
    import gpusched.solver

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the solver")

    monkeypatch.setattr(gpusched.solver, "plan", broken)
    result = _plan()
    assert isinstance(result.exception, RuntimeError)  # type: ignore[attr-defined]
