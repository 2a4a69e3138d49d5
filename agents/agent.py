"""The agent loop: read every source, apply the health rules, hand the snapshot to the publishers.

One poll produces one NodeTelemetry. Sources and publishers are independent: a failing source
yields unknown GPUs, a failing publisher is logged and retried next poll; neither stops the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol

from gpusched import __version__
from gpusched.agents.health import HealthConfig, HealthTracker, Transition, evaluate
from gpusched.agents.nvml import NvmlSource
from gpusched.agents.podresources import PodRef, PodResourcesError
from gpusched.agents.tpu import TpuSource
from gpusched.agents.xid import XidWatcher
from gpusched.telemetry import GpuTelemetry, NodeTelemetry

log = logging.getLogger(__name__)


class PodLister(Protocol):
    def gpu_pods(self) -> dict[str, PodRef]: ...


class Publisher(Protocol):
    def publish(self, snapshot: NodeTelemetry, transitions: list[Transition]) -> None: ...


class AgentStats:
    """Counters the /metrics endpoint exposes about the agent itself."""

    def __init__(self) -> None:
        self.polls = 0
        self.poll_timeouts = 0
        self.last_poll_seconds = 0.0
        self.last_poll_time = 0.0
        self.publish_errors: dict[str, int] = {}
        self.pod_resources_errors = 0


class Agent:
    def __init__(
        self,
        node: str,
        health: HealthConfig | None = None,
        poll_timeout: float = 2.0,
        nvml: NvmlSource | None = None,
        tpu: TpuSource | None = None,
        publishers: list[Publisher] | None = None,
        topology_domain: str | None = None,
        labels: dict[str, str] | None = None,
        watch_xids: bool = True,
        xid_wait_ms: int = 500,
        pod_resources: PodLister | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.node = node
        self.health = health or HealthConfig()
        self.poll_timeout = poll_timeout
        self.nvml = nvml if nvml is not None else NvmlSource(call_timeout=poll_timeout)
        self.tpu = tpu
        self.publishers = publishers or []
        self.topology_domain = topology_domain
        self.labels = labels or {}
        self.watch_xids = watch_xids
        self.xid_wait_ms = xid_wait_ms
        self.pod_resources = pod_resources
        self.gpu_pods: dict[str, PodRef] = {}
        """GPU UUID (or index) -> the container holding it, as of the last poll (--kubernetes-pod-labels)."""
        self._pod_error: str | None = None
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.tracker = HealthTracker()
        self.stats = AgentStats()
        self.xids: XidWatcher | None = None
        self.latest: NodeTelemetry | None = None
        self._nvml_ok = False
        self._tpu_ok = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._start_nvml()
        if self.tpu is None:
            self.tpu = TpuSource(self.node)
        self._tpu_ok = self.tpu.start()
        if not self._nvml_ok and not self._tpu_ok:
            log.warning(
                "no accelerator source on this host (%s); reporting no GPUs",
                self.nvml.last_error or "no NVML",
            )

    def _start_nvml(self) -> None:
        if self._nvml_ok:
            return
        self._nvml_ok = self.nvml.start()
        if not self._nvml_ok:
            return
        self.nvml.read_topology(timeout=self.poll_timeout)
        if self.watch_xids:
            self.xids = XidWatcher(self.nvml, wait_ms=self.xid_wait_ms)
            self.xids.start()

    def settle_xids(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until the XID events pending at start are recorded.

        `--once` calls this before its single poll, so it reports the XIDs the daemon would report
        on its first poll instead of none. False when the watcher did not drain in time (or none runs).
        """
        if self.xids is None:
            return False
        return self.xids.wait_drained(timeout)

    def close(self) -> None:
        if self.xids is not None:
            self.xids.stop()
        self.nvml.close()
        close = getattr(self.pod_resources, "close", None)
        if close is not None:
            close()

    # ----------------------------------------------------------------------------------- poll

    def poll_once(self) -> NodeTelemetry:
        """One snapshot; never raises for a device problem, and returns within the poll timeout."""
        started = time.perf_counter()
        if not self._nvml_ok:
            self._start_nvml()  # the driver may have come up since the last poll
        sources: list[str] = []
        gpus: list[GpuTelemetry] = []
        if self._nvml_ok:
            sources.append("nvml")
            self.nvml.collect_topology()
            if self.nvml.topology_due():
                self.nvml.read_topology()  # in the background: a poll never waits for it
            xids = self.xids.snapshot() if self.xids is not None else {}
            for read in self.nvml.poll(self.poll_timeout):
                gpu = read.telemetry
                if read.index in xids:
                    gpu.xid_errors = xids[read.index]
                if read.status == "timeout":
                    self.stats.poll_timeouts += 1
                state, reasons = evaluate(gpu, self.health, read.status, read.error, read.field_errors)
                gpu.health, gpu.health_reasons = state, reasons
                gpus.append(gpu)
        if self._tpu_ok and self.tpu is not None:
            sources.append("tpu")
            try:
                tpus = self.tpu.poll()
            except Exception as exc:
                log.warning("tpu-info poll failed: %s", exc)
                tpus = []
            for chip in tpus:
                chip.health, chip.health_reasons = evaluate(chip, self.health)
                gpus.append(chip)
        if self.pod_resources is not None:
            self._read_gpu_pods()
        now = self.clock()
        snapshot = NodeTelemetry(
            node=self.node,
            timestamp=now,
            agent_version=__version__,
            driver_version=self.nvml.info.driver_version if self._nvml_ok else None,
            cuda_version=self.nvml.info.cuda_version if self._nvml_ok else None,
            sources=sources,
            gpus=gpus,
            topology=dict(self.nvml.topology),
            topology_domain=self.topology_domain,
            labels=dict(self.labels),
        )
        transitions = self.tracker.update(self.node, gpus, now)
        with self._lock:
            self.latest = snapshot
            self.stats.polls += 1
            self.stats.last_poll_seconds = time.perf_counter() - started
            self.stats.last_poll_time = time.time()
        for publisher in self.publishers:
            try:
                publisher.publish(snapshot, transitions)
            except Exception as exc:  # publishing is retried next poll; the agent keeps running
                name = type(publisher).__name__
                errors = dict(self.stats.publish_errors)  # copy-on-write: read by /metrics
                errors[name] = errors.get(name, 0) + 1
                self.stats.publish_errors = errors
                log.warning("publishing via %s failed: %s", name, exc)
        return snapshot

    def _read_gpu_pods(self) -> None:
        """Refresh gpu_pods; on failure drop them (a stale pod label is worse than none) and say so once."""
        assert self.pod_resources is not None
        try:
            self.gpu_pods = self.pod_resources.gpu_pods()
        except PodResourcesError as exc:
            self.stats.pod_resources_errors += 1
            self.gpu_pods = {}
            if str(exc) != self._pod_error:
                log.warning("pod-resources: %s (GPU metrics carry no pod labels until it answers)", exc)
            self._pod_error = str(exc)
            return
        if self._pod_error is not None:
            log.info("pod-resources: answering again")
        self._pod_error = None

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll every `interval` seconds until `stop` is set (by SIGTERM/SIGINT)."""
        while not stop.is_set():
            began = time.monotonic()
            try:
                self.poll_once()
            except Exception:  # a bug must not silence the node: log and poll again
                log.exception("poll failed")
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
