"""/metrics over real HTTP, parsed with prometheus_client's own parser."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpusched.agents.agent import Agent
from gpusched.agents.metrics import MetricsServer


@pytest.fixture
def served(make_agent: Callable[..., Any]) -> Iterator[tuple[Agent, MetricsServer]]:
    agent: Agent = make_agent(
        "profile h100x8\nprocess 2 4242 30000\nutil 2 87 41\nlost 6\necc 1 2\nunsupported 4 temperature\n",
        node="dgx-07",
    )
    server = MetricsServer(agent, 0, host="127.0.0.1")
    server.start()
    yield agent, server
    server.stop()


def scrape(server: MetricsServer, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_healthz_waits_for_the_first_poll(served: tuple[Agent, MetricsServer]) -> None:
    agent, server = served
    assert scrape(server, "/healthz")[0] == 503
    agent.poll_once()
    assert scrape(server, "/healthz") == (200, "ok\n")
    code, body = scrape(server, "/snapshot")
    assert code == 200 and json.loads(body)["node"] == "dgx-07"


def test_dcgm_names_labels_and_values(served: tuple[Agent, MetricsServer]) -> None:
    agent, server = served
    agent.poll_once()
    code, text = scrape(server)
    assert code == 200
    fams = families(text)
    for name in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_MEM_CLOCK",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "gpusched_gpu_health",
    ):
        assert name in fams, name
    util = {s.labels["gpu"]: s for s in fams["DCGM_FI_DEV_GPU_UTIL"].samples}
    s2 = util["2"]
    assert s2.value == 87
    assert {"gpu", "UUID", "device", "modelName", "Hostname", "pci_bus_id"} <= set(s2.labels)
    assert s2.labels["device"] == "nvidia2" and s2.labels["Hostname"] == "dgx-07"
    assert s2.labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert s2.labels["UUID"] == "GPU-5a1e0002-1002-2002-3002-000000abc002"
    assert "6" not in util  # the lost GPU has no readings, rather than zeros
    fb_used = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_FB_USED"].samples}
    assert fb_used["2"] == 30004
    power = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_POWER_USAGE"].samples}
    assert power["0"] == 70.0
    temps = {s.labels["gpu"] for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples}
    assert "4" not in temps and "3" in temps  # unsupported on GPU 4: absent
    ecc = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"].samples}
    assert ecc["1"] == 2 and ecc["0"] == 0
    health = {(s.labels["gpu"], s.labels["state"]): s.value for s in fams["gpusched_gpu_health"].samples}
    assert health[("6", "unhealthy")] == 1 and health[("6", "healthy")] == 0
    assert health[("1", "unhealthy")] == 1
    assert health[("0", "healthy")] == 1
    assert sum(v for (g, _), v in health.items() if g == "0") == 1


def test_xid_gauge_and_transition_counter(
    served: tuple[Agent, MetricsServer], stub_config: Callable[[str], Any]
) -> None:
    agent, server = served
    agent.poll_once()
    stub_config(
        "profile h100x8\nprocess 2 4242 30000\nlost 6\necc 1 2\nunsupported 4 temperature\ntemp 0 97\n"
    )
    agent.poll_once()
    fams = families(scrape(server)[1])
    transitions = {
        (s.labels["from"], s.labels["to"]): s.value for s in fams["gpusched_gpu_health_transitions"].samples
    }
    assert transitions[("healthy", "unhealthy")] == 1  # GPU 0 overheated
    assert transitions[("new", "healthy")] == 6
    xid = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_XID_ERRORS"].samples}
    assert xid["0"] == 0
    polls = fams["gpusched_agent_polls"].samples[0].value
    assert polls == 2


def test_metrics_is_prometheus_clients_app(served: tuple[Agent, MetricsServer]) -> None:
    """/metrics is served by prometheus_client's WSGI app: OpenMetrics and gzip when asked for."""
    import gzip

    agent, server = served
    agent.poll_once()
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(resp.read()).decode()
    assert text.endswith("# EOF\n") and "DCGM_FI_DEV_GPU_TEMP{" in text
    assert scrape(server, "/nothing-here")[0] == 404
    assert scrape(server, "/metrics")[1].startswith("# HELP")  # plain text for a plain scraper


def test_a_server_never_started_stops_at_once(make_agent: Callable[..., Any]) -> None:
    server = MetricsServer(make_agent(), 0, host="127.0.0.1")
    server.stop()  # must not wait for a serve loop that never ran
