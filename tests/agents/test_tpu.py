"""TPU chips through tpu-info, mapped from tpu-info's own data classes (no TPU exists here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tpu_info.device import TpuChip
from tpu_info.metrics import Usage

from gpusched.agents.agent import Agent
from gpusched.agents.tpu import TpuSource, chips_to_telemetry
from gpusched.model import Cluster, GpuType
from gpusched.telemetry_cluster import match_gpu_type

GIB = 1024**3


def test_v5e_chips_with_usage() -> None:
    usages = [
        Usage(device_id=i, memory_usage=(i + 1) * GIB, total_memory=16 * GIB, duty_cycle_pct=10.0 * i)
        for i in range(4)
    ]
    chips = chips_to_telemetry("tpu-host", TpuChip.V5E, 4, usages)
    assert [c.name for c in chips] == ["TPU-v5e"] * 4
    assert all(c.kind == "tpu" for c in chips)
    assert [c.memory_used_mib for c in chips] == [1024, 2048, 3072, 4096]
    assert chips[2].memory_total_mib == 16384 and chips[2].memory_free_mib == 16384 - 3072
    assert [c.utilization_gpu for c in chips] == [0.0, 10.0, 20.0, 30.0]
    assert len({c.uuid for c in chips}) == 4


def test_two_device_chips_sum_their_cores() -> None:
    # v3: two TensorCores per chip; tpu-info repeats the chip's duty cycle per core
    usages = [
        Usage(device_id=d, memory_usage=GIB, total_memory=16 * GIB, duty_cycle_pct=50.0 + d // 2)
        for d in range(4)
    ]
    chips = chips_to_telemetry("h", TpuChip.V3, 2, usages)
    assert [c.memory_total_mib for c in chips] == [32768, 32768]
    assert [c.memory_used_mib for c in chips] == [2048, 2048]
    assert [c.utilization_gpu for c in chips] == [50.0, 51.0]


def test_without_runtime_metrics_chips_are_still_reported() -> None:
    chips = chips_to_telemetry("h", TpuChip.V6E, 8, None)
    assert len(chips) == 8
    assert chips[0].memory_total_mib == 32 * 1024 and chips[0].memory_used_mib is None
    assert chips[0].utilization_gpu is None


def test_tpu_type_matches_a_cluster_type() -> None:
    chip = chips_to_telemetry("h", TpuChip.V5P, 1, None)[0]
    types = [GpuType(name="TPU-v5p", memory_gib=95, kind="tpu"), GpuType(name="H100-80GB", memory_gib=80)]
    matched = match_gpu_type(chip, types)
    assert matched is not None and matched.name == "TPU-v5p"
    _ = Cluster(gpu_types=types)


def test_agent_uses_whichever_sources_the_host_has(make_agent: Callable[..., Any]) -> None:
    usage = [
        Usage(device_id=i, memory_usage=GIB, total_memory=16 * GIB, duty_cycle_pct=5.0) for i in range(4)
    ]
    tpu = TpuSource("tpu-host", get_local_chips=lambda: (TpuChip.V5E, 4), get_chip_usage=lambda chip: usage)
    agent: Agent = make_agent("profile h100x8\ngpus 0\n", node="tpu-host", tpu=tpu)
    snap = agent.poll_once()
    assert snap.sources == ["nvml", "tpu"]
    assert [(g.kind, g.name, g.health) for g in snap.gpus] == [("tpu", "TPU-v5e", "healthy")] * 4


def test_usage_failure_does_not_lose_the_chips(make_agent: Callable[..., Any]) -> None:
    def broken(chip: Any) -> list[Usage]:
        raise ConnectionError("libtpu metrics server not running")

    tpu = TpuSource("h", get_local_chips=lambda: (TpuChip.V5E, 2), get_chip_usage=broken)
    assert tpu.start()
    chips = tpu.poll()
    assert len(chips) == 2 and chips[0].memory_used_mib is None


def test_the_real_library_scan_decides_availability() -> None:
    # The real tpu-info scan of /sys/bus/pci: no Google TPU on a CI machine, and the source says so.
    from tpu_info.device import get_local_chips

    assert TpuSource("h").start() is (get_local_chips()[1] > 0)
