"""The default worker command runs on exactly the environment the operator gives a worker pod.

`python -m gpusched.workload.launch` reads torchrun's PET_* variables (Kubeflow's PyTorchJob names,
which the operator sets); the names earlier operators set are only a fallback. Real workers, gloo on
the CPU; only the rendezvous address is this machine's (no cluster DNS here).
"""

from __future__ import annotations

from typing import Any

from gpusched.scheduler.crd import GPUJobSpec
from gpusched.scheduler.podspec import DEFAULT_COMMAND, worker_manifest
from gpusched.workload_contract import EXIT_FINISHED


def test_the_launcher_runs_a_gang_from_a_worker_pods_environment(workload: Any) -> None:
    spec = GPUJobSpec.model_validate(
        {
            "gpus": 2,
            "gpusPerNode": 2,
            "work": {"duration": "1h"},
            "checkpoint": {"volume": {"emptyDir": {}}, "mountPath": str(workload.tmp / "ckpt")},
        }
    )
    job = {"metadata": {"name": "tiny", "namespace": "ml", "uid": "u"}}
    pod = worker_manifest(job, spec, attempt=1, rank=0, node="n0")
    assert pod["spec"]["containers"][0]["command"] == DEFAULT_COMMAND
    env = {v["name"]: v["value"] for v in pod["spec"]["containers"][0]["env"] if "value" in v}
    port = str(workload.free_port())
    env.update(PET_MASTER_ADDR="127.0.0.1", MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=port, MASTER_PORT=port)
    # The earlier names say something else (a launcher reading them exits 2 at once): PET_* must win.
    env.update(NNODES="2", NODE_RANK="5", NPROC_PER_NODE="3")
    assert env["GPUSCHED_CHECKPOINT_DIR"] == str(workload.tmp / "ckpt" / "tiny")
    result = workload.run([*workload.tiny, "--steps", "2"], launcher="gpusched", env=env)
    assert result.returncode == EXIT_FINISHED, result.stderr[-3000:]
    assert result.first("start")["world_size"] == 2
