"""What the reconciler decided, as data: the applier executes these, tests assert on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Obj = dict[str, Any]


@dataclass(frozen=True)
class JobRef:
    key: str
    namespace: str
    name: str
    uid: str


@dataclass
class PatchStatus:
    job: JobRef
    patch: Obj
    """A JSON merge patch of .status (camelCase)."""


@dataclass
class CreateService:
    job: JobRef
    manifest: Obj


@dataclass
class StartGang:
    """Create every worker pod, then bind each to its node; if any step fails, delete them all."""

    job: JobRef
    attempt: int
    pods: list[tuple[Obj, str]]
    """(pod manifest, node) per rank."""
    then_status: Obj | None = None
    """Status merge patch written once every worker is bound (phase Running, placement, attempt)."""
    then_event: tuple[str, str] | None = None
    """(reason, message) of the Normal event emitted once every worker is bound."""


@dataclass
class DeletePods:
    job: JobRef
    names: list[str]
    grace_seconds: int
    why: str = ""


@dataclass
class Emit:
    job: JobRef
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = PatchStatus | CreateService | StartGang | DeletePods | Emit


@dataclass
class Decisions:
    actions: list[Action] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)

    def for_job(self, key: str) -> list[Action]:
        return [a for a in self.actions if a.job.key == key]
