"""Seeded planning instances for benchmarks, tests and demos.

Shapes follow what shared training clusters see (Philly, Helios): mostly 1-GPU jobs, a tail of
8-64 GPU gangs, log-normal durations, a few teams, some deadlines, some preemptible jobs.
"""

from __future__ import annotations

import random

from gpusched.model import Cluster, GpuType, Job, Node

TYPE_CATALOGUE = [
    GpuType(name="H100-80GB", memory_gib=80, price_per_hour=4.0, speed=2.0),
    GpuType(name="A100-40GB", memory_gib=40, price_per_hour=2.2, speed=1.0),
    GpuType(name="L4-24GB", memory_gib=24, price_per_hour=0.8, speed=0.45),
    GpuType(name="V100-32GB", memory_gib=32, price_per_hour=1.1, speed=0.6),
]


def make_cluster(gpus: int, n_types: int, gpus_per_node: int = 8, domain_size: int = 4) -> Cluster:
    """`gpus` GPUs split evenly over the first `n_types` catalogue types, 8 to a node."""
    types = TYPE_CATALOGUE[:n_types]
    nodes: list[Node] = []
    per_type = gpus // n_types
    for t in types:
        count = max(1, per_type // gpus_per_node)
        for i in range(count):
            nodes.append(
                Node(
                    name=f"{t.name.split('-')[0].lower()}-{i:03d}",
                    gpu_type=t.name,
                    gpu_count=gpus_per_node,
                    topology_domain=f"{t.name}-island-{i // domain_size}",
                )
            )
    return Cluster(gpu_types=types, nodes=nodes)


def make_jobs(n: int, cluster: Cluster, horizon: float, seed: int = 0, load: float = 1.2) -> list[Job]:
    """`n` jobs whose total demand is about `load` times the cluster's GPU-hours in the horizon."""
    rng = random.Random(seed)
    pool = cluster.total_gpus() // max(1, len(cluster.gpu_types))
    sizes = [g for g in [1] * 60 + [2] * 12 + [4] * 12 + [8] * 10 + [16] * 4 + [32] * 2 if g <= pool // 4]
    raw = []
    for _ in range(n):
        g = rng.choice(sizes)
        d = min(horizon * 0.6, max(0.25, rng.lognormvariate(0.0, 0.9)))
        raw.append((g, d))
    capacity = cluster.total_gpus() * horizon
    demand = sum(g * d for g, d in raw) or 1.0
    scale = load * capacity / demand
    types = [t.name for t in cluster.gpu_types]
    teams = ["vision", "nlp", "speech", "research"]
    jobs = []
    for i, (g, d) in enumerate(raw):
        duration = max(0.25, min(horizon * 0.6, d * scale))
        release = round(rng.uniform(0, horizon * 0.5), 2) if rng.random() < 0.4 else 0.0
        deadline = None
        if rng.random() < 0.2:
            deadline = round(release + duration * rng.uniform(1.5, 4.0) + 0.5, 2)
        allowed = None
        if rng.random() < 0.25:
            allowed = rng.sample(types, k=max(1, len(types) - 1))
        jobs.append(
            Job(
                name=f"job-{i:05d}",
                gpus=g,
                duration=round(duration, 3),
                gpu_types=allowed,
                priority=rng.choice([1.0, 1.0, 1.0, 2.0, 4.0]),
                team=rng.choice(teams),
                release=release,
                deadline=deadline,
                preemptible=rng.random() < 0.5,
                restart_overhead=0.1,
            )
        )
    return jobs
