"""`validate fgd` runs for minutes: fgd.replay shows a progress bar on stderr when asked (or on a TTY)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gpusched.simulations import fgd
from gpusched.simulations.traces import OpenbNode, OpenbPod


def test_progress_bar_reports_every_pod_and_is_silent_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [OpenbNode(sn=f"n{i}", cpu_milli=64000, memory_mib=262144, gpu=8, model="G2") for i in range(2)]
    pods = [OpenbPod(name=f"p{i}", cpu_milli=1000, memory_mib=1024, num_gpu=1, gpu_milli=1000, gpu_spec="",
                     qos="LS", pod_phase="Running", creation_time=i, deletion_time=i + 10, scheduled_time=i)
            for i in range(8)]  # fmt: skip
    seen = io.StringIO()
    monkeypatch.setattr(
        "rich.console.Console", lambda **kw: Console(file=seen, width=100, force_terminal=False)
    )
    result = fgd.replay(nodes, pods, "best-fit", progress=True)
    text = seen.getvalue()
    assert "fgd replay: best-fit" in text and f"{result['tasks']}/{result['tasks']}" in text
    seen.truncate(0)
    fgd.replay(nodes, pods, "best-fit", progress=False)
    assert seen.getvalue() == ""
