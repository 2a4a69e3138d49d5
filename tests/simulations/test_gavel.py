"""Gavel workloads and Gavel's max-min fairness: loaders, generator, LP and rounds, checked by hand."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from gpusched.config import InputError
from gpusched.simulations import gavel_trace, simulate_trace, validate
from gpusched.simulations.engine import Simulator
from gpusched.simulations.policies import make_policy
from gpusched.simulations.policies.gavel import Gavel, maxmin_allocation
from gpusched.simulations.workload import TraceJob

from .conftest import one_node

R50 = "ResNet-50 (batch size 64)"


def write_throughputs(path: Path, table: dict[tuple[str, int], dict[str, float]]) -> Path:
    """A file in simulation_throughputs.json's layout, with a co-located entry that must be ignored."""
    data: dict[str, dict[str, dict[str, float]]] = {g: {} for g in ("v100", "p100", "k80")}
    for (model, scale), per_type in table.items():
        for g, value in per_type.items():
            data[g][f"('{model}', {scale})"] = {"null": value, f"('{model}', {scale})": [value / 3, value / 3]}  # type: ignore[dict-item]
    path.write_text(json.dumps(data))
    return path


def full_table() -> dict[tuple[str, int], dict[str, float]]:
    """Every key Gavel's generator may draw: all 26 types at scale 1, distributed ones at 2, 4 and 8."""
    table = {}
    for model in gavel_trace.GAVEL_JOB_TABLE:
        for scale in (1, 2, 4, 8) if gavel_trace.is_distributed(model) else (1,):
            table[(model, scale)] = {"v100": 10.0 * scale**0.8, "p100": 6.0 * scale**0.8, "k80": 2.0 * scale**0.8}
    return table


def test_scale_factor_4_job_runs_at_its_4_gpu_throughput(tmp_path: Path) -> None:
    # ResNet-50 b64: 1 GPU V100 4 steps/s; 4 GPUs V100 10, P100 6, K80 2 steps/s (not 4x the 1-GPU figure).
    path = write_throughputs(tmp_path / "thr.json", {
        (R50, 1): {"v100": 4.0, "p100": 2.5, "k80": 1.0},
        (R50, 4): {"v100": 10.0, "p100": 6.0, "k80": 2.0},
    })
    thr = gavel_trace.load_throughputs(path)
    assert thr[(R50, 4)] == {"v100": 10.0, "p100": 6.0, "k80": 2.0}
    [job] = gavel_trace.to_trace_jobs([gavel_trace.GavelJob(R50, 4, total_steps=72_000, arrival=0.0)], thr)
    assert job.gpus == 4
    assert job.work == pytest.approx(72_000 / 10.0 / 3600)  # 2 h on 4 V100s
    assert job.speeds == pytest.approx({"v100": 1.0, "p100": 0.6, "k80": 0.2})
    assert job.model == R50
    # Alone on a Gavel cluster it holds 4 V100s from the first round: JCT = 72,000 / 10 s = 2 h.
    r = simulate_trace(gavel_trace.gavel_cluster(4, 4, 4), [job], "gavel")
    assert r.jobs[0].gpu_type == "v100" or r.jobs[0].finish == pytest.approx(2.0)
    assert r.jobs[0].finish == pytest.approx(2.0)
    assert gavel_trace.lower_bound_hours([gavel_trace.GavelJob(R50, 4, 72_000, 0.0)], thr) == [pytest.approx(2.0)]


def test_real_throughputs_per_scale_factor(shared_traces: Path) -> None:
    thr = gavel_trace.load_throughputs(shared_traces / "gavel" / "simulation_throughputs.json")
    assert thr[(R50, 4)]["v100"] == pytest.approx(9.451949566394442)
    assert thr[(R50, 1)]["v100"] == pytest.approx(4.394774823323071)
    assert sum(1 for _, s in thr if s == 1) == 26
    assert sum(1 for _, s in thr if s == 4) == 19


def test_throughputs_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"v100": {"('A', 1)": {"null": -1}}, "p100": {}, "k80": {}}))
    with pytest.raises(InputError, match=r"v100\.\('A', 1\)\.null"):
        gavel_trace.load_throughputs(bad)
    bad.write_text(json.dumps({"v100": {}}))
    with pytest.raises(InputError, match="p100: missing"):
        gavel_trace.load_throughputs(bad)


def test_gavel_trace_file(tmp_path: Path) -> None:
    lines = [
        f"{R50}\tpython3 main.py\timagenet\t--num_minibatches\t1\t72000\t4\t1\t-1.000000\t0",
        "LM (batch size 20)\tpython main.py\tlm\t--steps\t1\t5000\t1\t5\t-1.000000\t360.5",
    ]
    path = tmp_path / "w.trace"
    path.write_text("\n".join(lines) + "\n")
    jobs = gavel_trace.load_gavel_trace(path)
    assert jobs == [gavel_trace.GavelJob(R50, 4, 72000.0, 0.0, 1.0), gavel_trace.GavelJob("LM (batch size 20)", 1, 5000.0, 360.5, 5.0)]
    path.write_text(lines[1] + "\n" + lines[0] + "\n")
    with pytest.raises(InputError, match=r"line 2: arrival_time: 0\.0 is before"):
        gavel_trace.load_gavel_trace(path)
    path.write_text(lines[0].replace("\t4\t", "\tfour\t") + "\n")
    with pytest.raises(InputError, match="line 1: total_steps, scale_factor"):
        gavel_trace.load_gavel_trace(path)
    path.write_text("a\tb\n")
    with pytest.raises(InputError, match="line 1: 2 tab-separated fields"):
        gavel_trace.load_gavel_trace(path)


def test_generator_distribution() -> None:
    thr = full_table()
    jobs = gavel_trace.generate(thr, 4000, rate_per_hour=3.0, seed=7, multi_gpu=True)
    assert jobs == gavel_trace.generate(thr, 4000, rate_per_hour=3.0, seed=7, multi_gpu=True)
    assert jobs[0].arrival == 0.0
    gaps = [b.arrival - a.arrival for a, b in itertools.pairwise(jobs)]
    assert sum(gaps) / len(gaps) == pytest.approx(1200.0, rel=0.06)  # Poisson, 3 jobs/h
    multi = [j for j in jobs if j.scale_factor > 1]
    assert len(multi) / len(jobs) == pytest.approx(0.30, abs=0.03)  # Philly's mix: 10 % x2, 15 % x4, 5 % x8
    assert all(gavel_trace.is_distributed(j.job_type) for j in multi)
    assert {j.scale_factor for j in jobs} == {1, 2, 4, 8}
    # durations: 20 % from 10^3-10^4 minutes' range, 80 % from 10^1.5-10^3 minutes
    long = [j for j in jobs if j.duration is not None and j.duration >= 60 * 1000]
    assert len(long) / len(jobs) == pytest.approx(0.2, abs=0.03)
    for j in jobs:
        assert j.total_steps == pytest.approx(j.duration * thr[(j.job_type, j.scale_factor)]["v100"])
    single = gavel_trace.generate(thr, 200, rate_per_hour=3.0, seed=7)
    assert {j.scale_factor for j in single} == {1}


def test_generator_reproduces_gavels_sequence(shared_traces: Path) -> None:
    # Jobs 0-2 and 1000 as Gavel's own utils.generate_job and Poisson arrivals produce them for seed 0
    # (run with Gavel commit c4fa400 and this throughputs file), single- and multi-GPU.
    thr = gavel_trace.load_throughputs(shared_traces / "gavel" / "simulation_throughputs.json")
    single = gavel_trace.generate(thr, 1001, 3.0, seed=0)
    multi = gavel_trace.generate(thr, 1001, 3.0, seed=0, multi_gpu=True)
    expected = [("ResNet-18 (batch size 64)", 1, 1646636.2758419, 0.0),
                ("Transformer (batch size 16)", 1, 343170.46864225325, 326.114763880402),
                ("Recommendation (batch size 2048)", 1, 16034.37819420177, 1269.0331033721277)]
    for job, (model, scale, steps, arrival) in zip(single, expected, strict=False):
        assert (job.job_type, job.scale_factor) == (model, scale)
        assert job.total_steps == pytest.approx(steps, rel=1e-12) and job.arrival == pytest.approx(arrival)
    assert (single[1000].job_type, single[1000].total_steps) == ("Recommendation (batch size 1024)",
                                                                 pytest.approx(39731.07114402478))
    assert single[1000].arrival == pytest.approx(1184340.0588992157)
    assert (multi[0].scale_factor, multi[0].total_steps) == (8, pytest.approx(17484476.26110642))
    assert (multi[1000].job_type, multi[1000].scale_factor) == ("Transformer (batch size 64)", 4)


def test_maxmin_two_jobs_competing_for_the_fast_type() -> None:
    # Types A and B, one GPU each; two jobs, 3 steps/s on A and 1 on B. Equal split: (3 + 1) / 2 = 2,
    # so normalised throughput n_j = (3 a_j + b_j) / 2. Capacity gives n_1 + n_2 <= (3 + 1) / 2 = 2, so
    # the max-min is 1, reached only with a_1 + a_2 = 1, b_1 + b_2 = 1, 3 a_j + b_j = 2 and
    # a_j + b_j <= 1, whose one solution is a_j = b_j = 1/2: each job half of each GPU.
    x = maxmin_allocation([{"A": 3.0, "B": 1.0}, {"A": 3.0, "B": 1.0}], [1, 1], {"A": 1, "B": 1})
    for shares in x:
        assert shares["A"] == pytest.approx(0.5, abs=1e-5)
        assert shares["B"] == pytest.approx(0.5, abs=1e-5)
    # Agnostic: every throughput counts as 1, so each job gets a whole GPU's time (n_j = a_j + b_j = 1).
    y = maxmin_allocation([{"A": 3.0, "B": 1.0}, {"A": 1.0, "B": 1.0}], [1, 1], {"A": 1, "B": 1}, aware=False)
    for shares in y:
        assert shares["A"] + shares["B"] == pytest.approx(1.0, abs=1e-5)
    assert y[0]["A"] + y[1]["A"] <= 1 + 1e-6 and y[0]["B"] + y[1]["B"] <= 1 + 1e-6
    # A job that fits no type gets nothing and does not pin the others' minimum to 0.
    z = maxmin_allocation([{"A": 1.0}, {}], [1, 1], {"A": 1})
    assert z[1] == {} and z[0]["A"] == pytest.approx(1.0, abs=1e-5)


def test_rounds_share_one_gpu_round_robin() -> None:
    # Three 1-h jobs on one GPU, rounds of 0.1 h, all there at t = 0 (one reset, x = 1/3 each). Every
    # job starts a reset with half a round received, so priorities x / (received / total) rotate: the
    # job that ran last round drops below the other two, ties go by arrival. Job k runs rounds
    # k, k+3, k+6, ...; its tenth round ends at 0.1 (27 + k) + 0.1: JCTs 2.8, 2.9, 3.0 h.
    jobs = [TraceJob(name=f"j{k}", gpus=1, work=1.0) for k in range(3)]
    r = simulate_trace(one_node(gpus=1), jobs, "gavel", round_hours=0.1)
    assert [j.first_start for j in r.jobs] == pytest.approx([0.0, 0.1, 0.2])
    assert [j.finish for j in r.jobs] == pytest.approx([2.8, 2.9, 3.0])
    assert [j.preemptions for j in r.jobs] == [9, 9, 9]


def test_new_job_waits_for_the_next_reset_then_fills_a_free_gpu() -> None:
    # Two GPUs. Job a arrives at 0.05 h (reset, allocation); b at 0.1 h. Gavel re-solves only when
    # 1,920 s (0.533 h) have passed since the last reset, so b has no allocation until the round at
    # 0.65 h (0.6 h after 0.05) and waits, though a GPU is free; with resets allowed every round it
    # starts at the round after its arrival, 0.15 h.
    jobs = [TraceJob(name="a", gpus=1, work=5.0, release=0.05), TraceJob(name="b", gpus=1, work=1.0, release=0.1)]
    faithful = Simulator(one_node(gpus=2), jobs, Gavel(round_hours=0.1)).run()
    assert faithful.jobs[1].first_start == pytest.approx(0.65)
    eager = Simulator(one_node(gpus=2), jobs, Gavel(round_hours=0.1, reset_hours=0.0)).run()
    assert eager.jobs[1].first_start == pytest.approx(0.15)
    assert eager.jobs[1].finish == pytest.approx(1.15)


def test_agnostic_policy_by_name() -> None:
    policy = make_policy("gavel-agnostic", round_hours=0.2)
    assert isinstance(policy, Gavel) and not policy.aware and policy.name == "gavel-agnostic"
    assert make_policy("gavel").name == "gavel"


def test_validate_gavel_small_setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "gavel").mkdir()
    write_throughputs(tmp_path / "gavel" / "simulation_throughputs.json", full_table())
    code = validate.main(["gavel", "--traces", str(tmp_path), "--jobs", "80", "--window", "20:60", "--rate", "2",
                          "--cluster-spec", "8:4:4", "--multi-gpu", "--policies", "gavel,gavel-agnostic,fifo",
                          "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["setup"]["window"] == [20, 60] and out["setup"]["jobs"] == 80
    by = {r["policy"]: r for r in out["results"]}
    assert set(by) == {"gavel", "gavel-agnostic", "fifo"}
    for r in by.values():
        assert r["unfinished"] == 0 and r["rejected"] == 0  # 8-GPU jobs fit only the 8 V100s, and do
        assert r["avg_jct_h"] >= out["lower_bound_h"] - 1e-9  # nobody beats every job alone on its fastest type
        assert r["gavel_reference_h"] is None  # not Gavel's published setup


@pytest.mark.parametrize(("args", "where"), [
    (["--window", "9:3"], "--window"),
    (["--cluster-spec", "36:36"], "--cluster-spec"),
    (["--rates", "1,-2"], "--rates"),
    (["--policies", "gavel,nope"], "--policies"),
    (["--jobs", "10"], "--jobs"),
])
def test_validate_gavel_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                    where: str) -> None:
    (tmp_path / "gavel").mkdir()
    write_throughputs(tmp_path / "gavel" / "simulation_throughputs.json", full_table())
    assert validate.main(["gavel", "--traces", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {where}")


def test_maxmin_without_highspy_uses_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the `highs` extra the LP goes to scipy's HiGHS; the hand-solved case has one optimum.
    import sys

    monkeypatch.setitem(sys.modules, "highspy", None)  # import highspy -> ImportError
    x = maxmin_allocation([{"A": 3.0, "B": 1.0}, {"A": 3.0, "B": 1.0}], [1, 1], {"A": 1, "B": 1})
    assert [s["A"] for s in x] == pytest.approx([0.5, 0.5], abs=1e-6)
    assert [s["B"] for s in x] == pytest.approx([0.5, 0.5], abs=1e-6)


def test_validate_gavel_replays_a_gavel_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two jobs on one V100 + one P100 under FIFO: job 0 (ResNet-50 x1, 36,000 steps at 10 steps/s on
    # V100) takes the V100 for 1 h; job 1 arrives at 0.5 h and takes the P100 (6 steps/s): 18,000
    # steps in 3,000 s. Window 0:2: JCTs 1 h and 3,000 / 3,600 h.
    (tmp_path / "gavel").mkdir()
    write_throughputs(tmp_path / "gavel" / "simulation_throughputs.json", full_table())
    trace = tmp_path / "w.trace"
    trace.write_text(f"{R50}\tc\td\t-n\t1\t36000\t1\t1\t-1\t0\n{R50}\tc\td\t-n\t1\t18000\t1\t1\t-1\t1800\n")
    code = validate.main(["gavel", "--traces", str(tmp_path), "--gavel-trace", str(trace), "--window", "0:2",
                          "--cluster-spec", "1:1:0", "--policies", "fifo", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["avg_jct_h"] == pytest.approx((1.0 + 3000 / 3600) / 2)
    assert out["lower_bound_h"] == pytest.approx((1.0 + 1800 / 3600) / 2)
    assert validate.main(["gavel", "--traces", str(tmp_path), "--gavel-trace", str(trace), "--window", "5:9"]) == 2
    assert capsys.readouterr().err.startswith("error: --window: 5:9 selects none of the 2 jobs")
