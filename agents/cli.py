"""`gpusched agent`: the node agent's command line. Only typer, rich and stdlib are imported at module
level; NVML, prometheus_client and the Kubernetes client load inside the command."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from gpusched.cli_util import duration_option
from gpusched.cli_util import fail as _fail
from gpusched.safeio import shown


class PublishChoice(str, Enum):
    k8s = "k8s"
    file = "file"
    none = "none"


def _seconds(value: str, option: str) -> float:
    return duration_option(value, option) * 3600.0


_NODE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")


def _node_name(name: str, where: str) -> str:
    """A Kubernetes node name: it becomes <output-dir>/<node>.json, so '../x' or 'a/b' is refused."""
    if not _NODE_NAME.match(name) or ".." in name:
        raise _fail(
            f"{where}: {shown(name)} is not a node name (expected letters, digits, '.', '-', '_', "
            "starting and ending with a letter or digit, as Kubernetes names nodes)"
        )
    return name


def _labels(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--label: {shown(item)} is not KEY=VALUE (expected e.g. pool=training)")
        out[key] = value
    return out


def agent(
    interval: Annotated[str, typer.Option(help="Time between polls, e.g. 5s.")] = "5s",
    port: Annotated[int, typer.Option(help="Port of /metrics, /healthz and /snapshot; 0 disables.")] = 9400,
    node_name: Annotated[
        str | None, typer.Option("--node-name", help="Node name (default: $NODE_NAME, then the hostname).")
    ] = None,
    publish: Annotated[
        PublishChoice, typer.Option(help="k8s: GPUNode status + Events; file: JSON snapshots.")
    ] = (PublishChoice.none),
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Directory for --publish file (<node>.json).")
    ] = None,
    health_config: Annotated[
        Path | None, typer.Option("--health-config", help="YAML health rules (XIDs, thresholds, ECC).")
    ] = None,
    heartbeat: Annotated[
        str, typer.Option(help="--publish k8s: rewrite an unchanged status this often.")
    ] = "30s",
    poll_timeout: Annotated[
        str | None,
        typer.Option("--poll-timeout", help="Cut-off for one poll's NVML calls (default: 2s or interval)."),
    ] = None,
    topology_domain: Annotated[
        str | None,
        typer.Option("--topology-domain", help="NVLink island / rack (default: $GPUSCHED_TOPOLOGY_DOMAIN)."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="KEY=VALUE copied into the snapshot.")
    ] = None,
    kubernetes_pod_labels: Annotated[
        bool,
        typer.Option(
            "--kubernetes-pod-labels",
            help="Label GPU metrics with pod, namespace, container from the kubelet's pod-resources socket.",
        ),
    ] = False,
    pod_resources_socket: Annotated[
        Path,
        typer.Option("--pod-resources-socket", help="The kubelet's pod-resources gRPC socket."),
    ] = Path("/var/lib/kubelet/pod-resources/kubelet.sock"),
    once: Annotated[bool, typer.Option("--once", help="Poll once, print, exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print the snapshot as JSON.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = "info",
) -> None:
    """Run the GPU/TPU node agent: read NVML (and tpu-info), apply health rules, publish.

    Serves Prometheus /metrics with dcgm-exporter names; with --publish k8s writes the node's GPUNode
    status and Events, with --publish file writes JSON snapshots that `gpusched plan --telemetry` reads.
    Stops cleanly on SIGTERM or SIGINT.
    """
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise _fail(
            f"--log-level: {shown(log_level)} is not a level (expected debug, info, warning or error)"
        )
    from gpusched import logs
    from gpusched.config import InputError

    try:
        logs.setup(log_level, default_format="text")
    except InputError as exc:
        raise _fail(str(exc)) from None
    interval_s = _seconds(interval, "--interval")
    heartbeat_s = _seconds(heartbeat, "--heartbeat")
    timeout_s = _seconds(poll_timeout, "--poll-timeout") if poll_timeout else min(2.0, interval_s)
    if as_json and not once:
        raise _fail("--json: only meaningful with --once")
    if publish is PublishChoice.file and output_dir is None:
        raise _fail("--publish file: --output-dir is required")
    if not 0 <= port <= 65535:
        raise _fail(f"--port: expected 0-65535, got {port}")
    if kubernetes_pod_labels and (once or not port):
        raise _fail("--kubernetes-pod-labels: labels /metrics, so it needs a --port and no --once")
    if node_name is not None:
        node = _node_name(node_name, "--node-name")
    elif os.environ.get("NODE_NAME"):
        node = _node_name(os.environ["NODE_NAME"], "$NODE_NAME")
    else:
        node = _node_name(socket.gethostname(), "the hostname (pass --node-name)")
    labels = _labels(label or [])
    if output_dir is not None:
        from gpusched.safeio import InputError, check_output_dir

        try:
            check_output_dir(output_dir, "--output-dir")
        except InputError as exc:
            raise _fail(str(exc)) from None

    from gpusched.agents.agent import Agent
    from gpusched.agents.health import load_health_config
    from gpusched.config import InputError

    try:
        rules = load_health_config(health_config)
    except InputError as exc:
        raise _fail(str(exc)) from None

    publishers: list = []
    if publish is PublishChoice.file and output_dir is not None:
        from gpusched.agents.k8s import FilePublisher

        publishers.append(FilePublisher(output_dir, node))
    if publish is PublishChoice.k8s:
        from gpusched.agents.k8s import GpuNodePublisher, load_kube_client

        try:
            api_client = load_kube_client()
        except Exception as exc:
            raise _fail(
                f"--publish k8s: no Kubernetes configuration (in-cluster or kubeconfig): {exc}"
            ) from None
        publishers.append(GpuNodePublisher(api_client, node, heartbeat=heartbeat_s))

    pod_resources = None
    if kubernetes_pod_labels:
        from gpusched.agents.podresources import PodResourcesClient, PodResourcesError

        try:  # asked once now, so a missing or refusing socket is one line at start, not a warning later
            pod_resources = PodResourcesClient(pod_resources_socket, timeout=timeout_s)
            pod_resources.gpu_pods()
        except PodResourcesError as exc:
            raise _fail(
                f"--kubernetes-pod-labels: {exc} (expected the kubelet's pod-resources socket: mount "
                "/var/lib/kubelet/pod-resources into the agent, or pass --pod-resources-socket)"
            ) from None

    the_agent = Agent(
        node,
        health=rules,
        poll_timeout=timeout_s,
        publishers=publishers,
        topology_domain=topology_domain or os.environ.get("GPUSCHED_TOPOLOGY_DOMAIN"),
        labels=labels,
        xid_wait_ms=100 if once else 500,  # --once: drain the queued events quickly, then poll
        pod_resources=pod_resources,
    )
    server = None
    if port and not once:
        from gpusched.agents.metrics import MetricsServer

        try:  # bound before the agent starts: a port in use is a one-line error, not a traceback
            server = MetricsServer(the_agent, port)
        except OSError as exc:
            raise _fail(
                f"--port: cannot serve on port {port}: {exc.strerror or exc} "
                "(expected a free port, or 0 to serve nothing)"
            ) from None
    the_agent.start()
    try:
        if once:
            the_agent.settle_xids(timeout_s)  # the XIDs the daemon would report, not none
            snapshot = the_agent.poll_once()
            if as_json:
                typer.echo(json.dumps(snapshot.model_dump(mode="json"), indent=2))
            else:
                _print_summary(snapshot)
            return
        _serve(the_agent, server, interval_s)
    finally:
        the_agent.close()


def _serve(the_agent: object, server: object, interval_s: float) -> None:
    from gpusched.agents.agent import Agent
    from gpusched.agents.metrics import MetricsServer

    assert isinstance(the_agent, Agent)
    assert server is None or isinstance(server, MetricsServer)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if server is not None:
        server.start()
        logging.getLogger(__name__).info("serving /metrics on port %d", server.port)
    try:
        the_agent.run(stop, interval_s)
    finally:
        if server is not None:
            server.stop()
    logging.getLogger(__name__).info("stopped")


def _print_summary(snapshot: object) -> None:
    from gpusched.telemetry import NodeTelemetry

    assert isinstance(snapshot, NodeTelemetry)
    typer.echo(
        f"{snapshot.node}: {len(snapshot.gpus)} accelerator(s), driver {snapshot.driver_version}, "
        f"CUDA {snapshot.cuda_version}, sources {','.join(snapshot.sources) or 'none'}"
    )
    for g in snapshot.gpus:
        mem = (
            f"{g.memory_used_mib:.0f}/{g.memory_total_mib:.0f} MiB"
            if g.memory_used_mib is not None and g.memory_total_mib is not None
            else "mem n/a"
        )
        why = f" ({'; '.join(g.health_reasons)})" if g.health_reasons else ""
        typer.echo(f"  [{g.index}] {g.name} {g.uuid} {mem} {g.health}{why}")
