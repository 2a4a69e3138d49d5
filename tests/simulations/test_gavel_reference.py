"""Gavel's own numbers beside our replay, and the JCT-vs-load picture of `validate gavel --plot`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gpusched.simulations import gavel_check, validate

from .test_gavel import full_table, write_throughputs


def test_references_match_only_their_exact_setup() -> None:
    published = gavel_check.GavelSetup()  # 36:36:36, 3.0 jobs/h, seed 0, window 1000-1499, 3,000 jobs
    got = {r.gavel_policy: r.avg_jct_h for r in published.references()}
    assert got["max_min_fairness_perf"] == pytest.approx(14.07, abs=0.01)
    assert got["max_min_fairness"] == pytest.approx(20.89)
    for other in (dataclasses.replace(published, seed=1), dataclasses.replace(published, rate=4.0),
                  dataclasses.replace(published, multi_gpu=True), dataclasses.replace(published, window=(1000, 1400)),
                  dataclasses.replace(published, gpus=(36, 36, 35)), dataclasses.replace(published, round_hours=0.2)):
        assert other.references() == []
    # Fewer jobs than Gavel generated before its window drained: not the sequence Gavel saw.
    short = dataclasses.replace(published, jobs=1600)
    assert short.references() == []


def test_every_reference_is_a_setup_validate_can_run() -> None:
    for ref in gavel_check.REFERENCES:
        assert ref.window[0] < ref.window[1] <= ref.jobs and ref.rate > 0 and ref.avg_jct_h > 0
        setup = gavel_check.GavelSetup(rate=ref.rate, jobs=ref.jobs, window=ref.window, multi_gpu=ref.multi_gpu)
        assert ref in setup.references()


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "gavel").mkdir()
    write_throughputs(tmp_path / "gavel" / "simulation_throughputs.json", full_table())
    png = tmp_path / "curve.png"
    code = validate.main(["gavel", "--traces", str(tmp_path), "--jobs", "40", "--window", "10:30", "--rates", "2,6",
                          "--cluster-spec", "4:2:2", "--policies", "gavel,fifo", "--plot", str(png), "--json"])
    assert code == 0
    outs = json.loads(capsys.readouterr().out)
    assert [o["setup"]["rate"] for o in outs] == [2.0, 6.0]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < len(data) < 2_000_000  # a drawn figure, not an empty canvas
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_plot_draws_gavel_reference_points() -> None:
    # The same sweep with and without Gavel's own numbers: the markers change the picture.
    def out(rate: float, refs: dict[str, float]) -> dict[str, object]:
        return {"setup": {"rate": rate, "gpus": [36, 36, 36], "multi_gpu": False, "seed": 0, "jobs": 800,
                          "window": [300, 500]}, "lower_bound_h": 13.0,
                "results": [{"policy": "gavel", "avg_jct_h": 14.0 + rate}], "gavel_reference_h": refs}

    from gpusched.simulations import gavel_plot

    bare = gavel_plot.jct_vs_load_png([out(1, {}), out(3, {})])
    marked = gavel_plot.jct_vs_load_png([out(1, {"max_min_fairness_perf": 15.0}),
                                         out(3, {"max_min_fairness_perf": 17.0})])
    assert bare != marked


@pytest.mark.parametrize("plot", ["curve.txt", "no/such/folder/curve.png"])
def test_plot_bad_path_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], plot: str) -> None:
    (tmp_path / "gavel").mkdir()
    write_throughputs(tmp_path / "gavel" / "simulation_throughputs.json", full_table())
    assert validate.main(["gavel", "--traces", str(tmp_path), "--plot", str(tmp_path / plot)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --plot:")
    assert not (tmp_path / plot).exists()


def test_capped_reference_matches_only_its_job_count() -> None:
    # Gavel stopped generating at 800 (its num_total_jobs): only an 800-job replay is that sequence.
    capped = gavel_check.GavelReference("max_min_fairness_perf", 7.0, False, (300, 500), 800, 20.0, capped=True)
    assert capped.matches(800) and not capped.matches(799) and not capped.matches(1500)
    drained = gavel_check.GavelReference("max_min_fairness_perf", 1.0, False, (300, 500), 653, 14.7)
    assert drained.matches(653) and drained.matches(3000) and not drained.matches(652)


def test_replay_that_ran_out_of_jobs_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two GPUs, 30 jobs at 20 jobs/h: the queue outlives the arrivals, so every job has arrived before
    # the window (the last ten jobs) drains: the replay cannot match Gavel's endless arrivals.
    (tmp_path / "gavel").mkdir()
    write_throughputs(tmp_path / "gavel" / "simulation_throughputs.json", full_table())
    args = ["gavel", "--traces", str(tmp_path), "--jobs", "30", "--window", "20:30", "--rate", "20",
            "--cluster-spec", "1:1:0", "--policies", "fifo"]
    assert validate.main([*args, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["ran_out_of_jobs"] and row["arrived_when_drained"] == 30
    assert validate.main(args) == 0
    assert "its JCTs depend on --jobs" in capsys.readouterr().out
    # A light load drains the window long before the last arrival.
    assert validate.main(["gavel", "--traces", str(tmp_path), "--jobs", "60", "--window", "5:10", "--rate", "0.2",
                          "--cluster-spec", "8:8:8", "--policies", "fifo", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert not row["ran_out_of_jobs"] and row["arrived_when_drained"] < 60
