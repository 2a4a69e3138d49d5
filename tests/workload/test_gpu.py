"""On a real NVIDIA GPU: NCCL, bf16 autocast, memory reporting, and preemption. Skipped without one."""

from __future__ import annotations

from typing import Any

import pytest

from gpusched.workload_contract import EXIT_FINISHED, WorkloadStatus

torch = pytest.importorskip("torch", reason="the training workload needs torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA GPU visible to torch: NCCL path not tested"
    ),
]


def test_nccl_bf16_run_reports_gpu_speed_and_memory_and_resumes(workload: Any) -> None:
    nproc = min(2, torch.cuda.device_count())
    ckpt = workload.tmp / "ckpt"
    common = ["--model", "small", "--batch-size", "8", "--log-every", "5", "--checkpoint-dir", str(ckpt),
              "--checkpoint-every", "0"]  # fmt: skip
    first = workload.run([*common, "--steps", "100000"], nproc=nproc, sigterm_after_step=20, timeout=400)
    start = first.first("start")
    assert (start["backend"], start["world_size"]) == ("nccl", nproc)
    stopped = first.first("preempted")["step"]
    lines = [e for e in first.events if e["event"] == "step"]
    assert all(e["gpu_memory_mib"] and e["gpu_memory_mib"] > 0 for e in lines)
    assert all(e["tokens_per_s"] and e["tokens_per_s"] > 0 for e in lines)
    status = WorkloadStatus.model_validate(workload.termination_message())
    assert status.state == "preempted" and status.gpu_name and status.peak_gpu_memory_mib

    second = workload.run([*common, "--steps", str(stopped + 10)], nproc=nproc, timeout=400)
    assert second.returncode == EXIT_FINISHED, second.stderr[-3000:]
    assert second.first("start")["resumed_from_step"] == stopped
    assert min(second.losses) > stopped
    assert all(loss == loss and loss < 20 for loss in second.losses.values())  # finite, sane
