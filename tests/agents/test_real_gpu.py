"""The agent against the real driver, where there is one (marker `gpu`).

Runs `gpusched agent --once --json` in a subprocess that loads the host's libnvidia-ml.so.1 (no
stub), while this process holds GPU memory through torch when torch sees CUDA.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess

import pytest

from gpusched.telemetry import NodeTelemetry

from .conftest import agent_cmd
from .stub_nvml import CONFIG_ENV

pytestmark = pytest.mark.gpu


def _real_nvml() -> bool:
    return ctypes.util.find_library("nvidia-ml") is not None


@pytest.mark.skipif(
    not _real_nvml(), reason="no NVIDIA driver (libnvidia-ml) on this machine: real-GPU check not run"
)
def test_agent_once_on_the_real_driver() -> None:
    held = None
    try:
        import torch

        if torch.cuda.is_available():
            held = torch.empty(2 << 30, dtype=torch.uint8, device="cuda:0")  # 2 GiB on GPU 0
    except ImportError:
        pass
    env = {k: v for k, v in os.environ.items() if k not in (CONFIG_ENV, "LD_LIBRARY_PATH")}
    result = subprocess.run(
        agent_cmd("--once", "--json"), capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    snap = NodeTelemetry.model_validate(json.loads(result.stdout))
    assert snap.sources[0] == "nvml" and snap.driver_version
    assert snap.gpus, "the driver is there but no GPU was reported"
    for gpu in snap.gpus:
        assert gpu.uuid.startswith("GPU-") and gpu.memory_total_mib and gpu.health != "unknown", gpu
        if gpu.compute_capability and float(gpu.compute_capability) >= 7.0:  # NVML: Volta or newer
            assert gpu.energy_mj is not None and gpu.energy_mj > 0, gpu
        print(
            f"GPU {gpu.index}: energy {gpu.energy_mj} mJ, memory {gpu.memory_temperature_c} C, PCIe "
            f"{gpu.pcie_tx_kbps}/{gpu.pcie_rx_kbps} KB/s, replays {gpu.pcie_replay_count}, "
            f"NVLinks {len(gpu.nvlink_traffic)}"
        )
    if held is not None:
        assert snap.gpus[0].memory_used_mib is not None and snap.gpus[0].memory_used_mib >= 2048
    print(result.stdout)
