"""The GPUJob custom resource as pydantic models: what users write (spec) and what we report (status).

The CRD in deploy/crds/gpujobs.yaml validates the same fields on the API server; these models are
the operator's own reading of them, so a resource that slipped past an older CRD version still
fails here with a message that names the field, instead of crashing the loop.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator
from pydantic.alias_generators import to_camel

from gpusched.units import Hours

GROUP = "gpusched.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "GPUJob"
PLURAL = "gpujobs"
GPUNODE_PLURAL = "gpunodes"

SCHEDULER_NAME = "gpusched"
"""Our pods name this schedulerName, so kube-scheduler leaves them to us (we bind them)."""
GPU_RESOURCE = "nvidia.com/gpu"

# Labels and annotations on the objects we create. Pod names are deterministic
# (<job>-a<attempt>-w<rank>) so that a restarted operator re-creating them gets 409, not duplicates.
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_VALUE = "gpusched"
LABEL_JOB = "gpusched.io/job"
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

Phase = Literal["Pending", "Planned", "Running", "Preempting", "Preempted", "Succeeded", "Failed"]
TERMINAL: tuple[str, ...] = ("Succeeded", "Failed")


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class Checkpoint(_Camel):
    volume: dict[str, Any] | None = None
    """A pod volume source (persistentVolumeClaim, nfs, ...) mounted at mount_path in every worker."""
    mount_path: str = "/checkpoints"
    interval: Hours | None = Field(default=None, gt=0)
    grace_period_seconds: int = Field(default=120, ge=0, le=3600)
    """How long a preempted worker gets between SIGTERM and SIGKILL to write its checkpoint."""
    restart_overhead: Hours = Field(default=0.0, ge=0)


class Work(_Camel):
    """The estimated work: hours on reference_type (or a speed-1.0 GPU), or GPU-hours."""

    duration: Hours | None = Field(default=None, gt=0)
    gpu_hours: float | None = Field(default=None, gt=0)
    reference_type: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Work:
        if (self.duration is None) == (self.gpu_hours is None):
            raise ValueError("exactly one of 'duration' or 'gpuHours' must be given")
        return self


class WorkerTemplate(_Camel):
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


class GPUJobSpec(_Camel):
    gpus: PositiveInt
    gpus_per_node: PositiveInt | None = None
    """nproc per node; one worker pod per gpus_per_node GPUs. Default: min(gpus, 8)."""
    gpu_types: list[str] | None = None
    min_gpu_memory_gib: float = Field(default=0.0, ge=0, alias="minGpuMemoryGiB")
    priority: float = Field(default=1.0, gt=0)
    team: str = "default"
    deadline: str | None = None
    """ISO-8601 datetime."""
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
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class PlacementStatus(_Camel):
    node: str
    gpus: int


class GPUJobStatus(_Camel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    phase: Phase = "Pending"
    planned_start: str | None = None
    planned_end: str | None = None
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


def pod_name(job: str, attempt: int, rank: int) -> str:
    return f"{job}-a{attempt}-w{rank}"


def service_name(job: str) -> str:
    return job
