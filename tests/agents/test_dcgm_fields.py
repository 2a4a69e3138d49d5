"""dcgm-exporter's default fields beyond the basics: energy, memory temperature, PCIe throughput and
replays, NVLink data, read through the real nvidia-ml-py from the stub and served on /metrics.

An unsupported field gives no sample (not a zero), as dcgm-exporter does; a field error other than
'not supported' is a field error (the GPU becomes unknown), as for every other field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpusched.agents.agent import Agent
from gpusched.agents.metrics import make_registry

MakeAgent = Callable[..., Any]

CONFIG = (
    "profile h100x8\n"
    "energy 1 123456789\nmemtemp 1 51\npcie 1 2048 4096\nreplay 1 7\nnvlink_data 1 1000 3000\n"
    "unsupported 3 energy\nunsupported 3 memory_temp\nunsupported 3 pcie_throughput\n"
    "unsupported 3 pcie_replay\nunsupported 3 nvlink_data\n"
)


def families(agent: Agent) -> dict[str, dict[tuple[str, ...], float]]:
    text = generate_latest(make_registry(agent)).decode()
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.labels.get("gpu", ""), s.labels.get("link", ""), s.labels.get("direction", ""))
            out.setdefault(s.name, {})[key] = s.value
    return out


def test_new_fields_are_read(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent(CONFIG)
    g1 = agent.poll_once().gpus[1]
    assert g1.energy_mj == 123456789
    assert g1.memory_temperature_c == 51
    assert (g1.pcie_tx_kbps, g1.pcie_rx_kbps) == (2048, 4096)
    assert g1.pcie_replay_count == 7
    assert [(t.link, t.tx_kib, t.rx_kib) for t in g1.nvlink_traffic] == [(n, 1000, 3000) for n in range(18)]
    assert g1.health == "healthy"


def test_unsupported_fields_are_absent_not_zero(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent(CONFIG)
    g3 = agent.poll_once().gpus[3]
    assert g3.energy_mj is None and g3.memory_temperature_c is None
    assert g3.pcie_tx_kbps is None and g3.pcie_rx_kbps is None and g3.pcie_replay_count is None
    assert g3.nvlink_traffic == []
    assert g3.health == "healthy"  # not supported is not a fault
    fams = families(agent)
    for name in (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_PCIE_TX_THROUGHPUT",
        "DCGM_FI_DEV_PCIE_RX_THROUGHPUT",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
    ):
        gpus = {k[0] for k in fams[name]}
        assert "3" not in gpus and "1" in gpus and "0" in gpus, name


def test_dcgm_names_and_values_on_metrics(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent(CONFIG)
    agent.poll_once()
    fams = families(agent)
    assert fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][("1", "", "")] == 123456789
    assert fams["DCGM_FI_DEV_MEMORY_TEMP"][("1", "", "")] == 51
    assert fams["DCGM_FI_DEV_MEMORY_TEMP"][("0", "", "")] == 40
    assert fams["DCGM_FI_DEV_PCIE_TX_THROUGHPUT"][("1", "", "")] == 2048
    assert fams["DCGM_FI_DEV_PCIE_RX_THROUGHPUT"][("1", "", "")] == 4096
    assert fams["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"][("1", "", "")] == 7
    assert fams["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"][("1", "", "")] == 18 * 4000
    assert fams["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"][("0", "", "")] == 0  # idle links count 0, they exist
    per_link = fams["gpusched_gpu_nvlink_data_kib"]
    assert per_link[("1", "17", "tx")] == 1000 and per_link[("1", "0", "rx")] == 3000


def test_no_nvlink_on_a_pcie_gpu_gives_no_sample(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\nunsupported 5 nvlink\n")
    assert agent.poll_once().gpus[5].nvlink_traffic == []
    fams = families(agent)
    assert "5" not in {k[0] for k in fams["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"]}
    assert "5" not in {k[0] for k in fams["gpusched_gpu_nvlink_data_kib"]}


def test_a_field_value_error_marks_the_gpu_unknown_and_names_the_field(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile h100x8\nerror 2 memory_temp 999\n")
    g2 = agent.poll_once().gpus[2]
    assert g2.memory_temperature_c is None
    assert g2.health == "unknown"
    assert any("field 82" in r and "nvmlDeviceGetFieldValues" in r for r in g2.health_reasons), (
        g2.health_reasons
    )
    assert g2.nvlink_traffic  # the other values of the same call are still read


def test_a_lost_gpu_in_the_field_values_call_is_lost(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile a100x4mig\nerror 1 field_values 15\n")
    g1 = agent.poll_once().gpus[1]
    assert g1.health == "unhealthy" and "GPU lost" in g1.health_reasons[0]


def test_mesh_nvlink_counts_only_the_gpus_links(make_agent: MakeAgent) -> None:
    agent: Agent = make_agent("profile a100x4mig\nnvlink_data 0 5 6\n")
    g0 = agent.poll_once().gpus[0]
    assert [t.link for t in g0.nvlink_traffic] == list(range(12))  # A100: 12 links
    assert {(t.tx_kib, t.rx_kib) for t in g0.nvlink_traffic} == {(5, 6)}
