"""The GPUJob custom resource as pydantic models: what users write (spec) and what we report (status).

The CRD in deploy/crds/gpujobs.yaml validates the same fields on the API server; these models are
the operator's own reading of them, so a resource that slipped past an older CRD version still
fails here with a message that names the field, instead of crashing the loop.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator
from pydantic.alias_generators import to_camel

from gpusched.units import Hours, parse_datetime

GROUP = "gpusched.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "GPUJob"
PLURAL = "gpujobs"
GPUNODE_PLURAL = "gpunodes"

SCHEDULER_NAME = "gpusched"
"""Our pods name this schedulerName, so kube-scheduler leaves them to us (we bind them)."""
GPU_RESOURCE = "nvidia.com/gpu"
CHECKPOINT_VOLUME = "gpusched-checkpoint"
"""The pod volume the operator adds for spec.checkpoint.volume."""

# Labels and annotations on the objects we create. Pod names are deterministic
# (<job>-a<attempt>-w<rank>) so that a restarted operator re-creating them gets 409, not duplicates.
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_VALUE = "gpusched"
LABEL_JOB = "gpusched.io/job"
"""The job's name when it is a valid label value (<= 63 characters), else job_label(name)."""
ANN_JOB = "gpusched.io/job-name"
"""The job's full name on every object we create: a derived label value or Service name cannot be
mapped back, so this is what ties a pod to its GPUJob."""
LABEL_ATTEMPT = "gpusched.io/attempt"
LABEL_RANK = "gpusched.io/rank"
ANN_NODE = "gpusched.io/planned-node"
ANN_WORLD = "gpusched.io/world-size"
ANN_GPUS = "gpusched.io/gpus"
ANN_PLACEMENT = "gpusched.io/placement"
"""The whole gang's placement ('node:gpus,...') on every worker: a restart can recreate missing ranks."""
LABEL_GPU_TYPE = "gpusched.io/gpu-type"
LABEL_TOPOLOGY = "gpusched.io/topology-domain"
LABEL_GFD_PRODUCT = "nvidia.com/gpu.product"
LABEL_GFD_MEMORY = "nvidia.com/gpu.memory"

Phase = Literal[
    "Pending", "Planned", "DryRun", "Running", "Preempting", "Preempted", "Succeeded", "Failed", "Invalid"
]
TERMINAL: tuple[str, ...] = ("Succeeded", "Failed")
INVALID = "Invalid"
"""The phase of a GPUJob the operator cannot use (a field of the wrong type or value): never planned,
and not terminal: once the spec is fixed the job is planned like any other."""
DRY_RUN = "DryRun"
"""The phase of a job an operator under --dry-run would start now: planned, and nothing applied."""


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class _Spec(_Camel):
    """What users write: strict types (`gpus: true` or `"8"` is not a number, `preemptible: "yes"` not
    a boolean) and finite numbers, so that a GPUJob the CRD did not catch (an older CRD, a field the
    schema leaves free) is refused with the field named instead of being read as something else."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, strict=True, allow_inf_nan=False
    )


class Checkpoint(_Spec):
    volume: dict[str, Any] | None = None
    """A pod volume source (persistentVolumeClaim, nfs, ...) mounted at mount_path in every worker."""
    mount_path: str = "/checkpoints"
    interval: Hours | None = Field(default=None, gt=0)
    grace_period_seconds: int = Field(default=120, ge=0, le=3600)
    """How long a preempted worker gets between SIGTERM and SIGKILL to write its checkpoint."""
    restart_overhead: Hours = Field(default=0.0, ge=0)


class Work(_Spec):
    """The estimated work: hours on reference_type (or a speed-1.0 GPU), or GPU-hours."""

    duration: Hours | None = Field(default=None, gt=0)
    gpu_hours: float | None = Field(default=None, gt=0)
    reference_type: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Work:
        if (self.duration is None) == (self.gpu_hours is None):
            raise ValueError("exactly one of 'duration' or 'gpuHours' must be given")
        return self


class WorkerTemplate(_Spec):
    """The worker container; env, resources and volumes are passed through as Kubernetes wrote them."""

    image: str = "ghcr.io/gpusched/workload:0.1.0"
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[dict[str, Any]] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    image_pull_policy: str | None = None
    service_account_name: str | None = None
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    port: int = Field(default=29500, ge=1, le=65535)


class GPUJobSpec(_Spec):
    gpus: PositiveInt
    gpus_per_node: PositiveInt | None = None
    """nproc per node; one worker pod per gpus_per_node GPUs. Default: min(gpus, 8)."""
    gpu_types: list[str] | None = None
    min_gpu_memory_gib: float = Field(default=0.0, ge=0, alias="minGpuMemoryGiB")
    priority: float = Field(default=1.0, gt=0)
    team: str = "default"
    deadline: str | None = None
    """ISO-8601 datetime."""

    @field_validator("deadline")
    @classmethod
    def _a_time(cls, value: str | None) -> str | None:
        if value is not None and parse_datetime(value) is None:
            raise ValueError(f"{value[:64]!r} is not an ISO-8601 date-time such as 2026-12-01T18:00:00Z")
        return value

    preemptible: bool = False
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    work: Work
    max_restarts: int = Field(default=3, ge=0)
    template: WorkerTemplate = Field(default_factory=WorkerTemplate)

    @model_validator(mode="after")
    def _divides(self) -> GPUJobSpec:
        if self.gpus % self.per_node:
            raise ValueError(f"gpus ({self.gpus}) must be a multiple of gpusPerNode ({self.per_node})")
        return self

    @model_validator(mode="after")
    def _no_clash(self) -> GPUJobSpec:
        """The checkpoint volume is added to the template's: a real API server refuses a pod with two
        volumes of one name or two mounts at one path (422), so say so here, naming the field."""
        if self.checkpoint.volume is None:
            return self
        if any(v.get("name") == CHECKPOINT_VOLUME for v in self.template.volumes):
            raise ValueError(
                f"template.volumes: the name {CHECKPOINT_VOLUME!r} is reserved for checkpoint.volume"
            )
        if any(m.get("mountPath") == self.checkpoint.mount_path for m in self.template.volume_mounts):
            raise ValueError(
                f"template.volumeMounts: {self.checkpoint.mount_path!r} is checkpoint.mountPath already"
            )
        return self

    @property
    def per_node(self) -> int:
        return self.gpus_per_node or min(self.gpus, 8)

    @property
    def workers(self) -> int:
        return self.gpus // self.per_node


class Progress(_Camel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    step: int = 0
    total_steps: int | None = None
    last_checkpoint_step: int | None = None
    done_hours: float = 0.0
    """Reference hours of work done up to the last stop (the planner's RunningState.done)."""


class Condition(_Camel):
    """A metav1.Condition, as `kubectl wait --for=condition=<type>` reads it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None


class PlacementStatus(_Camel):
    node: str
    gpus: int


class GPUJobStatus(_Camel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    phase: Phase = "Pending"
    planned_start: str | None = None
    planned_end: str | None = None
    planned_at: str | None = None
    """When a full planning round last wrote planned_start (rewrites of a waiting job are spaced)."""
    gpu_type: str | None = None
    nodes: list[str] = Field(default_factory=list)
    placement: list[PlacementStatus] = Field(default_factory=list)
    progress: Progress = Field(default_factory=Progress)
    restarts: int = 0
    reason: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    attempt: int = 0
    """The attempt whose pods exist (or last existed); pod names carry it."""
    started_at: str | None = None
    """When the current attempt's gang was fully bound."""
    first_started_at: str | None = None
    retry_after: str | None = None
    """A failed attempt is retried no earlier than this (exponential backoff)."""
    last_failed_attempt: int = 0
    preempted: int = 0
    reason_code_seen: str | None = None
    """The planner's last reason code for not scheduling the job (one Unschedulable event per change)."""


# ------------------------------------------------------------------------------------------ names
#
# A GPUJob name is a DNS-1123 subdomain of up to 253 characters (dots allowed, may start with a
# digit), but a Service name must be a DNS-1035 label (<= 63, starts with a letter, no dots), a pod's
# subdomain a DNS-1123 label and a label value at most 63 characters. Names that already fit are
# used as they are (readable, and what earlier versions created); any other is shortened to a
# readable prefix plus a hash of the full name, as Kueue names its objects: the same job always maps
# to the same names, so a restarted operator finds what it created.

_HASH_LEN = 8
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX_LABEL = 63
MAX_SUBDOMAIN = 253


def name_hash(name: str) -> str:
    """A short stable digest of the full name (never Python's salted hash())."""
    return hashlib.sha256(name.encode()).hexdigest()[:_HASH_LEN]


def _shorten(prefix: str, full: str, limit: int) -> str:
    """`prefix` cut so that '<prefix>-<hash of full>' fits in limit, ending in an alphanumeric."""
    head = prefix[: limit - _HASH_LEN - 1].rstrip("-.")
    return f"{head}-{name_hash(full)}" if head else name_hash(full)


def service_name(job: str) -> str:
    """The job's headless Service (and its pods' subdomain): a DNS-1035 label of <= 63 characters.

    `7b-pretrain` -> `j-7b-pretrain-<hash>`, `bert.large` -> `bert-large-<hash>`; a name that is
    already a DNS-1035 label of <= 63 characters is kept."""
    if len(job) <= MAX_LABEL and DNS1035_LABEL.match(job):
        return job
    base = job.replace(".", "-")
    if not base[:1].isalpha():
        base = "j-" + base
    return _shorten(base, job, MAX_LABEL)


def job_label(job: str) -> str:
    """The value of the gpusched.io/job label: the name itself when it fits in 63 characters."""
    if len(job) <= MAX_LABEL and LABEL_VALUE.match(job):
        return job
    return _shorten(job, job, MAX_LABEL)


def pod_name(job: str, attempt: int, rank: int) -> str:
    """`<job>-a<attempt>-w<rank>`, a DNS-1123 subdomain of <= 253 characters (a long job name is
    shortened with a hash, so that different long names never share pod names)."""
    suffix = f"-a{attempt}-w{rank}"
    if len(job) + len(suffix) <= MAX_SUBDOMAIN:
        return job + suffix
    return _shorten(job, job, MAX_SUBDOMAIN - len(suffix)) + suffix


def event_name(job: str, unique: str) -> str:
    """`<job>.<unique>` as client-go names Events, kept a DNS-1123 subdomain of <= 253 characters."""
    head = job[: MAX_SUBDOMAIN - len(unique) - 1].rstrip("-.")
    return f"{head}.{unique}"


# ------------------------------------------------------------------------------------- conditions
#
# The Kubernetes API conventions' conditions, one per question a user (or `kubectl wait`) asks:
# is it accepted and planned, is it running, was it stopped to make room, did it complete, did it
# fail. All are written from the first status write on (status False rather than absent), each
# with a CamelCase reason, a message, the metadata.generation it was computed for, and a
# lastTransitionTime that moves only when that condition's status flips.

CONDITION_TYPES: tuple[str, ...] = ("Admitted", "Running", "Preempted", "Complete", "Failed")

_PHASE_REASON = {INVALID: "InvalidSpec"}


def _reason(status: Mapping[str, Any]) -> str:
    phase = status.get("phase") or "Pending"
    if phase == "Pending" and not status.get("plannedStart") and status.get("reasonCodeSeen"):
        return "Unschedulable"
    return _PHASE_REASON.get(phase, phase)


def _states(status: Mapping[str, Any], previous: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    """Which conditions hold in this status (True/False per type)."""
    phase = status.get("phase") or "Pending"
    if phase in TERMINAL:
        # Finishing does not take back an admission; a job that failed before it was ever
        # admitted (a template the API server refused) stays not admitted.
        before = previous.get("Admitted")
        admitted = before.get("status") == "True" if before is not None else phase == "Succeeded"
    elif phase == "Preempted":
        admitted = bool(status.get("plannedStart"))  # re-planned, or waiting unscheduled
    else:
        admitted = phase in ("Planned", DRY_RUN, "Running", "Preempting")
    return {
        "Admitted": admitted,
        "Running": phase == "Running",
        "Preempted": phase in ("Preempting", "Preempted"),
        "Complete": phase == "Succeeded",
        "Failed": phase == "Failed",
    }


def job_conditions(
    status: Mapping[str, Any],
    generation: int | None,
    now: str,
    previous: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The conditions of a GPUJob whose status (camelCase, as stored) is `status`.

    `previous` is the stored condition list: a condition whose status did not change keeps its
    lastTransitionTime. Every condition's reason and message describe the current state (phase
    and status.reason); Admitted and Running carry the message also when False (why not)."""
    before = {str(c.get("type")): c for c in previous or [] if isinstance(c, Mapping)}
    states = _states(status, before)
    reason = _reason(status)
    message = str(status.get("reason") or "")
    out: list[dict[str, Any]] = []
    for kind in CONDITION_TYPES:
        value = "True" if states[kind] else "False"
        old = before.get(kind)
        since = old.get("lastTransitionTime") if old is not None and old.get("status") == value else None
        if kind == "Admitted" and status.get("phase") in TERMINAL and old is not None and since:
            cond_reason, cond_message = str(old.get("reason") or reason), str(old.get("message") or "")
        else:
            cond_reason = reason
            cond_message = message if value == "True" or kind in ("Admitted", "Running") else ""
        cond: dict[str, Any] = {
            "type": kind,
            "status": value,
            "reason": cond_reason,
            "message": cond_message[:32768],
            "lastTransitionTime": since or now,
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        out.append(cond)
    return out


def conditions_after(
    job: Mapping[str, Any] | None, patch: Mapping[str, Any], now: str
) -> list[dict[str, Any]]:
    """The conditions to write with a status merge patch of `job` (the stored object, None if unknown)."""
    status = dict((job or {}).get("status") or {})
    generation = ((job or {}).get("metadata") or {}).get("generation")
    merged = {**status, **{k: v for k, v in patch.items() if k != "conditions"}}
    return job_conditions(merged, generation, now, status.get("conditions"))
