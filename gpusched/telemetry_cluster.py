"""Build a Cluster from a directory of agent JSON snapshots (`gpusched plan --telemetry DIR`).

GPU types, prices and maintenance come from the cluster file (`base`): the hardware says what is
there and healthy, the file says what it costs. Each snapshot's GPUs are matched to a type of
`base` by product name; a snapshot whose heartbeat is older than `max_age` counts every GPU as
unhealthy (the agent is gone, so nothing it said can be trusted).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import ValidationError

from gpusched import safeio
from gpusched.config import InputError, format_validation_error
from gpusched.model import Cluster, GpuType, Node
from gpusched.telemetry import GpuTelemetry, NodeTelemetry, canonical_gpu_type

SCHEDULABLE = ("healthy", "degraded")
UNREADABLE_NAMES = ("", "unknown")


def load_snapshot(path: Path) -> NodeTelemetry:
    data = safeio.parse_document(safeio.read_text(path), str(path), "json")
    try:
        return NodeTelemetry.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_validation_error(str(path), exc)) from None


def match_gpu_type(gpu: GpuTelemetry, types: list[GpuType]) -> GpuType | None:
    """Exact name, then the canonical name ('H100-80GB'), then a type whose name prefixes it ('H100')."""
    by_name = {t.name: t for t in types}
    if gpu.name in by_name:
        return by_name[gpu.name]
    canonical = canonical_gpu_type(gpu.name, gpu.memory_total_mib)
    if canonical in by_name:
        return by_name[canonical]
    lowered = {t.name.lower(): t for t in types}
    if canonical.lower() in lowered:
        return lowered[canonical.lower()]
    prefixes = [t for t in types if canonical.lower().startswith(t.name.lower())]
    if prefixes:
        return max(prefixes, key=lambda t: len(t.name))  # the most specific prefix
    return None


def cluster_from_telemetry(
    directory: Path,
    base: Cluster,
    max_age: timedelta | None = None,
    now: datetime | None = None,
    option: str = "telemetry",
) -> Cluster:
    """base's GPU types and maintenance, with nodes built from every *.json snapshot in directory.

    `option` names where the directory came from (e.g. '--telemetry') in errors.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{option}: {directory}: not a directory (expected a directory of agent snapshots)")
    if not any(p.is_file() for p in directory.glob("*.json")):
        raise InputError(
            f"{option}: {directory}: no agent snapshots in it (expected <node>.json files from "
            "`gpusched agent --publish file`)"
        )
    now = now or datetime.now(timezone.utc)
    types = base.gpu_types
    known = sorted(t.name for t in types)
    nodes: list[Node] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        snap = load_snapshot(path)
        if snap.node in seen:
            raise InputError(f"{path}: node: {snap.node!r} is also reported by {seen[snap.node]}")
        seen[snap.node] = path
        if not snap.gpus:
            continue  # a node without accelerators offers nothing to plan on
        matched: dict[str, GpuType] = {}
        for i, gpu in enumerate(snap.gpus):
            if gpu.name.strip().lower() in UNREADABLE_NAMES:
                continue  # the agent could not read it (lost GPU): counted below as unhealthy
            gpu_type = match_gpu_type(gpu, types)
            if gpu_type is None:
                canonical = canonical_gpu_type(gpu.name, gpu.memory_total_mib)
                raise InputError(
                    f"{path}: gpus[{i}].name: GPU {gpu.index} ({gpu.uuid}) is {gpu.name!r} "
                    f"(canonical {canonical!r}), which matches no GPU type of the cluster file "
                    f"(known: {known})"
                )
            matched[gpu_type.name] = gpu_type
        if not matched:
            continue  # no GPU could even be named: nothing schedulable
        if len(matched) > 1:
            raise InputError(
                f"{path}: gpus: node {snap.node!r} mixes GPU types {sorted(matched)}; "
                "a node must hold one type"
            )
        gpu_type_name = next(iter(matched))
        stale = max_age is not None and snap.is_stale(now, max_age)
        count = len(snap.gpus)
        unhealthy = count if stale else count - snap.schedulable_gpus()
        try:
            node = Node(
                name=snap.node,
                gpu_type=gpu_type_name,
                gpu_count=count,
                unhealthy_gpus=unhealthy,
                labels=dict(snap.labels),
                topology_domain=snap.topology_domain,
            )
        except ValidationError as exc:
            raise InputError(format_validation_error(f"{path}: as a node", exc)) from None
        nodes.append(node)
    # Maintenance of a node that sent no snapshot has nothing left to act on.
    names = {n.name for n in nodes}
    maintenance = [m for m in base.maintenance if m.node is None or m.node in names]
    try:
        return Cluster(gpu_types=list(types), nodes=nodes, maintenance=maintenance)
    except ValidationError as exc:
        raise InputError(format_validation_error(str(directory), exc)) from None
