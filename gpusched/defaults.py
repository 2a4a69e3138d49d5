"""Every planning default, defined once: the planner, the operator, the simulator, the checker and
the CLIs read them from here, so a what-if replayed in the simulator plans with the very settings
the operator runs with (and a change to one is a change to all). It sits in the domain layer, under
solver, scheduler and simulations, so that every one of them may import it.
"""

from __future__ import annotations

from gpusched.model import POLICIES, Policy

HORIZON_H = 24.0
"""Planning horizon (hours): a day ahead is enough to reserve for big gangs and small enough that
the slot model stays fast at thousands of jobs."""
SLOT_H = 0.25
"""Slot length (hours): 15 minutes."""
POLICY: Policy = "jct"
"""The objective the operator and the simulator use unless told otherwise."""
MIGRATION_PENALTY_H = 0.25
"""Hours of a running job's GPUs charged for moving it (on top of its restart overhead)."""
MIN_RUN_H = 0.5
"""A job (re)started less than this long ago is not preempted by the plan for work of the same or
lower priority: preemption must pay for itself, and a gang stopped moments after it started
never does (hysteresis; compare Slurm's PreemptExemptTime)."""
WINDOW = 64
"""Queued jobs in the core of the planning window (see gpusched.solver.frontend)."""
SCAN_LIMIT = 2000
"""Queued jobs looked at, in arrival order, for the fill part of the window."""
FILL_LIMIT = SCAN_LIMIT
"""Most queued jobs past the core that join the window because they fit in the free GPUs now: all
that fit (they start at once and cost the model little), so a burst of submissions on an idle
cluster is placed in one round."""

__all__ = [
    "FILL_LIMIT",
    "HORIZON_H",
    "MIGRATION_PENALTY_H",
    "MIN_RUN_H",
    "POLICIES",
    "POLICY",
    "SCAN_LIMIT",
    "SLOT_H",
    "WINDOW",
]
