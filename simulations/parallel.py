"""Where capacity candidates are simulated: in this process, on a pool of local processes (the
default: one per core), or on a Dask or Ray cluster the user already runs, for large sweeps.

Each candidate is an independent simulation of the same workload, so the sizing loop hands a batch
of them to `Runner.map` and gets the results back in the batch's order: the outcome is identical
whatever runs them (tests/simulations/test_sizing.py holds a serial and a parallel sweep equal).
The workload is shipped to each worker once (a process pool's initializer, Dask's scatter, Ray's
object store), not once per candidate: an 82k-job trace is tens of megabytes pickled.

Dask and Ray are optional extras (`pip install gpusched[dask]` / `gpusched[ray]`); asking for one
that is not installed is a one-line error (`RunnerError`), never a silent fallback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from gpusched.model import Cluster
from gpusched.simulations.workload import TraceJob

BACKENDS = ("local", "dask", "ray")


class RunnerError(ValueError):
    """The requested backend cannot be used (not installed, or its cluster unreachable)."""


@dataclass(frozen=True)
class Task:
    """One simulation: a cluster, and the workload (None: the shared one every worker holds)."""

    cluster: Cluster
    jobs: Sequence[TraceJob] | None = None


Simulate = Callable[[Cluster, Sequence[TraceJob]], dict[str, Any]]
"""Top-level (picklable) function: one simulation's summary."""


class Runner(Protocol):
    def map(self, tasks: Sequence[Task]) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Serial:
    """In this process, one after the other (workers=1, and what every other runner must equal)."""

    def __init__(self, simulate: Simulate, jobs: Sequence[TraceJob]) -> None:
        self.simulate, self.jobs = simulate, jobs

    def map(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        return [self.simulate(t.cluster, self.jobs if t.jobs is None else t.jobs) for t in tasks]

    def close(self) -> None:
        pass


_WORKER: tuple[Simulate, Sequence[TraceJob]] | None = None


def _init(simulate: Simulate, jobs: Sequence[TraceJob]) -> None:
    global _WORKER
    _WORKER = (simulate, jobs)


def _run(task: Task) -> dict[str, Any]:
    assert _WORKER is not None
    simulate, jobs = _WORKER
    return simulate(task.cluster, jobs if task.jobs is None else task.jobs)


class Local:
    """A pool of `workers` local processes, started once and kept for the whole sizing run."""

    def __init__(self, simulate: Simulate, jobs: Sequence[TraceJob], workers: int) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=workers, initializer=_init, initargs=(simulate, list(jobs))
        )

    def map(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        return list(self.pool.map(_run, tasks))

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def _dask_run(simulate: Simulate, jobs: Sequence[TraceJob], task: Task) -> dict[str, Any]:
    return simulate(task.cluster, jobs if task.jobs is None else task.jobs)


class DaskRunner:
    """A Dask cluster: `address` of its scheduler (tcp://host:8786), or a Client already made."""

    def __init__(self, simulate: Simulate, jobs: Sequence[TraceJob], address: Any) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise RunnerError(
                "--backend: dask is not installed (expected the 'distributed' package: pip install 'gpusched[dask]')"
            ) from None
        try:
            self.client = address if isinstance(address, Client) else Client(address, timeout=30)
        except OSError as exc:
            raise RunnerError(
                f"--cluster-address: cannot reach the Dask scheduler at {address}: {exc} (expected a running one)"
            ) from None
        self.owned = not isinstance(address, Client)
        self.simulate = simulate
        [self.jobs] = self.client.scatter([list(jobs)], broadcast=True)

    def map(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        futures = [self.client.submit(_dask_run, self.simulate, self.jobs, t, pure=False) for t in tasks]
        return list(self.client.gather(futures))

    def close(self) -> None:
        if self.owned:
            self.client.close()


class RayRunner:
    """A Ray cluster: `address` as ray.init takes it ('auto', ray://host:10001), or None for a local one."""

    def __init__(self, simulate: Simulate, jobs: Sequence[TraceJob], address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise RunnerError(
                "--backend: ray is not installed (expected the 'ray' package: pip install 'gpusched[ray]')"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            except (ConnectionError, RuntimeError) as exc:
                raise RunnerError(
                    f"--cluster-address: cannot reach the Ray cluster at {address}: {exc} (expected a running one)"
                ) from None
        self.remote = ray.remote(_dask_run)
        self.simulate = simulate
        self.jobs = ray.put(list(jobs))

    def map(self, tasks: Sequence[Task]) -> list[dict[str, Any]]:
        return list(self.ray.get([self.remote.remote(self.simulate, self.jobs, t) for t in tasks]))

    def close(self) -> None:
        pass


def make_runner(
    simulate: Simulate,
    jobs: Sequence[TraceJob],
    workers: int | None = None,
    backend: str = "local",
    address: Any = None,
) -> Runner:
    """The runner a sizing run asked for. workers: local processes (None: every core; 1: serial,
    in this process). backend 'dask' or 'ray' runs on that cluster instead (address: its
    scheduler; Ray's None starts a local one)."""
    if backend == "dask":
        if address is None:
            raise RunnerError(
                "--cluster-address: missing (expected the Dask scheduler's address for --backend dask, e.g. tcp://host:8786)"
            )
        return DaskRunner(simulate, jobs, address)
    if backend == "ray":
        return RayRunner(simulate, jobs, address)
    if backend != "local":
        raise RunnerError(f"--backend: unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    n = cores() if workers is None else workers
    if n < 1:
        raise RunnerError(f"--workers: {n} is too few (expected at least 1)")
    return Serial(simulate, jobs) if n == 1 else Local(simulate, jobs, n)
