"""The deploy manifests agree with the code: CRD schema vs the status the agent writes, RBAC vs the
requests the publisher makes, DaemonSet essentials."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client

from gpusched.agents.agent import Agent
from gpusched.agents.health import HealthConfig
from gpusched.agents.k8s import GROUP, PLURAL, VERSION, GpuNodePublisher

from .kube_api import KubeAPI

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "agent"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def crd_version() -> dict[str, Any]:
    (crd,) = docs("gpunode-crd.yaml")
    assert crd["spec"]["group"] == GROUP and crd["spec"]["names"]["plural"] == PLURAL
    assert crd["spec"]["scope"] == "Cluster"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == VERSION and version["subresources"] == {"status": {}}
    return version


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3 'nullable' -> JSON Schema type lists, so jsonschema can check a real status."""
    if isinstance(node, dict):
        out = {
            k: to_json_schema(v)
            for k, v in node.items()
            if k not in ("nullable", "x-kubernetes-preserve-unknown-fields")
        }
        if node.get("nullable"):
            out["type"] = [node["type"], "null"]
        return out
    if isinstance(node, list):
        return [to_json_schema(v) for v in node]
    return node


def assert_structural(node: dict[str, Any], path: str = "") -> None:
    assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path}: no type"
    for name, child in node.get("properties", {}).items():
        assert_structural(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        assert_structural(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        assert_structural(node["additionalProperties"], f"{path}{{}}")


def test_crd_is_structural_and_accepts_real_statuses(make_agent: Callable[..., Any]) -> None:
    version = crd_version()
    schema = version["schema"]["openAPIV3Schema"]
    assert_structural(schema)
    agent: Agent = make_agent("profile a100x4mig\nlost 2\n", node="a100-1")
    status = agent.poll_once().model_dump(mode="json", by_alias=True)
    jsonschema.validate(status, to_json_schema(schema["properties"]["status"]))
    # every printer column points at a field the agent writes
    for column in version["additionalPrinterColumns"]:
        key = column["jsonPath"].removeprefix(".status.")
        assert key in status, column
    assert status["gpuCount"] == 4 and status["healthyGpuCount"] == 3


def _rules() -> list[dict[str, Any]]:
    role = next(d for d in docs("rbac.yaml") if d["kind"] == "ClusterRole")
    return role["rules"]


def _allowed(method: str, path: str) -> bool:
    verb = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update"}[method]
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in _rules()
    )


def test_rbac_allows_every_request_the_publisher_makes(
    make_agent: Callable[..., Any], stub_config: Callable[[str], Any]
) -> None:
    kube = KubeAPI()
    try:
        kube.add_node("dgx-1")
        cfg = client.Configuration()
        cfg.host = kube.url
        pub = GpuNodePublisher(client.ApiClient(cfg), "dgx-1", heartbeat=0.0)
        agent: Agent = make_agent("profile h100x8\n", node="dgx-1", publishers=[pub])
        agent.poll_once()
        stub_config("profile h100x8\nlost 3\n")
        agent.poll_once()
        methods = {(m, p) for m, p, _, _ in kube.requests}
        assert len(methods) >= 4  # GET/POST gpunode, GET node, PATCH status, POST event
        for method, path in methods:
            assert _allowed(method, path), (method, path)
        assert not _allowed("GET", "/api/v1/namespaces/default/pods/x")  # and nothing more than needed
    finally:
        kube.close()


def test_daemonset_essentials() -> None:
    ds = next(d for d in docs("daemonset.yaml") if d["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert {"name": "metrics", "containerPort": 9400, "protocol": "TCP"} in container["ports"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]  # watches GPUs, holds none
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert any(e["key"] == "nvidia.com/gpu.present" for t in terms for e in t["matchExpressions"])
    assert spec["runtimeClassName"] == "nvidia" and spec["serviceAccountName"] == "gpusched-agent"
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9400"
    assert "--publish=k8s" in container["args"]


@pytest.mark.parametrize("doc", ["daemonset.yaml"])
def test_shipped_health_config_is_valid_and_equals_the_defaults(doc: str) -> None:
    cm = next(d for d in docs(doc) if d["kind"] == "ConfigMap")
    assert HealthConfig.model_validate(yaml.safe_load(cm["data"]["health.yaml"])) == HealthConfig()
