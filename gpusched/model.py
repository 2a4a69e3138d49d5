"""The domain model every part of gpusched shares: GPU types, nodes, clusters, jobs and plans.

All times are float hours from the plan's epoch (see gpusched.units); file formats accept
'90m'/'2h' spellings and ISO datetimes, which gpusched.config resolves against the epoch.
Models are strict about unknown fields so a typo in a YAML file is an error, not a silent default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from gpusched.safeio import shown
from gpusched.units import Hours

MAX_NODE_GPUS = 4096
"""Accelerators on one node (a TPU slice counts as a node): beyond it a count is a typo."""
MAX_GANG = 1_000_000
MAX_QUANTITY = 1e6
"""Upper bound of prices ($/h), memory (GiB), priorities: a finite number a person could mean."""
MAX_SPEED = 1e4


def _whole_number(value: Any) -> Any:
    """Counts are integers in the file: `gpus: true` or `gpus: "4"` is refused, not read as 1 or 4."""
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__index__")):
        raise ValueError(f"expected a whole number, not {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("expected a whole number")
    return value


def _number(value: Any) -> Any:
    """Quantities are numbers in the file: `price_per_hour: true` or `"2.5"` is refused."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"expected a number, not {type(value).__name__}")
    return value


def _flag(value: Any) -> Any:
    """Flags are true/false in the file: `preemptible: 1` or `"no"` is refused."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, not {type(value).__name__}")
    return value


Count = Annotated[int, BeforeValidator(_whole_number)]
Quantity = Annotated[float, BeforeValidator(_number)]
Flag = Annotated[bool, BeforeValidator(_flag)]
PositiveInt = Annotated[Count, Field(gt=0, le=MAX_GANG)]
PositiveFloat = Annotated[Quantity, Field(gt=0, le=MAX_QUANTITY)]
NonNegativeFloat = Annotated[Quantity, Field(ge=0, le=MAX_QUANTITY)]


class Strict(BaseModel):
    # allow_inf_nan=False: a NaN or infinite number anywhere in a file is an error at the boundary.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------- cluster


class GpuType(Strict):
    """An accelerator model; speed is throughput relative to a speed-1.0 reference GPU."""

    name: str = Field(min_length=1)
    memory_gib: PositiveFloat
    price_per_hour: NonNegativeFloat = 0.0
    speed: Annotated[Quantity, Field(gt=0, le=MAX_SPEED)] = 1.0
    kind: Literal["gpu", "tpu"] = "gpu"


class Node(Strict):
    name: str = Field(min_length=1)
    gpu_type: str
    gpu_count: Annotated[Count, Field(gt=0, le=MAX_NODE_GPUS)]
    unhealthy_gpus: Count = Field(default=0, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    topology_domain: str | None = None
    """NVLink island / rack: a gang kept inside one domain communicates fastest."""
    cordoned: Flag = False
    """No new work (`kubectl cordon`): jobs already running on it keep their GPUs until they end."""

    @model_validator(mode="after")
    def _unhealthy_within_count(self) -> Node:
        if self.unhealthy_gpus > self.gpu_count:
            raise ValueError(f"unhealthy_gpus {self.unhealthy_gpus} exceeds gpu_count {self.gpu_count}")
        return self

    @property
    def healthy_gpus(self) -> int:
        """GPUs open to new work."""
        return 0 if self.cordoned else self.gpu_count - self.unhealthy_gpus

    @property
    def working_gpus(self) -> int:
        """GPUs in service, cordoned or not: what running jobs on the node may keep."""
        return self.gpu_count - self.unhealthy_gpus


class CapacityChange(Strict):
    """GPUs out of service in [start, end): maintenance, reservations, known outages.

    Names a node (all of its GPUs unless `gpus` is given) or a GPU type (then `gpus` is required).
    """

    start: Hours = Field(ge=0)
    end: Hours
    node: str | None = None
    gpu_type: str | None = None
    gpus: PositiveInt | None = None
    reason: str = "maintenance"

    @model_validator(mode="after")
    def _check(self) -> CapacityChange:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}h) must be after start ({self.start}h)")
        if (self.node is None) == (self.gpu_type is None):
            raise ValueError("exactly one of 'node' or 'gpu_type' must be given")
        if self.gpu_type is not None and self.gpus is None:
            raise ValueError("'gpus' is required when a gpu_type is named")
        return self


class Cluster(Strict):
    gpu_types: list[GpuType] = Field(min_length=1)
    nodes: list[Node] = Field(default_factory=list)
    maintenance: list[CapacityChange] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_refs(self) -> Cluster:
        _no_duplicates([t.name for t in self.gpu_types], "gpu_types")
        _no_duplicates([n.name for n in self.nodes], "nodes")
        types = {t.name for t in self.gpu_types}
        for i, node in enumerate(self.nodes):
            if node.gpu_type not in types:
                raise ValueError(
                    f"nodes[{i}].gpu_type: unknown GPU type {shown(node.gpu_type)} (known: {sorted(types)})"
                )
        names = {n.name for n in self.nodes}
        for i, change in enumerate(self.maintenance):
            if change.node is not None and change.node not in names:
                raise ValueError(f"maintenance[{i}].node: unknown node {shown(change.node)}")
            if change.gpu_type is not None and change.gpu_type not in types:
                raise ValueError(f"maintenance[{i}].gpu_type: unknown GPU type {shown(change.gpu_type)}")
        return self

    def gpu_type(self, name: str) -> GpuType:
        for t in self.gpu_types:
            if t.name == name:
                return t
        raise KeyError(name)

    def type_map(self) -> dict[str, GpuType]:
        return {t.name: t for t in self.gpu_types}

    def total_gpus(self, gpu_type: str | None = None) -> int:
        return sum(n.gpu_count for n in self.nodes if gpu_type is None or n.gpu_type == gpu_type)

    def healthy_gpus(self, gpu_type: str | None = None) -> int:
        return sum(n.healthy_gpus for n in self.nodes if gpu_type is None or n.gpu_type == gpu_type)


# ------------------------------------------------------------------------------------------------ jobs


class RunningState(Strict):
    """A job that is already running: where, and how much reference work it has done."""

    nodes: dict[str, Annotated[Count, Field(gt=0, le=MAX_NODE_GPUS)]] = Field(min_length=1)
    """node name -> GPUs the job holds there."""
    done: Hours = Field(default=0.0, ge=0)
    """Work completed so far, in reference hours (hours on a speed-1.0 GPU)."""


class Job(Strict):
    """A gang-scheduled training job.

    Work is given either as `duration` (hours on `reference_type`, or on a speed-1.0 GPU when no
    reference type is named) or as `gpu_hours` (GPU-hours at speed 1.0). On type k the job advances
    speed_k reference hours per hour, where speed_k is `speeds[k]` if given, else the type's speed.
    """

    name: str = Field(min_length=1)
    gpus: PositiveInt
    gpu_types: list[str] | None = None
    """Allowed GPU types; None means any type with enough memory."""
    min_gpu_memory_gib: NonNegativeFloat = 0.0
    duration: Hours | None = Field(default=None, gt=0)
    gpu_hours: Annotated[Quantity, Field(gt=0, le=1e9)] | None = None
    reference_type: str | None = None
    speeds: dict[str, Annotated[Quantity, Field(gt=0, le=MAX_SPEED)]] = Field(default_factory=dict)
    priority: PositiveFloat = 1.0
    """Weight in the objective: higher runs earlier and is preempted last."""
    team: str = "default"
    release: Hours = Field(default=0.0, ge=0)
    deadline: Hours | None = None
    preemptible: Flag = False
    restart_overhead: Hours = Field(default=0.0, ge=0)
    """Time lost at every (re)start after a preemption: checkpoint load, warm-up."""
    checkpoint_interval: Hours | None = Field(default=None, gt=0)
    max_nodes: PositiveInt | None = None
    running: RunningState | None = None

    @model_validator(mode="after")
    def _check(self) -> Job:
        if (self.duration is None) == (self.gpu_hours is None):
            raise ValueError("exactly one of 'duration' or 'gpu_hours' must be given")
        if self.deadline is not None and self.deadline <= self.release:
            raise ValueError(f"deadline ({self.deadline}h) must be after release ({self.release}h)")
        if self.running is not None and sum(self.running.nodes.values()) != self.gpus:
            raise ValueError(
                f"running.nodes holds {sum(self.running.nodes.values())} GPUs but the job's gang is {self.gpus}"
            )
        if self.gpu_types is not None and len(self.gpu_types) == 0:
            raise ValueError("gpu_types must not be empty (omit it to allow any type)")
        return self

    def speed_on(self, gpu_type: GpuType) -> float:
        return self.speeds.get(gpu_type.name, gpu_type.speed)

    def total_work(self, types: dict[str, GpuType]) -> float:
        """Work in reference hours (wall-clock hours on a speed-1.0 GPU)."""
        return reference_work(self.gpus, self.duration, self.gpu_hours, self.reference_type, types, self.speeds)

    def remaining_work(self, types: dict[str, GpuType]) -> float:
        done = self.running.done if self.running else 0.0
        return max(0.0, self.total_work(types) - done)

    def allows(self, gpu_type: GpuType) -> bool:
        if self.gpu_types is not None and gpu_type.name not in self.gpu_types:
            return False
        return gpu_type.memory_gib >= self.min_gpu_memory_gib


def reference_work(
    gpus: int,
    duration: float | None,
    gpu_hours: float | None,
    reference_type: str | None,
    types: dict[str, GpuType],
    speeds: dict[str, float] | None = None,
) -> float:
    """The one work formula: a job's work in reference hours (wall-clock hours on a speed-1.0 GPU).

    `gpu_hours` are GPU-hours at speed 1.0, spread over the gang; a `duration` is hours on
    `reference_type` (on a speed-1.0 GPU when none is named, or when the type is unknown), at the
    job's own speed there when `speeds` names one, else the type's. The planner (Job.total_work),
    the operator's snapshot and its progress accounting all read work through this."""
    if gpu_hours is not None:
        return gpu_hours / gpus
    assert duration is not None
    ref = types.get(reference_type) if reference_type is not None else None
    if ref is None:
        return duration
    return duration * (speeds or {}).get(ref.name, ref.speed)


class JobSet(Strict):
    """The jobs file: an optional epoch (ISO datetime) that time offsets count from, and jobs."""

    epoch: datetime | None = None
    jobs: list[Job] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> JobSet:
        _no_duplicates([j.name for j in self.jobs], "jobs")
        return self


def check_jobs_against_cluster(jobs: list[Job], cluster: Cluster) -> None:
    """Reference checks that need both files; raises ValueError with a `jobs[i].field` path."""
    types = cluster.type_map()
    nodes = {n.name: n for n in cluster.nodes}
    holding: dict[str, int] = {}
    for i, job in enumerate(jobs):
        for t in job.gpu_types or []:
            if t not in types:
                raise ValueError(f"jobs[{i}].gpu_types: unknown GPU type {shown(t)} (known: {sorted(types)})")
        for t in job.speeds:
            if t not in types:
                raise ValueError(f"jobs[{i}].speeds: unknown GPU type {shown(t)} (known: {sorted(types)})")
        if job.reference_type is not None and job.reference_type not in types:
            raise ValueError(f"jobs[{i}].reference_type: unknown GPU type {shown(job.reference_type)}")
        if job.running is not None:
            running_types = set()
            for node_name in job.running.nodes:
                if node_name not in nodes:
                    raise ValueError(f"jobs[{i}].running.nodes: unknown node {shown(node_name)}")
                running_types.add(nodes[node_name].gpu_type)
            if len(running_types) > 1:
                raise ValueError(f"jobs[{i}].running.nodes: spans GPU types {sorted(running_types)}")
            for node_name, held in job.running.nodes.items():
                node = nodes[node_name]
                if held > node.gpu_count:
                    raise ValueError(
                        f"jobs[{i}].running.nodes.{node_name}: holds {held} GPUs but the node has "
                        f"{node.gpu_count} (a running job holds at most its node's GPUs)"
                    )
                holding[node_name] = holding.get(node_name, 0) + held
                if holding[node_name] > node.gpu_count:
                    raise ValueError(
                        f"jobs[{i}].running.nodes.{node_name}: running jobs hold {holding[node_name]} GPUs "
                        f"on a node of {node.gpu_count} (at most {node.gpu_count} in all)"
                    )


def _no_duplicates(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{where}[{i}].name: duplicate name {shown(name)}")
        seen.add(name)


# ----------------------------------------------------------------------------------------------- plans


class _Output(BaseModel):
    """What gpusched writes (plans): checked for shape, not for finiteness (a gap may be infinite)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Policy = Literal["cost", "jct", "makespan", "deadline", "fair"]
POLICIES: tuple[str, ...] = get_args(Policy)
"""The policy names, from the one Literal (CLIs should build their choices from this)."""
SolverName = Literal["cbc", "highs"]

UnscheduledReason = Literal["capacity", "type", "memory", "deadline", "gang", "horizon", "time_limit"]


class Placement(_Output):
    node: str
    gpus: PositiveInt


class Segment(_Output):
    """A contiguous run of the job: [start, end) in hours, on one GPU type."""

    start: float
    end: float


class JobPlan(_Output):
    job: str
    status: Literal["scheduled", "running", "unscheduled"]
    gpu_type: str | None = None
    gpus: int = 0
    start: float | None = None
    end: float | None = None
    """Planned completion in hours (may lie past the horizon: see `finishes`)."""
    finishes: bool = False
    segments: list[Segment] = Field(default_factory=list)
    placement: list[Placement] = Field(default_factory=list)
    """Exact nodes for the job's first slot (filled for jobs that start or keep running now)."""
    cost: float = 0.0
    preempted: bool = False
    """A running job that the plan stops now (it will resume later or not in this horizon)."""
    migrated: bool = False
    restarts: int = 0
    deadline_met: bool | None = None
    tardiness: float = 0.0
    reason: str | None = None
    reason_code: UnscheduledReason | None = None


class SlotUsage(_Output):
    slot: int
    start: float
    used: dict[str, int]
    capacity: dict[str, int]


class Plan(_Output):
    policy: Policy
    solver: str
    """The MILP backend: cbc or highs."""
    found_by: str = ""
    """Which search produced the returned schedule (a list order such as `fifo`, `milp`, ...): not
    a policy. A greedy order can be the optimum, which the MILP's bound then proves."""
    status: str
    """'optimal', 'feasible' (time limit or heuristic), or 'infeasible' (some constraints relaxed)."""
    epoch: datetime | None = None
    horizon: float
    slot: float
    objective: float
    lower_bound: float
    gap: float
    solve_time_s: float
    total_cost: float
    jobs: list[JobPlan]
    utilisation: list[SlotUsage] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def job(self, name: str) -> JobPlan:
        for jp in self.jobs:
            if jp.job == name:
                return jp
        raise KeyError(name)

    @property
    def unscheduled(self) -> list[JobPlan]:
        return [jp for jp in self.jobs if jp.status == "unscheduled"]
