"""Every manifest in deploy/ and every object the chart renders is valid Kubernetes.

Two independent validators: the official client's models (strict pydantic: unknown or mistyped
fields fail) and kubernetes-validate (the API server's OpenAPI schemas). The chart is rendered with
`helm template` (helm on the PATH, or the one tests/e2e/run.py builds; without either the chart tests
skip, saying so). The plain manifests apply in one `kubectl apply -f` on a fresh cluster: their order
is checked here, and applied for real to a fresh kube-apiserver under tests/e2e/run.py. RBAC is
checked against the requests the operator actually made in a scenario, so "least privilege" is also
"enough privilege".
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpusched.scheduler.crd import GPUJobSpec
from gpusched.scheduler.podspec import service_manifest, worker_manifest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "chart"
Obj = dict[str, Any]


# --------------------------------------------------------------------------------- chart rendering


def helm_binary() -> str | None:
    """helm on the PATH, else the one tests/e2e/run.py builds (GPUSCHED_E2E_BIN, or its cache)."""
    found = shutil.which("helm")
    if found:
        return found
    bins = os.environ.get("GPUSCHED_E2E_BIN")
    candidates = [Path(bins) / "helm"] if bins else []
    cache = Path(os.environ.get("GPUSCHED_E2E_CACHE", "~/.cache/gpusched-e2e")).expanduser()
    candidates += sorted(cache.glob("*/bin/helm"), reverse=True)
    return next((str(c) for c in candidates if c.is_file()), None)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = helm_binary()
    if binary is None:
        pytest.skip(
            "helm is not installed and tests/e2e/run.py has not built it "
            "(python tests/e2e/run.py --build-only): the chart tests did not run"
        )
    home = Path(tempfile.gettempdir()) / "gpusched-test-helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run([binary, *args], capture_output=True, text=True, env=env, check=check, timeout=120)


def render_chart(
    values: Obj | None = None, namespace: str = "gpusched-system", release: str = "gpusched"
) -> list[Obj]:
    """Documents of `helm template <release> deploy/chart -n <namespace> --include-crds [-f values]`."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        yaml.safe_dump(values or {}, extra)
        extra.flush()
        text = helm(
            "template", release, str(CHART), "-n", namespace, "--include-crds", "-f", extra.name
        ).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def raw_manifests() -> list[tuple[str, Obj]]:
    out = []
    for path in sorted(DEPLOY.glob("*/*.yaml")):
        if path.parent.name == "chart":
            continue
        out.extend((str(path.relative_to(ROOT)), d) for d in yaml.safe_load_all(path.read_text()) if d)
    return out


# --------------------------------------------------------------------------------- validators


def _model_for(obj: Obj) -> Any:
    from kubernetes import client

    models = {
        ("v1", "Namespace"): client.V1Namespace,
        ("v1", "ServiceAccount"): client.V1ServiceAccount,
        ("v1", "ConfigMap"): client.V1ConfigMap,
        ("v1", "Pod"): client.V1Pod,
        ("v1", "Service"): client.V1Service,
        ("apps/v1", "Deployment"): client.V1Deployment,
        ("apps/v1", "DaemonSet"): client.V1DaemonSet,
        ("rbac.authorization.k8s.io/v1", "ClusterRole"): client.V1ClusterRole,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): client.V1ClusterRoleBinding,
        ("rbac.authorization.k8s.io/v1", "Role"): client.V1Role,
        ("rbac.authorization.k8s.io/v1", "RoleBinding"): client.V1RoleBinding,
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): client.V1CustomResourceDefinition,
    }
    key = (obj.get("apiVersion"), obj.get("kind"))
    assert key in models, f"no validator for {key}"
    return models[key]


def validate_with_client_models(obj: Obj) -> None:
    _model_for(obj).model_validate(copy.deepcopy(obj))


def validate_with_schemas(obj: Obj) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed "
        "(pip install kubernetes-validate) - the OpenAPI-schema check did not run",
    )
    kv.validate(copy.deepcopy(obj), "1.31", strict=True)


def _worker_objects() -> list[Obj]:
    job = {"metadata": {"name": "llm", "namespace": "ml", "uid": "u-1"}}
    spec = GPUJobSpec.model_validate(
        {
            "gpus": 16,
            "gpusPerNode": 8,
            "work": {"duration": "6h"},
            "checkpoint": {
                "volume": {"persistentVolumeClaim": {"claimName": "ckpt"}},
                "gracePeriodSeconds": 90,
            },
            "template": {
                "image": "ghcr.io/gpusched/workload:0.1.0",
                "args": ["--steps", "5000"],
                "env": [{"name": "HF_HOME", "value": "/cache"}],
                "resources": {"requests": {"cpu": "8", "memory": "64Gi"}},
                "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
                "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
            },
        }
    )
    return [
        service_manifest(job),
        worker_manifest(job, spec, 1, 0, "n1"),
        worker_manifest(job, spec, 1, 1, "n2"),
    ]


CHART_TEST = pytest.mark.e2e
"""Tests that render the chart also run in the e2e suite (tests/e2e/run.py), which has helm even
where the unit pass had none and skipped them."""
ALL_CASES = ["raw", pytest.param("chart", marks=CHART_TEST), "workers"]


def _objects(case: str) -> list[tuple[str, Obj]]:
    if case == "raw":
        return raw_manifests()
    if case == "chart":
        return [(f"chart:{d['kind']}/{d['metadata']['name']}", d) for d in render_chart()]
    return [(f"operator-made {d['kind']}", d) for d in _worker_objects()]


@pytest.mark.parametrize("case", ALL_CASES)
def test_manifests_match_the_client_models(case: str) -> None:
    objs = _objects(case)
    assert objs
    for where, obj in objs:
        try:
            validate_with_client_models(obj)
        except Exception as exc:
            raise AssertionError(f"{where}: {exc}") from None


@pytest.mark.parametrize("case", ALL_CASES)
def test_manifests_match_the_kubernetes_openapi_schemas(case: str) -> None:
    for where, obj in _objects(case):
        try:
            validate_with_schemas(obj)
        except pytest.skip.Exception:
            raise
        except Exception as exc:
            raise AssertionError(f"{where}: {str(exc)[:800]}") from None


def test_validators_reject_a_broken_manifest() -> None:
    """The checks above can fail: a misspelt field is caught by both."""
    broken = copy.deepcopy(next(d for _, d in raw_manifests() if d["kind"] == "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(Exception, match="imagePullPolicyy"):
        validate_with_client_models(broken)
    with pytest.raises(Exception, match="imagePullPolicyy"):
        validate_with_schemas(broken)


@CHART_TEST
def test_chart_renders_everything_including_the_agent() -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in render_chart())
    for want in (
        "CustomResourceDefinition/gpujobs.gpusched.io",
        "CustomResourceDefinition/gpunodes.gpusched.io",
        "Deployment/gpusched-operator",
        "DaemonSet/gpusched-agent",
        "ServiceAccount/gpusched-operator",
        "ServiceAccount/gpusched-agent",
        "ClusterRole/gpusched-operator",
        "ClusterRole/gpusched-agent",
        "Role/gpusched-operator-leader-election",
        "ConfigMap/gpusched-cluster",
        "ConfigMap/gpusched-agent-health",
    ):
        assert want in kinds, (want, kinds)
    off = render_chart({"agent": {"enabled": False}})
    assert not [d for d in off if d["kind"] == "DaemonSet"]


@CHART_TEST
def test_chart_passes_the_gpu_node_selector_to_the_operator() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["operator"]["gpuNodeSelector"] == ""  # default: every node
    operator = {**values["operator"], "gpuNodeSelector": "gpusched.io/pool in (a, b),!reserved"}
    deployment = next(d for d in render_chart({"operator": operator}) if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    at = args.index("--node-selector")
    assert args[at + 1] == "gpusched.io/pool in (a, b),!reserved"
    # What the chart renders is what the CLI accepts (it would exit 2 on a bad selector first).
    from gpusched.scheduler.snapshot import parse_label_selector

    assert len(parse_label_selector(args[at + 1])) == 2


def test_chart_crds_are_the_deploy_crds() -> None:
    for chart, source in (
        ("crds/gpujobs.yaml", "crds/gpujobs.yaml"),
        ("crds/gpunodes.yaml", "agent/gpunode-crd.yaml"),
    ):
        assert (CHART / chart).read_text() == (DEPLOY / source).read_text(), (
            f"deploy/chart/{chart} differs from deploy/{source}: cp deploy/{source} deploy/chart/{chart}"
        )


HELM_ONLY_LABELS = (
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def _strip(obj: Obj) -> Obj:
    """The object without the labels only a Helm release has (release name, chart version)."""
    out = copy.deepcopy(obj)
    spec = out.get("spec") or {}
    for labels in (
        out["metadata"].get("labels"),
        (spec.get("selector") or {}).get("matchLabels") if isinstance(spec.get("selector"), dict) else None,
        ((spec.get("template") or {}).get("metadata") or {}).get("labels"),
    ):
        for key in HELM_ONLY_LABELS:
            (labels or {}).pop(key, None)
    return out


def _no_nulls(data: Any) -> Any:
    """Helm drops null values (a null in values means "delete this key"): the chart's health.yaml
    leaves out what deploy/agent spells as null, which the agent reads as the same default (None)."""
    if isinstance(data, dict):
        return {k: _no_nulls(v) for k, v in data.items() if v is not None}
    return data


@CHART_TEST
def test_chart_renders_the_same_objects_as_the_plain_manifests() -> None:
    """deploy/operator and deploy/agent stay the reference; the chart must not drift from them."""
    chart = {(d["kind"], d["metadata"]["name"]): _strip(d) for d in render_chart()}
    for where, raw in raw_manifests():
        key = (raw["kind"], raw["metadata"]["name"])
        if raw["kind"] in ("Namespace", "CustomResourceDefinition"):
            continue
        assert key in chart, f"{where}: {key} is not in the chart"
        got, want = chart[key], copy.deepcopy(raw)
        if raw["kind"] == "Deployment":  # the chart also names its Lease explicitly
            args = got["spec"]["template"]["spec"]["containers"][0]["args"]
            got["spec"]["template"]["spec"]["containers"][0]["args"] = [
                a for a in args if not a.startswith("--lease-name")
            ]
        if raw["kind"] == "ConfigMap":
            got["data"] = {k: yaml.safe_load(v) for k, v in got["data"].items()}
            want["data"] = {k: _no_nulls(yaml.safe_load(v)) for k, v in want["data"].items()}
        assert got == want, (
            f"{where}: the chart renders {key} differently; update deploy/chart/templates to match {where}"
        )


# --------------------------------------------------------------------------------- the chart's options


def _pod_spec(docs: list[Obj], kind: str) -> Obj:
    return next(d for d in docs if d["kind"] == kind)["spec"]["template"]["spec"]


@CHART_TEST
def test_helm_lint_is_clean_and_the_values_schema_refuses_bad_values() -> None:
    lint = helm("lint", "--strict", str(CHART), check=False)
    assert lint.returncode == 0 and "0 chart(s) failed" in lint.stdout, lint.stdout + lint.stderr
    for bad, where in (
        (["--set", "operator.policy=fastest"], "/operator/policy"),
        (["--set", "operator.replicas=-1"], "/operator/replicas"),
        (["--set", "operator.replanInterval=soon"], "/operator/replanInterval"),
        (["--set", "operator.nodeSelecter.pool=infra"], "nodeSelecter"),
        (["--set", "imagePullSecrets[0].nam=x"], "/imagePullSecrets/0"),
    ):
        result = helm("template", "gpusched", str(CHART), *bad, check=False)
        assert result.returncode != 0 and where in result.stderr, (bad, result.stderr)


@CHART_TEST
def test_chart_places_and_sizes_the_operator_and_agent_as_asked() -> None:
    toleration = {"key": "infra", "operator": "Exists", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["infra"]}]}]}}}  # fmt: skip
    values = {
        "imagePullSecrets": [{"name": "regcred"}],
        "operator": {
            "nodeSelector": {"pool": "infra"},
            "tolerations": [toleration],
            "affinity": affinity,
            "priorityClassName": "system-cluster-critical",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
        },
        "agent": {"nodeSelector": {"gpu": "yes"}, "tolerations": [toleration], "resources": {}},
    }
    docs = render_chart(values)
    operator, agent = _pod_spec(docs, "Deployment"), _pod_spec(docs, "DaemonSet")
    assert operator["nodeSelector"] == {"pool": "infra"} and operator["tolerations"] == [toleration]
    assert operator["affinity"] == affinity and operator["priorityClassName"] == "system-cluster-critical"
    assert operator["imagePullSecrets"] == agent["imagePullSecrets"] == [{"name": "regcred"}]
    assert operator["containers"][0]["resources"] == values["operator"]["resources"]
    assert agent["nodeSelector"] == {"gpu": "yes"} and agent["tolerations"] == [toleration]
    assert "nvidia.com/gpu.present" in str(agent["affinity"])  # the default GPU-node affinity stays
    for doc in docs:
        validate_with_client_models(doc)
    plain = render_chart()
    assert "imagePullSecrets" not in _pod_spec(plain, "Deployment")
    assert "nodeSelector" not in _pod_spec(plain, "Deployment")


def _keys(docs: list[Obj]) -> set[tuple[str, str, str]]:
    return {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        for d in docs
        if d["kind"] != "CustomResourceDefinition"  # shared by design: one API per cluster
    }


@CHART_TEST
@pytest.mark.parametrize("same_namespace", [False, True])
def test_two_releases_install_side_by_side_without_a_name_in_common(same_namespace: bool) -> None:
    """A second release (another team's operator) must not take over the first one's cluster-scoped
    objects (Helm refuses to install over another release's objects) nor select its pods."""
    first = render_chart(namespace="gpusched-system", release="gpusched")
    second = render_chart(
        {"operator": {"watchNamespace": "team-b"}, "agent": {"enabled": False}},
        namespace="gpusched-system" if same_namespace else "team-b-system",
        release="team-b",
    )
    assert _keys(first) and _keys(second)
    assert not _keys(first) & _keys(second), sorted(_keys(first) & _keys(second))
    names = {d["metadata"]["name"] for d in second if d["kind"] == "ClusterRole"}
    assert names == {"team-b-gpusched-operator"}, names
    # Each Deployment selects only its own pods, and each operator has its own Lease.
    selectors = [
        next(d for d in docs if d["kind"] == "Deployment")["spec"]["selector"] for docs in (first, second)
    ]
    assert selectors[0] != selectors[1]
    args = [" ".join(_pod_spec(docs, "Deployment")["containers"][0]["args"]) for docs in (first, second)]
    assert "--lease-name=gpusched-operator" in args[0] and "--lease-name=team-b-gpusched-operator" in args[1]
    assert "--namespace=team-b" in args[1]
    # The operator's ServiceAccount is the one its ClusterRoleBinding names.
    binding = next(d for d in second if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == _pod_spec(second, "Deployment")["serviceAccountName"]
    assert binding["roleRef"]["name"] == "team-b-gpusched-operator"


@CHART_TEST
def test_chart_notes_say_where_it_went_and_how_to_wait_for_a_job() -> None:
    out = helm("install", "team-b", str(CHART), "-n", "ml", "--dry-run=client").stdout
    notes = out[out.index("NOTES:") :]
    assert "team-b-gpusched-operator" in notes and "namespace ml" in notes
    assert "kubectl wait --for=condition=Complete gpujob/" in notes


# --------------------------------------------------------------------------------- install order

BUNDLE = DEPLOY / "gpusched.yaml"
BUNDLE_PARTS = (
    "crds/gpujobs.yaml",
    "agent/gpunode-crd.yaml",
    "operator/rbac.yaml",
    "operator/deployment.yaml",
    "agent/rbac.yaml",
    "agent/daemonset.yaml",
)
BUNDLE_HEADER = """\
# Everything of deploy/ in one file, in an order a fresh cluster accepts in one go:
#   kubectl apply -f deploy/gpusched.yaml
# The Namespace first, then the CRDs, each ServiceAccount and its RBAC, then the ConfigMaps and the
# workloads that use them. Generated from deploy/crds, deploy/operator and deploy/agent (edit those):
#   python tests/scheduler/test_deploy.py
"""
PREEXISTING_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


def bundle_docs() -> list[Obj]:
    """The parts' documents in BUNDLE_PARTS order, each Namespace once and first."""
    docs: list[Obj] = []
    for part in BUNDLE_PARTS:
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / part).read_text()) if d)
    namespaces = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Namespace"}
    return [*namespaces.values(), *(d for d in docs if d["kind"] != "Namespace")]


def write_bundle() -> None:
    body = yaml.safe_dump_all(bundle_docs(), sort_keys=False, default_flow_style=False, width=1000)
    BUNDLE.write_text(BUNDLE_HEADER + "---\n" + body)


def apply_order_problems(docs: list[Obj], existing: set[str] | None = None) -> list[str]:
    """What a fresh cluster refuses (or leaves broken for a while) when `docs` are applied in order:
    a namespaced object before its Namespace; a pod-making workload before its ServiceAccount or a
    ConfigMap it mounts."""
    made: set[tuple[str, str, str]] = set()
    namespaces = set(PREEXISTING_NAMESPACES) | set(existing or ())
    problems: list[str] = []
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        ns = meta.get("namespace")
        where = f"{kind}/{meta['name']}"
        if ns and ns not in namespaces:
            problems.append(f"{where} comes before its Namespace {ns}")
        if kind in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            pod = doc["spec"]["template"]["spec"]
            sa = pod.get("serviceAccountName")
            if sa and ("ServiceAccount", ns or "", sa) not in made:
                problems.append(f"{where} comes before its ServiceAccount {sa}")
            for volume in pod.get("volumes") or []:
                cm = (volume.get("configMap") or {}).get("name")
                if cm and ("ConfigMap", ns or "", cm) not in made:
                    problems.append(f"{where} comes before its ConfigMap {cm}")
        if kind == "Namespace":
            namespaces.add(meta["name"])
        made.add((kind, ns or "", meta["name"]))
    return problems


def test_the_bundle_is_the_parts_and_applies_in_one_go() -> None:
    shipped = [d for d in yaml.safe_load_all(BUNDLE.read_text()) if d]
    assert shipped == bundle_docs(), "deploy/gpusched.yaml is stale: python tests/scheduler/test_deploy.py"
    assert apply_order_problems(shipped) == []
    assert shipped[0]["kind"] == "Namespace" and {d["kind"] for d in shipped[1:3]} == {
        "CustomResourceDefinition"
    }


def test_the_order_check_catches_rbac_before_its_namespace() -> None:
    """What the plain manifests did: operator/rbac.yaml (ServiceAccount in gpusched-system) applied
    before deployment.yaml, which alone created the Namespace."""
    rbac = [d for d in yaml.safe_load_all((DEPLOY / "operator/rbac.yaml").read_text()) if d]
    without_ns = [d for d in rbac if d["kind"] != "Namespace"]
    assert "before its Namespace gpusched-system" in " ".join(apply_order_problems(without_ns))
    deployment = [d for d in yaml.safe_load_all((DEPLOY / "operator/deployment.yaml").read_text()) if d]
    assert "before its ServiceAccount" in " ".join(apply_order_problems(deployment))


@pytest.mark.parametrize("part", [p for p in BUNDLE_PARTS if "crds" not in p and "crd." not in p])
def test_every_file_applies_on_its_own_to_a_fresh_cluster(part: str) -> None:
    """No file needs another's Namespace (each starts with it); a workload's ServiceAccount is
    another file's (rbac.yaml): the order the docs give is checked below."""
    docs = [d for d in yaml.safe_load_all((DEPLOY / part).read_text()) if d]
    problems = [p for p in apply_order_problems(docs) if "before its ServiceAccount" not in p]
    assert problems == [], problems


def documented_applies() -> list[list[str]]:
    """The files of each `kubectl apply -f ...` line in docs/operator.md's install section, in order."""
    text = (ROOT / "docs/operator.md").read_text()
    section = text[text.index("## Install") : text.index("\n## ", text.index("## Install") + 5)]
    out = []
    for line in section.splitlines():
        words = line.split()
        if words[:2] == ["kubectl", "apply"]:
            out.append([words[i + 1] for i, w in enumerate(words) if w == "-f"])
    return out


def test_the_documented_install_commands_apply_in_order_on_a_fresh_cluster() -> None:
    applies = documented_applies()
    assert ["deploy/gpusched.yaml"] in applies, applies
    docs: list[Obj] = []
    for files in applies:
        if files == ["deploy/gpusched.yaml"]:
            continue  # the one-file way; the others are the same objects file by file
        for name in files:
            docs.extend(d for d in yaml.safe_load_all((ROOT / name).read_text()) if d)
    assert docs, applies
    assert apply_order_problems(docs) == []


@pytest.mark.e2e
def test_one_kubectl_apply_installs_everything_on_a_fresh_api_server(tmp_path: Path) -> None:
    """The bundle, with the real kubectl, on a kube-apiserver that has nothing of ours yet."""
    bins = os.environ.get("GPUSCHED_E2E_BIN")
    if not bins:
        pytest.skip(
            "GPUSCHED_E2E_BIN is not set: `python tests/e2e/run.py` builds kubectl and a control plane"
        )
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpusched_e2e_cp", ROOT / "tests/e2e/e2e_controlplane.py")
    assert spec is not None and spec.loader is not None
    cp: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cp)
    with cp.ControlPlane(Path(bins), controller_manager=False, workdir=tmp_path / "plane") as plane:
        applied = plane.kubectl("apply", "-f", str(BUNDLE), check=False)
        assert applied.returncode == 0, applied.stderr
        for want in ("namespace/gpusched-system", "deployment.apps/gpusched-operator",
                     "daemonset.apps/gpusched-agent", "customresourcedefinition.apiextensions.k8s.io/gpujobs.gpusched.io"):  # fmt: skip
            assert want in applied.stdout, applied.stdout
        again = plane.kubectl("apply", "-f", str(BUNDLE))  # idempotent
        assert "unchanged" in again.stdout and "created" not in again.stdout, again.stdout


def _openapi_to_jsonschema(node: Any) -> Any:
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", True)
    elif out.get("type") == "object" and "properties" in out:
        out["additionalProperties"] = False  # structural schemas prune unknown fields
    return out


def _gpujob_schema() -> Obj:
    crd = yaml.safe_load((DEPLOY / "crds/gpujobs.yaml").read_text())
    return _openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_gpujob_crd_accepts_what_the_operator_reads_and_writes(harness: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    schema = _gpujob_schema()
    h = harness
    h.add_node("gpu-a")
    h.submit("checked", 8, preemptible=True)
    h.start_operator()
    job = h.wait_phase("checked", "Running")
    jsonschema.validate(job, schema)  # spec as users write it, status as the operator wrote it
    GPUJobSpec.model_validate(job["spec"])
    bad = copy.deepcopy(job)
    bad["spec"]["gpuz"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = copy.deepcopy(job)
    bad["status"]["phase"] = "Sleeping"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_gpujob_crd_keeps_every_status_field_and_phase_the_operator_writes() -> None:
    """A real API server prunes status fields its structural schema does not name and refuses a phase
    outside its enum (422): every field and phase of GPUJobStatus must be in the CRD."""
    import typing

    from gpusched.scheduler.crd import GPUJobStatus

    crd = yaml.safe_load((DEPLOY / "crds/gpujobs.yaml").read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    written = {f.alias or name for name, f in GPUJobStatus.model_fields.items()}
    assert written <= set(status), sorted(written - set(status))
    phases = set(typing.get_args(GPUJobStatus.model_fields["phase"].annotation))
    assert phases == set(status["phase"]["enum"]), phases ^ set(status["phase"]["enum"])


# --------------------------------------------------------------------------------- RBAC

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_GROUPS = {"gpujobs": "gpusched.io", "gpunodes": "gpusched.io", "leases": "coordination.k8s.io"}


def _allowed(rules: list[Obj], group: str, resource: str, verb: str) -> bool:
    for rule in rules:
        if (
            group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and verb in rule.get("verbs", [])
        ):
            return True
    return False


def test_operator_rbac_is_least_privilege_and_covers_every_request_it_makes(harness: Any) -> None:
    h = harness
    if h.fake is None:
        pytest.skip("the request log comes from the stand-in API server")
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in raw_manifests()}
    cluster_rules = docs[("ClusterRole", "gpusched-operator")]["rules"]
    lease_rules = docs[("Role", "gpusched-operator-leader-election")]["rules"]
    for rule in cluster_rules + lease_rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"secrets", "configmaps"} & set(rule["resources"])
    # Drive a preemption scenario so that every kind of request the operator makes shows up. The
    # operator has its own token (conftest.py), so its requests are exactly the ones counted here.
    # The victim is a gang of two workers: created, then bound, behind a Service (a lone worker is
    # created on its node in one request and has no Service).
    h.add_node("gpu-a")
    h.add_node("gpu-b")
    h.submit("low", 16, per_node=8, preemptible=True)
    op = h.start_operator(lease_name="gpusched-operator")
    h.wait_phase("low", "Running")
    h.submit("high", 8, priority=50)
    h.wait_phase("high", "Running", timeout=60)
    op_requests = set(h.fake.requests_by_token["operator"])
    assert {"POST pods", "POST pods/binding", "POST services"} <= op_requests, op_requests
    harness_only = {"POST nodes", "PATCH nodes/status", "POST serviceaccounts", "POST gpujobs"}
    assert harness_only <= set(h.fake.requests_by_token["harness"]) and not harness_only & op_requests
    checked = 0
    for key in op_requests:
        method, what = key.split(" ", 1)
        if key == "GET /version":
            # A non-resource URL every client may read (the system:public-info-viewer ClusterRole,
            # bound to authenticated and unauthenticated users alike): no rule of ours needed.
            continue
        watch = what.startswith("watch")
        resource = what[5:] if watch else what
        verb = "watch" if watch else _VERBS[method]
        if method == "GET" and not watch and resource in ("gpujobs", "pods", "nodes", "gpunodes", "events"):
            verb = "list"
        group = _GROUPS.get(resource.split("/")[0], "")
        rules = lease_rules if resource == "leases" else cluster_rules
        assert _allowed(rules, group, resource, verb), (
            f"operator made {key} but RBAC does not allow {verb} {resource}"
        )
        checked += 1
    assert checked >= 8 and op.rounds > 0


if __name__ == "__main__":
    write_bundle()
    print(f"wrote {BUNDLE.relative_to(ROOT)}")


@CHART_TEST
def test_chart_agent_pod_labels_mount_the_kubelet_socket_the_agent_is_told_to_read() -> None:
    """agent.podLabels.enabled: the args the agent parses name a socket inside the mounted hostPath,
    and only then does the agent run as root (the kubelet's socket is root's); off by default."""
    import typer

    from gpusched.cli import app

    def agent(values: dict[str, Any] | None) -> dict[str, Any]:
        return next(d for d in render_chart(values) if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]

    off = agent(None)
    assert off["securityContext"]["runAsNonRoot"] is True
    assert "--kubernetes-pod-labels" not in off["containers"][0]["args"]
    assert not [v for v in off["volumes"] if "hostPath" in v]

    on = agent({"agent": {"podLabels": {"enabled": True, "socketDir": "/var/lib/kubelet/pod-resources"}}})
    container = on["containers"][0]
    command = typer.main.get_command(app).commands["agent"]  # type: ignore[attr-defined]
    ctx = command.make_context("agent", list(container["args"]))
    assert ctx.params["kubernetes_pod_labels"] is True
    socket = Path(ctx.params["pod_resources_socket"])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    host = {v["name"]: v["hostPath"]["path"] for v in on["volumes"] if "hostPath" in v}
    assert host == {"pod-resources": "/var/lib/kubelet/pod-resources"}
    assert mounts["pod-resources"]["readOnly"] is True
    assert socket.parent == Path(mounts["pod-resources"]["mountPath"])
    assert on["securityContext"]["runAsUser"] == 0
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
