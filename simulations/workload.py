"""Jobs as the simulator sees them: the trace's facts (TraceJob) and the run-time state (SimJob).

Plain slotted dataclasses rather than pydantic models: an 82k-job replay touches these objects
millions of times. File formats are validated by pydantic in traces.py before these are built.
Work is in reference hours (hours on a speed-1.0 GPU), as in gpusched.model.Job.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TraceJob:
    """One job of a trace: what it asks for and how much work it is."""

    name: str
    gpus: int
    work: float
    """Reference hours: wall-clock hours of the whole gang on speed-1.0 GPUs."""
    release: float = 0.0
    gpu_milli: int = 1000
    """Share of one GPU (Alibaba openb); < 1000 only for single-GPU jobs."""
    gpu_types: tuple[str, ...] | None = None
    speeds: dict[str, float] = field(default_factory=dict)
    priority: float = 1.0
    team: str = "default"
    deadline: float | None = None
    preemptible: bool = True
    restart_overhead: float = 0.0
    checkpoint_interval: float | None = None
    model: str | None = None
    """Gavel job type (e.g. 'ResNet-50 (batch size 64)') when a throughput matrix is used."""


@dataclass(slots=True, eq=False)
class SimJob:
    """A trace job plus everything that changes while it is simulated."""

    idx: int
    spec: TraceJob
    done: float = 0.0
    """Reference work saved so far (what survives a preemption)."""
    attained: float = 0.0
    """GPU-hours of service received, counted as wall time x GPUs (Tiresias' attained service)."""
    state: str = "future"
    """future -> pending -> running -> (pending ->)* finished."""
    first_start: float | None = None
    finish: float | None = None
    run_start: float = 0.0
    run_overhead: float = 0.0
    run_speed: float = 1.0
    gpu_type: str | None = None
    placement: list[tuple[int, int, int]] = field(default_factory=list)
    """(node index, GPU index on the node, milli) for every GPU share the job holds."""
    finish_token: int = 0
    """Bumped on every start/stop so a stale FINISH event is recognised and ignored."""
    starts: int = 0
    preemptions: int = 0
    failures_hit: int = 0
    drains: int = 0
    """Times a maintenance window of the cluster stopped this job."""
    gpu_hours: float = 0.0
    cost: float = 0.0
    lost_work: float = 0.0
    overhead_hours: float = 0.0
    queue_index: int = 0
    last_queued: float = 0.0
    type_order: list[str] | None = None
    """Cached allowed GPU types, fastest for this job first (see Simulator.allowed_types)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def gpus(self) -> int:
        return self.spec.gpus

    @property
    def remaining(self) -> float:
        return max(0.0, self.spec.work - self.done)
