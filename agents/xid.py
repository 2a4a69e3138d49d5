"""XID events from NVML's event API, on a thread of their own.

XIDs are driver error reports (79: GPU fell off the bus, 48: double-bit ECC, 94/95: contained /
uncontained ECC, ...). They are events, not counters, so polling would miss them: a thread blocks
in nvmlEventSetWait with a short timeout (so it notices a stop request) and records every XID
critical-error event against its GPU.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpusched.agents.nvml import NvmlSource

log = logging.getLogger(__name__)

XID_CRITICAL_ERROR = 0x8  # nvmlEventTypeXidCriticalError


class XidWatcher:
    """Collects XID codes per GPU index; thread-safe `snapshot()` for the poll loop."""

    def __init__(
        self, source: NvmlSource, wait_ms: int = 500, on_xid: Callable[[int, int], None] | None = None
    ) -> None:
        self.source = source
        self.wait_ms = wait_ms
        self.on_xid = on_xid
        self._xids: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registered: set[int] = set()
        self.events_total = 0
        self.ready = threading.Event()
        """Set once GPUs are registered (tests wait on it before injecting events)."""
        self.drained = threading.Event()
        """Set once a wait after registration timed out: every event NVML had queued was recorded."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nvml-xid", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the events NVML had queued at registration are recorded (for `--once`)."""
        return self.drained.wait(timeout)

    def snapshot(self) -> dict[int, list[int]]:
        with self._lock:
            return {i: list(codes) for i, codes in self._xids.items()}

    def record(self, index: int, code: int) -> None:
        with self._lock:
            self._xids.setdefault(index, []).append(code)
            self.events_total += 1
        log.warning("XID %d on GPU %d", code, index)
        if self.on_xid is not None:
            self.on_xid(index, code)

    def _run(self) -> None:
        nv = self.source.nvml
        try:
            event_set = nv.nvmlEventSetCreate()
        except Exception as exc:
            log.warning("XID events unavailable: nvmlEventSetCreate: %s", exc)
            self.ready.set()
            self.drained.set()
            return
        by_address: dict[int, int] = {}
        try:
            for index in range(self.source.info.gpu_count):
                try:
                    handle = nv.nvmlDeviceGetHandleByIndex(index)
                    nv.nvmlDeviceRegisterEvents(handle, XID_CRITICAL_ERROR, event_set)
                except nv.NVMLError as exc:
                    log.warning("GPU %d: XID events unavailable: %s", index, exc)
                    continue
                address = ctypes.cast(handle, ctypes.c_void_p).value
                if address is not None:
                    by_address[address] = index
                    self.registered.add(index)
            self.ready.set()
            self._loop(nv, event_set, by_address)
        finally:
            self.ready.set()
            self.drained.set()
            try:
                nv.nvmlEventSetFree(event_set)
            except Exception as exc:
                log.debug("nvmlEventSetFree: %s", exc)

    def _loop(self, nv: Any, event_set: Any, by_address: dict[int, int]) -> None:
        while not self._stop.is_set():
            try:
                data = nv.nvmlEventSetWait(event_set, self.wait_ms)
            except nv.NVMLError as exc:
                if exc.value == nv.NVML_ERROR_TIMEOUT:
                    self.drained.set()
                    continue
                log.warning("nvmlEventSetWait: %s", exc)
                self.drained.set()  # nothing more will come soon: do not hold up a --once poll
                self._stop.wait(1.0)  # e.g. a GPU lost: keep watching the others
                continue
            except Exception as exc:
                log.exception("XID watcher: %s", exc)
                time.sleep(1.0)
                continue
            if not data.eventType & XID_CRITICAL_ERROR:
                continue
            address = ctypes.cast(data.device, ctypes.c_void_p).value
            index = by_address.get(address) if address is not None else None
            if index is None:
                log.warning("XID %d on an unknown device", data.eventData)
                continue
            self.record(index, int(data.eventData))
