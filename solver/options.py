"""What a caller may ask of the planner, independent of how it is solved."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gpusched.defaults import HORIZON_H, MIGRATION_PENALTY_H, SLOT_H
from gpusched.model import Policy, SolverName


class PlanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Policy = "cost"
    horizon: float = Field(default=HORIZON_H, gt=0)
    """Planning horizon in hours."""
    slot: float = Field(default=SLOT_H, gt=0)
    """Slot length in hours (15 minutes by default)."""
    solver: SolverName = "cbc"
    time_limit: float | None = Field(default=None, gt=0)
    """Seconds; the best feasible plan found by then is returned."""
    epoch: datetime | None = None
    threads: int = Field(default=1, ge=1)
    seed: int = 0
    migration_penalty: float = Field(default=MIGRATION_PENALTY_H, ge=0)
    """Hours of the job's GPUs charged for moving a running job (on top of restart_overhead)."""
