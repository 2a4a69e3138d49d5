"""Loading cluster and jobs files: validated, with one-line errors that name file, path and value.

Every loader raises InputError whose str() is the single line the CLI prints before exiting 2.
ISO datetimes in time fields are turned into hours from the epoch here, so that the model and
the solver only ever see float hours.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gpusched import safeio
from gpusched.model import Cluster, Job, JobSet, check_jobs_against_cluster
from gpusched.safeio import InputError, shown, write_atomic
from gpusched.units import hours_between, parse_datetime, utcnow

M = TypeVar("M", bound=BaseModel)

_TIME_FIELDS_JOB = ("release", "deadline")
_TIME_FIELDS_CHANGE = ("start", "end")


def read_document(path: Path) -> Any:
    """Parse YAML or JSON (by suffix; YAML otherwise) into plain data, within gpusched.safeio's limits."""
    return safeio.read_document(Path(path))


def format_validation_error(source: str, exc: ValidationError) -> str:
    """The first pydantic error as 'source: a.b[2].c: message (got value)'."""
    err = exc.errors(include_url=False)[0]
    loc = _format_loc(err.get("loc", ()))
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    msg = _capped(msg)  # a validator quoting a huge value: the line stays a line
    value = err.get("input")
    got = "" if isinstance(value, (dict, list)) or err.get("type") == "missing" else f" (got {shown(value)})"
    if (
        msg.split(":")[0].strip().startswith(tuple("abcdefghijklmnopqrstuvwxyz_"))
        and "[" in msg.split(":")[0]
    ):
        # A model validator already named the path inside its message: prefix the outer location.
        return f"{source}: {loc + '.' if loc else ''}{msg}"
    return f"{source}: {loc or '<root>'}: {msg}{got}"


def _capped(msg: str, limit: int = 300) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validate(model: type[M], data: Any, source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_validation_error(source, exc)) from None


def _resolve_times(items: Any, fields: tuple[str, ...], epoch: datetime) -> None:
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        for field in fields:
            when = parse_datetime(item.get(field))
            if when is not None:
                item[field] = hours_between(epoch, when)


def load_cluster(path: Path, epoch: datetime | None = None) -> Cluster:
    data = read_document(Path(path))
    if isinstance(data, dict):
        _resolve_times(data.get("maintenance"), _TIME_FIELDS_CHANGE, epoch or utcnow())
    return validate(Cluster, data, str(path))


def load_jobs(path: Path, now: datetime | None = None) -> JobSet:
    """Load a jobs file; its `epoch` (or `now`) is time zero for every offset in it."""
    data = read_document(Path(path))
    if isinstance(data, list):
        data = {"jobs": data}
    if isinstance(data, dict):
        epoch = _epoch(data.get("epoch"), str(path)) or now or utcnow()
        data["epoch"] = epoch
        _resolve_times(data.get("jobs"), _TIME_FIELDS_JOB, epoch)
    return validate(JobSet, data, str(path))


def _epoch(value: Any, source: str) -> datetime | None:
    """The jobs file's `epoch`: absent means 'now'; present, it must be a time (never silently now)."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    when = parse_datetime(value)
    if when is None:
        raise InputError(
            f"{source}: epoch: not a time (got {shown(value)}; expected an ISO datetime such as "
            "2026-11-23T09:00:00Z)"
        )
    return when


def load_inputs(
    cluster_path: Path, jobs_path: Path, now: datetime | None = None, check: bool = True
) -> tuple[Cluster, JobSet]:
    """Both files, plus the checks that need both (unknown types and nodes referenced by jobs).

    With check=False the cross-file checks are left to `check_inputs`, for callers that replace the
    cluster's nodes first (`gpusched plan --telemetry`).
    """
    jobs = load_jobs(jobs_path, now)
    cluster = load_cluster(cluster_path, jobs.epoch)
    if check:
        check_inputs(cluster, jobs, jobs_path)
    return cluster, jobs


def check_inputs(cluster: Cluster, jobs: JobSet, jobs_path: Path) -> None:
    try:
        check_jobs_against_cluster(jobs.jobs, cluster)
        check_gangs_fit(jobs.jobs, cluster)
    except ValueError as exc:
        raise InputError(f"{jobs_path}: {_capped(str(exc))}") from None


def check_gangs_fit(jobs: list[Job], cluster: Cluster) -> None:
    """A gang larger than every pool it may use can never run: that is an input error, not a plan."""
    for i, job in enumerate(jobs):
        pools = {
            t.name: cluster.total_gpus(t.name)
            for t in cluster.gpu_types
            if (job.gpu_types is None or t.name in job.gpu_types) and t.memory_gib >= job.min_gpu_memory_gib
        }
        if pools and job.gpus > max(pools.values()):
            largest = max(pools, key=lambda n: pools[n])
            raise ValueError(
                f"jobs[{i}].gpus: gang of {job.gpus} GPUs is larger than every pool it may use "
                f"(largest: {pools[largest]} x {largest})"
            )


def model_text(model: BaseModel, path: Path) -> str:
    """The model as JSON or YAML text, by the suffix of the file it is meant for."""
    data = model.model_dump(mode="json")
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"


def dump_model(model: BaseModel, path: Path) -> None:
    """Write JSON or YAML (by suffix) atomically: a temporary file renamed into place."""
    write_atomic(Path(path), model_text(model, path))


__all__ = [
    "InputError",
    "Job",
    "dump_model",
    "load_cluster",
    "load_inputs",
    "load_jobs",
    "model_text",
    "write_atomic",
]
