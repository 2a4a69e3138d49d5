"""/metrics (Prometheus) and /healthz for the operator, on the HTTP server the agent uses too.

Each Operator gets its own CollectorRegistry so that several operators in one test process (or a
killed-and-restarted one) do not collide on metric names.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gpusched.metrics_server import MetricsServer


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_length = Gauge(
            "gpusched_queue_length", "GPUJobs waiting to start, per team", ["team"], registry=r
        )
        self.jobs_by_phase = Gauge("gpusched_jobs", "GPUJobs per phase", ["phase"], registry=r)
        self.solve_seconds = Histogram(
            "gpusched_plan_solve_seconds",
            "Time the planner took per round",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.cycle_seconds = Histogram(
            "gpusched_reconcile_cycle_seconds",
            "Snapshot + plan + apply, per round",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.submit_to_running = Histogram(
            "gpusched_submit_to_running_seconds",
            "From GPUJob creation to its gang fully bound",
            registry=r,
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
        )
        self.preemptions = Counter(
            "gpusched_preemptions", "Gangs stopped by the plan or by failing GPUs", registry=r
        )
        self.gang_withdrawals = Counter(
            "gpusched_gang_withdrawals", "Gangs withdrawn before starting", registry=r
        )
        self.pods_bound = Counter("gpusched_pods_bound", "Worker pods bound to nodes", registry=r)
        self.api_requests = Counter(
            "gpusched_api_requests", "Kubernetes API requests", ["verb", "code"], registry=r
        )
        self.planned_utilisation = Gauge(
            "gpusched_planned_gpu_utilisation",
            "Share of healthy GPUs the plan uses in its first slot",
            registry=r,
        )
        self.actual_utilisation = Gauge(
            "gpusched_actual_gpu_utilisation",
            "Share of healthy GPUs held by bound gpusched workers",
            registry=r,
        )
        self.leader = Gauge("gpusched_leader", "1 while this replica holds the Lease", registry=r)
        self.rounds = Counter("gpusched_reconcile_rounds", "Reconcile rounds run", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer(MetricsServer):
    """Serves /metrics and /healthz, /readyz (200 while `healthy()` says so, else 503)."""

    def __init__(
        self,
        metrics: OperatorMetrics,
        healthy: Callable[[], tuple[bool, str]],
        port: int,
        host: str = "0.0.0.0",
    ) -> None:
        def health() -> tuple[int, str, bytes]:
            ok, why = healthy()
            return 200 if ok else 503, "text/plain", (why + "\n").encode()

        self.metrics, self.healthy = metrics, healthy
        super().__init__(metrics.registry, port, host, {"/healthz": health, "/readyz": health})

    def start(self) -> HealthServer:
        super().start()
        return self
