"""The planning core: a pure function from (cluster, jobs, options) to a Plan.

No I/O, no Kubernetes, no NVML: the operator and the simulator call this same entry point.
"""

from gpusched.solver.api import plan
from gpusched.solver.options import PlanOptions

__all__ = ["PlanOptions", "plan"]
