"""The objects a started job owns: one worker pod per gpus_per_node GPUs and, for a gang of several
workers, the headless Service through which they find rank 0.

Names are deterministic (pod <job>-a<attempt>-w<rank>, Service <job>; crd.py shortens what a real
API server would refuse), so creating them twice is a 409, never a duplicate; every object carries
an owner reference to the GPUJob, so deleting the job lets Kubernetes' garbage collector remove them.
"""

from __future__ import annotations

from typing import Any

from gpusched.model import Placement
from gpusched.scheduler.crd import (
    ANN_GPUS,
    ANN_JOB,
    ANN_NODE,
    ANN_PLACEMENT,
    ANN_WORLD,
    API_VERSION,
    CHECKPOINT_VOLUME,
    GPU_RESOURCE,
    KIND,
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_MANAGED,
    LABEL_RANK,
    MANAGED_VALUE,
    SCHEDULER_NAME,
    GPUJobSpec,
    job_label,
    pod_name,
    service_name,
)
from gpusched.workload_contract import ENV_CHECKPOINT_DIR, ENV_JOB_NAME, TERMINATION_MESSAGE_PATH

Obj = dict[str, Any]

DEFAULT_COMMAND = ["python", "-m", "gpusched.workload.launch"]
"""Starts PET_NPROC_PER_NODE ranks of `python -m gpusched.workload` from PET_NNODES, PET_NODE_RANK,
PET_MASTER_ADDR and PET_MASTER_PORT, as torchrun's static launch does, but exits with the workers'
agreed code: torchrun turns a worker's 75 (preempted after a checkpoint) into its own 1."""


def torch_env(job: str, namespace: str, spec: GPUJobSpec, rank: int) -> list[Obj]:
    """The variables a worker pod gets, as Kubeflow's PyTorchJob (elastic off) sets them, so that an
    image made for it runs unchanged, `torchrun train.py` with no flags included.

    torchrun reads its flags from PET_<FLAG> (PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE,
    PET_MASTER_ADDR, PET_MASTER_PORT). MASTER_ADDR/MASTER_PORT, WORLD_SIZE (processes in the job)
    and RANK (this pod's node rank; torchrun gives each process its own RANK) are PyTorchJob's.
    NNODES, NODE_RANK and NPROC_PER_NODE are the names earlier gpusched versions set, kept for
    images that read them."""
    # Rank 0 behind the job's headless Service; a job of one worker is its own rank 0 and gets no
    # Service (one request less per start: see needs_service).
    master = f"{service_name(job)}.{namespace}.svc" if needs_service(spec) else LOOPBACK
    port = str(spec.template.port)
    pairs = [
        ("MASTER_ADDR", master),
        ("MASTER_PORT", port),
        ("WORLD_SIZE", str(spec.gpus)),
        ("RANK", str(rank)),
        ("PET_NNODES", str(spec.workers)),
        ("PET_NODE_RANK", str(rank)),
        ("PET_NPROC_PER_NODE", str(spec.per_node)),
        ("PET_MASTER_ADDR", master),
        ("PET_MASTER_PORT", port),
        ("NNODES", str(spec.workers)),
        ("NODE_RANK", str(rank)),
        ("NPROC_PER_NODE", str(spec.per_node)),
        ("PYTHONUNBUFFERED", "1"),
        (ENV_JOB_NAME, job),
    ]
    return [{"name": k, "value": v} for k, v in pairs]


LOOPBACK = "127.0.0.1"
"""MASTER_ADDR of a job with one worker: its ranks meet inside the pod (torchrun's own default)."""


def needs_service(spec: GPUJobSpec) -> bool:
    """Only a gang of several worker pods needs the headless Service: its ranks find rank 0 through
    the Service's DNS name. A lone worker's ranks meet on the loopback address."""
    return spec.workers > 1


def rank_nodes(placement: list[Placement], per_node: int) -> list[str] | None:
    """Node of every worker rank, in placement order; None when a node's share is not whole workers."""
    out: list[str] = []
    for p in placement:
        if p.gpus % per_node:
            return None
        out.extend([p.node] * (p.gpus // per_node))
    return out


def owner_reference(job: Obj) -> Obj:
    meta = job.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def service_manifest(job: Obj, port: int = 29500) -> Obj:
    """The headless Service whose DNS name is MASTER_ADDR; `port` is the template's rendezvous port."""
    meta = job["metadata"]
    name = meta["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name),
            "namespace": meta.get("namespace", "default"),
            "labels": {LABEL_MANAGED: MANAGED_VALUE, LABEL_JOB: job_label(name)},
            "annotations": {ANN_JOB: name},
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "clusterIP": "None",
            # Rank 0 must resolve before it is Ready: torchrun's rendezvous is how it becomes ready.
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB: job_label(name), LABEL_RANK: "0", LABEL_MANAGED: MANAGED_VALUE},
            "ports": [{"name": "rendezvous", "port": port, "targetPort": port}],
        },
    }


def placement_annotation(placement: list[Placement]) -> str:
    return ",".join(f"{p.node}:{p.gpus}" for p in placement)


def parse_placement_annotation(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in (text or "").split(","):
        node, _, gpus = part.rpartition(":")
        if node and gpus.isdigit():
            out[node] = out.get(node, 0) + int(gpus)
    return out


def worker_manifest(
    job: Obj, spec: GPUJobSpec, attempt: int, rank: int, node: str, placement: list[Placement] | None = None
) -> Obj:
    meta = job["metadata"]
    name, ns = meta["name"], meta.get("namespace", "default")
    tpl = spec.template
    per_node = spec.per_node
    env = torch_env(name, ns, spec, rank)
    mounts = list(tpl.volume_mounts)
    volumes = list(tpl.volumes)
    if spec.checkpoint.volume is not None:
        volumes.append({**spec.checkpoint.volume, "name": CHECKPOINT_VOLUME})
        mounts.append({"name": CHECKPOINT_VOLUME, "mountPath": spec.checkpoint.mount_path})
        env.append({"name": ENV_CHECKPOINT_DIR, "value": f"{spec.checkpoint.mount_path}/{name}"})
    # The template's own variables come last: a name set twice takes its last value in the container.
    env.extend(tpl.env)
    resources: Obj = {k: dict(v) for k, v in tpl.resources.items() if isinstance(v, dict)}
    resources.setdefault("limits", {})[GPU_RESOURCE] = str(per_node)
    if "requests" in resources:
        resources["requests"][GPU_RESOURCE] = str(per_node)
    container: Obj = {
        "name": "worker",
        "image": tpl.image,
        "command": tpl.command if tpl.command is not None else DEFAULT_COMMAND,
        "env": env,
        "resources": resources,
        "ports": [{"name": "rendezvous", "containerPort": tpl.port}],
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
    }
    if tpl.args is not None:
        container["args"] = tpl.args
    if mounts:
        container["volumeMounts"] = mounts
    if tpl.image_pull_policy:
        container["imagePullPolicy"] = tpl.image_pull_policy
    pod_spec: Obj = {
        "schedulerName": SCHEDULER_NAME,
        "restartPolicy": "Never",
        "hostname": f"w{rank}",
        "terminationGracePeriodSeconds": spec.checkpoint.grace_period_seconds,
        "containers": [container],
    }
    if needs_service(spec):
        pod_spec["subdomain"] = service_name(name)
    if volumes:
        pod_spec["volumes"] = volumes
    if tpl.service_account_name:
        pod_spec["serviceAccountName"] = tpl.service_account_name
    if tpl.tolerations:
        pod_spec["tolerations"] = tpl.tolerations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(name, attempt, rank),
            "namespace": ns,
            "labels": {
                LABEL_MANAGED: MANAGED_VALUE,
                LABEL_JOB: job_label(name),
                LABEL_ATTEMPT: str(attempt),
                LABEL_RANK: str(rank),
            },
            "annotations": {
                ANN_JOB: name,
                ANN_NODE: node,
                ANN_WORLD: str(spec.workers),
                ANN_GPUS: str(per_node),
                ANN_PLACEMENT: placement_annotation(placement or [Placement(node=node, gpus=per_node)]),
            },
            "ownerReferences": [owner_reference(job)],
        },
        "spec": pod_spec,
    }
