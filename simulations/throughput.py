"""Per-type job speeds from Gavel's measured throughput matrix (simulation_throughputs.json).

Gavel measured steps/s of 26 model/batch-size job types alone on K80, P100 and V100
(`{gpu_type: {"('Model (batch size N)', scale)": {"null": steps_per_s, ...co-located...}}}`).
A trace job is mapped to one job type, deterministically from the seed and its name, and its speed on
each cluster type is that type's isolated throughput over the reference type's: the trace's duration
is taken to be measured on the reference type. Cluster types are matched to Gavel's by name
('V100-32GB' -> v100); types Gavel did not measure keep their cluster speed.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import replace
from pathlib import Path

from gpusched.config import InputError
from gpusched.model import Cluster
from gpusched.safeio import read_document
from gpusched.simulations.workload import TraceJob

GAVEL_TYPES = ("k80", "p100", "v100")


def load_matrix(path: Path) -> dict[str, dict[str, float]]:
    """{job type: {gavel gpu type: isolated steps/s}} for scale factor 1 jobs."""
    path = Path(path)
    data = read_document(path)  # size cap, encoding, duplicate keys, finite numbers: one line each
    if not isinstance(data, dict):
        raise InputError(f"{path}: <root>: expected an object of GPU types (got {type(data).__name__})")
    matrix: dict[str, dict[str, float]] = {}
    for gpu in GAVEL_TYPES:
        per_job = data.get(gpu)
        if not isinstance(per_job, dict):
            raise InputError(f"{path}: {gpu}: missing or not an object")
        for key, entry in per_job.items():
            if not key.endswith(", 1)") or not isinstance(entry, dict):
                continue
            value = entry.get("null")
            if not isinstance(value, (int, float)) or value <= 0:
                raise InputError(f"{path}: {gpu}.{key}.null: expected a positive throughput (got {value!r})")
            model = key[2:].rsplit("'", 1)[0]
            matrix.setdefault(model, {})[gpu] = float(value)
    matrix = {m: v for m, v in matrix.items() if all(g in v for g in GAVEL_TYPES)}
    if not matrix:
        raise InputError(f"{path}: no job type with isolated throughputs on {', '.join(GAVEL_TYPES)}")
    return matrix


def gavel_type_of(cluster_type: str) -> str | None:
    name = cluster_type.lower()
    for g in ("p100", "v100", "k80"):
        if g in name:
            return g
    return None


def assign_speeds(
    jobs: list[TraceJob],
    cluster: Cluster,
    matrix: dict[str, dict[str, float]],
    seed: int = 0,
    reference: str | None = None,
) -> list[TraceJob]:
    """Copies of `jobs` with `model` and per-type `speeds` set from the matrix."""
    mapping = {t.name: g for t in cluster.gpu_types if (g := gavel_type_of(t.name)) is not None}
    if not mapping:
        raise InputError(
            f"--throughputs: no cluster GPU type matches Gavel's {', '.join(GAVEL_TYPES)} "
            f"(types: {', '.join(t.name for t in cluster.gpu_types)})"
        )
    ref = reference or ("v100" if "v100" in mapping.values() else sorted(mapping.values())[0])
    models = sorted(matrix)
    out = []
    for job in jobs:
        pick = random.Random(seed * 1_000_003 + zlib.crc32(job.name.encode())).choice(models)
        thr = matrix[pick]
        speeds = {t: thr[g] / thr[ref] for t, g in mapping.items()}
        out.append(replace(job, model=pick, speeds=speeds))
    return out
