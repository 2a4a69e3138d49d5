"""`gpusched capacity --what-if 'lose node NAME'`: a node the recommendation lacks is reported, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BASE = ["capacity", "--workload", "jobs=100,rate_per_hour=20,seed=3", "--slo", "p95_queue<=30m",
        "--gpu-types", "H100:4.0:2.0,A100:2.0:1.0"]  # fmt: skip


def gpusched(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpusched.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_a_node_the_recommendation_lacks_is_reported_and_the_files_are_written(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    result = gpusched(*BASE, "--what-if", "lose node h100-r9", "--what-if", "demand +10%", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "lose node h100-r9: not applied" in " ".join(result.stdout.split())
    report = json.loads((out / "capacity.json").read_text())
    lost, demand = report["what_ifs"]
    assert lost["what_if"] == "lose node h100-r9" and "unknown node" in lost["not_applied"]
    assert demand["what_if"] == "demand +10%" and "bill" in demand
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_a_node_name_no_candidate_can_have_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    result = gpusched(*BASE, "--what-if", "lose node gpu-1", "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith("error: --what-if: 'lose node gpu-1': candidate nodes are named")
    assert not out.exists()
