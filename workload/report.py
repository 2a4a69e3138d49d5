"""Progress out of the process: JSON lines on stdout, the status file, the termination message.

The status file and the termination message are both gpusched.workload_contract.WorkloadStatus, the
one format the operator reads. stdout carries one JSON object per line and nothing else, so log
collectors and tests can parse every line; warnings go to stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpusched.workload.checkpoint import write_bytes_atomic
from gpusched.workload_contract import TERMINATION_MESSAGE_PATH, WorkloadStatus

TERMINATION_MESSAGE_LIMIT = 4096
"""Kubernetes keeps at most 4096 bytes of a container's termination message."""


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed at once (the pod log is read while the job runs)."""
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_status(path: Path, status: WorkloadStatus) -> None:
    """Atomically replace the status file, so the operator never reads half a document."""
    status = status.model_copy(update={"updated_at": now_iso()})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (status.model_dump_json(exclude_none=True) + "\n").encode())


def termination_message(status: WorkloadStatus) -> bytes:
    """The status as compact JSON of at most 4096 bytes (the message is cut first, then dropped)."""
    status = status.model_copy(update={"updated_at": now_iso()})
    data = status.model_dump_json(exclude_none=True).encode()
    if len(data) <= TERMINATION_MESSAGE_LIMIT:
        return data
    message = status.message or ""
    overflow = len(data) - TERMINATION_MESSAGE_LIMIT
    keep = max(0, len(message.encode()) - overflow - 3)
    cut = message.encode()[:keep].decode(errors="ignore") + "..."
    data = status.model_copy(update={"message": cut}).model_dump_json(exclude_none=True).encode()
    if len(data) > TERMINATION_MESSAGE_LIMIT:
        data = status.model_copy(update={"message": None}).model_dump_json(exclude_none=True).encode()
    return data


def write_termination_message(path: Path, status: WorkloadStatus) -> bool:
    """Write the final status where the kubelet reads it; False when there is nowhere to write.

    In a pod the kubelet has already created the file (a bind mount, writable by the container's
    user even when /dev is not), so an existing file is written in place, never replaced by a
    rename. A missing file is created only where its directory is writable and it is not the
    default /dev/termination-log: outside Kubernetes, /dev is no place for stray files.
    """
    if path.exists():
        if not os.access(path, os.W_OK):
            return False
    elif str(path) == TERMINATION_MESSAGE_PATH or not os.access(path.parent, os.W_OK):
        return False
    data = termination_message(status)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        # Every rank of a failed job writes, and the ranks of one pod share this file: truncating
        # and writing under an exclusive lock keeps one whole message, never a longer one's tail
        # behind a shorter one.
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        with contextlib.suppress(OSError):
            os.fsync(fd)
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the lock
    return True


class Throughput:
    """Speed over a window of steps, with time spent on checkpoints left out.

    The planner wants what a GPU type sustains while training; a checkpoint write is I/O whose cost
    depends on the volume, not the GPU, so it is excluded (and reported separately as an event).
    """

    def __init__(
        self, samples_per_step: int, tokens_per_step: int, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.samples_per_step = samples_per_step
        self.tokens_per_step = tokens_per_step
        self._clock = clock
        self._start = clock()
        self._steps = 0
        self._excluded = 0.0

    def step(self) -> None:
        self._steps += 1

    def exclude(self, seconds: float) -> None:
        self._excluded += seconds

    def window(self) -> dict[str, float | int | None]:
        """Speeds since the last call (or construction), then start a new window."""
        elapsed = self._clock() - self._start - self._excluded
        steps = self._steps
        self._start = self._clock()
        self._steps = 0
        self._excluded = 0.0
        if steps == 0 or elapsed <= 0:
            return {"samples_per_s": None, "tokens_per_s": None, "step_time_s": None, "window_steps": steps}
        return {
            "samples_per_s": round(steps * self.samples_per_step / elapsed, 3),
            "tokens_per_s": round(steps * self.tokens_per_step / elapsed, 3),
            "step_time_s": round(elapsed / steps, 6),
            "window_steps": steps,
        }
