"""HiGHS prints a banner on stdout the first time a process constructs it (issue #15: `gpusched
plan --solver highs -q` printed it above the one-line result). The planner must print nothing of
HiGHS' on stdout. A fresh process, since the banner only comes once per process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("highspy", reason="highspy (the [highs] extra) is not installed")

PROGRAM = """
from gpusched.generate import make_cluster, make_jobs
from gpusched.solver import PlanOptions, plan
cluster = make_cluster(32, 2)
jobs = make_jobs(8, cluster, horizon=4.0, seed=1)
result = plan(cluster, jobs, PlanOptions(horizon=4.0, slot=0.5, solver="highs", time_limit=30))
print("planned", result.status)
"""


def test_a_highs_plan_prints_nothing_of_highs_on_stdout() -> None:
    env = dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    assert done.stdout.startswith("planned "), done.stdout
    assert "HiGHS" not in done.stdout and len(done.stdout.splitlines()) == 1
