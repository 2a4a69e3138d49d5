"""End to end on the CPU: the real entry point, gloo, torch's launcher, real signals and files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gpusched.workload_contract import EXIT_FAILED, EXIT_FINISHED, EXIT_PREEMPTED, WorkloadStatus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _same_trajectory(got: dict[int, float], want: dict[int, float]) -> None:
    assert sorted(got) == sorted(want), f"steps differ: {sorted(set(got) ^ set(want))}"
    for step in sorted(want):
        assert got[step] == pytest.approx(want[step], abs=1e-6, rel=0), f"loss differs at step {step}"


def test_two_ranks_sigterm_checkpoint_resume_same_losses(workload: Any) -> None:
    """SIGTERM mid-run -> checkpoint -> 75 -> restart continues at the same step on the same curve."""
    ckpt = workload.tmp / "ckpt"
    status = workload.tmp / "status.json"
    common = [
        *workload.tiny,
        "--checkpoint-dir",
        str(ckpt),
        "--checkpoint-every",
        "7",
        "--status-file",
        str(status),
        "--seed",
        "11",
    ]

    first = workload.run([*common, "--steps", "100000"], nproc=2, sigterm_after_step=9)
    assert first.signalled_at_step is not None, first.stderr[-3000:]
    start = first.first("start")
    assert (start["world_size"], start["backend"], start["resumed_from_step"]) == (2, "gloo", None)
    stopped = first.first("preempted")["step"]
    assert stopped >= first.signalled_at_step
    assert max(first.losses) == stopped, "a step ran after the agreed stop"
    assert first.first("exit")["exit_code"] == EXIT_PREEMPTED
    # What the operator reads: the termination message and the status file agree on the stop.
    final = WorkloadStatus.model_validate(workload.termination_message())
    assert (final.state, final.exit_code, final.step, final.last_checkpoint_step) == (
        "preempted",
        EXIT_PREEMPTED,
        stopped,
        stopped,
    )
    assert WorkloadStatus.model_validate_json(status.read_text()).last_checkpoint_step == stopped
    assert (ckpt / f"ckpt-{stopped:09d}.json").exists()

    total = stopped + 6
    second = workload.run([*common, "--steps", str(total)], nproc=2)
    assert second.returncode == EXIT_FINISHED, second.stderr[-3000:]
    assert second.first("start")["resumed_from_step"] == stopped
    assert second.first("start")["data_position"] == stopped * 2 * 4
    assert min(second.losses) == stopped + 1
    assert WorkloadStatus.model_validate(workload.termination_message()).state == "finished"

    reference = workload.run(
        [
            *workload.tiny,
            "--checkpoint-dir",
            str(workload.tmp / "ref"),
            "--seed",
            "11",
            "--checkpoint-every",
            "0",
            "--steps",
            str(total),
        ],
        nproc=2,
    )
    assert reference.returncode == EXIT_FINISHED, reference.stderr[-3000:]
    _same_trajectory({**first.losses, **second.losses}, reference.losses)
    # The curve is real training, not a constant: the synthetic stream is learnable.
    assert reference.losses[total] < reference.losses[1] - 0.05


def test_sigterm_seen_by_one_rank_stops_all_at_the_same_step(workload: Any) -> None:
    """Only rank 1 gets the signal; the all-reduced flag makes rank 0 stop and checkpoint with it."""
    ckpt = workload.tmp / "ckpt"
    args = [*workload.tiny, "--checkpoint-dir", str(ckpt), "--checkpoint-every", "0", "--steps", "100000"]
    run = workload.run(args, nproc=2, sigterm_after_step=3, sigterm_rank=1)
    assert run.signalled_at_step is not None, run.stderr[-3000:]
    assert [r["pid"] for r in run.first("start")["ranks"]].count(None) == 0
    stopped = run.first("preempted")["step"]
    assert max(run.losses) == stopped
    # Rank 0 never got a signal, yet it wrote the checkpoint at the agreed step and reported 75.
    assert run.first("exit")["exit_code"] == EXIT_PREEMPTED
    assert sorted(p.name for p in ckpt.glob("*.json")) == [f"ckpt-{stopped:09d}.json"]
    final = WorkloadStatus.model_validate(workload.termination_message())
    assert (final.state, final.last_checkpoint_step) == ("preempted", stopped)


def test_lone_process_preempt_exit_75_and_truncated_checkpoint_skipped(workload: Any) -> None:
    """Without torchrun: exit 75 directly; then the newest checkpoint is cut short and must be skipped."""
    ckpt = workload.tmp / "ckpt"
    common = [*workload.tiny, "--checkpoint-dir", str(ckpt), "--checkpoint-every", "4", "--seed", "3"]

    first = workload.run([*common, "--steps", "100000"], sigterm_after_step=9)
    assert first.returncode == EXIT_PREEMPTED, first.stderr[-3000:]
    stopped = first.first("preempted")["step"]
    steps = sorted(int(p.stem.split("-")[1]) for p in ckpt.glob("ckpt-*.json"))
    assert steps[-1] == stopped and len(steps) == 3, steps  # --keep 3 (the default) pruned the rest
    previous = steps[-2]

    newest = ckpt / f"ckpt-{stopped:09d}.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    total = stopped + 3
    second = workload.run([*common, "--steps", str(total)])
    assert second.returncode == EXIT_FINISHED, second.stderr[-3000:]
    warnings = [line for line in second.stderr.splitlines() if line.startswith("warning:")]
    assert any(f"step {stopped}" in w and "truncated" in w for w in warnings), second.stderr
    assert second.first("start")["resumed_from_step"] == previous
    # It redoes the lost steps and lands on exactly the losses the first run had for them.
    redone = {s: v for s, v in second.losses.items() if s <= stopped}
    assert sorted(redone) == list(range(previous + 1, stopped + 1))
    _same_trajectory(redone, {s: first.losses[s] for s in redone})
    assert (ckpt / f"ckpt-{stopped:09d}.pt.corrupt").exists()
    manifest = json.loads((ckpt / f"ckpt-{total:09d}.json").read_text())
    assert manifest["step"] == total and manifest["data_position"] == total * 4

    # A finished job restarted (the pod recreated) does no more steps and still exits 0.
    again = workload.run([*common, "--steps", str(total)])
    assert again.returncode == EXIT_FINISHED and not again.losses
    assert again.first("already_finished")["step"] == total


def test_env_defaults_status_file_and_throughput_fields(workload: Any) -> None:
    """GPUSCHED_CHECKPOINT_DIR / _STATUS_FILE / _JOB_NAME are the defaults the operator's pods rely on."""
    env = {
        "GPUSCHED_CHECKPOINT_DIR": str(workload.tmp / "envckpt"),
        "GPUSCHED_STATUS_FILE": str(workload.tmp / "sub" / "status.json"),
        "GPUSCHED_JOB_NAME": "team-a-gpt",
    }
    args = [*workload.tiny, "--log-every", "3", "--steps", "6"]  # the later --log-every wins
    result = workload.run(args, env=env)
    assert result.returncode == EXIT_FINISHED, result.stderr[-3000:]
    lines = [e for e in result.events if e["event"] == "step"]
    assert [e["step"] for e in lines] == [3, 6]
    for e in lines:
        assert e["window_steps"] == 3
        assert e["tokens_per_s"] == pytest.approx(e["samples_per_s"] * 32, rel=1e-3)
        assert e["tokens_per_s"] > 0 and e["step_time_s"] > 0
        assert e["gpu_memory_mib"] is None  # no GPU: reported as unknown, never as 0
    status = WorkloadStatus.model_validate_json((workload.tmp / "sub" / "status.json").read_text())
    assert (status.state, status.step, status.job_name, status.tokens_per_step) == (
        "finished",
        6,
        "team-a-gpt",
        128,
    )
    assert status.tokens_per_s is not None and status.tokens_per_s > 0
    assert (workload.tmp / "envckpt" / "ckpt-000000006.json").exists()


def test_gpusched_launcher_keeps_exit_75_where_torchrun_loses_it(workload: Any) -> None:
    """The operator-facing launcher: SIGTERM to it (PID 1 in a pod) -> workers checkpoint -> pod exits 75."""
    ckpt = workload.tmp / "ckpt"
    env = {
        "NPROC_PER_NODE": "2",
        "NNODES": "1",
        "NODE_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(workload.free_port()),
    }
    common = [*workload.tiny, "--checkpoint-dir", str(ckpt), "--checkpoint-every", "0"]
    first = workload.run([*common, "--steps", "100000"], launcher="gpusched", env=env, sigterm_after_step=4)
    assert first.returncode == EXIT_PREEMPTED, first.stderr[-3000:]
    stopped = first.first("preempted")["step"]
    assert first.first("start")["world_size"] == 2
    assert WorkloadStatus.model_validate(workload.termination_message()).exit_code == EXIT_PREEMPTED

    env["MASTER_PORT"] = str(workload.free_port())
    second = workload.run([*common, "--steps", str(stopped + 2)], launcher="gpusched", env=env)
    assert second.returncode == EXIT_FINISHED, second.stderr[-3000:]
    assert second.first("start")["resumed_from_step"] == stopped
    assert sorted(second.losses) == [stopped + 1, stopped + 2]


@pytest.mark.parametrize(
    ("codes", "pod"),
    [([0, 0], 0), ([75, 75], 75), ([75, 0], 75), ([75, 1], 1), ([0, -9], 1), ([2, 2], 2), ([75, 2], 2)],
)
def test_launcher_combines_worker_exit_codes(codes: list[int], pod: int) -> None:
    from gpusched.workload.launch import combine

    assert combine(codes) == pod


def test_checkpoint_write_failure_fails_every_rank_without_hanging(workload: Any) -> None:
    """Rank 0's checkpoint write fails mid-run (a file-size limit far below the ~380 KB payload, as a
    full volume would): all ranks learn it and exit 1. (A checkpoint directory that is a file is
    refused before training starts: tests/workload/test_cli.py.)"""
    ckpt = workload.tmp / "ckpt"
    args = [*workload.tiny, "--checkpoint-dir", str(ckpt), "--checkpoint-every", "2", "--steps", "10"]
    result = workload.run(args, nproc=2, timeout=120, file_size_limit=64 * 1024)
    assert result.returncode == EXIT_FAILED, result.stderr[-3000:]
    assert max(result.losses) == 2  # stopped at the first checkpoint, not later
    final = WorkloadStatus.model_validate(workload.termination_message())
    assert (final.state, final.exit_code) == ("failed", EXIT_FAILED)
    assert final.message and "checkpoint at step 2 failed" in final.message
