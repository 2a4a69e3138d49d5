"""The NVML reader against the stub libnvidia-ml.so.1, through the real nvidia-ml-py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gpusched.agents.agent import Agent
from gpusched.telemetry import NodeTelemetry, canonical_gpu_type

MakeAgent = Callable[..., Any]


def by_index(snap: NodeTelemetry) -> dict[int, Any]:
    return {g.index: g for g in snap.gpus}


def test_h100_profile_reads_every_field(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\nprocess 2 4242 30000\nutil 2 87 41\n")
    snap = agent.poll_once()
    assert snap.sources == ["nvml"]
    assert (snap.driver_version, snap.cuda_version) == ("550.54.15", "12.4")
    assert len(snap.gpus) == 8
    assert len({g.uuid for g in snap.gpus}) == 8
    g0 = snap.gpus[0]
    assert g0.name == "NVIDIA H100 80GB HBM3"
    assert canonical_gpu_type(g0.name, g0.memory_total_mib) == "H100-80GB"
    assert g0.pci_bus_id == "00000000:18:00.0"
    assert g0.memory_total_mib == 81559
    assert g0.compute_capability == "9.0"
    assert g0.power_limit_w == 700 and g0.power_w == 70
    assert (g0.sm_clock_mhz, g0.mem_clock_mhz) == (1980, 2619)
    assert g0.ecc_uncorrected_volatile == 0
    assert g0.remapped_rows_pending is False and g0.remapped_rows_failure is False
    assert g0.mig_mode is False and g0.mig_devices == []
    assert g0.throttle_reasons == ["gpu_idle"]
    assert g0.temperature_c == 30
    g2 = snap.gpus[2]
    assert [(p.pid, p.used_memory_mib) for p in g2.processes] == [(4242, 30000)]
    assert g2.memory_used_mib == 30004 and g2.memory_free_mib == 81559 - 30004
    assert (g2.utilization_gpu, g2.utilization_memory) == (87, 41)
    assert all(g.health == "healthy" and g.health_reasons == [] for g in snap.gpus)
    # NVSwitch baseboard: every pair sees all 18 links; the PCIe path is there for nothing.
    assert snap.topology["0"]["0"] == "X"
    assert {snap.topology[str(i)][str(j)] for i in range(8) for j in range(8) if i != j} == {"NV18"}


def test_a100_mig_profile(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile a100x4mig\n")
    snap = agent.poll_once()
    assert len(snap.gpus) == 4
    for gpu in snap.gpus:
        assert gpu.name == "NVIDIA A100-SXM4-40GB"
        assert canonical_gpu_type(gpu.name, gpu.memory_total_mib) == "A100-40GB"
        assert gpu.mig_mode is True
        assert [m.profile for m in gpu.mig_devices] == ["3g.20gb", "3g.20gb"]
        assert all(m.uuid and m.uuid.startswith("MIG-") for m in gpu.mig_devices)
        assert [m.memory_total_mib for m in gpu.mig_devices] == [19968, 19968]
        # NVML does not report utilisation with MIG enabled: absent, and no reason to distrust the GPU
        assert gpu.utilization_gpu is None and gpu.utilization_memory is None
        assert gpu.health == "healthy"
        assert gpu.compute_capability == "8.0"
    # a 4-GPU NVLink mesh: 4 links between every pair, counted from the remote PCI ids
    assert {snap.topology[str(i)][str(j)] for i in range(4) for j in range(4) if i != j} == {"NV4"}
    assert snap.driver_version == "535.161.08"


def test_unsupported_fields_are_absent_not_errors(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent(
        "profile h100x8\nunsupported * temperature\nunsupported 1 ecc\nunsupported 1 remap\n"
        "unsupported 3 processes\nunsupported 3 clocks_event\nunsupported 4 compute_capability\n"
    )
    snap = agent.poll_once()
    gpus = by_index(snap)
    assert all(g.temperature_c is None for g in snap.gpus)
    assert gpus[1].ecc_uncorrected_volatile is None and gpus[1].remapped_rows_failure is None
    assert gpus[3].processes == [] and gpus[3].throttle_reasons == []
    assert gpus[4].compute_capability is None
    assert gpus[0].ecc_uncorrected_volatile == 0  # others still read
    assert all(g.health == "healthy" for g in snap.gpus), [g.health_reasons for g in snap.gpus]


def test_gpu_lost_is_unhealthy_and_the_others_keep_reporting(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\nlost 6\n")
    for _ in range(3):
        snap = agent.poll_once()
        gpus = by_index(snap)
        assert gpus[6].health == "unhealthy"
        assert "GPU lost" in gpus[6].health_reasons[0]
        assert all(gpus[i].health == "healthy" for i in range(8) if i != 6)


def test_gpu_lost_after_start_keeps_its_identity(
    make_agent: MakeAgent, stub_config: Callable[[str], Any]
) -> None:
    agent: Agent = make_agent("profile h100x8\n")
    uuid = by_index(agent.poll_once())[5].uuid
    stub_config("profile h100x8\nlost 5\n")
    gpu = by_index(agent.poll_once())[5]
    assert gpu.health == "unhealthy"
    assert gpu.uuid == uuid and gpu.name == "NVIDIA H100 80GB HBM3"


def test_uncorrected_ecc_and_row_remapping(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\necc 1 3\nremap 2 0 1\nremap 3 1 0\n")
    gpus = by_index(agent.poll_once())
    assert gpus[1].ecc_uncorrected_volatile == 3
    assert gpus[1].health == "unhealthy" and "uncorrected ECC" in gpus[1].health_reasons[0]
    assert gpus[2].remapped_rows_failure is True and gpus[2].health == "unhealthy"
    assert gpus[3].remapped_rows_pending is True and gpus[3].health == "degraded"
    assert gpus[0].health == "healthy"


def test_temperature_power_and_throttle_thresholds(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\ntemp 0 88\ntemp 1 97\npower 2 760000\nclocks_event 3 64\n")
    gpus = by_index(agent.poll_once())
    assert gpus[0].health == "degraded" and "temperature 88C" in gpus[0].health_reasons[0]
    assert gpus[1].health == "unhealthy"
    assert gpus[2].health == "degraded" and "power 760W" in gpus[2].health_reasons[0]
    assert gpus[3].throttle_reasons == ["hw_thermal_slowdown"] and gpus[3].health == "degraded"


def test_xid_79_event_makes_the_gpu_unhealthy(
    make_agent: MakeAgent, stub_config: Callable[[str], Any]
) -> None:
    agent: Agent = make_agent("profile h100x8\n", watch_xids=True)
    assert agent.xids is not None and agent.xids.ready.wait(10)
    assert agent.xids.registered == set(range(8))
    stub_config("profile h100x8\nxid 5 79\nxid 2 13\n")
    deadline = time.monotonic() + 20
    while agent.xids.events_total < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent.xids.snapshot() == {5: [79], 2: [13]}
    gpus = by_index(agent.poll_once())
    assert gpus[5].xid_errors == [79]
    assert gpus[5].health == "unhealthy" and gpus[5].health_reasons == ["XID 79 (fatal)"]
    # XID 13 (graphics engine exception) is the application's fault: recorded, not held against the GPU
    assert gpus[2].xid_errors == [13] and gpus[2].health == "healthy"
    assert agent.xids._thread is not None and agent.xids._thread.is_alive()


def test_hung_call_is_cut_off_and_that_gpu_reported_unknown(make_agent: MakeAgent) -> None:
    # GPU 3's memory query sleeps 3 s; the poll's deadline is 0.3 s.
    agent: Agent = make_agent("profile h100x8\nhang 3 memory 3000\n", poll_timeout=0.3)
    snap = agent.poll_once()
    gpus = by_index(snap)
    assert gpus[3].health == "unknown"
    assert "nvmlDeviceGetMemoryInfo" in gpus[3].health_reasons[0]
    assert gpus[3].memory_total_mib is None  # the reading never arrived
    assert all(gpus[i].health == "healthy" and gpus[i].memory_total_mib == 81559 for i in range(8) if i != 3)
    # While the call is still stuck, the next poll does not queue another call behind it.
    again = by_index(agent.poll_once())
    assert again[3].health == "unknown" and "still hung" in again[3].health_reasons[0]
    assert agent.stats.poll_timeouts == 2
    assert gpus[3].uuid == "GPU-5a1e0003-1003-2003-3003-000000abc003"  # identity read before the hang


def test_a_failing_call_marks_the_gpu_unknown(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\nerror 4 temperature 999\n")
    gpus = by_index(agent.poll_once())
    assert gpus[4].health == "unknown"
    assert "nvmlDeviceGetTemperature" in gpus[4].health_reasons[0]
    assert gpus[4].power_w == 74  # the other fields still read
    assert gpus[5].health == "healthy"


def test_gpu_count_follows_the_profile(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\ngpus 2\n")
    assert [g.index for g in agent.poll_once().gpus] == [0, 1]
