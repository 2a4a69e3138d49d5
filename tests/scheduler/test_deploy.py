"""Every manifest in deploy/ and every object the chart renders is valid Kubernetes.

Two independent validators: the official client's models (strict pydantic: unknown or mistyped
fields fail) and kubernetes-validate (the API server's OpenAPI schemas). The chart is rendered with
`helm template` when helm is installed, else by the small Go-template renderer below, which covers
exactly the constructs the chart uses (and fails loudly on any other). RBAC is checked against the
requests the operator actually made in a scenario, so "least privilege" is also "enough privilege".
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
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

_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)


def _lookup(path: str, ctx: Obj) -> Any:
    cur: Any = ctx
    for part in path.lstrip(".").split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _eval(expr: str, ctx: Obj) -> Any:
    stages = [s.strip() for s in expr.split("|")]
    value: Any = None
    for i, stage in enumerate(stages):
        words = stage.split()
        fn, args = words[0], words[1:]
        if i == 0 and fn.startswith("."):
            value = _lookup(fn, ctx)
            continue
        if i == 0:
            value = _lookup(args.pop(), ctx) if args and args[-1].startswith(".") else None
        if fn == "quote":
            value = '"' + _to_text(value).replace('"', '\\"') + '"'
        elif fn == "toYaml":
            value = yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")
        elif fn in ("nindent", "indent"):
            pad = " " * int(args[0])
            text = "\n".join(pad + line if line else line for line in _to_text(value).split("\n"))
            value = "\n" + text if fn == "nindent" else text
        else:
            raise AssertionError(f"the test renderer does not know template function {fn!r}")
    return value


def render_template(text: str, ctx: Obj) -> str:
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(text):
        before = text[pos : m.start()]
        if m.group(1):
            before = before.rstrip(" \t\n")
        tokens.append(("text", before))
        tokens.append(("action", m.group(2)))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\n"))
    tokens.append(("text", text[pos:]))
    out: list[str] = []
    stack: list[bool] = []  # is the current branch emitting?
    for kind, value in tokens:
        active = all(stack)
        if kind == "text":
            if active:
                out.append(value)
        elif value.startswith("if "):
            stack.append(bool(_eval(value[3:], ctx)) if active else False)
        elif value == "else":
            stack[-1] = not stack[-1] and all(stack[:-1])
        elif value == "end":
            stack.pop()
        elif value.startswith("/*"):
            continue
        elif active:
            out.append(_to_text(_eval(value, ctx)))
    assert not stack, "unbalanced if/end in template"
    return "".join(out)


def render_chart(values: Obj | None = None, namespace: str = "gpusched-system") -> list[Obj]:
    """Documents of `helm template gpusched deploy/chart -n <namespace>` (plus the chart's CRDs)."""
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in (values or {}).items():
        merged[key] = value
    helm = shutil.which("helm")
    if helm is not None and values is None:
        text = subprocess.run(
            [helm, "template", "gpusched", str(CHART), "-n", namespace, "--include-crds"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return [d for d in yaml.safe_load_all(text) if d]
    ctx = {
        "Values": merged,
        "Release": {"Name": "gpusched", "Namespace": namespace, "Service": "Helm"},
        "Chart": yaml.safe_load((CHART / "Chart.yaml").read_text()),
    }
    docs: list[Obj] = []
    for path in sorted((CHART / "crds").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for path in sorted((CHART / "templates").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(render_template(path.read_text(), ctx)) if d)
    return docs


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


ALL_CASES = ["raw", "chart", "workers"]


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


def _strip(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].get("labels", {}).pop("app.kubernetes.io/instance", None)
    return out


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
            want["data"] = {k: yaml.safe_load(v) for k, v in want["data"].items()}
        assert got == want, (
            f"{where}: the chart renders {key} differently; update deploy/chart/templates to match {where}"
        )


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
    h.add_node("gpu-a")
    h.submit("low", 8, preemptible=True)
    op = h.start_operator(lease_name="gpusched-operator")
    h.wait_phase("low", "Running")
    h.submit("high", 8, priority=50)
    h.wait_phase("high", "Running", timeout=60)
    op_requests = set(h.fake.requests_by_token["operator"])
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
