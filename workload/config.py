"""The training run's settings, validated before torch is imported.

Validation lives here (pydantic only) so that a bad flag costs the user a one-line error in well
under a second, rather than after a multi-second torch import and a process-group rendezvous.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpusched.safeio import shown
from gpusched.workload_contract import (
    ENV_CHECKPOINT_DIR,
    ENV_JOB_NAME,
    ENV_STATUS_FILE,
    TERMINATION_MESSAGE_PATH,
)

ENV_TERMINATION_MESSAGE_PATH = "GPUSCHED_TERMINATION_MESSAGE_PATH"
"""Overrides TERMINATION_MESSAGE_PATH (tests, or a pod whose terminationMessagePath differs)."""


class ModelShape(BaseModel):
    """The transformer's size. Part of every checkpoint: a resume with another shape is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: int = Field(ge=1, le=256)
    heads: int = Field(ge=1, le=256)
    d_model: int = Field(ge=8, le=16384)
    vocab_size: int = Field(ge=8, le=1_000_000)
    seq_len: int = Field(ge=2, le=65536)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelShape:
        if self.d_model % self.heads:
            raise ValueError(f"--d-model {self.d_model} is not a multiple of --heads {self.heads}")
        return self


PRESETS: dict[str, ModelShape] = {
    # CPU tests: a few thousand parameters, a step takes milliseconds on one thread.
    "tiny": ModelShape(layers=2, heads=2, d_model=32, vocab_size=64, seq_len=32),
    # A laptop or a small GPU: about 20M parameters.
    "small": ModelShape(layers=6, heads=8, d_model=512, vocab_size=8192, seq_len=256),
    # GPT-2 small's shape (vocabulary padded to a multiple of 64): about 124M parameters.
    "125m": ModelShape(layers=12, heads=12, d_model=768, vocab_size=50304, seq_len=1024),
}

Device = Literal["auto", "cpu", "cuda"]


class TrainConfig(BaseModel):
    """Everything a run needs; the CLI builds it, the trainer only reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    shape: ModelShape
    preset: str | None = None
    steps: int = Field(ge=1, le=10**12)
    batch_size: int = Field(ge=1, le=1_000_000, description="sequences per rank per step")
    lr: float = Field(gt=0, le=10)
    warmup_steps: int = Field(ge=0, le=10**12)
    weight_decay: float = Field(ge=0, le=1)
    grad_clip: float = Field(ge=0, le=1e6)
    seed: int = Field(ge=0, lt=2**63)
    checkpoint_dir: Path
    checkpoint_every: int = Field(ge=0, le=10**12)
    keep: int = Field(ge=1, le=1_000_000)
    log_every: int = Field(ge=1, le=10**12)
    status_file: Path | None = None
    termination_message_path: Path
    device: Device = "auto"
    threads: int = Field(ge=1, le=1024)
    deterministic: bool = True
    job_name: str | None = None


class UsageError(ValueError):
    """A bad flag or environment value; str() is the one line printed before exit 2."""


def build_config(
    *,
    model: str,
    layers: int | None,
    heads: int | None,
    d_model: int | None,
    vocab_size: int | None,
    seq_len: int | None,
    checkpoint_dir: Path | None,
    status_file: Path | None,
    termination_message_path: Path | None,
    **rest: object,
) -> TrainConfig:
    """Resolve the preset, explicit overrides and environment defaults into one validated config."""
    if model not in PRESETS:
        raise UsageError(f"--model: expected one of {', '.join(PRESETS)} (got {shown(model)})")
    base = PRESETS[model].model_dump()
    overrides = {
        "layers": layers,
        "heads": heads,
        "d_model": d_model,
        "vocab_size": vocab_size,
        "seq_len": seq_len,
    }
    custom = {k: v for k, v in overrides.items() if v is not None}
    try:
        shape = ModelShape.model_validate({**base, **custom})
    except ValidationError as exc:
        raise UsageError(_one_line(exc, flag_prefix=True)) from None

    if checkpoint_dir is None:
        env_dir = os.environ.get(ENV_CHECKPOINT_DIR)
        if not env_dir:
            raise UsageError(f"--checkpoint-dir: not given and ${ENV_CHECKPOINT_DIR} is not set")
        checkpoint_dir = Path(env_dir)
    if status_file is None and os.environ.get(ENV_STATUS_FILE):
        status_file = Path(os.environ[ENV_STATUS_FILE])
    _check_paths(checkpoint_dir, status_file)
    if termination_message_path is None:
        termination_message_path = Path(
            os.environ.get(ENV_TERMINATION_MESSAGE_PATH) or TERMINATION_MESSAGE_PATH
        )
    job_name = rest.pop("job_name", None) or os.environ.get(ENV_JOB_NAME) or None
    try:
        return TrainConfig.model_validate(
            {
                "shape": shape,
                "preset": None if custom else model,
                "checkpoint_dir": checkpoint_dir,
                "status_file": status_file,
                "termination_message_path": termination_message_path,
                "job_name": job_name,
                **rest,
            }
        )
    except ValidationError as exc:
        raise UsageError(_one_line(exc, flag_prefix=True)) from None


def _check_paths(checkpoint_dir: Path, status_file: Path | None) -> None:
    """Refuse, before torch loads and ranks meet, paths the run could never write.

    A checkpoint directory that is a file (or under one), or a status file that is a directory,
    would otherwise fail at the first checkpoint, after the work it was meant to save.
    """
    from gpusched.safeio import InputError, check_output_dir

    try:
        check_output_dir(checkpoint_dir, "--checkpoint-dir")
        if status_file is not None:
            if status_file.is_dir():
                raise InputError(
                    f"--status-file: {shown(str(status_file))} is a directory (expected a file path)"
                )
            check_output_dir(status_file.parent, "--status-file")
    except InputError as exc:
        raise UsageError(str(exc)) from None


def _one_line(exc: ValidationError, *, flag_prefix: bool) -> str:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ()) if p != "shape"]
    name = loc[-1] if loc else ""
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    flag = "--" + name.replace("_", "-") if flag_prefix and name else name
    value = err.get("input")
    return f"{flag}: {msg.lower()} (got {shown(value)})"
