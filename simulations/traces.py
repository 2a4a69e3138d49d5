"""Trace loaders in the formats the traces are published in, plus a seeded synthetic generator.

Formats (see docs/simulator.md):
- philly: `timestamp,duration,num_gpus,gpu_time,cluster` (Pollux/AdaptDL's philly.csv; seconds).
- openb: Alibaba cluster-trace-gpu-v2023 pod list `name,cpu_milli,memory_mib,num_gpu,gpu_milli,
  gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time` and node list
  `sn,cpu_milli,memory_mib,gpu,model` (which becomes the Cluster).
- csv: gpusched's generic CSV, columns documented in GENERIC_COLUMNS.
- synthetic: Poisson arrivals with Philly-like gang sizes and log-normal durations.
Every row is validated by a pydantic model; a bad row is one InputError line naming the file, the
row (file line number), the column and the value.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from gpusched import safeio
from gpusched.config import InputError, read_document, validate
from gpusched.model import Cluster, GpuType, Node
from gpusched.simulations.workload import TraceJob

TraceFormat = Literal["philly", "openb", "csv", "synthetic"]
FORMATS: tuple[str, ...] = ("philly", "openb", "csv", "synthetic")
MIN_WORK_S = 1.0
"""Zero-length jobs are given one second, so every job has work to do."""


class _Row(BaseModel):
    # allow_inf_nan=False: 'nan' or 'inf' in a numeric column is refused with its row and column.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, allow_inf_nan=False)


MAX_SECONDS = 3600.0 * 1e6
"""Times and durations in a trace (seconds): past a million hours a value is corrupt."""
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Gang = Annotated[int, Field(ge=0, le=1_000_000)]


class PhillyRow(_Row):
    timestamp: datetime
    duration: Seconds
    num_gpus: Annotated[int, Field(gt=0, le=1_000_000)]
    gpu_time: Annotated[float, Field(ge=0)] | None = None
    cluster: str = ""


class OpenbPod(_Row):
    name: str = Field(min_length=1)
    cpu_milli: int = Field(ge=0)
    memory_mib: int = Field(ge=0)
    num_gpu: Gang
    gpu_milli: int = Field(ge=0, le=1000)
    gpu_spec: str = ""
    qos: str = ""
    pod_phase: str = ""
    creation_time: Seconds | None = None
    """None in FGD's arrival-only lists (its multigpu* lists have five columns): FGD's protocol needs no times."""
    deletion_time: Seconds | None = None
    scheduled_time: Seconds | None = None

    @field_validator("creation_time", "deletion_time", "scheduled_time", mode="before")
    @classmethod
    def _empty_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @property
    def allowed_types(self) -> tuple[str, ...] | None:
        return tuple(s for s in self.gpu_spec.split("|") if s) or None


class OpenbNode(_Row):
    sn: str = Field(min_length=1)
    cpu_milli: int = Field(ge=0)
    memory_mib: int = Field(ge=0)
    gpu: int = Field(ge=0, le=4096)
    model: str = ""


class GenericRow(_Row):
    """gpusched's generic trace CSV; times and durations in seconds from the trace start."""

    submit: Seconds
    duration: Seconds
    """Seconds on a speed-1.0 GPU (the reference)."""
    gpus: Annotated[int, Field(gt=0, le=1_000_000)]
    name: str = ""
    gpu_types: str = ""
    """Allowed types joined by '|'; empty means any."""
    gpu_milli: int = Field(default=1000, ge=1, le=1000)
    priority: float = Field(default=1.0, gt=0, le=1e6)
    team: str = "default"
    deadline: Seconds | None = None
    preemptible: bool = True
    restart_overhead: Seconds = 0.0
    checkpoint_interval: float | None = Field(default=None, gt=0, le=MAX_SECONDS)

    @field_validator("deadline", "checkpoint_interval", mode="before")
    @classmethod
    def _empty_none(cls, v: Any) -> Any:
        return None if v == "" else v


GENERIC_COLUMNS = {
    "submit": "required; seconds from the trace start",
    "duration": "required; seconds on a speed-1.0 GPU",
    "gpus": "required; gang size",
    "name": "optional; default job-<row>",
    "gpu_types": "optional; allowed GPU types joined by '|'",
    "gpu_milli": "optional; thousandths of one GPU for a shared single-GPU job (default 1000)",
    "priority": "optional; weight (default 1)",
    "team": "optional; default 'default'",
    "deadline": "optional; seconds from the trace start",
    "preemptible": "optional; true/false (default true)",
    "restart_overhead": "optional; seconds lost at each restart (default 0)",
    "checkpoint_interval": "optional; seconds between checkpoints",
}


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    text = safeio.read_text(path, safeio.MAX_TABLE_BYTES)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(
                f"{path}: row 1: missing column(s) {', '.join(missing)} "
                f"(header is {safeio.shown(','.join(header)) if header else 'empty'})"
            )
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise InputError(f"{path}: row {line}: more fields than the header's {len(header)}")
            yield line, row
    except csv.Error as exc:
        raise InputError(f"{path}: row {reader.line_num}: malformed CSV: {exc}") from None


def _parse(model: type[_Row], path: Path, line: int, row: dict[str, Any]) -> Any:
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        col = ".".join(str(p) for p in err.get("loc", ())) or "?"
        msg = err.get("msg", "invalid value")
        value = row.get(col, err.get("input"))
        raise InputError(f"{path}: row {line}: column {col}: {msg} (got {safeio.shown(value)})") from None


# ------------------------------------------------------------------------------------------ philly


def load_philly(path: Path, limit: int | None = None) -> list[TraceJob]:
    """Philly jobs; release = hours since the earliest timestamp, work = duration (reference GPU)."""
    path = Path(path)
    parsed: list[tuple[datetime, PhillyRow, int]] = []
    for line, row in _rows(path, ("timestamp", "duration", "num_gpus")):
        r = _parse(PhillyRow, path, line, row)
        parsed.append((r.timestamp, r, line))
    if not parsed:
        raise InputError(f"{path}: no jobs in the trace")
    parsed.sort(key=lambda x: (x[0], x[2]))
    t0 = parsed[0][0]
    jobs = [
        TraceJob(
            name=f"philly-{line - 1}",
            gpus=r.num_gpus,
            work=max(r.duration, MIN_WORK_S) / 3600.0,
            release=(ts - t0).total_seconds() / 3600.0,
            team=r.cluster or "default",
        )
        for ts, r, line in parsed
    ]
    return jobs[:limit] if limit is not None else jobs


# ------------------------------------------------------------------------------------------- openb

OPENB_MEMORY_GIB = {"T4": 16, "P100": 16, "V100M16": 16, "V100M32": 32, "A10": 24, "G2": 32, "G3": 32}
"""Per-GPU memory for the anonymised openb models where known; G2/G3 are undisclosed (32 assumed)."""


def load_openb_nodes(path: Path) -> list[OpenbNode]:
    path = Path(path)
    nodes = [_parse(OpenbNode, path, line, row) for line, row in _rows(path, ("sn", "gpu", "model"))]
    if not nodes:
        raise InputError(f"{path}: no nodes in the node list")
    return nodes


def load_openb_pods(path: Path) -> list[OpenbPod]:
    path = Path(path)
    pods = []
    for line, row in _rows(path, ("name", "num_gpu", "gpu_milli")):
        pod = _parse(OpenbPod, path, line, row)
        if pod.num_gpu > 1 and pod.gpu_milli != 1000:
            raise InputError(
                f"{path}: row {line}: column gpu_milli: a {pod.num_gpu}-GPU pod must take whole GPUs "
                f"(1000) (got {pod.gpu_milli})"
            )
        pods.append(pod)
    return pods


def openb_cluster(nodes: list[OpenbNode]) -> Cluster:
    """The GPU nodes as a Cluster (CPU-only nodes dropped); speeds 1.0, prices 0 (not published)."""
    models = sorted({n.model for n in nodes if n.gpu > 0})
    types = [GpuType(name=m, memory_gib=OPENB_MEMORY_GIB.get(m, 32)) for m in models]
    return Cluster(
        gpu_types=types,
        nodes=[Node(name=n.sn, gpu_type=n.model, gpu_count=n.gpu) for n in nodes if n.gpu > 0],
    )


def openb_jobs(pods: list[OpenbPod], limit: int | None = None) -> list[TraceJob]:
    """GPU pods as jobs (CPU-only pods are not GPU jobs and are left out).

    Duration = deletion - scheduled (creation when never scheduled); pods still running at the end
    of the trace have no deletion time and are given the trace's last timestamp.
    """
    gpu_pods = [p for p in pods if p.num_gpu > 0]
    untimed = next((p for p in gpu_pods if p.creation_time is None), None)
    if untimed is not None:
        raise InputError(
            f"pod {untimed.name}: column creation_time: missing (a replay in time needs each pod's arrival; "
            "an arrival-only list such as FGD's multigpu* replays with `gpusched validate fgd --pods FILE`)"
        )
    end = max((p.deletion_time or p.creation_time or 0.0) for p in pods) if pods else 0.0
    jobs = []
    for p in gpu_pods:
        assert p.creation_time is not None
        begin = p.scheduled_time if p.scheduled_time is not None else p.creation_time
        stop = p.deletion_time if p.deletion_time is not None else end
        jobs.append(
            TraceJob(
                name=p.name,
                gpus=p.num_gpu,
                gpu_milli=p.gpu_milli if p.num_gpu == 1 else 1000,
                work=max(stop - begin, MIN_WORK_S) / 3600.0,
                release=p.creation_time / 3600.0,
                gpu_types=p.allowed_types,
                team=p.qos or "default",
            )
        )
    jobs.sort(key=lambda j: j.release)
    return jobs[:limit] if limit is not None else jobs


def openb_node_list_beside(pod_list: Path) -> Path:
    """The node list published next to a pod list (openb_node_list_gpu_node.csv)."""
    return Path(pod_list).with_name("openb_node_list_gpu_node.csv")


# ----------------------------------------------------------------------------------------- generic


def load_generic(path: Path, limit: int | None = None) -> list[TraceJob]:
    path = Path(path)
    jobs: list[TraceJob] = []
    names: set[str] = set()
    for line, row in _rows(path, ("submit", "duration", "gpus")):
        clean = {k: v for k, v in row.items() if not (v == "" and k in _OPTIONAL_WITH_DEFAULT)}
        r: GenericRow = _parse(GenericRow, path, line, clean)
        name = r.name or f"job-{line - 1}"
        if name in names:
            raise InputError(f"{path}: row {line}: column name: duplicate job name (got {safeio.shown(name)})")
        names.add(name)
        if r.gpu_milli < 1000 and r.gpus != 1:
            raise InputError(
                f"{path}: row {line}: column gpu_milli: only single-GPU jobs may share a GPU (got {r.gpu_milli})"
            )
        if r.deadline is not None and r.deadline <= r.submit:
            raise InputError(f"{path}: row {line}: column deadline: must be after submit (got {r.deadline!r})")
        jobs.append(
            TraceJob(
                name=name,
                gpus=r.gpus,
                work=max(r.duration, MIN_WORK_S) / 3600.0,
                release=r.submit / 3600.0,
                gpu_milli=r.gpu_milli,
                gpu_types=tuple(s.strip() for s in r.gpu_types.split("|") if s.strip()) or None,
                priority=r.priority,
                team=r.team,
                deadline=r.deadline / 3600.0 if r.deadline is not None else None,
                preemptible=r.preemptible,
                restart_overhead=r.restart_overhead / 3600.0,
                checkpoint_interval=r.checkpoint_interval / 3600.0 if r.checkpoint_interval else None,
            )
        )
    jobs.sort(key=lambda j: j.release)
    return jobs[:limit] if limit is not None else jobs


_OPTIONAL_WITH_DEFAULT = ("name", "gpu_types", "gpu_milli", "priority", "team", "preemptible",
                          "restart_overhead", "deadline", "checkpoint_interval")


def write_generic(jobs: list[TraceJob], path: Path) -> None:
    """Write jobs in the generic CSV format (used to ship samples and for round-trip tests)."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle)
        w.writerow(["name", "submit", "duration", "gpus", "gpu_types", "gpu_milli", "priority", "team",
                    "deadline", "preemptible", "restart_overhead", "checkpoint_interval"])
        for j in jobs:
            w.writerow([
                j.name, f"{j.release * 3600:.3f}", f"{j.work * 3600:.3f}", j.gpus, "|".join(j.gpu_types or ()),
                j.gpu_milli, j.priority, j.team, "" if j.deadline is None else f"{j.deadline * 3600:.3f}",
                str(j.preemptible).lower(), f"{j.restart_overhead * 3600:.3f}",
                "" if j.checkpoint_interval is None else f"{j.checkpoint_interval * 3600:.3f}",
            ])


# --------------------------------------------------------------------------------------- synthetic

PHILLY_SIZES = {1: 76627, 2: 1818, 4: 1870, 8: 1643, 16: 199, 32: 67, 64: 6, 128: 3}
"""Gang-size counts of the Philly trace: the synthetic generator draws from these frequencies."""
PHILLY_LOG_DURATION = (6.79, 2.16)
"""Mean and standard deviation of ln(duration in s) over the Philly trace (fitted on philly.csv)."""


class SyntheticSpec(BaseModel):
    """Parameters of the synthetic generator (a YAML file, or 'key=value,...' on the command line)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    jobs: int = Field(default=1000, gt=0, le=1_000_000)
    rate_per_hour: float | None = Field(default=None, ge=1e-6, le=1e6)
    """Poisson arrival rate; when absent it is derived from `load` and the cluster's GPUs."""
    load: float = Field(default=0.8, gt=0, le=1000)
    """Offered load (GPU-hours requested per GPU-hour of capacity) used to derive the rate."""
    max_gpus: int = Field(default=128, gt=0, le=1_000_000)
    max_duration_h: float = Field(default=24 * 7, gt=0, le=1e6)
    deadline_slack: float | None = Field(default=None, gt=1, le=1e6)
    """When set, every job gets a deadline at release + slack x duration."""
    preemptible: bool = True
    restart_overhead_s: float = Field(default=0.0, ge=0, le=MAX_SECONDS)
    seed: int = Field(default=0, ge=0, lt=2**63)


def parse_synthetic_spec(text: str, seed: int | None = None, option: str = "--trace") -> SyntheticSpec:
    """A YAML file path or an inline 'jobs=500,load=0.7' spec; `option` names it in errors."""
    path = Path(text)
    data: Any
    if path.exists():
        data = read_document(path) or {}
        source = str(path)
    else:
        data = {}
        source = option
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in part:
                raise InputError(f"{option}: synthetic spec part {safeio.shown(part)} is not key=value (e.g. jobs=500,load=0.7)")
            k, v = part.split("=", 1)
            data[k.strip()] = v.strip()
    if seed is not None and isinstance(data, dict) and "seed" not in data:
        data["seed"] = seed
    return validate(SyntheticSpec, data, source)


def synthetic_jobs(spec: SyntheticSpec, capacity_gpus: int) -> list[TraceJob]:
    """Seeded Poisson arrivals, Philly gang-size frequencies, log-normal Philly-fit durations."""
    rng = random.Random(spec.seed)
    sizes = [s for s in PHILLY_SIZES if s <= min(spec.max_gpus, max(1, capacity_gpus))]
    weights = [PHILLY_SIZES[s] for s in sizes]
    mu, sigma = PHILLY_LOG_DURATION
    cap = spec.max_duration_h * 3600
    drawn = []
    for _ in range(spec.jobs):
        g = rng.choices(sizes, weights)[0]
        d = min(max(math.exp(rng.gauss(mu, sigma)), MIN_WORK_S), cap)
        drawn.append((g, d))
    if spec.rate_per_hour is not None:
        rate = spec.rate_per_hour
    else:
        mean_gpu_h = sum(g * d for g, d in drawn) / len(drawn) / 3600
        rate = spec.load * max(1, capacity_gpus) / mean_gpu_h
    t = 0.0
    jobs = []
    for i, (g, d) in enumerate(drawn):
        t += rng.expovariate(rate)
        jobs.append(
            TraceJob(
                name=f"syn-{i}",
                gpus=g,
                work=d / 3600,
                release=t,
                deadline=t + spec.deadline_slack * d / 3600 if spec.deadline_slack else None,
                preemptible=spec.preemptible,
                restart_overhead=spec.restart_overhead_s / 3600,
            )
        )
    return jobs


# -------------------------------------------------------------------------------------- dispatcher


def load_trace(
    fmt: str, trace: str, cluster: Cluster | None, limit: int | None = None, seed: int | None = None,
    start: float | None = None, end: float | None = None, option: str = "--trace",
) -> list[TraceJob]:
    """Jobs of a trace in format `fmt`, cut to releases in [start, end) hours and to `limit` jobs.

    `option` is the command-line option the trace came from, named in errors.

    The cut keeps release times relative to the trace start (minus `start`), so a window of a trace
    replays with its own arrival pattern.
    """
    if fmt == "philly":
        jobs = load_philly(Path(trace))
    elif fmt == "openb":
        jobs = openb_jobs(load_openb_pods(Path(trace)))
    elif fmt == "csv":
        jobs = load_generic(Path(trace))
    elif fmt == "synthetic":
        jobs = synthetic_jobs(parse_synthetic_spec(trace, seed, option), cluster.total_gpus() if cluster else 64)
    else:
        raise InputError(f"--format: unknown trace format {safeio.shown(fmt)} (expected one of {', '.join(FORMATS)})")
    return subset(jobs, limit, start, end)


def subset(jobs: list[TraceJob], limit: int | None, start: float | None, end: float | None) -> list[TraceJob]:
    out = [j for j in jobs if (start is None or j.release >= start) and (end is None or j.release < end)]
    if start:
        for j in out:
            j.release -= start
            if j.deadline is not None:
                j.deadline -= start
    return out[:limit] if limit is not None else out
