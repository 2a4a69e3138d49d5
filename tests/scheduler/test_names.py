"""Every GPUJob name the API server accepts gives objects a real API server accepts too.

A GPUJob name is a DNS-1123 subdomain of up to 253 characters; the Service, the pods' subdomain and
the job label have stricter rules. The names the operator derives are checked here against the
stand-in's copy of the API server's own validation (scheduler/apivalidation.py, written from the
Kubernetes sources independently of crd.py), then end to end: jobs with such names run.
"""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from gpusched.scheduler.crd import (
    ANN_JOB,
    GPUJobSpec,
    event_name,
    job_label,
    name_hash,
    pod_name,
    service_name,
)
from gpusched.scheduler.podspec import service_manifest, worker_manifest
from gpusched.testing import apivalidation as v

Harness = Any
Obj = dict[str, Any]

LONG = "pretrain-" + "x" * 61  # 70 characters
AWKWARD = [
    "7b-pretrain",
    "bert.large",
    "llama-3.1-8b-sft",
    LONG,
    "0",
    "a" * 253,
    ".".join(["a" * 60] * 4),  # 243 characters of dotted labels
    "9." + "b" * 62 + ".c",
    "a-" * 126 + "b",  # 253 characters, a hyphen wherever a cut may land
]


def _subdomain(n: int, rng: random.Random) -> str:
    """A random valid GPUJob name of about n characters."""
    alnum = string.ascii_lowercase + string.digits
    parts, total = [], 0
    while total < n:
        size = rng.randint(1, 70)
        body = "".join(rng.choice(alnum + "-") for _ in range(size))
        part = rng.choice(alnum) + body.strip("-") + rng.choice(alnum)
        parts.append(part)
        total += len(part) + 1
    return ".".join(parts)[:253].rstrip(".-")


def _names() -> list[str]:
    rng = random.Random(7)
    return AWKWARD + [_subdomain(rng.randint(1, 260), rng) for _ in range(200)]


@pytest.mark.parametrize("job", _names())
def test_awkward_names_are_valid_gpujob_names(job: str) -> None:
    assert v.is_dns1123_subdomain(job) == [], job


@pytest.mark.parametrize("job", _names())
def test_derived_names_pass_the_api_servers_rules(job: str) -> None:
    assert v.is_dns1123_subdomain(job) == []
    assert v.is_dns1035_label(service_name(job)) == [], service_name(job)
    assert v.is_dns1123_label(service_name(job)) == []  # the pods' subdomain
    assert v.is_valid_label_value(job_label(job)) == [], job_label(job)
    for attempt, rank in ((1, 0), (12345, 999)):
        assert v.is_dns1123_subdomain(pod_name(job, attempt, rank)) == [], pod_name(job, attempt, rank)
    assert v.is_dns1123_subdomain(event_name(job, "17f2a3b4c5d6e7f8")) == []


def test_names_that_fit_are_kept_and_others_are_a_readable_prefix_and_a_stable_hash() -> None:
    assert service_name("llm-7b") == "llm-7b" and job_label("llm-7b") == "llm-7b"
    assert pod_name("llm-7b", 2, 1) == "llm-7b-a2-w1"
    assert service_name("7b-pretrain") == f"j-7b-pretrain-{name_hash('7b-pretrain')}"
    assert service_name("bert.large") == f"bert-large-{name_hash('bert.large')}"
    assert job_label("bert.large") == "bert.large"  # a valid label value as it is
    assert service_name(LONG).startswith("pretrain-xxx") and len(service_name(LONG)) == 63
    assert job_label(LONG).endswith(name_hash(LONG)) and len(job_label(LONG)) == 63
    # Deterministic (a restarted operator must find the same objects), and distinct per job.
    assert service_name(LONG) == service_name(str(LONG))
    names = _names()
    assert len({service_name(n) for n in names}) == len(set(names))
    assert len({job_label(n) for n in names}) == len(set(names))
    assert len({pod_name(n, 1, 0) for n in names}) == len(set(names))
    # Two long names that differ only after the cut still differ.
    a, b = "x" * 250 + "a", "x" * 250 + "b"
    assert pod_name(a, 1, 0) != pod_name(b, 1, 0) and service_name(a) != service_name(b)


def test_worker_objects_of_an_awkward_job_pass_validation_and_point_at_each_other() -> None:
    job = {"metadata": {"name": LONG + ".v2", "namespace": "ml", "uid": "u-1"}}
    spec = GPUJobSpec.model_validate(
        {"gpus": 16, "gpusPerNode": 8, "work": {"duration": "6h"}, "template": {"port": 23456}}
    )
    svc = service_manifest(job, spec.template.port)
    pod = worker_manifest(job, spec, 3, 1, "n1")
    assert v.validate_service(svc) == []
    assert v.validate_pod(pod) == []
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == f"{svc['metadata']['name']}.ml.svc"
    assert pod["spec"]["subdomain"] == svc["metadata"]["name"]
    labels = pod["metadata"]["labels"]
    assert all(labels[k] == val for k, val in svc["spec"]["selector"].items() if k != "gpusched.io/rank")
    assert pod["metadata"]["annotations"][ANN_JOB] == svc["metadata"]["annotations"][ANN_JOB] == LONG + ".v2"
    # The Service publishes the template's rendezvous port, the one MASTER_PORT names.
    assert svc["spec"]["ports"][0]["port"] == svc["spec"]["ports"][0]["targetPort"] == 23456
    assert env["MASTER_PORT"] == "23456"


def test_jobs_with_names_a_service_cannot_have_run_end_to_end(harness: Harness) -> None:
    """`7b-pretrain` (starts with a digit), `bert.large` (a dot) and a 70-character name: each gets its
    Service and workers (two: a lone worker needs no Service), and finishes; on a real API server
    each object would be refused otherwise."""
    h = harness
    for node in "abcdef":
        h.add_node(f"gpu-{node}", gpus=8)
    jobs = ["7b-pretrain", "bert.large", LONG]
    for name in jobs:
        h.submit(name, 16, per_node=8)
    h.start_operator()
    for name in jobs:
        h.wait_phase(name, "Running", timeout=40)
        pods = h.pods(name)
        assert len(pods) == 2, pods
        for pod in pods:
            assert pod["metadata"]["annotations"][ANN_JOB] == name
            assert h.pod_env(pod)["MASTER_ADDR"] == f"{service_name(name)}.{h.namespace}.svc"
            assert pod["spec"]["subdomain"] == service_name(name)
        svc = h.kube.call(
            "read service",
            lambda svc=service_name(name): h.kube.core.read_namespaced_service(
                svc, h.namespace, _preload_content=False
            ),
        )
        assert svc["spec"]["clusterIP"] == "None"
        assert "Started" in [e["reason"] for e in h.events(name)]
    for name in jobs:
        h.finish(name)
        h.wait_phase(name, "Succeeded", timeout=30)


def test_pods_are_tied_to_their_job_by_the_full_name_annotation() -> None:
    """A long job's pods carry a shortened label: the snapshot must still find them (a restarted
    operator would otherwise start the gang again), and pods of earlier versions (label only) too."""
    from datetime import datetime, timezone

    from gpusched.model import GpuType
    from gpusched.scheduler.snapshot import SnapshotConfig, build_snapshot

    def job(name: str) -> Obj:
        return {
            "metadata": {"name": name, "namespace": "ml", "uid": f"u-{name}"},
            "spec": {"gpus": 8, "work": {"duration": "1h"}},
            "status": {"phase": "Running", "attempt": 1},
        }

    spec = GPUJobSpec.model_validate({"gpus": 8, "work": {"duration": "1h"}})
    pods = []
    for name in (LONG, "legacy"):
        pod = worker_manifest(job(name), spec, 1, 0, "n1")
        pod["spec"]["nodeName"] = "n1"
        pod["status"] = {"phase": "Running"}
        if name == "legacy":
            del pod["metadata"]["annotations"][ANN_JOB]
        pods.append(pod)
    assert pods[0]["metadata"]["labels"]["gpusched.io/job"] != LONG
    node = {
        "metadata": {"name": "n1", "labels": {"gpusched.io/gpu-type": "H100-80GB"}},
        "spec": {},
        "status": {"allocatable": {"nvidia.com/gpu": "16"}},
    }
    cfg = SnapshotConfig(gpu_types=[GpuType(name="H100-80GB", memory_gib=80, price_per_hour=4.0)])
    snap = build_snapshot([job(LONG), job("legacy")], pods, [node], [], cfg, datetime.now(timezone.utc))
    for name in (LONG, "legacy"):
        view = snap.jobs[f"ml/{name}"]
        assert [p.name for p in view.pods] == [pod_name(name, 1, 0)] and view.state == "running", view.state
