"""`gpusched operator` option checks: each bad option is one line naming it, before any file or server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpusched.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--namespace", "Not_A/Namespace"], "--namespace: 'Not_A/Namespace' is not a namespace name"),
        (["--lease-namespace", "x" * 64], "--lease-namespace: "),
        (["--lease-name", "Bad Lease!"], "--lease-name: 'Bad Lease!' is not a Lease name"),
        (["--time-limit", "nan"], "--time-limit: nan is not a finite number"),
        (["--time-limit", "0"], "--time-limit: 0 is out of range"),
        (["--time-limit", "-1"], "--time-limit: -1 is out of range"),
        (["--time-limit", "inf"], "--time-limit: inf is not a finite number"),
        (["--horizon", "nan"], "--horizon: "),
        (["--horizon", "100000h", "--slot", "1m"], "--horizon/--slot: "),
        (["--replan-interval", "inf"], "--replan-interval: "),
        (["--lease-duration", str(2**63)], "--lease-duration: "),
        (["--policy", "bogus"], "--policy: 'bogus' is not one of"),
        (["--no-such-option"], "--no-such-option: no such option"),
    ],
)
def test_bad_option_is_one_line_naming_it(args: list[str], needle: str, tmp_path: Path) -> None:
    # The kubeconfig is missing too: the option error must win (it was reported as a missing kubeconfig).
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(json.dumps({"gpu_types": [{"name": "H100-80GB", "memory_gib": 80}]}))
    argv = ["operator", "--cluster-config", str(cfg), "--kubeconfig", str(tmp_path / "missing"), *args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01\x02binary", b"clusters: [\n", "\ufeffapiVersion: v1".encode("utf-16"), b"just text"],
    ids=["binary", "malformed", "utf16", "scalar"],
)
def test_garbage_kubeconfig_is_one_line_naming_the_file(content: bytes, tmp_path: Path) -> None:
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(json.dumps({"gpu_types": [{"name": "H100-80GB", "memory_gib": 80}]}))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(content)
    result = runner.invoke(app, ["operator", "-c", str(cfg), "--kubeconfig", str(kubeconfig), "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --kubeconfig: {kubeconfig}"), result.stderr
