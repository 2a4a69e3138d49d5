"""The training loop: DDP steps, agreed stopping, checkpoints, resume, progress.

Every rank runs the same sequence of collectives in the same order, whatever happens: the stop flag
is all-reduced after every step, so a SIGTERM seen by any one rank stops all of them after the same
step, and they all take part in the checkpoint before any of them exits.
"""

from __future__ import annotations

import math
import os
import random
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from gpusched.workload import checkpoint as ckpt
from gpusched.workload.config import TrainConfig, UsageError
from gpusched.workload.data import ShardedStream
from gpusched.workload.dist import Placement, StopFlag, placement_from_env
from gpusched.workload.model import GPT, decay_groups, parameter_count
from gpusched.workload.report import Throughput, emit, warn, write_status, write_termination_message
from gpusched.workload_contract import (
    EXIT_FAILED,
    EXIT_FINISHED,
    EXIT_PREEMPTED,
    EXIT_USAGE,
    WorkloadStatus,
)

BETAS = (0.9, 0.95)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to --lr, then constant.

    Deliberately independent of --steps: a job may be resumed with a larger --steps (extended) and
    must still follow the same trajectory up to where it was.
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr


@dataclass
class _State:
    step: int = 0
    position: int = 0
    last_checkpoint: int | None = None
    status: WorkloadStatus = field(default_factory=WorkloadStatus)


def run(cfg: TrainConfig, stop: StopFlag, placement: Placement | None = None) -> int:
    """Train until --steps (exit 0), a stop signal (checkpoint, exit 75) or an error (exit 1 or 2).

    `stop` is installed by the caller before it imports this module (and torch), so that a SIGTERM
    during the slow start-up is honoured too.
    """
    state = _State()
    state.status = WorkloadStatus(state="running", total_steps=cfg.steps, job_name=cfg.job_name)
    code = EXIT_FAILED
    try:
        placement = placement or placement_from_env()
        code = _train(cfg, placement, stop, state)
    except UsageError as exc:
        code = EXIT_USAGE
        state.status = state.status.model_copy(update={"message": str(exc)})
        sys.stderr.write(f"error: {exc}\n")
    except Exception as exc:
        code = EXIT_FAILED
        traceback.print_exc()
        state.status = state.status.model_copy(update={"message": f"{type(exc).__name__}: {exc}"})
    final_state = {EXIT_FINISHED: "finished", EXIT_PREEMPTED: "preempted"}.get(code, "failed")
    state.status = state.status.model_copy(update={"state": final_state, "exit_code": code})
    # On success or preemption every rank's status is the same, so one writer per node suffices;
    # on failure the failing rank may be the only one that knows why, so every rank writes.
    writer = placement is None or placement.local_rank == 0 or code not in (EXIT_FINISHED, EXIT_PREEMPTED)
    if writer:
        if cfg.status_file is not None:
            try:
                write_status(cfg.status_file, state.status)
            except OSError as exc:
                warn(f"cannot write status file {cfg.status_file}: {exc}")
        write_termination_message(cfg.termination_message_path, state.status)
    if placement is None or placement.rank == 0:
        emit(
            "exit",
            state=final_state,
            exit_code=code,
            step=state.step,
            last_checkpoint_step=state.last_checkpoint,
            message=state.status.message,
        )
    return code


def _train(cfg: TrainConfig, placement: Placement, stop: StopFlag, state: _State) -> int:
    if cfg.deterministic:
        # cuBLAS reads this when its first handle is created (lazily, after torch's import).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise UsageError("--device: cuda requested but torch sees no CUDA device")
    use_cuda = cuda and cfg.device != "cpu"
    torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if use_cuda:
        device = torch.device("cuda", placement.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"

    if placement.launched:
        kwargs: dict[str, Any] = {"device_id": device} if use_cuda else {}
        dist.init_process_group(backend, init_method="env://", **kwargs)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    code = _loop(cfg, placement, stop, state, device, backend)
    # Only on a clean return: after an error a peer may be stuck in a collective, and tearing the
    # group down could then block this process instead of letting it exit and report.
    dist.destroy_process_group()
    return code


def _rng_state(cuda: bool) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if cuda else None,
    }


def _set_rng_state(rng: dict[str, Any], cuda: bool) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(rng["torch"])
    if cuda and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"])


def _loop(
    cfg: TrainConfig,
    placement: Placement,
    stop: StopFlag,
    state: _State,
    device: torch.device,
    backend: str,
) -> int:
    rank, world = dist.get_rank(), dist.get_world_size()
    use_cuda = device.type == "cuda"
    lead = rank == 0
    node_lead = placement.local_rank == 0

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = GPT(cfg.shape).to(device)
    optimizer = torch.optim.AdamW(
        decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=BETAS, **({"fused": True} if use_cuda else {})
    )
    shape = cfg.shape.model_dump()
    stream = ShardedStream(cfg.seed, cfg.shape.seq_len, cfg.shape.vocab_size, cfg.batch_size, rank, world)
    tokens_per_step = stream.global_batch * cfg.shape.seq_len
    gpu_name = torch.cuda.get_device_name(device) if use_cuda else None
    state.status = state.status.model_copy(
        update={
            "world_size": world,
            "device": str(device) if not use_cuda else f"cuda ({gpu_name})",
            "gpu_name": gpu_name,
            "model_params": parameter_count(model),
            "tokens_per_step": tokens_per_step,
        }
    )

    # Resume: rank 0 picks the newest valid checkpoint, the others load the same file.
    chosen: list[Any] = [None]
    payload: dict[str, Any] | None = None
    if lead:
        ckpt.remove_stale_temporaries(cfg.checkpoint_dir)
        found = ckpt.load_latest(cfg.checkpoint_dir, warn)
        if found is not None:
            manifest, payload = found
            chosen = [manifest.file]
    dist.broadcast_object_list(chosen, src=0)
    if chosen[0] is not None and payload is None:
        payload = torch.load(cfg.checkpoint_dir / chosen[0], map_location="cpu", weights_only=True)
    if payload is not None:
        if payload["shape"] != shape:
            raise UsageError(
                f"--checkpoint-dir {cfg.checkpoint_dir} holds a model of shape {payload['shape']}, "
                f"the flags ask for {shape}"
            )
        if payload["seed"] != cfg.seed:
            raise UsageError(
                f"--seed: {cfg.seed} differs from the seed {payload['seed']} of the checkpoint in "
                f"{cfg.checkpoint_dir} (the data stream would change)"
            )
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        rngs = payload["rng"]
        if len(rngs) == world:
            _set_rng_state(rngs[rank], use_cuda)
        elif lead:
            warn(
                f"checkpoint was written by {len(rngs)} ranks, this job has {world}: RNG states not restored"
            )
        state.step = int(payload["step"])
        state.position = int(payload["data_position"])
        state.last_checkpoint = state.step
        del payload

    ddp = DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda else torch.autocast("cpu", enabled=False)
    )

    # Every rank's host and pid in the start line: who to look at (or signal) when one misbehaves.
    where: list[Any] = [None] * world
    dist.all_gather_object(where, {"host": socket.gethostname(), "pid": os.getpid()})
    if lead:
        emit(
            "start",
            ranks=where,
            world_size=world,
            backend=backend,
            device=state.status.device,
            model=cfg.preset or "custom",
            shape=shape,
            params=state.status.model_params,
            batch_size=cfg.batch_size,
            tokens_per_step=tokens_per_step,
            total_steps=cfg.steps,
            resumed_from_step=state.last_checkpoint,
            data_position=state.position,
        )

    def publish(**update: Any) -> None:
        state.status = state.status.model_copy(
            update={"step": state.step, "last_checkpoint_step": state.last_checkpoint, **update}
        )
        if node_lead and cfg.status_file is not None:
            write_status(cfg.status_file, state.status)

    def save() -> None:
        started = time.perf_counter()
        rngs: list[Any] = [None] * world
        dist.all_gather_object(rngs, _rng_state(use_cuda))
        outcome: list[Any] = [None]
        if lead:
            try:
                manifest = ckpt.save(
                    cfg.checkpoint_dir,
                    {
                        "format": ckpt.FORMAT_VERSION,
                        "step": state.step,
                        "data_position": state.position,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "rng": rngs,
                        "shape": shape,
                        "seed": cfg.seed,
                        "world_size": world,
                        "batch_size": cfg.batch_size,
                    },
                    step=state.step,
                    data_position=state.position,
                    world_size=world,
                    shape=shape,
                )
                ckpt.prune(cfg.checkpoint_dir, cfg.keep)
                outcome = [{"bytes": manifest.bytes, "file": manifest.file}]
            except Exception as exc:
                outcome = [f"checkpoint at step {state.step} failed: {type(exc).__name__}: {exc}"]
        # Doubles as the barrier: nobody exits (and lets torchrun tear rank 0 down) before the write.
        dist.broadcast_object_list(outcome, src=0)
        if isinstance(outcome[0], str):
            raise RuntimeError(outcome[0])
        state.last_checkpoint = state.step
        seconds = time.perf_counter() - started
        meter.exclude(seconds)
        if lead:
            emit("checkpoint", step=state.step, seconds=round(seconds, 3), **outcome[0])
        publish()

    meter = Throughput(stream.global_batch, tokens_per_step)
    if use_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    publish()
    if state.step >= cfg.steps:
        if lead:
            emit("already_finished", step=state.step, total_steps=cfg.steps)
        return EXIT_FINISHED

    stopping = False
    while state.step < cfg.steps:
        lr = lr_at(cfg, state.step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = stream.batch(state.position)
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with autocast:
            loss = ddp(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        state.step += 1
        state.position += stream.global_batch
        meter.step()

        agreed = torch.stack([loss.detach().float(), torch.tensor(float(bool(stop)), device=device)])
        dist.all_reduce(agreed)
        loss_sum, stops = (float(v) for v in agreed.tolist())
        mean_loss = loss_sum / world
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"loss is {mean_loss} at step {state.step}")
        stopping = stops > 0
        finished = state.step >= cfg.steps

        if state.step % cfg.log_every == 0 or stopping or finished:
            window = meter.window()
            memory: dict[str, float | None] = {"gpu_memory_mib": None, "peak_gpu_memory_mib": None}
            if use_cuda:
                # Peak allocated in this window, and the peak since start: what the planner sizes by.
                window_peak = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
                torch.cuda.reset_peak_memory_stats(device)
                memory = {
                    "gpu_memory_mib": window_peak,
                    "peak_gpu_memory_mib": max(window_peak, state.status.peak_gpu_memory_mib or 0.0),
                }
            if lead:
                emit(
                    "step",
                    step=state.step,
                    loss=mean_loss,
                    lr=lr,
                    **window,
                    **memory,
                    last_checkpoint_step=state.last_checkpoint,
                )
            publish(loss=mean_loss, **window, **memory)

        if finished or stopping or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0):
            save()
        if stopping and not finished:
            if lead:
                emit(
                    "preempted",
                    step=state.step,
                    signal=stop.signal,
                    last_checkpoint_step=state.last_checkpoint,
                )
            return EXIT_PREEMPTED
    return EXIT_FINISHED
