"""Seeded generators of small planning instances of the shapes issue #10 names.

Each shape is small enough for the exact oracle (<= 8 jobs, <= 4 nodes, <= 12 one-hour slots) and
keeps every wall time a multiple of 0.25 h (speeds 1 or 2, durations in half hours, overheads in
quarter hours) so "the job is done inside its last slot" is never a rounding question.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpusched.model import Cluster, Job

SHAPES = (
    "big_gangs",
    "tight_deadlines",
    "six_types",
    "maintenance",
    "cordoned",
    "skewed",
    "running",
    "overload",
)


@dataclass
class Instance:
    shape: str
    seed: int
    cluster: Cluster
    jobs: list[Job]
    horizon: float
    slot: float = 1.0

    def label(self) -> str:
        return f"{self.shape}-{self.seed}"

    def to_yaml(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(cluster.yaml, jobs.yaml) contents, for a reproduction."""
        cluster = self.cluster.model_dump(mode="json", exclude_defaults=True)
        jobs = {"jobs": [j.model_dump(mode="json", exclude_defaults=True) for j in self.jobs]}
        return cluster, jobs


TWO_TYPES = [
    {"name": "A", "memory_gib": 80, "price_per_hour": 3.0, "speed": 2.0},
    {"name": "B", "memory_gib": 40, "price_per_hour": 1.0, "speed": 1.0},
]
SIX_TYPES = [
    {"name": "H200", "memory_gib": 141, "price_per_hour": 5.0, "speed": 2.0},
    {"name": "H100", "memory_gib": 80, "price_per_hour": 4.0, "speed": 2.0},
    {"name": "A100-80", "memory_gib": 80, "price_per_hour": 2.5, "speed": 1.0},
    {"name": "A100-40", "memory_gib": 40, "price_per_hour": 2.0, "speed": 1.0},
    {"name": "L40S", "memory_gib": 48, "price_per_hour": 1.5, "speed": 1.0},
    {"name": "T4", "memory_gib": 16, "price_per_hour": 0.5, "speed": 1.0},
]


def _job(rng: random.Random, k: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": f"j{k}",
        "gpus": rng.choice([1, 2, 4]),
        "duration": rng.choice([0.5, 1.0, 1.5, 2.0, 3.0]),
        "priority": rng.choice([1.0, 1.0, 2.0, 3.0]),
        "release": rng.choice([0.0, 0.0, 0.0, 1.0, 2.0]),
        "preemptible": rng.random() < 0.3,
        "restart_overhead": rng.choice([0.0, 0.25, 0.5]),
    }
    base.update(fields)
    return base


def _nodes(rng: random.Random, types: list[str], n: int, counts: list[int]) -> list[dict[str, Any]]:
    return [
        {"name": f"n{i}", "gpu_type": types[i % len(types)], "gpu_count": rng.choice(counts)}
        for i in range(n)
    ]


def _big_gangs(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    nodes = _nodes(rng, ["A", "B"], 4, [8])
    jobs = []
    for k in range(rng.randint(4, 7)):
        gpus = rng.choice([4, 8, 8, 16])
        jobs.append(_job(rng, k, gpus=gpus, max_nodes=rng.choice([None, 1, 2]) if gpus <= 8 else 2))
    return {"gpu_types": TWO_TYPES, "nodes": nodes}, jobs, 10.0


def _tight_deadlines(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    nodes = _nodes(rng, ["A", "B"], rng.randint(2, 3), [4, 8])
    jobs = []
    for k in range(rng.randint(4, 8)):
        job = _job(rng, k)
        slack = rng.choice([0.0, 0.5, 1.0, 2.0, 3.0])
        job["deadline"] = job["release"] + job["duration"] + slack
        jobs.append(job)
    return {"gpu_types": TWO_TYPES, "nodes": nodes}, jobs, 8.0


def _six_types(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    names = [t["name"] for t in SIX_TYPES]
    chosen = rng.sample(names, 4)
    nodes = [{"name": f"n{i}", "gpu_type": chosen[i], "gpu_count": rng.choice([2, 4, 8])} for i in range(4)]
    jobs = []
    for k in range(rng.randint(4, 8)):
        job = _job(rng, k, min_gpu_memory_gib=rng.choice([0.0, 24.0, 48.0, 80.0]))
        if rng.random() < 0.3:
            job["gpu_types"] = rng.sample(chosen, 2)
        if rng.random() < 0.3:
            job["speeds"] = {rng.choice(chosen): rng.choice([1.0, 2.0])}
        jobs.append(job)
    # Every job must have somewhere to run (else it is an input error, not a plan).
    types = {t["name"]: t for t in SIX_TYPES}
    pools = {n["gpu_type"]: n["gpu_count"] for n in nodes}
    for job in jobs:
        fit = [
            t
            for t in chosen
            if types[t]["memory_gib"] >= job.get("min_gpu_memory_gib", 0)
            and (job.get("gpu_types") is None or t in job["gpu_types"])
            and pools[t] >= job["gpus"]
        ]
        if not fit:
            job.pop("gpu_types", None)
            job["min_gpu_memory_gib"] = 0.0
            job["gpus"] = min(job["gpus"], max(pools.values()))
    return {"gpu_types": SIX_TYPES, "nodes": nodes}, jobs, 8.0


def _maintenance(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    nodes = _nodes(rng, ["A"], 2, [8]) + _nodes(rng, ["B"], 1, [4])
    nodes[2]["name"] = "n2"
    for n in nodes:
        n["unhealthy_gpus"] = rng.choice([0, 0, 1, 2])
    maintenance: list[dict[str, Any]] = [
        {"node": rng.choice(["n0", "n1"]), "start": float(rng.randint(1, 4)), "end": float(rng.randint(5, 7))}
    ]
    if rng.random() < 0.5:
        maintenance.append({"gpu_type": "A", "gpus": 2, "start": 2.0, "end": 4.0})
    if rng.random() < 0.5:
        maintenance.append({"node": "n2", "gpus": 2, "start": 0.0, "end": 3.0})
    jobs = [_job(rng, k, gpu_types=["A"] if rng.random() < 0.5 else None) for k in range(rng.randint(3, 6))]
    # A running job on the node under maintenance, and one on a node that lost GPUs.
    jobs.append(
        _job(
            rng,
            len(jobs),
            gpus=4,
            release=0.0,
            duration=6.0,
            gpu_types=None,
            running={"nodes": {maintenance[0]["node"]: 4}, "done": 1.0},
            preemptible=rng.random() < 0.5,
        )
    )
    return {"gpu_types": TWO_TYPES, "nodes": nodes, "maintenance": maintenance}, jobs, 10.0


def _cordoned(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    # A cordoned node holding a low-priority running job, little room elsewhere, urgent new work:
    # preempting the job must not open the cordoned node to anyone.
    nodes = _nodes(rng, ["A"], rng.randint(2, 3), [4, 8])
    nodes[0]["cordoned"] = True
    nodes[0]["gpu_count"] = 8
    held = rng.choice([4, 8])
    jobs = [
        _job(
            rng,
            0,
            gpus=held,
            priority=1.0,
            release=0.0,
            duration=rng.choice([3.0, 6.0]),
            running={"nodes": {"n0": held}, "done": 0.5},
            preemptible=rng.random() < 0.7,
        ),
    ]
    jobs += [
        _job(rng, k, gpus=rng.choice([2, 4, 8]), priority=rng.choice([2.0, 3.0, 5.0]))
        for k in range(1, rng.randint(4, 6))
    ]
    return {"gpu_types": TWO_TYPES[:1], "nodes": nodes}, jobs, 8.0


def _skewed(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    nodes = _nodes(rng, ["A", "B"], 3, [4, 8])
    jobs = [_job(rng, k, duration=rng.choice([0.5, 0.5, 1.0, 6.0, 9.0])) for k in range(rng.randint(4, 8))]
    return {"gpu_types": TWO_TYPES, "nodes": nodes}, jobs, 12.0


def _running(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    nodes = _nodes(rng, ["A", "B"], 4, [4, 8])
    free = {n["name"]: n["gpu_count"] for n in nodes}
    jobs = []
    for k in range(rng.randint(4, 8)):
        job = _job(rng, k)
        if rng.random() < 0.5:
            node = rng.choice(nodes)
            if free[node["name"]] >= job["gpus"]:
                free[node["name"]] -= job["gpus"]
                job["running"] = {"nodes": {node["name"]: job["gpus"]}, "done": rng.choice([0.0, 0.5, 1.0])}
                job["release"] = 0.0
                job["duration"] = job["duration"] + job["running"]["done"]
                job["preemptible"] = rng.random() < 0.5
        jobs.append(job)
    return {"gpu_types": TWO_TYPES, "nodes": nodes}, jobs, 8.0


def _overload(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    nodes = _nodes(rng, ["A", "B"], 2, [4])
    jobs = [_job(rng, k, gpus=rng.choice([2, 4]), duration=rng.choice([2.0, 3.0, 4.0])) for k in range(6)]
    return {"gpu_types": TWO_TYPES, "nodes": nodes}, jobs, 8.0


GENERATORS: dict[str, Callable[[random.Random], tuple[dict[str, Any], list[dict[str, Any]], float]]] = {
    "big_gangs": _big_gangs,
    "tight_deadlines": _tight_deadlines,
    "six_types": _six_types,
    "maintenance": _maintenance,
    "cordoned": _cordoned,
    "skewed": _skewed,
    "running": _running,
    "overload": _overload,
}


def generate(shape: str, seed: int) -> Instance:
    rng = random.Random(f"{shape}:{seed}")
    cluster_data, job_data, horizon = GENERATORS[shape](rng)
    for job in job_data:
        if job.get("deadline") is not None and job["deadline"] <= job["release"]:
            job["deadline"] = job["release"] + job["duration"]
        if job.get("running"):
            # A running job runs where it is: its type must be allowed.
            job.pop("gpu_types", None)
            job["min_gpu_memory_gib"] = 0.0
    cluster = Cluster.model_validate(cluster_data)
    jobs = [Job.model_validate(j) for j in job_data]
    return Instance(shape, seed, cluster, jobs, horizon)


def cases(n_per_shape: int, start: int = 0) -> list[tuple[str, int]]:
    return [(shape, seed) for seed in range(start, start + n_per_shape) for shape in SHAPES]
