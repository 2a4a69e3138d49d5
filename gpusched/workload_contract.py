"""What the operator and the training workload agree on, without either importing the other.

The workload (gpusched.workload, needs torch) writes WorkloadStatus as JSON to its status file and,
when it exits, to the container's termination-message file, where the operator reads it from the
pod's container status. Exit codes tell the operator what happened.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREEMPTED = 75
"""Stopped by SIGTERM after writing a checkpoint: re-queue, nothing lost beyond it (EX_TEMPFAIL)."""

ENV_STATUS_FILE = "GPUSCHED_STATUS_FILE"
ENV_CHECKPOINT_DIR = "GPUSCHED_CHECKPOINT_DIR"
ENV_JOB_NAME = "GPUSCHED_JOB_NAME"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


class WorkloadStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state: str = "running"
    """running | finished | preempted | failed"""
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    gpu_memory_mib: float | None = None
    last_checkpoint_step: int | None = None
    world_size: int | None = None
    device: str | None = None
    message: str | None = None
    # Added with the training workload (issue 4); consumers ignore fields they do not know.
    job_name: str | None = None
    exit_code: int | None = None
    """The process's exit code once it has exited (EXIT_*), None while running."""
    gpu_name: str | None = None
    """torch.cuda.get_device_name() of this rank's GPU, e.g. "NVIDIA H100 80GB HBM3"; None on CPU."""
    model_params: int | None = None
    tokens_per_step: int | None = None
    """Tokens the whole job consumes per optimizer step (global batch x sequence length)."""
    step_time_s: float | None = None
    """Mean seconds per step over the last throughput window (checkpoint writes excluded)."""
    window_steps: int | None = None
    """How many steps samples_per_s / tokens_per_s / step_time_s were measured over."""
    peak_gpu_memory_mib: float | None = None
    updated_at: str | None = None
    """ISO 8601 UTC time this status was written."""
