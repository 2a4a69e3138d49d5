"""Bad arguments: one clear line on stderr, exit 2, nothing started and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpusched.workload.cli import train
from gpusched.workload_contract import EXIT_USAGE

CASES = [
    (["--model", "huge"], {}, "--model: expected one of tiny, small, 125m (got 'huge')"),
    (["--steps", "0"], {}, "--steps: input should be greater than or equal to 1 (got 0)"),
    (["--heads", "3", "--d-model", "32"], {}, "--d-model 32 is not a multiple of --heads 3"),
    (["--device", "tpu"], {}, "--device: input should be 'auto', 'cpu' or 'cuda' (got 'tpu')"),
    (["--steps", "abc"], {}, "--steps: "),  # the parser's wording varies by typer version
    (["--no-such-flag"], {}, "--no-such-flag: no such option"),
    ([], {"WORLD_SIZE": "2", "RANK": "x", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
     "$RANK: expected an integer (got 'x')"),
    ([], {"WORLD_SIZE": "2", "RANK": "0"},
     "$MASTER_ADDR: not set, but WORLD_SIZE is (env:// rendezvous needs it)"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "env", "expected"), CASES, ids=[c[2][:28] for c in CASES])
def test_module_entry_point_one_line_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    base = {
        k: v for k, v in __import__("os").environ.items() if not k.startswith(("GPUSCHED_", "RANK", "WORLD"))
    }
    base["GPUSCHED_TERMINATION_MESSAGE_PATH"] = str(tmp_path / "termination-log")
    result = subprocess.run(
        [sys.executable, "-m", "gpusched.workload", "--checkpoint-dir", str(tmp_path / "ckpt"), *args],
        capture_output=True, text=True, env={**base, **env}, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), result.stderr
    assert result.stdout == "" or all(json.loads(x)["event"] == "exit" for x in result.stdout.splitlines())
    assert not (tmp_path / "ckpt").exists()


def test_missing_checkpoint_dir_names_flag_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUSCHED_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("GPUSCHED_TERMINATION_MESSAGE_PATH", str(tmp_path / "termination-log"))
    app = _app()
    result = CliRunner().invoke(app, ["--steps", "5"])
    assert result.exit_code == EXIT_USAGE
    assert (
        result.stderr.strip() == "error: --checkpoint-dir: not given and $GPUSCHED_CHECKPOINT_DIR is not set"
    )
    # The pod's termination message carries the reason, so `kubectl describe` shows it.
    message = json.loads((tmp_path / "termination-log").read_text())
    assert message["state"] == "failed" and message["exit_code"] == EXIT_USAGE
    assert "--checkpoint-dir" in message["message"]


def test_help_lists_the_contract() -> None:
    result = CliRunner().invoke(_app(), ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for flag in (
        "--checkpoint-dir",
        "--checkpoint-every",
        "--keep",
        "--status-file",
        "--model",
        "--log-every",
    ):
        assert flag in text
    assert "75 stopped by SIGTERM after a checkpoint" in text


def _app():  # type: ignore[no-untyped-def]
    import typer

    app = typer.Typer(add_completion=False)
    app.command()(train)
    return app


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda d: ["--checkpoint-dir", str(_file(d / "ckpt"))], "--checkpoint-dir: "),
        (lambda d: ["--checkpoint-dir", str(_file(d / "f") / "sub")], "--checkpoint-dir: "),
        (
            lambda d: ["--checkpoint-dir", str(d / "c"), "--status-file", str(_dir(d / "s"))],
            "--status-file: ",
        ),
        (lambda d: ["--checkpoint-dir", str(d / "c"), "--lr", "nan"], "--lr: "),
        (lambda d: ["--checkpoint-dir", str(d / "c"), "--grad-clip", "inf"], "--grad-clip: "),
    ],
    ids=["ckpt-dir-is-file", "ckpt-dir-under-file", "status-file-is-dir", "lr-nan", "grad-clip-inf"],
)
def test_unwritable_paths_and_non_finite_flags_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], setup, expected: str
) -> None:
    from gpusched.workload.cli import main

    monkeypatch.setenv("GPUSCHED_TERMINATION_MESSAGE_PATH", str(tmp_path / "termination-log"))
    for var in ("WORLD_SIZE", "RANK", "MASTER_PORT", "MASTER_ADDR"):
        monkeypatch.delenv(var, raising=False)
    assert main(setup(tmp_path)) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {expected}"), err


@pytest.mark.parametrize("port", ["0", "65536", "99999999999999999999999", "-1"])
def test_master_port_out_of_range_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    from gpusched.workload.cli import main

    monkeypatch.setenv("GPUSCHED_TERMINATION_MESSAGE_PATH", str(tmp_path / "termination-log"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", port)
    assert main(["--checkpoint-dir", str(tmp_path / "c")]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: $MASTER_PORT: "), err


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


def _dir(path: Path) -> Path:
    path.mkdir()
    return path
