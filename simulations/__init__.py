"""Discrete-event simulation of gpusched and baseline policies over real and synthetic GPU job traces.

The simulator calls the very same planner (gpusched.solver.plan) as the live operator, so a what-if
is a replay of the real decision code. Entry points: `gpusched simulate` (cli.py), `Simulator`
(engine.py), trace loaders (traces.py) and the published-number checks (validate.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpusched.simulations.engine import SimConfig, Simulator, simulate_trace
    from gpusched.simulations.workload import TraceJob

__all__ = ["SimConfig", "Simulator", "TraceJob", "simulate_trace"]

_LAZY = {
    "SimConfig": "gpusched.simulations.engine",
    "Simulator": "gpusched.simulations.engine",
    "simulate_trace": "gpusched.simulations.engine",
    "TraceJob": "gpusched.simulations.workload",
}


def __getattr__(name: str) -> Any:
    """The engine loads on first use, so the CLI can read the policy names without it."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
