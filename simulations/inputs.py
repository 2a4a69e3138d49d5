"""Resolve what `gpusched simulate` was given (cluster file, trace, format) into a Cluster and jobs."""

from __future__ import annotations

from pathlib import Path

from gpusched import safeio
from gpusched.config import InputError, load_cluster, read_document
from gpusched.model import Cluster
from gpusched.simulations import traces
from gpusched.simulations.workload import TraceJob
from gpusched.units import parse_datetime


def detect_format(trace: str, option: str = "--trace") -> str:
    """philly / openb / csv from the CSV header; synthetic for a spec such as 'jobs=500,load=0.7'."""
    path = Path(trace)
    if not path.exists():
        if "=" in trace or trace == "synthetic":
            return "synthetic"
        raise InputError(f"{option}: file not found: {safeio.shown(trace)}")
    if path.suffix.lower() in (".yaml", ".yml"):
        return "synthetic"
    header = {h.strip() for h in _first_line(path).split(",")}
    if {"timestamp", "duration", "num_gpus"} <= header:
        return "philly"
    if {"name", "num_gpu", "gpu_milli"} <= header:
        return "openb"
    if {"submit", "duration", "gpus"} <= header:
        return "csv"
    raise InputError(
        f"{path}: row 1: header {safeio.shown(','.join(sorted(header)))} is none of philly (timestamp,duration,num_gpus), "
        "openb (name,num_gpu,gpu_milli,...) or csv (submit,duration,gpus); pass --format"
    )


def _first_line(path: Path) -> str:
    """The header line of a CSV, read within limits (a directory, binary data or UTF-16 is named)."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory (expected a trace file)")
    try:
        with path.open("rb") as handle:
            head = handle.read(64 << 10)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    line = head.split(b"\n", 1)[0]
    return safeio.decode_text(line if len(line) < len(head) or len(head) < (64 << 10) else b"", str(path))


def resolve_cluster(cluster: Path | None, fmt: str, trace: str) -> Cluster:
    """A cluster.yaml, an openb node list CSV, or (openb only) the node list beside the pod list."""
    if cluster is None:
        if fmt == "openb":
            beside = traces.openb_node_list_beside(Path(trace))
            if not beside.exists():
                raise InputError(f"--cluster: not given and no {beside.name} beside {trace}")
            return traces.openb_cluster(traces.load_openb_nodes(beside))
        raise InputError("--cluster: required (a cluster.yaml, or an openb node list CSV)")
    if Path(cluster).suffix.lower() == ".csv":
        return traces.openb_cluster(traces.load_openb_nodes(Path(cluster)))
    _no_datetimes_in_windows(Path(cluster))
    return load_cluster(Path(cluster))


def _no_datetimes_in_windows(path: Path) -> None:
    """Simulated time starts at the trace's first arrival, not at a date: windows must be offsets."""
    data = read_document(path)
    windows = data.get("maintenance") if isinstance(data, dict) else None
    for i, window in enumerate(windows if isinstance(windows, list) else []):
        for key in ("start", "end"):
            value = window.get(key) if isinstance(window, dict) else None
            when = parse_datetime(value)
            if when is not None:
                raise InputError(
                    f"{path}: maintenance[{i}].{key}: {when.isoformat()}: the simulator counts time from the "
                    "trace's first job, so give an offset such as 36h"
                )


def shift_windows(cluster: Cluster, start: float | None) -> Cluster:
    """Maintenance windows in the time of a trace cut at --start (releases shift by -start too)."""
    if not start or not cluster.maintenance:
        return cluster
    kept = [
        w.model_copy(update={"start": max(0.0, w.start - start), "end": w.end - start})
        for w in cluster.maintenance
        if w.end - start > 0
    ]
    return cluster.model_copy(update={"maintenance": kept})


def check_types(jobs: list[TraceJob], cluster: Cluster, source: str) -> None:
    """A job naming a GPU type the cluster lacks entirely is an input error, not a silent skip."""
    known = {t.name for t in cluster.gpu_types}
    for j in jobs:
        if j.gpu_types and not any(t in known for t in j.gpu_types):
            raise InputError(
                f"{source}: job {j.name}: gpu types {'|'.join(j.gpu_types)} not in the cluster "
                f"(known: {', '.join(sorted(known))})"
            )


def load(
    cluster: Path | None, trace: str, fmt: str | None = None, limit: int | None = None,
    start: float | None = None, end: float | None = None, seed: int = 0, throughputs: Path | None = None,
) -> tuple[Cluster, list[TraceJob], str]:
    fmt = fmt or detect_format(trace)
    the_cluster = shift_windows(resolve_cluster(cluster, fmt, trace), start)
    jobs = traces.load_trace(fmt, trace, the_cluster, limit=limit, seed=seed, start=start, end=end)
    if not jobs:
        raise InputError(f"--trace: {trace}: no jobs left after --start/--end/--limit")
    check_types(jobs, the_cluster, trace)
    if throughputs is not None:
        from gpusched.simulations.throughput import assign_speeds, load_matrix

        jobs = assign_speeds(jobs, the_cluster, load_matrix(throughputs), seed=seed)
    return the_cluster, jobs, fmt
