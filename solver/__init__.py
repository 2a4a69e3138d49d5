"""The planning core: a pure function from (cluster, jobs, options) to a Plan.

No I/O, no Kubernetes, no NVML: the operator and the simulator call this same entry point.
`plan` and `PlanOptions` are loaded on first use, so that importing a light submodule (the
free-GPU view and placement the simulator's engine places with) does not load the MILP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpusched.solver.api import plan
    from gpusched.solver.options import PlanOptions

__all__ = ["PlanOptions", "plan"]

_LAZY = {"plan": "gpusched.solver.api", "PlanOptions": "gpusched.solver.options"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
