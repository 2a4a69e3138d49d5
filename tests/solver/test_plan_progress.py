"""The live progress display of `gpusched plan`: drawn on a terminal's stderr only, never under
-q, never on a pipe."""

from __future__ import annotations

import io

from gpusched.generate import make_cluster, make_jobs
from gpusched.plan_progress import plan_progress
from gpusched.solver import PlanOptions, plan


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _plan(progress: object) -> None:
    cluster = make_cluster(32, 2)
    jobs = make_jobs(10, cluster, horizon=4.0, seed=2)
    plan(cluster, jobs, PlanOptions(horizon=4.0, slot=0.5, time_limit=30), progress=progress)  # type: ignore[arg-type]


def test_on_a_terminal_the_stages_are_drawn() -> None:
    term = Terminal()
    with plan_progress(False, 30.0, term) as progress:
        assert progress is not None
        _plan(progress)
    assert "planning" in term.getvalue() and "stage" in term.getvalue()


def test_quiet_or_a_pipe_gets_nothing() -> None:
    for quiet, stream in ((True, Terminal()), (False, io.StringIO())):
        with plan_progress(quiet, 30.0, stream) as progress:
            assert progress is None
        assert stream.getvalue() == ""
