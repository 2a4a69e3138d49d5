"""Health rules as data: defaults follow the NVIDIA device plugin; YAML overrides; bad files fail clearly."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpusched.agents.health import HealthConfig, HealthTracker, evaluate, load_health_config
from gpusched.config import InputError
from gpusched.telemetry import GpuTelemetry


def gpu(**fields: object) -> GpuTelemetry:
    base: dict[str, object] = {"index": 0, "uuid": "GPU-0", "name": "NVIDIA H100 80GB HBM3"}
    base.update(fields)
    return GpuTelemetry.model_validate(base)


@pytest.mark.parametrize("code", [13, 31, 43, 45, 68, 109])
def test_application_xids_are_ignored(code: int) -> None:
    assert evaluate(gpu(xid_errors=[code]), HealthConfig()) == ("healthy", [])


@pytest.mark.parametrize("code", [48, 63, 64, 74, 79, 92, 94, 95, 119, 1])
def test_every_other_xid_is_fatal(code: int) -> None:
    state, reasons = evaluate(gpu(xid_errors=[code]), HealthConfig())
    assert state == "unhealthy" and reasons == [f"XID {code} (fatal)"]


def test_yaml_overrides_lists_and_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "health.yaml"
    path.write_text(
        "xid_fatal: [79, 48]\nxid_degraded: [94]\ntemperature_degraded_c: 70\n"
        "ecc_uncorrected_max: 2\nremapped_rows_pending: unhealthy\n"
    )
    cfg = load_health_config(path)
    assert evaluate(gpu(xid_errors=[63]), cfg)[0] == "healthy"  # not in the explicit fatal list
    assert evaluate(gpu(xid_errors=[94]), cfg)[0] == "degraded"
    assert evaluate(gpu(xid_errors=[79]), cfg)[0] == "unhealthy"
    assert evaluate(gpu(temperature_c=72), cfg) == ("degraded", ["temperature 72C >= 70C"])
    assert evaluate(gpu(ecc_uncorrected_volatile=2), cfg)[0] == "healthy"
    assert evaluate(gpu(ecc_uncorrected_volatile=3), cfg)[0] == "unhealthy"
    assert evaluate(gpu(remapped_rows_pending=True), cfg)[0] == "unhealthy"


def test_null_disables_a_threshold(tmp_path: Path) -> None:
    path = tmp_path / "health.yaml"
    path.write_text("temperature_degraded_c: null\ntemperature_unhealthy_c: null\n")
    assert evaluate(gpu(temperature_c=120), load_health_config(path)) == ("healthy", [])


def test_worst_state_wins_and_all_reasons_are_kept() -> None:
    state, reasons = evaluate(gpu(temperature_c=90, ecc_uncorrected_volatile=1), HealthConfig())
    assert state == "unhealthy"
    assert len(reasons) == 2


def test_bad_config_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "health.yaml"
    path.write_text("temperature_degraded_c: hot\n")
    with pytest.raises(InputError, match=r"health\.yaml: temperature_degraded_c: .*got 'hot'"):
        load_health_config(path)
    path.write_text("xid_fatall: [79]\n")
    with pytest.raises(InputError, match=r"health\.yaml: xid_fatall: Extra inputs are not permitted"):
        load_health_config(path)
    with pytest.raises(InputError, match="file not found"):
        load_health_config(tmp_path / "missing.yaml")


def test_tracker_reports_only_changes() -> None:
    tracker = HealthTracker()
    now = datetime(2026, 11, 23, tzinfo=timezone.utc)
    first = tracker.update("n", [gpu(health="healthy")], now)
    assert [(t.old, t.new) for t in first] == [(None, "healthy")]
    assert tracker.update("n", [gpu(health="healthy")], now) == []
    bad = tracker.update("n", [gpu(health="unhealthy", health_reasons=["XID 79 (fatal)"])], now)
    assert [(t.old, t.new) for t in bad] == [("healthy", "unhealthy")]
    assert "XID 79" in bad[0].message()
    assert tracker.counts == {("new", "healthy"): 1, ("healthy", "unhealthy"): 1}
