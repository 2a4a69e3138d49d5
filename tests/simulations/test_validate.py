"""The validation entry points (docs/validation.md), run on the samples the project ships."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpusched.simulations import fgd, validate
from gpusched.simulations.traces import load_openb_nodes, load_openb_pods, load_philly

from .conftest import EXAMPLES

OPENB = EXAMPLES / "traces" / "openb-sample"


@pytest.fixture
def sample_traces(tmp_path: Path) -> Path:
    """The shipped samples laid out like ../shared/traces."""
    (tmp_path / "philly").mkdir()
    shutil.copy(EXAMPLES / "traces" / "philly_sample.csv", tmp_path / "philly" / "philly.csv")
    shutil.copytree(OPENB, tmp_path / "alibaba-openb")
    return tmp_path


def test_fgd_protocol_on_sample() -> None:
    nodes = load_openb_nodes(OPENB / "openb_node_list_gpu_node.csv")
    pods = load_openb_pods(OPENB / "openb_pod_list_default.csv")
    results = {p: fgd.replay(nodes, pods, p, seed=1) for p in fgd.POLICIES}
    for policy, r in results.items():
        rates = list(r["allocation_rate"].values())  # type: ignore[union-attr]
        marks = [0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
        # never more allocated than arrived (the rate is read just after demand crosses a mark, so the
        # last pod, at most 8 GPUs, may overshoot it), never more than the cluster, never decreasing
        slack = 8 / 314
        assert all(0 <= rate <= min(mark + slack, 1.0) + 1e-9 for rate, mark in zip(rates, marks)), policy
        assert rates == sorted(rates), policy
    assert results["fgd"]["allocation_rate"]["130%"] >= results["random"]["allocation_rate"]["130%"]  # type: ignore[index]


def test_inflation_reaches_the_ratio() -> None:
    tasks = fgd.tasks_from_pods(load_openb_pods(OPENB / "openb_pod_list_default.csv"))
    out = fgd.inflate(tasks, capacity=314, ratio=1.3, seed=3)
    assert out[: len(tasks)] == tasks
    assert sum(t.demand for t in out) >= 1.3 * 314
    assert sum(t.demand for t in out[:-1]) < 1.3 * 314


def test_fgd_prefers_keeping_whole_gpus() -> None:
    # Two 2-GPU nodes, one with a half-used GPU. A 0.5-GPU task should go onto the half-used GPU, not
    # break a whole GPU that the (popular) 1-GPU tasks need.
    from gpusched.simulations.traces import OpenbNode

    nodes = [OpenbNode(sn="a", cpu_milli=64000, memory_mib=1 << 20, gpu=2, model="T4"),
             OpenbNode(sn="b", cpu_milli=64000, memory_mib=1 << 20, gpu=2, model="T4")]
    classes = [(0.8, fgd.Task(0, 0, 1, 1000, None)), (0.2, fgd.Task(0, 0, 1, 500, None))]
    packer = fgd.Packer(nodes, "fgd", classes, seed=0)
    packer.free[1][0] = 500
    assert packer.place(fgd.Task(1000, 1024, 1, 500, None))
    assert packer.free[1] == [0, 1000] and packer.free[0] == [1000, 1000]


def test_validate_main_on_samples(sample_traces: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main(["fgd", "--traces", str(sample_traces), "--policies", "best-fit,fgd", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in out] == ["best-fit", "fgd"]
    assert out[1]["published_at_100"] == pytest.approx(0.952)
    assert validate.main(["philly", "--traces", str(sample_traces), "--policies", "fifo", "--gpus", "64",
                          "--vc", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["completed"] == 300


def test_vc_shares_cover_biggest_gang() -> None:
    jobs = load_philly(EXAMPLES / "traces" / "philly_sample.csv")
    shares = validate.vc_shares(jobs, 2816)
    assert sum(shares.values()) == 352
    for vc, nodes in shares.items():
        assert nodes * 8 >= max(j.gpus for j in jobs if j.team == vc)


def test_validate_missing_traces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main(["fgd", "--traces", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err


def test_sampled_order_reaches_ratio_and_rejects_unknown_order() -> None:
    nodes = load_openb_nodes(OPENB / "openb_node_list_gpu_node.csv")
    pods = load_openb_pods(OPENB / "openb_pod_list_default.csv")
    r = fgd.replay(nodes, pods, "best-fit", order="sampled", seed=5)
    assert r["order"] == "sampled" and r["allocation_rate"]["130%"] > 0.5  # type: ignore[index]
    with pytest.raises(ValueError, match="order"):
        fgd.replay(nodes, pods, "best-fit", order="reverse")
