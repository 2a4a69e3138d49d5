"""`gpusched operator`: only typer, rich and the stdlib at import time (kubernetes loads inside)."""

from __future__ import annotations

import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from gpusched.cli_util import duration_option
from gpusched.cli_util import fail as _fail


class _Policy(str, Enum):
    cost = "cost"
    jct = "jct"
    makespan = "makespan"
    deadline = "deadline"
    fair = "fair"


UNREACHABLE_GIVE_UP_S = 10.0
"""--once and --dry-run retry an unreachable API server this long, then exit 2 with one line."""


def _duration_s(value: str, option: str) -> float:
    return duration_option(value, option) * 3600


def operator(
    cluster_config: Annotated[
        Path,
        typer.Option(
            "--cluster-config",
            "-c",
            help="cluster.yaml whose gpu_types section names the GPU types (price, speed, memory).",
        ),
    ] = Path("/etc/gpusched/cluster.yaml"),
    kubeconfig: Annotated[
        str | None,
        typer.Option(help="Kubeconfig file [default: in-cluster service account, else ~/.kube/config]."),
    ] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context.")] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Watch GPUJobs in this namespace only [default: all]."),
    ] = None,
    node_selector: Annotated[
        str | None,
        typer.Option(
            "--node-selector",
            help="Use only nodes matching this label selector, e.g. 'pool=training' or "
            "'gpusched.io/pool in (a,b)' [default: every node with GPUs].",
        ),
    ] = None,
    replan_interval: Annotated[
        str, typer.Option("--replan-interval", help="Re-plan at least this often.")
    ] = "30s",
    policy: Annotated[_Policy, typer.Option(help="Planner objective (jct weighs priority).")] = _Policy.jct,
    horizon: Annotated[str, typer.Option(help="Planning horizon.")] = "24h",
    slot: Annotated[str, typer.Option(help="Planning slot length.")] = "15m",
    time_limit: Annotated[float, typer.Option("--time-limit", help="Planner seconds per round.")] = 10.0,
    stale_after: Annotated[
        str, typer.Option("--stale-after", help="A GPUNode heartbeat older than this makes its GPUs unknown.")
    ] = "2m",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only write plans into GPUJob statuses.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Run one full round, then exit.")] = False,
    leader_elect: Annotated[bool, typer.Option(help="Hold a Lease so exactly one replica acts.")] = True,
    lease_namespace: Annotated[
        str | None, typer.Option(help="Namespace of the Lease [default: $POD_NAMESPACE or default].")
    ] = None,
    lease_name: Annotated[str, typer.Option(help="Name of the Lease.")] = "gpusched-operator",
    lease_duration: Annotated[
        int, typer.Option(help="Seconds a leader may go without renewing before a standby takes over.")
    ] = 15,
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics and /healthz; 0 disables.")] = 8080,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the Kubernetes operator: plan GPUJobs with the solver and start their torch workers."""
    # First of all: SIGTERM (a pod's deletion) or Ctrl-C during the seconds of start-up must end in a
    # clean exit 0 too, not in the default action (death by signal, exit -15).
    signals: list[int] = []
    running: list[Any] = []

    def _stop(signum: int, frame: object) -> None:
        signals.append(signum)
        for op in running:
            op.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    import os
    from datetime import timedelta

    from gpusched.config import InputError, load_cluster
    from gpusched.scheduler import logs

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise _fail(f"--log-level: expected debug, info, warning or error (got {log_level!r})")
    interval = _duration_s(replan_interval, "--replan-interval")
    horizon_h = _duration_s(horizon, "--horizon") / 3600
    slot_h = _duration_s(slot, "--slot") / 3600
    stale = _duration_s(stale_after, "--stale-after")
    if slot_h > horizon_h:
        raise _fail(f"--slot: {slot} is longer than --horizon {horizon}")
    if time_limit <= 0:
        raise _fail(f"--time-limit: must be positive (got {time_limit})")
    if lease_duration < 2:
        raise _fail(f"--lease-duration: must be at least 2 seconds (got {lease_duration})")
    if not 0 <= metrics_port <= 65535:
        raise _fail(f"--metrics-port: expected 0..65535 (got {metrics_port})")
    if node_selector is not None:
        from gpusched.scheduler.snapshot import parse_label_selector

        try:
            parse_label_selector(node_selector)
        except ValueError as exc:
            raise _fail(f"--node-selector: {exc}") from None
    if kubeconfig is not None and not Path(kubeconfig).is_file():
        raise _fail(f"--kubeconfig: file not found: {kubeconfig}")
    try:
        cluster = load_cluster(cluster_config)
    except InputError as exc:
        raise _fail(str(exc)) from None

    logs.setup(log_level)
    from gpusched.scheduler.kube import Kube, load_api_client
    from gpusched.scheduler.operator import Operator, OperatorSettings, Unreachable

    try:
        api_client = load_api_client(kubeconfig, context)
    except Exception as exc:
        raise _fail(f"--kubeconfig: cannot load a Kubernetes configuration: {exc}") from None
    settings = OperatorSettings(
        gpu_types=list(cluster.gpu_types),
        namespace=namespace,
        node_selector=(node_selector or "").strip() or None,
        replan_interval=interval,
        policy=policy.value,
        horizon=horizon_h,
        slot=slot_h,
        time_limit=time_limit,
        dry_run=dry_run,
        stale_after=timedelta(seconds=stale),
        leader_election=leader_elect,
        lease_namespace=lease_namespace or os.environ.get("POD_NAMESPACE") or "default",
        lease_name=lease_name,
        lease_seconds=lease_duration,
        metrics_port=metrics_port or None,
        once=once,
        give_up_after=UNREACHABLE_GIVE_UP_S if (once or dry_run) else None,
    )
    op = Operator(Kube(api_client), settings)
    running.append(op)
    if signals:  # one came during start-up
        op.stop()
    unreachable: Unreachable | None = None
    try:
        op.run()
    except Unreachable as exc:
        unreachable = exc
    finally:
        lost = (
            settings.leader_election
            and not op.stop_requested
            and not op.elector.is_leader.is_set()
            and op.rounds > 0
        )
        op.shutdown()
    if unreachable is not None:
        raise _fail(
            f"--kubeconfig: cannot reach the API server at {unreachable.server}: {unreachable.why} "
            f"(tried for {UNREACHABLE_GIVE_UP_S:.0f}s; a reachable server and credentials it accepts)"
        )
    if lost:
        sys.exit(1)  # leadership lost: exit so the Deployment restarts us as a standby
