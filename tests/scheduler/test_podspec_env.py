"""Worker pods carry what a bring-your-own image made for Kubeflow's PyTorchJob expects.

The names and meanings are PyTorchJob's (kubeflow/training-operator, pkg/controller.v1/pytorch,
elastic policy off): MASTER_ADDR/MASTER_PORT, WORLD_SIZE = replicas x nprocPerNode, RANK = the pod's
replica index (its node rank), PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE; plus PET_MASTER_ADDR
and PET_MASTER_PORT (Kubeflow Trainer's), which let a bare `torchrun train.py` find rank 0. torchrun
itself is asked what it makes of them.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpusched.scheduler.crd import GPUJobSpec
from gpusched.scheduler.podspec import needs_service, worker_manifest

JOB = {"metadata": {"name": "llm", "namespace": "ml", "uid": "u-1"}}


def _spec(**template: Any) -> GPUJobSpec:
    return GPUJobSpec.model_validate(
        {"gpus": 16, "gpusPerNode": 8, "work": {"duration": "6h"}, "template": {"port": 23456, **template}}
    )


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: a name set twice takes its last value."""
    out: dict[str, str] = {}
    for var in pod["spec"]["containers"][0]["env"]:
        out[var["name"]] = var.get("value", "")
    return out


def test_a_lone_worker_meets_its_ranks_on_loopback_without_a_service() -> None:
    """One worker pod: its ranks find rank 0 inside the pod, so no Service (and no subdomain) exists
    for it; a gang of two points at the Service."""
    lone = GPUJobSpec.model_validate({"gpus": 8, "work": {"duration": "1h"}, "template": {"port": 23456}})
    pod = worker_manifest(JOB, lone, attempt=1, rank=0, node="n0")
    env = env_of(pod)
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == "23456"
    assert "subdomain" not in pod["spec"] and not needs_service(lone)
    assert needs_service(_spec()) and worker_manifest(JOB, _spec(), 1, 0, "n0")["spec"]["subdomain"] == "llm"


@pytest.mark.parametrize("rank", [0, 1])
def test_every_worker_gets_pytorchjobs_variables_for_its_rank(rank: int) -> None:
    env = env_of(worker_manifest(JOB, _spec(), attempt=1, rank=rank, node=f"n{rank}"))
    master = "llm.ml.svc"
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == master
    assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "23456"
    assert env["WORLD_SIZE"] == "16"  # processes: 2 pods x 8
    assert env["RANK"] == env["PET_NODE_RANK"] == str(rank)  # the node rank, as PyTorchJob sets it
    assert env["PET_NNODES"] == "2" and env["PET_NPROC_PER_NODE"] == "8"
    assert env["PYTHONUNBUFFERED"] == "1"
    # The names earlier versions set stay, for images that read them.
    assert (env["NNODES"], env["NODE_RANK"], env["NPROC_PER_NODE"]) == ("2", str(rank), "8")
    assert env["GPUSCHED_JOB_NAME"] == "llm"


def test_the_templates_own_env_wins() -> None:
    spec = _spec(env=[{"name": "PYTHONUNBUFFERED", "value": ""}, {"name": "HF_HOME", "value": "/cache"}])
    env = env_of(worker_manifest(JOB, spec, attempt=1, rank=0, node="n0"))
    assert env["PYTHONUNBUFFERED"] == "" and env["HF_HOME"] == "/cache"


@pytest.mark.parametrize("rank", [0, 1])
def test_a_bare_torchrun_reads_the_pods_variables(rank: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """`torchrun train.py`, no flags, in a worker pod: torchrun's own parser gets the gang's shape."""
    run = pytest.importorskip("torch.distributed.run", reason="torch is not installed (the train extra)")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun sets it when unset: restored after the test
    for key, value in env_of(worker_manifest(JOB, _spec(), attempt=3, rank=rank, node="n")).items():
        monkeypatch.setenv(key, value)
    args = run.get_args_parser().parse_args(["train.py"])
    assert (args.nnodes, args.node_rank, args.nproc_per_node) == ("2", rank, "8")
    assert (args.master_addr, args.master_port) == ("llm.ml.svc", 23456)
    config, _cmd, _args = run.config_from_args(args)
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (2, 2, 8)
    assert config.rdzv_backend == "static" and config.rdzv_endpoint == "llm.ml.svc:23456"
