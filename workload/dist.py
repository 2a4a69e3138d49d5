"""Where this process sits in the job (torchrun's env:// variables) and the stop flag.

A run with no WORLD_SIZE in the environment is a job of one: it gets a process group backed by an
in-memory store, so the training loop has a single code path (DDP, collectives) at every size.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from types import FrameType

from gpusched.safeio import shown
from gpusched.workload.config import UsageError

_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Placement:
    rank: int
    world_size: int
    local_rank: int
    launched: bool
    """True under torchrun (or an operator that sets its variables), False for a lone process."""


def env_int(name: str, default: int | None = None, minimum: int = 0, maximum: int = 1 << 31) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        if default is None:
            raise UsageError(f"${name}: not set, but WORLD_SIZE is (torchrun sets both)")
        return default
    try:
        value = int(raw) if len(raw) <= 20 else int("x")
    except ValueError:
        raise UsageError(f"${name}: expected an integer (got {shown(raw)})") from None
    if not minimum <= value <= maximum:
        raise UsageError(f"${name}: {value} is out of range (expected {minimum} to {maximum})")
    return value


def placement_from_env() -> Placement:
    """Read RANK, WORLD_SIZE, LOCAL_RANK (and check MASTER_ADDR/PORT are there) from the environment."""
    if not os.environ.get("WORLD_SIZE"):
        return Placement(rank=0, world_size=1, local_rank=0, launched=False)
    world = env_int("WORLD_SIZE", minimum=1, maximum=1_000_000)
    rank = env_int("RANK")
    local_rank = env_int("LOCAL_RANK", default=0)
    if rank >= world:
        raise UsageError(f"$RANK: {rank} is not below $WORLD_SIZE {world}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise UsageError(f"${name}: not set, but WORLD_SIZE is (env:// rendezvous needs it)")
    env_int("MASTER_PORT", minimum=1, maximum=65535)
    return Placement(rank=rank, world_size=world, local_rank=local_rank, launched=True)


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop reads it only at step boundaries.

    The handler does nothing but set a bool, so a signal can never interrupt a collective or a
    checkpoint write half-way; the ranks then agree on the flag with an all-reduce.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
