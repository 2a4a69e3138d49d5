"""Gavel workloads with their own job types: throughputs per (job type, scale factor), Gavel's trace
files, Gavel-style Poisson workloads, and their conversion into simulator jobs.

Gavel (Narayanan et al., OSDI'20; github.com/stanford-futuredata/gavel, MIT licence) describes a job
by its job type ('ResNet-50 (batch size 64)'), scale factor (GPUs of its gang), total steps and
arrival time. Its simulator runs a job at the measured throughput of (job type, scale factor) on each
GPU type, read from `simulation_throughputs.json`; a 4-GPU job therefore runs at the 4-GPU throughput
(e.g. ResNet-50 batch 64 on V100: 9.45 steps/s on 4 GPUs vs 4.39 on 1), never at 4x or 1x the 1-GPU
figure. Replaying a Gavel experiment exactly needs exactly that, which this module provides: a job
becomes a TraceJob whose work is its total steps at the reference type's (job type, scale factor)
throughput, and whose per-type speeds are that key's throughputs relative to the reference.

The generator follows the semantics of Gavel's continuous-arrival workload (its `utils.generate_job`
and the Poisson arrivals of its simulator), drawing from Python's `random` in the same order, so one
seed gives Gavel's job sequence:
- job parameters from `random.Random(seed + 2)`, inter-arrival times from `random.Random(seed + 3)`;
- per job: a scale factor drawn from Philly's distribution (u = uniform(0, 1): 2 GPUs if
  0.7 <= u <= 0.8, 4 if 0.8 < u <= 0.95, 8 if u > 0.95, else 1), drawn even when multi-GPU jobs are
  off (then forced to 1); a duration: with probability 0.2 (random() >= 0.8) 60 * 10^U(3, 4) s, else
  60 * 10^U(1.5, 3) s; a job type drawn uniformly from Gavel's 26-entry job table, redrawn until
  it can run distributed when the scale factor is > 1; total steps = duration x V100 throughput of
  (type, scale factor); optionally (multi-priority) priority 5 with probability 0.2;
- the first job arrives at t = 0, each next one -ln(1 - random()) * 3600 / rate seconds later.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpusched.config import InputError
from gpusched.model import Cluster, GpuType, Node
from gpusched.safeio import read_document
from gpusched.simulations.workload import TraceJob

GAVEL_GPU_TYPES = ("v100", "p100", "k80")
"""Gavel's consolidated GPU types, fastest first (the order its heterogeneity-aware rounds fill)."""

GAVEL_JOB_TABLE: tuple[str, ...] = (
    *(f"ResNet-18 (batch size {b})" for b in (16, 32, 64, 128, 256)),
    *(f"ResNet-50 (batch size {b})" for b in (16, 32, 64, 128)),
    *(f"Transformer (batch size {b})" for b in (16, 32, 64, 128, 256)),
    *(f"LM (batch size {b})" for b in (5, 10, 20, 40, 80)),
    *(f"Recommendation (batch size {b})" for b in (512, 1024, 2048, 4096, 8192)),
    "A3C",
    "CycleGAN",
)
"""Gavel's job table in its order (scheduler/job_table.py): the generator samples uniformly from it,
so the order is part of what makes a seed reproduce Gavel's sequence."""

DISTRIBUTED_FAMILIES = ("ResNet-18", "ResNet-50", "Transformer", "LM")
"""Job types Gavel runs on more than one GPU (the table's `distributed=True` entries)."""

REFERENCE_TYPE = "v100"
"""Gavel's reference for durations: a job's steps are its duration x its V100 throughput."""

_KEY = re.compile(r"^\('(.+)', (\d+)\)$")

Throughputs = dict[tuple[str, int], dict[str, float]]
"""{(job type, scale factor): {gpu type: isolated steps/s of the whole gang}}."""


@dataclass(frozen=True, slots=True)
class GavelJob:
    """One job as Gavel describes it."""

    job_type: str
    scale_factor: int
    total_steps: float
    arrival: float
    """Seconds from the start of the workload."""
    priority_weight: float = 1.0
    duration: float | None = None
    """Seconds on the reference type (the generator's draw); None for jobs read from a trace."""


def is_distributed(job_type: str) -> bool:
    return job_type.split(" (", 1)[0] in DISTRIBUTED_FAMILIES


def load_throughputs(path: Path) -> Throughputs:
    """Isolated throughputs of every (job type, scale factor) on K80, P100 and V100.

    Co-located figures and the '_unconsolidated' types are ignored: our simulator does not pack jobs
    and Gavel's default cluster is consolidated.
    """
    path = Path(path)
    data = read_document(path)  # size cap, encoding, duplicate keys, finite numbers: one line each
    if not isinstance(data, dict):
        raise InputError(f"{path}: <root>: expected an object of GPU types (got {type(data).__name__})")
    out: Throughputs = {}
    for gpu in GAVEL_GPU_TYPES:
        per_job = data.get(gpu)
        if not isinstance(per_job, dict):
            raise InputError(f"{path}: {gpu}: missing or not an object (expected job types by GPU type)")
        for key, entry in per_job.items():
            match = _KEY.match(key)
            if match is None:
                raise InputError(
                    f"{path}: {gpu}.{key}: not a job key (expected \"('Model (batch size N)', scale)\")"
                )
            value = entry.get("null") if isinstance(entry, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise InputError(
                    f"{path}: {gpu}.{key}.null: expected a throughput >= 0 steps/s (got {value!r})"
                )
            out.setdefault((match.group(1), int(match.group(2))), {})[gpu] = float(value)
    complete = {k: v for k, v in out.items() if all(g in v for g in GAVEL_GPU_TYPES)}
    if not complete:
        raise InputError(
            f"{path}: no job type has isolated throughputs on all of {', '.join(GAVEL_GPU_TYPES)}"
        )
    return complete


def load_gavel_trace(path: Path) -> list[GavelJob]:
    """Gavel's trace format (utils.parse_trace): one job per line, 10 tab-separated fields
    job_type, command, working_directory, num_steps_arg, needs_data_dir, total_steps, scale_factor,
    priority_weight, SLO, arrival_time (seconds, non-decreasing)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    jobs: list[GavelJob] = []
    last = -math.inf
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise InputError(
                f"{path}: line {number}: {len(fields)} tab-separated fields (expected 10: job_type, "
                "command, working_directory, num_steps_arg, needs_data_dir, total_steps, "
                "scale_factor, priority_weight, SLO, arrival_time)"
            )
        job_type = fields[0]
        try:
            steps = float(fields[5])
            scale = int(fields[6])
            weight = float(fields[7])
            arrival = float(fields[9])
        except ValueError:
            raise InputError(
                f"{path}: line {number}: total_steps, scale_factor, priority_weight and "
                f"arrival_time must be numbers (got {fields[5]!r}, {fields[6]!r}, {fields[7]!r}, "
                f"{fields[9]!r})"
            ) from None
        if not job_type:
            raise InputError(
                f"{path}: line {number}: job_type: empty (expected e.g. 'ResNet-50 (batch size 64)')"
            )
        if not (steps > 0 and math.isfinite(steps)):
            raise InputError(f"{path}: line {number}: total_steps: expected > 0 (got {fields[5]!r})")
        if scale < 1:
            raise InputError(f"{path}: line {number}: scale_factor: expected >= 1 (got {scale})")
        if not (weight > 0 and math.isfinite(weight)):
            raise InputError(f"{path}: line {number}: priority_weight: expected > 0 (got {fields[7]!r})")
        if not (arrival >= 0 and math.isfinite(arrival)):
            raise InputError(
                f"{path}: line {number}: arrival_time: expected seconds >= 0 (got {fields[9]!r})"
            )
        if arrival < last:
            raise InputError(
                f"{path}: line {number}: arrival_time: {arrival} is before the previous job's "
                f"{last} (expected non-decreasing arrivals)"
            )
        last = arrival
        jobs.append(GavelJob(job_type, scale, steps, arrival, weight))
    if not jobs:
        raise InputError(f"{path}: no jobs (expected one tab-separated line per job)")
    return jobs


def _scale_factor(rng: random.Random) -> int:
    u = rng.uniform(0, 1)
    if 0.7 <= u <= 0.8:
        return 2
    if 0.8 <= u <= 0.95:
        return 4
    if u >= 0.95:
        return 8
    return 1


def _duration(rng: random.Random) -> float:
    if rng.random() >= 0.8:
        return 60 * 10 ** rng.uniform(3, 4)
    return 60 * 10 ** rng.uniform(1.5, 3)


def generate(
    throughputs: Throughputs,
    jobs: int,
    rate_per_hour: float,
    seed: int = 0,
    multi_gpu: bool = False,
    multi_priority: bool = False,
    fixed_duration: float | None = None,
) -> list[GavelJob]:
    """`jobs` Gavel-style jobs with Poisson arrivals at `rate_per_hour` (see the module docstring)."""
    if jobs < 1:
        raise ValueError(f"jobs: {jobs} (expected >= 1)")
    if not rate_per_hour > 0:
        raise ValueError(f"rate_per_hour: {rate_per_hour} (expected > 0 jobs/h)")
    job_rng = random.Random(seed + 2)
    arrival_rng = random.Random(seed + 3)
    mean_gap = 3600.0 / rate_per_hour
    out: list[GavelJob] = []
    arrival = 0.0
    for _ in range(jobs):
        scale = _scale_factor(job_rng)
        duration = fixed_duration if fixed_duration else _duration(job_rng)
        if not multi_gpu:
            scale = 1
        while True:
            job_type = job_rng.choice(GAVEL_JOB_TABLE)
            if scale == 1 or is_distributed(job_type):
                break
        key = (job_type, scale)
        if key not in throughputs:
            raise InputError(
                f"throughputs: no entry for {key} (Gavel's generator needs every job type of its "
                "table at scale factors 1, 2, 4 and 8 for distributed types)"
            )
        weight = 1.0
        if multi_priority and job_rng.uniform(0, 1) <= 0.2:
            weight = 5.0
        steps = duration * throughputs[key][REFERENCE_TYPE]
        out.append(GavelJob(job_type, scale, steps, arrival, weight, duration))
        arrival += -math.log(1.0 - arrival_rng.random()) * mean_gap
    return out


def to_trace_jobs(
    jobs: Sequence[GavelJob], throughputs: Throughputs, reference: str = REFERENCE_TYPE, prefix: str = "job"
) -> list[TraceJob]:
    """Simulator jobs: work in hours on `reference` at the job's (type, scale factor) throughput, per-type
    speeds relative to it; GPU types where the key's throughput is 0 are not allowed. Names are
    `<prefix>-<index>` in the given order (Gavel's job ids)."""
    out = []
    for i, job in enumerate(jobs):
        key = (job.job_type, job.scale_factor)
        thr = throughputs.get(key)
        if thr is None:
            raise InputError(
                f"job {i}: no throughput for job type {job.job_type!r} at scale factor "
                f"{job.scale_factor} (known: {len(throughputs)} keys in the throughputs file)"
            )
        ref = thr.get(reference, 0.0)
        if ref <= 0:
            raise InputError(
                f"job {i}: {job.job_type!r} x{job.scale_factor} has no throughput on the "
                f"reference type {reference!r}"
            )
        usable = tuple(g for g in GAVEL_GPU_TYPES if thr.get(g, 0.0) > 0)
        out.append(
            TraceJob(
                name=f"{prefix}-{i}",
                gpus=job.scale_factor,
                work=job.total_steps / ref / 3600.0,
                release=job.arrival / 3600.0,
                gpu_types=usable,
                speeds={g: thr[g] / ref for g in usable},
                priority=job.priority_weight,
                model=job.job_type,
            )
        )
    return out


def lower_bound_hours(jobs: Iterable[GavelJob], throughputs: Throughputs) -> list[float]:
    """Each job's JCT if it ran alone on its fastest GPU type from arrival: no queue, no sharing."""
    return [
        job.total_steps / max(throughputs[(job.job_type, job.scale_factor)].values()) / 3600.0 for job in jobs
    ]


def gavel_cluster(v100: int = 36, p100: int = 36, k80: int = 36, per_node: int = 1) -> Cluster:
    """Gavel's simulated cluster: GPU types named as in its throughputs file, `per_node` GPUs a server
    (Gavel's default 1, so gangs never fragment)."""
    counts = {"v100": v100, "p100": p100, "k80": k80}
    for name, count in counts.items():
        if count < 0 or count % per_node:
            raise ValueError(f"{name}: {count} GPUs (expected >= 0 and a multiple of {per_node} per node)")
    memory = {"v100": 16.0, "p100": 16.0, "k80": 12.0}
    return Cluster(
        gpu_types=[GpuType(name=g, memory_gib=memory[g]) for g in GAVEL_GPU_TYPES if counts[g]],
        nodes=[
            Node(name=f"{g}-{i:03d}", gpu_type=g, gpu_count=per_node)
            for g in GAVEL_GPU_TYPES
            for i in range(counts[g] // per_node)
        ],
    )
