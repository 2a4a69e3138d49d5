"""The node status format: what a node agent publishes and what the planner and operator consume.

It is one document per node: the `--once --json` snapshot, the files `gpusched plan --telemetry DIR`
reads, and the `status` of the cluster-scoped `GPUNode` custom resource are all this model.
Consumers ignore fields they do not know so that newer agents can add fields without breaking
older operators.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel

Health = Literal["healthy", "degraded", "unhealthy", "unknown"]


class _Tolerant(BaseModel):
    # Files and --json use snake_case (model_dump()); the GPUNode resource status uses Kubernetes'
    # camelCase (model_dump(by_alias=True)); both are accepted on input.
    # allow_inf_nan=False: a NaN reading is a broken snapshot, refused where it is read.
    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, alias_generator=to_camel, allow_inf_nan=False
    )


class GpuProcess(_Tolerant):
    pid: int
    used_memory_mib: float | None = None


class MigDevice(_Tolerant):
    index: int
    uuid: str | None = None
    memory_total_mib: float | None = None
    profile: str | None = None


class NvLinkTraffic(_Tolerant):
    """One active NVLink's data counters (NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/RX), KiB since boot."""

    link: int
    tx_kib: int
    rx_kib: int


class GpuTelemetry(_Tolerant):
    """One accelerator. A field NVML (or tpu-info) cannot read on this device is None, not an error."""

    index: int
    uuid: str
    name: str
    kind: Literal["gpu", "tpu"] = "gpu"
    pci_bus_id: str | None = None
    memory_total_mib: float | None = None
    memory_used_mib: float | None = None
    memory_free_mib: float | None = None
    utilization_gpu: float | None = None
    utilization_memory: float | None = None
    temperature_c: float | None = None
    memory_temperature_c: float | None = None
    """HBM temperature (NVML_FI_DEV_MEMORY_TEMP); None on GPUs without a memory sensor."""
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    energy_mj: int | None = None
    """Energy used since the driver was loaded, in mJ (nvmlDeviceGetTotalEnergyConsumption)."""
    pcie_tx_kbps: float | None = None
    pcie_rx_kbps: float | None = None
    """PCIe throughput in KB/s over NVML's last 20 ms sample (nvmlDeviceGetPcieThroughput)."""
    pcie_replay_count: int | None = None
    """PCIe replays (link-level retries) since boot (nvmlDeviceGetPcieReplayCounter)."""
    nvlink_traffic: list[NvLinkTraffic] = Field(default_factory=list)
    """Per active NVLink; empty without NVLink or where the driver does not count it."""
    ecc_uncorrected_volatile: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None
    mig_mode: bool | None = None
    mig_devices: list[MigDevice] = Field(default_factory=list)
    processes: list[GpuProcess] = Field(default_factory=list)
    throttle_reasons: list[str] = Field(default_factory=list)
    compute_capability: str | None = None
    xid_errors: list[int] = Field(default_factory=list)
    """XID codes seen since the agent started (most recent last)."""
    health: Health = "unknown"
    health_reasons: list[str] = Field(default_factory=list)


class NodeTelemetry(_Tolerant):
    node: str
    timestamp: datetime
    """When the agent last confirmed this status (the heartbeat)."""
    agent_version: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    sources: list[str] = Field(default_factory=list)
    gpus: list[GpuTelemetry] = Field(default_factory=list)
    topology: dict[str, dict[str, str]] = Field(default_factory=dict)
    """GPU index -> GPU index -> link ('NV18', 'PIX', 'SYS', ...)."""
    topology_domain: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gpu_count(self) -> int:
        """Accelerators reported (output only: the GPUNode printer column 'GPUs' reads it)."""
        return len(self.gpus)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def healthy_gpu_count(self) -> int:
        """Accelerators in state healthy (output only: printer column 'Healthy')."""
        return sum(1 for g in self.gpus if g.health == "healthy")

    def is_stale(self, now: datetime, max_age: timedelta) -> bool:
        return now - self.timestamp > max_age

    def schedulable_gpus(self) -> int:
        """GPUs the planner may use: healthy or merely degraded."""
        return sum(1 for g in self.gpus if g.health in ("healthy", "degraded"))


_VENDOR = re.compile(r"^(nvidia|tesla|google|amd)\s+", re.IGNORECASE)


def canonical_gpu_type(product_name: str, memory_mib: float | None) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'H100-80GB'; 'Tesla T4' (15360 MiB) -> 'T4-16GB'.

    The cluster file may list these names as GpuType.name; a type whose name is a prefix (e.g.
    'H100') also matches, see gpusched.telemetry_cluster.
    """
    name = product_name.strip()
    while _VENDOR.match(name):
        name = _VENDOR.sub("", name, count=1)
    model = name.split()[0].upper() if name else "UNKNOWN"
    model = model.split("-")[0]
    if memory_mib:
        gib = memory_mib / 1024
        nominal = min(
            (4, 8, 12, 16, 24, 32, 40, 48, 64, 80, 94, 96, 141, 144, 180, 192), key=lambda c: abs(c - gib)
        )
        return f"{model}-{nominal}GB"
    return model
