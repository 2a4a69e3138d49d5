"""Health rules: which GPUs the scheduler may use, and why not.

Four states, worst last: healthy, degraded (usable, but watch it), unknown (the agent could not
read it), unhealthy (do not schedule). The rules are data (HealthConfig, loadable from YAML) so an
operator can tighten thresholds per fleet without a release. XIDs follow the NVIDIA Kubernetes
device plugin: every XID is fatal except the application-caused ones (13, 31, 43, 45, 68, 109).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from gpusched.config import read_document, validate
from gpusched.telemetry import GpuTelemetry, Health

log = logging.getLogger(__name__)

HEALTH_STATES: tuple[Health, ...] = ("healthy", "degraded", "unknown", "unhealthy")
_RANK = {s: i for i, s in enumerate(HEALTH_STATES)}
Verdict = Literal["healthy", "degraded", "unhealthy"]

DEVICE_PLUGIN_IGNORED_XIDS = [13, 31, 43, 45, 68, 109]


class HealthConfig(BaseModel):
    """The --health-config YAML file. Every key is optional; null disables a threshold."""

    # allow_inf_nan=False: `temperature_unhealthy_c: .nan` compared false with every reading and
    # switched the rule off silently; null is the way to switch a threshold off.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    xid_ignored: list[StrictInt] = Field(default_factory=lambda: list(DEVICE_PLUGIN_IGNORED_XIDS))
    """XIDs caused by applications, not hardware: recorded, never held against the GPU."""
    xid_fatal: list[StrictInt] | None = None
    """XIDs that make a GPU unhealthy; null means every XID not ignored or degraded."""
    xid_degraded: list[StrictInt] = Field(default_factory=list)
    """XIDs that only degrade a GPU."""
    ecc_uncorrected_max: StrictInt | None = Field(default=0, ge=0)
    """Volatile uncorrected ECC errors tolerated; more makes the GPU unhealthy."""
    remapped_rows_pending: Verdict = "degraded"
    """A row remap waits for a GPU reset: the memory is still correct, the GPU should be drained."""
    remapped_rows_failure: Verdict = "unhealthy"
    temperature_degraded_c: float | None = Field(default=85.0, ge=-273.15, le=1000)
    temperature_unhealthy_c: float | None = Field(default=95.0, ge=-273.15, le=1000)
    power_degraded_ratio: float | None = Field(default=1.05, gt=0, le=1000)
    """Degraded when power draw exceeds this multiple of the enforced power limit."""
    power_unhealthy_w: float | None = Field(default=None, gt=0, le=1e6)
    throttle_degraded: list[str] = Field(
        default_factory=lambda: ["hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"]
    )
    """Clock-event reasons that mean the hardware is protecting itself."""
    unreadable_field: Verdict | Literal["unknown"] = "unknown"
    """What a GPU becomes when a field NVML supports fails to read (other than 'not supported')."""

    def xid_verdict(self, code: int) -> Verdict:
        if code in self.xid_ignored:
            return "healthy"
        if code in self.xid_degraded:
            return "degraded"
        if self.xid_fatal is None or code in self.xid_fatal:
            return "unhealthy"
        return "healthy"


def load_health_config(path: Path | None) -> HealthConfig:
    """The rules from a YAML/JSON file (InputError naming file and field), or the defaults."""
    if path is None:
        return HealthConfig()
    data = read_document(Path(path))
    return validate(HealthConfig, data if data is not None else {}, str(path))


def worst(a: Health, b: Health) -> Health:
    return a if _RANK[a] >= _RANK[b] else b


def evaluate(
    gpu: GpuTelemetry,
    config: HealthConfig,
    read_status: str = "ok",
    read_error: str | None = None,
    field_errors: list[str] | None = None,
) -> tuple[Health, list[str]]:
    """The GPU's state and the reasons for it (empty when healthy)."""
    if read_status == "lost":
        return "unhealthy", [f"GPU lost (fallen off the bus): {read_error}"]
    state: Health = "healthy"
    reasons: list[str] = []

    def flag(verdict: Health, reason: str) -> None:
        nonlocal state
        if verdict == "healthy":
            return
        state = worst(state, verdict)
        reasons.append(reason)

    if read_status != "ok":
        flag("unknown", read_error or "GPU could not be read")
    for err in field_errors or []:
        flag(config.unreadable_field, f"unreadable: {err}")
    for code in sorted(set(gpu.xid_errors)):
        verdict = config.xid_verdict(code)
        flag(verdict, f"XID {code} ({'fatal' if verdict == 'unhealthy' else verdict})")
    if (
        config.ecc_uncorrected_max is not None
        and gpu.ecc_uncorrected_volatile is not None
        and gpu.ecc_uncorrected_volatile > config.ecc_uncorrected_max
    ):
        flag(
            "unhealthy",
            f"{gpu.ecc_uncorrected_volatile} uncorrected ECC error(s) (max {config.ecc_uncorrected_max})",
        )
    if gpu.remapped_rows_failure:
        flag(config.remapped_rows_failure, "row remapping failed")
    if gpu.remapped_rows_pending:
        flag(config.remapped_rows_pending, "row remap pending (GPU reset needed)")
    temp = gpu.temperature_c
    if temp is not None:
        if config.temperature_unhealthy_c is not None and temp >= config.temperature_unhealthy_c:
            flag("unhealthy", f"temperature {temp:.0f}C >= {config.temperature_unhealthy_c:.0f}C")
        elif config.temperature_degraded_c is not None and temp >= config.temperature_degraded_c:
            flag("degraded", f"temperature {temp:.0f}C >= {config.temperature_degraded_c:.0f}C")
    power = gpu.power_w
    if power is not None:
        if config.power_unhealthy_w is not None and power >= config.power_unhealthy_w:
            flag("unhealthy", f"power {power:.0f}W >= {config.power_unhealthy_w:.0f}W")
        elif (
            config.power_degraded_ratio is not None
            and gpu.power_limit_w
            and power > gpu.power_limit_w * config.power_degraded_ratio
        ):
            flag(
                "degraded",
                f"power {power:.0f}W over {config.power_degraded_ratio:g} x limit {gpu.power_limit_w:.0f}W",
            )
    for reason in gpu.throttle_reasons:
        if reason in config.throttle_degraded:
            flag("degraded", f"clocks throttled: {reason}")
    return state, reasons


@dataclass(frozen=True)
class Transition:
    """A GPU changed health state between two polls."""

    node: str
    index: int
    uuid: str
    name: str
    old: Health | None
    """None the first time the agent sees the GPU."""
    new: Health
    reasons: tuple[str, ...]
    at: datetime

    def message(self) -> str:
        why = "; ".join(self.reasons) if self.reasons else "all checks pass"
        before = self.old or "new"
        return f"GPU {self.index} ({self.uuid}) {before} -> {self.new}: {why}"


class HealthTracker:
    """Remembers each GPU's last state and reports changes (logged, counted, sent as Events)."""

    def __init__(self) -> None:
        self._last: dict[str, Health] = {}
        self.counts: dict[tuple[str, str], int] = {}
        """(from, to) -> transitions seen; 'new' as from for first sightings."""

    def update(self, node: str, gpus: list[GpuTelemetry], at: datetime) -> list[Transition]:
        out: list[Transition] = []
        for gpu in gpus:
            key = gpu.uuid if not gpu.uuid.startswith("unknown-gpu-") else f"index:{gpu.index}"
            old = self._last.get(key)
            if old == gpu.health:
                continue
            self._last[key] = gpu.health
            t = Transition(
                node, gpu.index, gpu.uuid, gpu.name, old, gpu.health, tuple(gpu.health_reasons), at
            )
            pair = (old or "new", gpu.health)
            counts = dict(self.counts)  # copy-on-write: /metrics reads it from another thread
            counts[pair] = counts.get(pair, 0) + 1
            self.counts = counts
            level = (
                logging.INFO
                if gpu.health == "healthy" or (old is None and gpu.health == "healthy")
                else logging.WARNING
            )
            log.log(level, "health: %s", t.message())
            out.append(t)
        return out
