"""Deploy for real (issue #12 item 4): kubectl and Helm apply deploy/ to a fresh kube-apiserver, and a
GPUJob submitted with kubectl runs to Succeeded under the operator's shipped RBAC.

The test starts its own control plane (etcd + kube-apiserver, RBAC on) from the binaries that
tests/e2e/run.py built, so installing and uninstalling the chart's cluster-wide objects cannot disturb
the suite's shared cluster. The harness (gpusched/testing/harness.py) plays the GPU node's kubelet.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_controlplane import ROOT, ControlPlane
from e2e_harness import harness_module

pytestmark = pytest.mark.e2e

JOB = """
apiVersion: gpusched.io/v1alpha1
kind: GPUJob
metadata: {{name: {name}}}
spec:
  gpus: 8
  gpuTypes: [H100-80GB]
  priority: 5
  team: research
  work: {{duration: 2h}}
  checkpoint:
    volume: {{persistentVolumeClaim: {{claimName: ckpt}}}}
    interval: 30m
    gracePeriodSeconds: 30
  template:
    image: ghcr.io/gpusched/workload:0.1.0
    args: [--steps, "1000"]
    resources: {{requests: {{cpu: "2", memory: 8Gi}}}}
"""
OPERATOR = "system:serviceaccount:{ns}:gpusched-operator"


@pytest.fixture
def plane(tmp_path: Path) -> Any:
    bins = os.environ.get("GPUSCHED_E2E_BIN")
    if not bins:
        pytest.skip(
            "GPUSCHED_E2E_BIN is not set: `python tests/e2e/run.py` builds kubectl, helm and a control plane"
        )
    with ControlPlane(Path(bins), controller_manager=False, workdir=tmp_path / "plane") as cp:
        yield cp


def _can_i(plane: ControlPlane, verb: str, resource: str, namespace: str, sa_namespace: str) -> bool:
    """`kubectl auth can-i` as the operator's ServiceAccount (the real authorizer); resource[/subresource]."""
    resource, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    result = plane.kubectl(
        "auth", "can-i", verb, resource, *extra, "-n", namespace, f"--as={OPERATOR.format(ns=sa_namespace)}",
        check=False,
    )  # fmt: skip
    return result.stdout.strip() == "yes"


def test_kubectl_and_helm_deploy_and_a_kubectl_gpujob_runs_to_succeeded(
    plane: ControlPlane, tmp_path: Path
) -> None:
    # kubectl validates against the server's OpenAPI documents: both must be served (a kube-apiserver
    # built with the wrong Go answered 503 here).
    for path in ("/openapi/v2", "/openapi/v3"):
        assert plane._get(path)[0] == 200, path

    # 1. The plain manifests, with kubectl: CRDs, the operator and the agent (namespace first).
    plane.kubectl(
        "apply",
        "-f",
        str(ROOT / "deploy/crds/gpujobs.yaml"),
        "-f",
        str(ROOT / "deploy/agent/gpunode-crd.yaml"),
    )
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/gpujobs.gpusched.io",
        "crd/gpunodes.gpusched.io",
    )
    applied = plane.kubectl(
        "apply", "-f", str(ROOT / "deploy/operator"), "-f", str(ROOT / "deploy/agent")
    ).stdout
    for what in ("clusterrole.rbac.authorization.k8s.io/gpusched-operator", "deployment.apps/gpusched-operator",
                 "daemonset.apps/gpusched-agent", "serviceaccount/gpusched-operator"):  # fmt: skip
        assert what in applied, applied
    # The real authorizer agrees with the shipped rules: what the operator needs, and nothing more.
    assert _can_i(plane, "create", "pods/binding", "default", "gpusched-system")
    assert _can_i(plane, "patch", "gpujobs.gpusched.io/status", "default", "gpusched-system")
    assert not _can_i(plane, "get", "secrets", "default", "gpusched-system")
    assert not _can_i(plane, "update", "gpujobs.gpusched.io", "default", "gpusched-system")
    assert not _can_i(plane, "update", "pods/status", "default", "gpusched-system")
    # The cluster-wide objects go again, so that the chart installs from scratch.
    plane.kubectl("delete", "-f", str(ROOT / "deploy/operator"), "-f", str(ROOT / "deploy/agent/rbac.yaml"),
                  "-f", str(ROOT / "deploy/agent/daemonset.yaml"), "--wait=false")  # fmt: skip

    # 2. The Helm chart, into its own namespace (its CRDs are there already: Helm leaves them).
    ns = "gpusched-helm"
    plane.helm("install", "gpusched", str(ROOT / "deploy/chart"), "-n", ns, "--create-namespace")
    status = json.loads(plane.helm("status", "gpusched", "-n", ns, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed", status["info"]
    role = json.loads(plane.kubectl("get", "clusterrole", "gpusched-operator", "-o", "json").stdout)
    assert role["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "Helm"
    assert _can_i(plane, "create", "pods/binding", "default", ns)
    assert not _can_i(
        plane, "create", "pods/binding", "default", "gpusched-system"
    )  # the old binding is gone

    # 3. A GPUJob submitted with kubectl; the operator runs as the chart's ServiceAccount.
    operator = plane.service_account_kubeconfig(ns, "gpusched-operator", tmp_path / "operator.kubeconfig")
    h = harness_module.Harness.open(
        str(plane.kubeconfig),
        None,
        tmp_path,
        operator_kubeconfig=str(operator),
        operator_sa=f"{ns}/gpusched-operator",
    )
    try:
        h.add_node("gpu-a")
        bad = plane.kubectl(
            "apply", "-n", h.namespace, "-f", "-", check=False, stdin=JOB.format(name="bad") + "  gpuz: 8\n"
        )
        assert bad.returncode != 0 and "gpuz" in bad.stderr, bad.stderr  # strict field validation
        plane.kubectl("apply", "-n", h.namespace, "-f", "-", stdin=JOB.format(name="llm"))
        h.start_operator()
        running = h.wait_phase("llm", "Running", timeout=60)
        assert running["status"]["nodes"] == [h.node("gpu-a")]
        h.finish("llm")
        h.wait_phase("llm", "Succeeded", timeout=60)
        shown = plane.kubectl(
            "get", "gpujob", "llm", "-n", h.namespace, "-o", "jsonpath={.status.phase}"
        ).stdout
        assert shown == "Succeeded"
    finally:
        h.close()

    # 4. Uninstall removes what the chart made (the CRDs stay, as Helm documents).
    plane.helm("uninstall", "gpusched", "-n", ns)
    deadline = time.monotonic() + 30
    while plane.kubectl("get", "clusterrole", "gpusched-operator", check=False).returncode == 0:
        assert time.monotonic() < deadline, "helm uninstall left the ClusterRole"
        time.sleep(0.5)
    assert plane.kubectl("get", "crd", "gpujobs.gpusched.io", check=False).returncode == 0
