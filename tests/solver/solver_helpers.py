"""Helpers to write planner tests as small, hand-checkable YAML-like dicts."""

from __future__ import annotations

from typing import Any

from gpusched.model import Cluster, Job, Plan
from gpusched.solver import PlanOptions, plan
from gpusched.verify import check_plan


def make_cluster(types: list[dict[str, Any]], nodes: list[dict[str, Any]], **extra: Any) -> Cluster:
    return Cluster.model_validate({"gpu_types": types, "nodes": nodes, **extra})


def run(cluster: Cluster, jobs: list[dict[str, Any]] | list[Job], **options: Any) -> Plan:
    parsed = [j if isinstance(j, Job) else Job.model_validate(j) for j in jobs]
    options.setdefault("horizon", 8.0)
    options.setdefault("slot", 1.0)
    options.setdefault("time_limit", 30)
    result = plan(cluster, parsed, PlanOptions(**options))
    problems = check_plan(cluster, parsed, result)
    assert problems == [], problems
    return result
