"""Lower bounds that hold whatever the solver did, so every plan can state its quality."""

from __future__ import annotations

import numpy as np

from gpusched.solver.instance import Instance
from gpusched.solver.policies import MakespanPolicy, Policy


def trivial_bound(inst: Instance, policy: Policy) -> float:
    """Every job alone on the cluster: its cheapest start, or its penalty if it has none.

    Valid because capacity only removes choices; the makespan term is bounded by the latest of the
    jobs' earliest completions. Fairness's term is bounded below by zero.
    """
    total = 0.0
    span = 0.0
    for info in inst.jobs:
        if not info.plannable:
            continue
        penalty = policy.unscheduled_penalty(info)
        best = penalty
        earliest = float("inf")
        for opt in inst.all_options(info):
            rng = inst.start_range(info, opt)
            if len(rng):  # every start at once: the same numbers as coefficient(), as arrays
                starts = np.arange(rng.start, rng.stop, dtype=np.int64)
                best = min(best, float(policy.coefficients(info, opt, starts).min()))
                earliest = min(earliest, policy.completion(info, opt, rng.start))
        total += best
        # The job either runs (the span is at least its earliest end) or pays its penalty instead.
        span = max(span, min(earliest, penalty - best))
    if isinstance(policy, MakespanPolicy):
        total += span
    return total
