"""Discrete-event simulation of gpusched and baseline policies over real and synthetic GPU job traces.

The simulator calls the very same planner (gpusched.solver.plan) as the live operator, so a what-if
is a replay of the real decision code. Entry points: `gpusched simulate` (cli.py), `Simulator`
(engine.py), trace loaders (traces.py) and the published-number checks (validate.py).
"""

from gpusched.simulations.engine import SimConfig, Simulator, simulate_trace
from gpusched.simulations.workload import TraceJob

__all__ = ["SimConfig", "Simulator", "TraceJob", "simulate_trace"]
