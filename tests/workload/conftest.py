"""Running the real workload as a child process, alone or under torch's own launcher.

Every run is the shipped entry point (`python -m gpusched.workload`, optionally under
`python -m torch.distributed.run`) on the CPU with gloo; nothing is faked.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the training workload needs torch (pip install -e '.[train]')")

# The smallest model that still exercises every layer type: steps take milliseconds on one thread.
TINY = ["--model", "tiny", "--batch-size", "4", "--threads", "1", "--log-every", "1", "--warmup-steps", "3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "GPUSCHED_CHECKPOINT_DIR",
        "GPUSCHED_STATUS_FILE",
        "GPUSCHED_JOB_NAME",
    ):
        env.pop(name, None)
    env["OMP_NUM_THREADS"] = "1"
    env["GPUSCHED_TERMINATION_MESSAGE_PATH"] = str(tmp / "termination-log")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(args: list[str], nproc: int, launcher: str = "torchrun") -> list[str]:
    if launcher == "gpusched":  # NPROC_PER_NODE etc. come from the environment, as in the operator's pods
        return [sys.executable, "-m", "gpusched.workload.launch", *args]
    if nproc == 1:
        return [sys.executable, "-m", "gpusched.workload", *args]
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "gpusched.workload", *args,
    ]  # fmt: skip


@dataclass
class Result:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str
    signalled_at_step: int | None = None
    losses: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.losses = {e["step"]: e["loss"] for e in self.events if e["event"] == "step"}

    def first(self, event: str) -> dict[str, Any]:
        found = [e for e in self.events if e["event"] == event]
        assert found, f"no {event!r} event in {self.events[-5:]}\nstderr:\n{self.stderr[-3000:]}"
        return found[0]


def _parse(line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        pytest.fail(f"stdout line is not JSON: {line!r}")
    assert isinstance(data, dict) and "event" in data, line
    return data


def _limit_file_size(limit: int) -> Callable[[], None]:
    """RLIMIT_FSIZE for the run: a write past `limit` bytes fails with EFBIG (Python ignores SIGXFSZ),
    a real write failure even for root, who can write anywhere else."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run(
    args: list[str],
    tmp: Path,
    *,
    nproc: int = 1,
    sigterm_after_step: int | None = None,
    sigterm_rank: int | None = None,
    timeout: float = 150,
    env: dict[str, str] | None = None,
    launcher: str = "torchrun",
    file_size_limit: int | None = None,
) -> Result:
    """Run to the end; with sigterm_after_step, send SIGTERM once a step line at or past that step
    has been printed: to the launcher, as the kubelet would to PID 1, or only to worker
    `sigterm_rank` (its pid is in the start line)."""
    full_env = {**child_env(tmp), **(env or {})}
    # stderr goes to a file: a pipe nobody reads could fill and stall the run.
    errpath = tmp / f"stderr-{time.monotonic_ns()}.txt"
    with open(errpath, "w") as err:
        proc = subprocess.Popen(
            command(args, nproc, launcher),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=full_env,
            cwd=tmp,
            preexec_fn=None if file_size_limit is None else _limit_file_size(file_size_limit),
        )
    events: list[dict[str, Any]] = []
    signalled = None
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    try:
        for line in _lines(proc.stdout):
            events.append(_parse(line))
            e = events[-1]
            if (
                sigterm_after_step is not None
                and signalled is None
                and e["event"] == "step"
                and e["step"] >= sigterm_after_step
            ):
                if sigterm_rank is None:
                    proc.send_signal(signal.SIGTERM)
                else:
                    os.kill(events[0]["ranks"][sigterm_rank]["pid"], signal.SIGTERM)
                signalled = e["step"]
            if time.monotonic() > deadline:
                pytest.fail(f"run did not finish in {timeout}s: {events[-3:]}")
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(proc.returncode, events, errpath.read_text(), signalled)


def _lines(stream: Any) -> Iterator[str]:
    for line in stream:
        line = line.strip()
        if line:
            yield line


class Workload:
    """The fixture handed to tests: runs in its own temporary directory."""

    tiny = TINY
    free_port = staticmethod(free_port)

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.termination_log = tmp / "termination-log"

    def run(self, args: list[str], **kwargs: Any) -> Result:
        return run(args, self.tmp, **kwargs)

    def termination_message(self) -> dict[str, Any]:
        data = self.termination_log.read_bytes()
        assert len(data) <= 4096
        return dict(json.loads(data))


@pytest.fixture
def workload(tmp_path: Path) -> Workload:
    return Workload(tmp_path)
