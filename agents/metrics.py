"""Prometheus /metrics with dcgm-exporter's metric and label names, plus gpusched's own.

Names and labels follow NVIDIA dcgm-exporter (default counters file) so existing Grafana
dashboards and alerts work against the agent unchanged: DCGM_FI_DEV_* gauges labelled gpu, UUID,
device, modelName, Hostname, pci_bus_id. A custom collector renders the agent's latest snapshot at
scrape time, so a scrape never touches NVML and costs nothing between scrapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpusched.agents.agent import Agent
from gpusched.agents.health import HEALTH_STATES
from gpusched.agents.nvml import THROTTLE_REASONS
from gpusched.metrics_server import MetricsServer as HttpMetricsServer
from gpusched.telemetry import GpuTelemetry

log = logging.getLogger(__name__)

LABELS = ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"]
POD_LABELS = ["pod", "namespace", "container"]
"""dcgm-exporter's labels for the container holding the GPU (--kubernetes-pod-labels); empty, which
Prometheus reads as absent, on a GPU no container holds."""
_MIB_PER_BYTE = 1.0 / (1024 * 1024)

# name, help, GpuTelemetry attribute (dcgm-exporter units: %, MiB, C, W, MHz)
GAUGES: list[tuple[str, str, str]] = [
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "utilization_gpu"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", "utilization_memory"),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "memory_used_mib"),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "memory_free_mib"),
    ("DCGM_FI_DEV_FB_TOTAL", "Framebuffer memory total (in MiB).", "memory_total_mib"),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "temperature_c"),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "power_w"),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W).", "power_limit_w"),
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "sm_clock_mhz"),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", "mem_clock_mhz"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).", "memory_temperature_c"),
    # dcgm-exporter types the next four counters; as for ECC below, a gauge keeps the exact name
    # (prometheus_client would append _total to a counter), and rate()/increase() work the same.
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", "energy_mj"),
    ("DCGM_FI_DEV_PCIE_TX_THROUGHPUT", "PCIe TX throughput (in KB/s) via NVML.", "pcie_tx_kbps"),
    ("DCGM_FI_DEV_PCIE_RX_THROUGHPUT", "PCIe RX throughput (in KB/s) via NVML.", "pcie_rx_kbps"),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", "pcie_replay_count"),
]


def _labels(gpu: GpuTelemetry, host: str) -> list[str]:
    device = f"nvidia{gpu.index}" if gpu.kind == "gpu" else f"accel{gpu.index}"
    return [str(gpu.index), gpu.uuid, gpu.pci_bus_id or "", device, gpu.name, host]


class AgentCollector(Collector):
    """Renders Agent.latest at scrape time."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        snap = self.agent.latest
        stats = self.agent.stats
        host = self.agent.node
        info = GaugeMetricFamily(
            "gpusched_agent_info",
            "Agent and driver versions.",
            labels=["Hostname", "version", "driver_version", "cuda_version", "sources"],
        )
        if snap is not None:
            info.add_metric(
                [
                    host,
                    snap.agent_version or "",
                    snap.driver_version or "",
                    snap.cuda_version or "",
                    ",".join(snap.sources),
                ],
                1,
            )
        yield info
        yield CounterMetricFamily("gpusched_agent_polls", "Polls completed.", value=stats.polls)
        yield CounterMetricFamily(
            "gpusched_agent_poll_timeouts",
            "GPU reads cut off by the poll timeout.",
            value=stats.poll_timeouts,
        )
        yield GaugeMetricFamily(
            "gpusched_agent_poll_duration_seconds",
            "Duration of the last poll.",
            value=stats.last_poll_seconds,
        )
        yield GaugeMetricFamily(
            "gpusched_agent_last_poll_timestamp_seconds",
            "Unix time of the last poll.",
            value=stats.last_poll_time,
        )
        publish_errors = CounterMetricFamily(
            "gpusched_agent_publish_errors", "Failed publishes (retried next poll).", labels=["publisher"]
        )
        for name, count in sorted(stats.publish_errors.items()):
            publish_errors.add_metric([name], count)
        yield publish_errors
        if self.agent.pod_resources is not None:
            yield CounterMetricFamily(
                "gpusched_agent_pod_resources_errors",
                "Polls whose kubelet pod-resources List failed (GPU series then carry no pod labels).",
                value=stats.pod_resources_errors,
            )
        transitions = CounterMetricFamily(
            "gpusched_gpu_health_transitions",
            "GPU health state changes seen by this agent.",
            labels=["from", "to"],
        )
        for (old, new), count in sorted(self.agent.tracker.counts.items()):
            transitions.add_metric([old, new], count)
        yield transitions
        if snap is None:
            return
        pods = self.agent.gpu_pods if self.agent.pod_resources is not None else None
        names = LABELS if pods is None else [*LABELS, *POD_LABELS]

        def lab(gpu: GpuTelemetry) -> list[str]:
            values = _labels(gpu, host)
            if pods is None:
                return values
            ref = pods.get(gpu.uuid) or (pods.get(str(gpu.index)) if gpu.kind == "gpu" else None)
            return [*values, *((ref.pod, ref.namespace, ref.container) if ref else ("", "", ""))]

        gpus = [g for g in snap.gpus if g.kind == "gpu"]
        for name, doc, attr in GAUGES:
            family = GaugeMetricFamily(name, doc, labels=names)
            for gpu in gpus:
                value = getattr(gpu, attr)
                if value is not None:
                    family.add_metric(lab(gpu), float(value))
            yield family
        xid = GaugeMetricFamily(
            "DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", labels=names
        )
        # dcgm-exporter types this one a counter; prometheus_client would rename a counter's family to
        # *_total_total, so it is a gauge here: same name and labels, and rate()/increase() still work.
        ecc = GaugeMetricFamily(
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors.", labels=names
        )
        remap_fail = GaugeMetricFamily(
            "DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed.", labels=names
        )
        remap_pending = GaugeMetricFamily(
            "DCGM_FI_DEV_ROW_REMAP_PENDING", "Whether a row remap is pending.", labels=names
        )
        throttle = GaugeMetricFamily(
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "Current clock throttle reasons (bitmask).", labels=names
        )
        mig = GaugeMetricFamily(
            "gpusched_gpu_mig_devices", "MIG devices on the GPU (absent when MIG is off).", labels=names
        )
        procs = GaugeMetricFamily("gpusched_gpu_processes", "Compute processes on the GPU.", labels=names)
        nvlink_total = GaugeMetricFamily(
            "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
            "NVLink data transmitted and received over all links since boot (in KiB).",
            labels=names,
        )
        nvlink_link = GaugeMetricFamily(
            "gpusched_gpu_nvlink_data_kib",
            "NVLink data per link and direction since boot (in KiB).",
            labels=[*names, "link", "direction"],
        )
        bits = {n: b for b, n in THROTTLE_REASONS.items()}
        for gpu in gpus:
            labels = lab(gpu)
            xid.add_metric(labels, float(gpu.xid_errors[-1]) if gpu.xid_errors else 0.0)
            if gpu.ecc_uncorrected_volatile is not None:
                ecc.add_metric(labels, float(gpu.ecc_uncorrected_volatile))
            if gpu.remapped_rows_failure is not None:
                remap_fail.add_metric(labels, float(gpu.remapped_rows_failure))
            if gpu.remapped_rows_pending is not None:
                remap_pending.add_metric(labels, float(gpu.remapped_rows_pending))
            if gpu.health != "unknown" or gpu.throttle_reasons:
                throttle.add_metric(labels, float(sum(bits.get(r, 0) for r in gpu.throttle_reasons)))
            if gpu.mig_mode:
                mig.add_metric(labels, float(len(gpu.mig_devices)))
            if gpu.health != "unknown":
                procs.add_metric(labels, float(len(gpu.processes)))
            if gpu.nvlink_traffic:
                nvlink_total.add_metric(labels, float(sum(t.tx_kib + t.rx_kib for t in gpu.nvlink_traffic)))
            for t in gpu.nvlink_traffic:
                nvlink_link.add_metric([*labels, str(t.link), "tx"], float(t.tx_kib))
                nvlink_link.add_metric([*labels, str(t.link), "rx"], float(t.rx_kib))
        yield from (xid, ecc, remap_fail, remap_pending, throttle, mig, procs, nvlink_total, nvlink_link)
        health = GaugeMetricFamily(
            "gpusched_gpu_health",
            "1 for the GPU's current health state (healthy, degraded, unknown, unhealthy).",
            labels=[*names, "kind", "state"],
        )
        for gpu in snap.gpus:
            for state in HEALTH_STATES:
                health.add_metric([*lab(gpu), gpu.kind, state], 1.0 if gpu.health == state else 0.0)
        yield health
        tpus = [g for g in snap.gpus if g.kind == "tpu"]
        if tpus:
            hbm_used = GaugeMetricFamily("gpusched_tpu_hbm_used_mib", "TPU HBM in use (MiB).", labels=names)
            hbm_total = GaugeMetricFamily("gpusched_tpu_hbm_total_mib", "TPU HBM size (MiB).", labels=names)
            duty = GaugeMetricFamily(
                "gpusched_tpu_duty_cycle_percent", "TPU duty cycle (in %).", labels=names
            )
            for chip in tpus:
                labels = lab(chip)
                if chip.memory_used_mib is not None:
                    hbm_used.add_metric(labels, chip.memory_used_mib)
                if chip.memory_total_mib is not None:
                    hbm_total.add_metric(labels, chip.memory_total_mib)
                if chip.utilization_gpu is not None:
                    duty.add_metric(labels, chip.utilization_gpu)
            yield from (hbm_used, hbm_total, duty)


def make_registry(agent: Agent) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return registry


class MetricsServer(HttpMetricsServer):
    """/metrics (Prometheus text), /healthz (200 once a poll completed), /snapshot (the JSON)."""

    def __init__(self, agent: Agent, port: int, host: str = "0.0.0.0") -> None:
        def healthz() -> tuple[int, str, bytes]:
            ok = agent.latest is not None
            return (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"no poll yet\n")

        def snapshot() -> tuple[int, str, bytes]:
            latest = agent.latest
            if latest is None:
                return 404, "text/plain", b"no poll yet\n"
            return 200, "application/json", json.dumps(latest.model_dump(mode="json")).encode()

        super().__init__(make_registry(agent), port, host, {"/healthz": healthz, "/snapshot": snapshot})
