"""Reading Google TPU chips through the tpu-info library, as GpuTelemetry(kind="tpu").

tpu-info finds chips on the PCI bus (`device.get_local_chips()`) and reads HBM use and duty cycle
from the libtpu runtime's metrics service (`metrics.get_chip_usage()`), which only answers while a
TPU program runs: without it the chips are still reported (count, type, HBM size), with usage absent.
The mapping from tpu-info's data classes is a pure function so it is tested without a TPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from gpusched.telemetry import GpuTelemetry

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


def tpu_type_name(chip_type: Any) -> str:
    """tpu_info.device.TpuChip.V5E -> 'TPU-v5e' (the GpuType name a cluster file should use)."""
    return f"TPU-{chip_type.value.name}"


def chips_to_telemetry(
    node: str, chip_type: Any, count: int, usages: Sequence[Any] | None
) -> list[GpuTelemetry]:
    """Map tpu-info's (TpuChip, count) and list[metrics.Usage] to one GpuTelemetry per chip.

    Usage rows are per device (TensorCore); chips with two devices (v2, v3, v7x) sum their memory
    and report the chip's duty cycle (tpu-info repeats the per-chip value for each device).
    """
    per_chip = int(chip_type.value.devices_per_chip)
    by_device = {int(u.device_id): u for u in usages or []}
    out: list[GpuTelemetry] = []
    for chip in range(count):
        rows = [by_device[d] for d in range(chip * per_chip, (chip + 1) * per_chip) if d in by_device]
        total = (
            sum(int(r.total_memory) for r in rows) / _MIB if rows else float(chip_type.value.hbm_gib) * 1024
        )
        used = sum(int(r.memory_usage) for r in rows) / _MIB if rows else None
        duty = max(float(r.duty_cycle_pct) for r in rows) if rows else None
        out.append(
            GpuTelemetry(
                index=chip,
                uuid=f"TPU-{node}-{chip}",
                name=tpu_type_name(chip_type),
                kind="tpu",
                memory_total_mib=total,
                memory_used_mib=used,
                memory_free_mib=(total - used) if used is not None else None,
                utilization_gpu=duty,
            )
        )
    return out


class TpuSource:
    """The chips tpu-info sees on this host; `available()` is False where there are none."""

    name = "tpu"

    def __init__(
        self,
        node: str,
        get_local_chips: Callable[[], tuple[Any, int]] | None = None,
        get_chip_usage: Callable[[Any], Sequence[Any]] | None = None,
    ) -> None:
        self.node = node
        self._get_local_chips = get_local_chips
        self._get_chip_usage = get_chip_usage
        self.chip_type: Any = None
        self.count = 0

    def start(self) -> bool:
        real_library = self._get_local_chips is None
        if real_library:
            try:
                from tpu_info import device  # light; tpu_info.metrics pulls in gRPC (~25 MiB), only for TPUs
            except ImportError:
                return False
            self._get_local_chips = device.get_local_chips
        assert self._get_local_chips is not None
        try:
            chip_type, count = self._get_local_chips()
        except Exception as exc:  # no /sys/bus/pci on this host, mixed chips, ...
            log.debug("tpu-info: no TPU chips: %s", exc)
            return False
        if chip_type is None or count == 0:
            return False
        self.chip_type, self.count = chip_type, count
        if real_library and self._get_chip_usage is None:
            try:
                from tpu_info import metrics

                self._get_chip_usage = metrics.get_chip_usage
            except ImportError as exc:  # chips without usage: still reported
                log.warning("tpu-info metrics unavailable: %s", exc)
        log.info("tpu-info: %d x %s", count, tpu_type_name(chip_type))
        return True

    def poll(self) -> list[GpuTelemetry]:
        usages: Sequence[Any] | None = None
        if self._get_chip_usage is not None:
            try:
                usages = self._get_chip_usage(self.chip_type)
            except Exception as exc:  # the runtime metrics service runs only with a TPU program
                log.debug("tpu-info: usage unavailable: %s", exc)
        return chips_to_telemetry(self.node, self.chip_type, self.count, usages)
