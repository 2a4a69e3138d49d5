"""`gpusched train` and `python -m gpusched.workload`: the entry point the operator's pods run.

Only typer and the standard library are imported here at module level (plus the pydantic config,
which is light); torch is imported once the flags have been checked, so `gpusched --help` stays fast
and a bad flag fails in well under a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from gpusched.workload_contract import EXIT_USAGE


def train(
    steps: Annotated[
        int, typer.Option(help="Optimizer steps the whole job runs (a resumed job counts on).")
    ] = 1000,
    model: Annotated[
        str, typer.Option(help="Size preset: tiny (CPU tests), small (~20M) or 125m (GPT-2 small).")
    ] = ("tiny"),
    layers: Annotated[int | None, typer.Option(help="Transformer blocks (overrides the preset).")] = None,
    heads: Annotated[int | None, typer.Option(help="Attention heads (overrides the preset).")] = None,
    d_model: Annotated[int | None, typer.Option("--d-model", help="Width (overrides the preset).")] = None,
    vocab_size: Annotated[
        int | None, typer.Option("--vocab-size", help="Vocabulary (overrides the preset).")
    ] = None,
    seq_len: Annotated[
        int | None, typer.Option("--seq-len", help="Tokens per sequence (overrides the preset).")
    ] = (None),
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per rank per step.")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW peak learning rate.")] = 1e-3,
    warmup_steps: Annotated[int, typer.Option("--warmup-steps", help="Linear warm-up, then constant.")] = 10,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW decay of the matrices.")] = 0.1,
    grad_clip: Annotated[
        float, typer.Option("--grad-clip", help="Global gradient norm clip; 0 disables.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seeds the weights and the synthetic token stream.")] = 0,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option("--checkpoint-dir", help="Where checkpoints live [default: $GPUSCHED_CHECKPOINT_DIR]."),
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option("--checkpoint-every", help="Steps between checkpoints; 0: only on stop and at the end."),
    ] = 100,
    keep: Annotated[int, typer.Option(help="Checkpoints kept (newest first).")] = 3,
    log_every: Annotated[
        int, typer.Option("--log-every", help="Steps per JSON progress line and throughput window.")
    ] = 10,
    status_file: Annotated[
        Path | None,
        typer.Option("--status-file", help="Status JSON for the operator [default: $GPUSCHED_STATUS_FILE]."),
    ] = None,
    termination_message_path: Annotated[
        Path | None,
        typer.Option(
            "--termination-message-path",
            help="Final status for Kubernetes [default: $GPUSCHED_TERMINATION_MESSAGE_PATH, else "
            "/dev/termination-log].",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cuda or cpu.")] = "auto",
    threads: Annotated[
        int, typer.Option(help="torch CPU threads per process (1 keeps CPU runs reproducible).")
    ] = 1,
    deterministic: Annotated[
        bool, typer.Option(help="torch.use_deterministic_algorithms (warn-only where none exists).")
    ] = True,
    job_name: Annotated[
        str | None, typer.Option("--job-name", help="Recorded in the status [default: $GPUSCHED_JOB_NAME].")
    ] = None,
) -> None:
    """Train a GPT-style language model with DDP; checkpoint on SIGTERM; report speed for the planner.

    Runs alone (one process) or under torchrun (env:// rendezvous). Exit codes: 0 finished,
    75 stopped by SIGTERM after a checkpoint, 1 failed, 2 bad arguments.
    """
    from gpusched.workload.config import UsageError, build_config
    from gpusched.workload.dist import StopFlag, placement_from_env

    try:
        cfg = build_config(
            model=model,
            layers=layers,
            heads=heads,
            d_model=d_model,
            vocab_size=vocab_size,
            seq_len=seq_len,
            checkpoint_dir=checkpoint_dir,
            status_file=status_file,
            termination_message_path=termination_message_path,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            warmup_steps=warmup_steps,
            weight_decay=weight_decay,
            grad_clip=grad_clip,
            seed=seed,
            checkpoint_every=checkpoint_every,
            keep=keep,
            log_every=log_every,
            device=device,
            threads=threads,
            deterministic=deterministic,
            job_name=job_name,
        )
        placement = placement_from_env()
    except UsageError as exc:
        _usage_exit(str(exc), termination_message_path)
    stop = StopFlag()
    stop.install()  # before torch's slow import: a SIGTERM during start-up is still honoured
    from gpusched.workload.trainer import run

    raise typer.Exit(run(cfg, stop, placement))


def _usage_exit(message: str, termination_message_path: Path | None) -> NoReturn:
    """One line on stderr, the reason in the termination message too (the pod shows it), exit 2."""
    import os

    from gpusched.workload.config import ENV_TERMINATION_MESSAGE_PATH
    from gpusched.workload.report import write_termination_message
    from gpusched.workload_contract import TERMINATION_MESSAGE_PATH, WorkloadStatus

    sys.stderr.write(f"error: {message}\n")
    path = termination_message_path or Path(
        os.environ.get(ENV_TERMINATION_MESSAGE_PATH) or TERMINATION_MESSAGE_PATH
    )
    write_termination_message(path, WorkloadStatus(state="failed", exit_code=EXIT_USAGE, message=message))
    raise typer.Exit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    """`python -m gpusched.workload`: the train command, with the parser's usage errors made one line."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    command = typer.main.get_command(app)
    given = sys.argv[1:] if argv is None else argv
    try:
        result = command.main(
            args=given,
            prog_name="python -m gpusched.workload",
            standalone_mode=False,
        )
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return 1
    except Exception as exc:
        # typer vendors its own click; its UsageError is recognised by shape, not by a private import.
        if getattr(exc, "exit_code", None) == EXIT_USAGE and hasattr(exc, "format_message"):
            from gpusched.cli_util import usage_error_line

            sys.stderr.write(f"error: {usage_error_line(exc, given)}\n")
            return EXIT_USAGE
        raise
    return int(result) if isinstance(result, int) else 0
