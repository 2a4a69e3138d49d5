"""Scheduling policies over one interface (base.SchedPolicy): baselines and gpusched's planner."""

from __future__ import annotations

from typing import Any

from gpusched import defaults
from gpusched.model import POLICIES
from gpusched.simulations.policies.base import SchedPolicy

BASELINES = ("fifo", "fifo-backfill", "sjf", "las", "gavel", "gavel-agnostic")
PLANNER_PREFIX = "gpusched"
ALIASES = {"tiresias": "las"}
"""Other names make_policy accepts for a baseline."""


def policy_names() -> list[str]:
    """Every name `make_policy` accepts: baselines, 'gpusched' (= gpusched:<defaults.POLICY>) and
    gpusched:<policy> for each of model.POLICIES: the one list the CLIs' choices come from."""
    return [*BASELINES, PLANNER_PREFIX, *(f"{PLANNER_PREFIX}:{p}" for p in POLICIES)]


def make_policy(name: str, **options: Any) -> SchedPolicy:
    """A fresh policy object by name; unknown names raise ValueError listing the known ones."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key == "fifo":
        from gpusched.simulations.policies.fifo import Fifo

        return Fifo(backfill=bool(options.get("backfill", False)))
    if key == "fifo-backfill":
        from gpusched.simulations.policies.fifo import Fifo

        return Fifo(backfill=True)
    if key == "sjf":
        from gpusched.simulations.policies.fifo import Sjf

        return Sjf()
    if key == "las":
        from gpusched.simulations.policies.las import Las

        promote_after = options.get("las_starvation")
        return Las(thresholds=options.get("las_thresholds"),
                   promote_after=None if promote_after is None else float(promote_after))
    if key in ("gavel", "gavel-agnostic"):
        from gpusched.simulations.policies.gavel import GAVEL_RESET_HOURS, Gavel

        return Gavel(round_hours=float(options.get("round_hours", 0.1)), aware=key == "gavel",
                     reset_hours=float(options.get("reset_hours", GAVEL_RESET_HOURS)))
    if key == PLANNER_PREFIX or key.startswith(PLANNER_PREFIX + ":"):
        from gpusched.simulations.policies.planner import PlannerPolicy

        objective = key.split(":", 1)[1] if ":" in key else defaults.POLICY
        if objective not in POLICIES:
            raise ValueError(f"unknown planner policy {objective!r} (known: {', '.join(POLICIES)})")
        return PlannerPolicy(
            objective=objective,
            replan_minutes=float(options.get("replan_minutes", 5.0)),
            window=int(options.get("plan_window", defaults.WINDOW)),
            horizon=float(options.get("plan_horizon", defaults.HORIZON_H)),
            slot=float(options.get("plan_slot", defaults.SLOT_H)),
            time_limit=float(options.get("plan_time_limit", 5.0)),
        )
    raise ValueError(f"unknown policy {name!r} (known: {', '.join(policy_names())})")


__all__ = ["ALIASES", "BASELINES", "PLANNER_PREFIX", "SchedPolicy", "make_policy", "policy_names"]
