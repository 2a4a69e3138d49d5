"""`gpusched agent` as a process: --once --json, the long-running loop, SIGTERM, bad options."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gpusched.telemetry import NodeTelemetry

from .conftest import agent_cmd, agent_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def test_once_json_prints_one_snapshot(tmp_path: Path, stub_lib: Path) -> None:
    config = tmp_path / "stub.conf"
    write_config(config, "profile h100x8\nprocess 1 777 2048\nhang 3 temperature 5000\n")
    result = subprocess.run(
        agent_cmd("--once", "--json", "--poll-timeout", "500ms"),
        capture_output=True,
        text=True,
        env=agent_env(stub_lib, config, NODE_NAME="node-from-env"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    snap = NodeTelemetry.model_validate(json.loads(result.stdout))
    assert snap.node == "node-from-env"
    assert len(snap.gpus) == 8 and snap.sources == ["nvml"]
    assert snap.gpus[1].processes[0].pid == 777
    assert snap.gpus[3].health == "unknown"  # its hung call was cut off; the process still exited
    assert json.loads(result.stdout) == snap.model_dump(mode="json")


def test_once_reports_xids_like_the_daemon(tmp_path: Path, stub_lib: Path) -> None:
    """An XID NVML has queued for GPU 6 makes `--once` report it unhealthy, naming the XID (#15)."""
    config = tmp_path / "stub.conf"
    write_config(config, "profile h100x8\nxid 6 79\nxid 2 13\n")
    env = agent_env(stub_lib, config)
    result = subprocess.run(
        agent_cmd("--once", "--json", "--node-name", "n1"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    gpus = NodeTelemetry.model_validate(json.loads(result.stdout)).gpus
    assert gpus[6].health == "unhealthy" and gpus[6].xid_errors == [79]
    assert "XID 79 (fatal)" in gpus[6].health_reasons
    assert gpus[2].xid_errors == [13] and gpus[2].health == "healthy"  # application XID: recorded only
    assert all(g.health == "healthy" for g in gpus if g.index not in (2, 6))
    write_config(config, "profile h100x8\nxid 6 79\n")
    human = subprocess.run(
        agent_cmd("--once", "--node-name", "n1"), capture_output=True, text=True, env=env, timeout=60
    )
    assert human.returncode == 0, human.stderr
    line = next(x for x in human.stdout.splitlines() if x.strip().startswith("[6]"))
    assert "unhealthy" in line and "XID 79" in line


def test_node_name_option_wins(tmp_path: Path, stub_lib: Path) -> None:
    config = tmp_path / "stub.conf"
    write_config(config, "profile a100x4mig\n")
    result = subprocess.run(
        agent_cmd("--once", "--json", "--node-name", "explicit"),
        capture_output=True,
        text=True,
        env=agent_env(stub_lib, config, NODE_NAME="env"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["node"] == "explicit"


def test_runs_publishes_serves_metrics_and_stops_on_sigterm(tmp_path: Path, stub_lib: Path) -> None:
    config = tmp_path / "stub.conf"
    write_config(config, "profile h100x8\n")
    out = tmp_path / "snapshots"
    port = free_port()
    proc = subprocess.Popen(
        agent_cmd(
            "--interval",
            "200ms",
            "--port",
            str(port),
            "--publish",
            "file",
            "--output-dir",
            str(out),
            "--node-name",
            "dgx-9",
        ),
        env=agent_env(stub_lib, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        snap_file = out / "dgx-9.json"
        deadline = time.monotonic() + 60
        while not snap_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert snap_file.exists(), "no snapshot written"
        assert all(g["health"] == "healthy" for g in json.loads(snap_file.read_text())["gpus"])
        # an XID 79 arrives while the agent runs: the event thread picks it up, the next snapshot shows it
        write_config(config, "profile h100x8\nxid 4 79\n")
        health = None
        while time.monotonic() < deadline:
            data = json.loads(snap_file.read_text())
            health = data["gpus"][4]["health"]
            if health == "unhealthy":
                break
            time.sleep(0.05)
        assert health == "unhealthy" and data["gpus"][4]["xid_errors"] == [79]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        xid = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_XID_ERRORS"].samples}
        assert xid["4"] == 79 and xid["0"] == 0
        assert all(s.labels["Hostname"] == "dgx-9" for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "stopped" in stderr
    assert "XID 79 on GPU 4" in stderr


def test_sigterm_is_clean_even_with_a_call_hung_forever(tmp_path: Path, stub_lib: Path) -> None:
    config = tmp_path / "stub.conf"
    write_config(config, "profile h100x8\nhang 2 power 600000\n")  # ten minutes
    out = tmp_path / "snapshots"
    proc = subprocess.Popen(
        agent_cmd(
            "--interval",
            "200ms",
            "--poll-timeout",
            "300ms",
            "--port",
            "0",
            "--publish",
            "file",
            "--output-dir",
            str(out),
            "--node-name",
            "n",
        ),
        env=agent_env(stub_lib, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        snap_file = out / "n.json"
        deadline = time.monotonic() + 60
        polls = 0
        while time.monotonic() < deadline:
            if snap_file.exists():
                data = json.loads(snap_file.read_text())
                if (
                    data["gpus"][2]["health"] == "unknown"
                    and "still hung" in data["gpus"][2]["health_reasons"][0]
                ):
                    polls += 1
                    break
            time.sleep(0.05)
        assert polls == 1, "the agent did not keep polling past the hung GPU"
        assert [g["health"] for g in data["gpus"]].count("healthy") == 7
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr


def test_bad_options_are_one_line_errors(tmp_path: Path, stub_lib: Path) -> None:
    config = tmp_path / "stub.conf"
    write_config(config, "profile h100x8\n")
    env = agent_env(stub_lib, config)
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("temperature_unhealthy_c: [1]\n")
    cases = [
        (["--interval", "soon"], "--interval"),
        (["--publish", "file"], "--output-dir is required"),
        (["--json"], "--json: only meaningful with --once"),
        (["--once", "--health-config", str(bad_rules)], "rules.yaml: temperature_unhealthy_c"),
        (["--once", "--health-config", str(tmp_path / "none.yaml")], "none.yaml: file not found"),
    ]
    for args, expected in cases:
        result = subprocess.run(agent_cmd(*args), capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], (args, result.stderr)


def test_publish_k8s_from_the_command_line(tmp_path: Path, stub_lib: Path) -> None:
    from gpusched.agents.k8s import PLURAL

    from .kube_api import KubeAPI

    kube = KubeAPI()
    try:
        kube.add_node("dgx-1")
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
            f"clusters: [{{name: t, cluster: {{server: '{kube.url}'}}}}]\n"
            "users: [{name: t, user: {token: secret-token}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\n"
        )
        config = tmp_path / "stub.conf"
        write_config(config, "profile h100x8\nlost 2\n")
        result = subprocess.run(
            agent_cmd("--once", "--publish", "k8s", "--node-name", "dgx-1"),
            capture_output=True,
            text=True,
            env=agent_env(stub_lib, config, KUBECONFIG=str(kubeconfig)),
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        status = kube.objects[(PLURAL, "dgx-1")]["status"]
        assert status["node"] == "dgx-1" and status["gpuCount"] == 8 and status["healthyGpuCount"] == 7
        assert [e["reason"] for e in kube.events] == ["GPUUnhealthy"]
    finally:
        kube.close()


def test_publish_k8s_without_a_cluster_is_a_one_line_error(tmp_path: Path, stub_lib: Path) -> None:
    config = tmp_path / "stub.conf"
    write_config(config, "profile h100x8\n")
    env = agent_env(stub_lib, config, KUBECONFIG=str(tmp_path / "missing-kubeconfig"))
    env.pop("KUBERNETES_SERVICE_HOST", None)
    result = subprocess.run(
        agent_cmd("--once", "--publish", "k8s"), capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--publish k8s: no Kubernetes configuration" in lines[0], result.stderr
