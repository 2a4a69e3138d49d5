"""`gpusched operator`: only typer, rich and the stdlib at import time (kubernetes loads inside)."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gpusched import defaults
from gpusched.cli_util import check_plan_size, duration_option, finite_option
from gpusched.cli_util import fail as _fail
from gpusched.model import POLICIES, Policy
from gpusched.safeio import shown
from gpusched.units import format_hours

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _short_text(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _check_kubeconfig(path: str) -> None:
    """The file must be a YAML mapping: the client's own errors on garbage are long and blame others."""
    from gpusched.safeio import InputError, parse_document, read_text

    if not Path(path).exists():
        raise _fail(f"--kubeconfig: file not found: {shown(path)}")
    try:
        data = parse_document(read_text(Path(path)), path, "yaml")
    except InputError as exc:
        raise _fail(f"--kubeconfig: {exc}") from None
    if not isinstance(data, dict):
        raise _fail(
            f"--kubeconfig: {path}: not a kubeconfig (expected a YAML mapping with clusters, "
            f"users and contexts; got {type(data).__name__})"
        )


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
    policy: Annotated[
        Policy, typer.Option(help=f"Planner objective: {', '.join(POLICIES)} (jct weighs priority).")
    ] = defaults.POLICY,
    horizon: Annotated[str, typer.Option(help="Planning horizon.")] = format_hours(defaults.HORIZON_H),
    slot: Annotated[str, typer.Option(help="Planning slot length.")] = format_hours(defaults.SLOT_H),
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

    from gpusched import logs
    from gpusched.config import InputError, load_cluster

    # Every option is checked before any file is read or any server is called, so an error names the
    # option that is wrong (not a later symptom such as a missing kubeconfig).
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise _fail(
            f"--log-level: {shown(log_level)} is not a level (expected debug, info, warning or error)"
        )
    interval = _duration_s(replan_interval, "--replan-interval")
    horizon_h = _duration_s(horizon, "--horizon") / 3600
    slot_h = _duration_s(slot, "--slot") / 3600
    stale = _duration_s(stale_after, "--stale-after")
    check_plan_size(horizon_h, slot_h, horizon, slot)
    finite_option(time_limit, "--time-limit", maximum=3600.0)
    if not 2 <= lease_duration <= 3600:
        raise _fail(f"--lease-duration: {lease_duration} is out of range (expected 2 to 3600 seconds)")
    if not 0 <= metrics_port <= 65535:
        raise _fail(f"--metrics-port: {metrics_port} is out of range (expected 0 to 65535)")
    for option, value in (("--namespace", namespace), ("--lease-namespace", lease_namespace)):
        if value is not None and not _DNS_LABEL.match(value):
            raise _fail(
                f"{option}: {shown(value)} is not a namespace name (expected at most 63 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit)"
            )
    if not _DNS_SUBDOMAIN.match(lease_name) or len(lease_name) > 253:
        raise _fail(
            f"--lease-name: {shown(lease_name)} is not a Lease name (expected at most 253 lowercase letters, "
            "digits, '-' and '.', starting and ending with a letter or digit)"
        )
    if kubeconfig is not None:
        _check_kubeconfig(kubeconfig)
    if node_selector is not None:
        from gpusched.scheduler.snapshot import parse_label_selector

        try:
            parse_label_selector(node_selector)
        except ValueError as exc:
            raise _fail(f"--node-selector: {exc}") from None
    try:
        cluster = load_cluster(cluster_config)
    except InputError as exc:
        raise _fail(str(exc)) from None

    try:
        logs.setup(log_level, default_format="json")
    except InputError as exc:
        raise _fail(str(exc)) from None
    from gpusched.scheduler.kube import Kube, load_api_client
    from gpusched.scheduler.operator import Operator, OperatorSettings, Unreachable

    try:
        api_client = load_api_client(kubeconfig, context)
    except Exception as exc:
        raise _fail(
            f"--kubeconfig: cannot load a Kubernetes configuration: {_short_text(str(exc))}"
        ) from None
    settings = OperatorSettings(
        gpu_types=list(cluster.gpu_types),
        namespace=namespace,
        node_selector=(node_selector or "").strip() or None,
        replan_interval=interval,
        policy=policy,
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
