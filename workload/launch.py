"""`python -m gpusched.workload.launch [train flags]`: torchrun's static launch, keeping the exit contract.

torchrun turns any worker exit other than 0 into its own exit 1 (and, when it is itself sent
SIGTERM, dies with a traceback), so a pod whose PID 1 is torchrun cannot tell the operator
"preempted after a checkpoint" (75) by its exit code. This launcher starts the same workers with the
same environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
MASTER_PORT), forwards SIGTERM/SIGINT to them, and exits with what they agree on:

    all 0 -> 0;  any 2 -> 2;  any other failure -> 1;  otherwise (some 75) -> 75.

It reads what torchrun reads and the operator sets on every worker pod (as Kubeflow's PyTorchJob
does): PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE, PET_MASTER_ADDR, PET_MASTER_PORT, each
falling back to its un-prefixed name (NNODES ..., MASTER_ADDR, MASTER_PORT: what earlier operator
versions set), then to 1, 0, 1, 127.0.0.1, 29500. Only the standard library is imported: the
launcher itself needs no torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from gpusched.workload.dist import env_int
from gpusched.workload_contract import EXIT_FAILED, EXIT_FINISHED, EXIT_PREEMPTED, EXIT_USAGE

ENV_KILL_AFTER = "GPUSCHED_LAUNCH_KILL_AFTER"
"""Seconds between SIGTERM and SIGKILL of the remaining workers after one failed (default 30)."""


def combine(codes: list[int]) -> int:
    """One exit code for the pod from its workers' codes (see the module docstring)."""
    if all(c == EXIT_FINISHED for c in codes):
        return EXIT_FINISHED
    if EXIT_USAGE in codes:
        return EXIT_USAGE
    if any(c not in (EXIT_FINISHED, EXIT_PREEMPTED) for c in codes):
        return EXIT_FAILED
    return EXIT_PREEMPTED


def _name(flag: str) -> str:
    """torchrun's variable for a flag (PET_<FLAG>) when it is set, else the un-prefixed one."""
    return f"PET_{flag}" if os.environ.get(f"PET_{flag}") else flag


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        nnodes_var, rank_var = _name("NNODES"), _name("NODE_RANK")
        nnodes = env_int(nnodes_var, 1, 1)
        node_rank = env_int(rank_var, 0, 0)
        nproc = env_int(_name("NPROC_PER_NODE"), 1, 1)
        port = env_int(_name("MASTER_PORT"), 29500, 1, 65535)
        kill_after = env_int(ENV_KILL_AFTER, 30, 0)
        if node_rank >= nnodes:
            raise ValueError(f"${rank_var}: {node_rank} is not below ${nnodes_var} {nnodes}")
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    world = nnodes * nproc
    base = dict(os.environ)
    base.update(
        {
            "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(nproc),
            "GROUP_RANK": str(node_rank),
            "MASTER_ADDR": os.environ.get(_name("MASTER_ADDR")) or "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    children: list[subprocess.Popen[bytes]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    for local in range(nproc):
        env = {**base, "RANK": str(node_rank * nproc + local), "LOCAL_RANK": str(local)}
        children.append(subprocess.Popen([sys.executable, "-m", "gpusched.workload", *args], env=env))
    if received:  # a signal that came while the workers were being started
        for child in children:
            child.send_signal(received[-1])

    kill_at: float | None = None
    while any(c.poll() is None for c in children):
        failed = [c for c in children if c.returncode not in (None, EXIT_FINISHED, EXIT_PREEMPTED)]
        if failed and kill_at is None:
            # The others would wait forever in a collective with a dead peer: stop them.
            kill_at = time.monotonic() + kill_after
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
        if kill_at is not None and time.monotonic() >= kill_at:
            for child in children:
                if child.poll() is None:
                    child.kill()
        time.sleep(0.05)
    return combine([int(c.returncode) for c in children])


if __name__ == "__main__":
    sys.exit(main())
