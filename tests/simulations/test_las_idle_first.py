"""LAS does not preempt a demoted job for a newcomer that idle GPUs of another type could hold.

The openb symptom: jobs that may use any type went to the 2-GPU A10 pool (first in type order) and
preempted the demoted jobs there, 3,453 times, while thousands of G2 GPUs were idle.
"""

from __future__ import annotations

import pytest

from gpusched.model import Cluster
from gpusched.simulations import TraceJob
from gpusched.simulations.engine import Simulator
from gpusched.simulations.metrics import summarise
from gpusched.simulations.policies.las import Las


def small_then_big() -> Cluster:
    """A10 (1 GPU) is cheaper, so it comes first in every job's type order; G2 has 8 idle GPUs."""
    return Cluster.model_validate({
        "gpu_types": [{"name": "A10", "memory_gib": 24, "price_per_hour": 1.0},
                      {"name": "G2", "memory_gib": 24, "price_per_hour": 2.0}],
        "nodes": [{"name": "a10-0", "gpu_type": "A10", "gpu_count": 1},
                  {"name": "g2-0", "gpu_type": "G2", "gpu_count": 8}],
    })  # fmt: skip


def test_a_newcomer_takes_idle_gpus_instead_of_preempting_a_demoted_job() -> None:
    # X (1 GPU, 3 h) starts on the A10 at 0 and crosses the 1 GPU-h threshold at 1 h (queue 1).
    # Z (1 GPU, 0.5 h) arrives at 1.5 in queue 0: G2 is idle, so Z runs there 1.5-2.0 and X keeps
    # the A10 to 3.0. (Before the fix Z took the A10 and X was preempted.)
    jobs = [TraceJob(name="X", gpus=1, work=3.0), TraceJob(name="Z", gpus=1, work=0.5, release=1.5)]
    result = Simulator(small_then_big(), jobs, Las(thresholds=[1.0])).run()
    done = {j.name: (j.finish, j.gpu_type) for j in result.jobs}
    assert done == {"X": (pytest.approx(3.0), "A10"), "Z": (pytest.approx(2.0), "G2")}
    assert summarise(result)["preemptions"] == 0


def test_shared_gpus_count_in_thousandths() -> None:
    # Four 250-milli jobs share the one A10 GPU; a fifth arrives later (queue 0) when the first four
    # are demoted. Counting each as a whole GPU would leave only one of them "kept" and preempt three.
    jobs = [TraceJob(name=f"s{i}", gpus=1, gpu_milli=250, work=8.0) for i in range(4)]
    cluster = Cluster.model_validate({
        "gpu_types": [{"name": "A10", "memory_gib": 24, "price_per_hour": 1.0}],
        "nodes": [{"name": "a10-0", "gpu_type": "A10", "gpu_count": 1}],
    })  # fmt: skip
    result = Simulator(cluster, jobs, Las(thresholds=[1.0])).run()
    assert summarise(result)["preemptions"] == 0
    assert all(j.finish == pytest.approx(8.0) for j in result.jobs)
