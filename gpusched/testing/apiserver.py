"""A Kubernetes API server stand-in over real HTTP, faithful to what the operator uses.

The operator's tests and benchmark run its real `kubernetes` client code against this server: it
speaks the API server's URL layout and JSON, and keeps its semantics where the operator depends on
them: CRUD with resourceVersion preconditions (409), label and field selectors, watch streams that
resume from a resourceVersion and answer 410 Gone once their history is compacted, status
subresources (a main-resource write keeps .status, a /status write changes only .status), the
pods/binding subresource (201 with a Status body, 409 for a bound pod; like the real registry it does
not look the node up), graceful pod deletion (deletionTimestamp until a kubelet finishes it),
ownerReference garbage collection and Leases. Field selectors are limited to the fields the real
server supports (400 otherwise), and a watch with a label selector sees an object that stops matching
as DELETED and one that starts matching as ADDED, as the real watch cache sends them. Errors are
Status objects with the real reasons, messages and details.
kmock (the library) has no selectors, resourceVersions, 410s or subresources, hence this module.

What a real cluster adds on top of the API (controllers, admission) is opt-in, so that tests can
prove they cope with a real server without every test paying for it (see FakeKubeAPI's arguments):
the node lifecycle controller (NotReady, NoExecute taints and eviction when a node's kube-node-lease
Lease is not renewed), ServiceAccount admission (no pod without its namespace's ServiceAccount, which
nothing creates here, as on a bare kube-apiserver), NamespaceLifecycle (no objects in missing or
terminating namespaces; a deleted namespace stays Terminating: there is no namespace controller),
the PodGC controller (pods bound to nodes that do not exist are failed and deleted) and CRDs (the
gpusched.io resources are served only once their CustomResourceDefinition is Established).

It is a test double of the cluster boundary only; nothing in the operator imports it.
"""

from __future__ import annotations

import bisect
import copy
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gpusched.scheduler.kubetime import k8s_time, parse_time
from gpusched.testing.apivalidation import (
    FieldError,
    aggregate,
    canonical_resources,
    decode_error,
    is_qualified_name,
    is_valid_label_value,
    validate,
    validate_binding,
)

Obj = dict[str, Any]

SERVER_VERSION = {"major": "1", "minor": "36", "gitVersion": "v1.36.0-gpusched-fake"}
"""The release whose rules the stand-in follows (gpusched/testing/apivalidation.py): the current one."""


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status_subresource: bool = True
    spec_generation: bool = False
    """CRDs and most workloads bump metadata.generation when spec changes."""
    custom: bool = False
    """Defined by a CustomResourceDefinition (served only once it is Established, with require_crds)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = [
    Resource("", "v1", "pods", "Pod", True),
    Resource("", "v1", "services", "Service", True),
    Resource("", "v1", "nodes", "Node", False),
    Resource("", "v1", "events", "Event", True, status_subresource=False),
    Resource("", "v1", "namespaces", "Namespace", False),
    Resource("", "v1", "configmaps", "ConfigMap", True, status_subresource=False),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, status_subresource=False),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True, status_subresource=False),
    Resource("events.k8s.io", "v1", "events", "Event", True, status_subresource=False),
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        spec_generation=True,
    ),
    Resource("gpusched.io", "v1alpha1", "gpujobs", "GPUJob", True, spec_generation=True, custom=True),
    Resource("gpusched.io", "v1alpha1", "gpunodes", "GPUNode", False, spec_generation=True, custom=True),
]

NODE_LEASE_NAMESPACE = "kube-node-lease"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", NODE_LEASE_NAMESPACE)
"""What kube-apiserver itself creates at startup (no controller-manager needed)."""
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"

_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "services"): frozenset({"spec.clusterIP", "spec.type"}),
    ("", "events"): frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
}
"""Field labels the real API server supports beyond metadata.name and metadata.namespace
(k8s.io/kubernetes pkg/apis/core/v1/conversion.go); custom resources support only those two."""


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(res: Resource, name: str) -> Obj:
    """Status.details as the API server fills them: the name, the resource (plural) and its group."""
    out: Obj = {"name": name, "kind": res.plural}
    if res.group:
        out["group"] = res.group
    return out


def _qualified(res: Resource) -> str:
    """How error messages name a resource: `pods`, `gpujobs.gpusched.io`."""
    return f"{res.plural}.{res.group}" if res.group else res.plural


def _tolerates(toleration: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if (toleration.get("operator") or "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (
        taint.get("value") or ""
    )


# ------------------------------------------------------------------------------------------ validation


def invalid_error(res: Resource, name: str, errors: list[FieldError], kind: str | None = None) -> ApiError:
    """errors.NewInvalid: 422, `<Kind[.group]> "<name>" is invalid: <errors>`, one cause per error."""
    kind = kind or res.kind
    group_kind = f"{kind}.{res.group}" if res.group else kind
    details: Obj = {"name": name, "kind": kind, "causes": [e.cause() for e in errors]}
    if res.group:
        details["group"] = res.group
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: {aggregate(errors)}', details)


def check_object(res: Resource, ns: str, obj: Obj) -> None:
    """What the real server refuses before storing: 400 for what its JSON decoder cannot read,
    422 for what validation rejects (gpusched/testing/apivalidation.py)."""
    problem = decode_error(res.kind, obj)
    if problem is not None:
        raise ApiError(
            400,
            "BadRequest",
            f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: {problem}',
        )
    errors = validate(res.group, res.kind, obj, ns)
    if errors:
        raise invalid_error(res, (obj.get("metadata") or {}).get("name") or "", errors)


PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
STRATEGIC = "application/strategic-merge-patch+json"


def check_patch_type(res: Resource, content_type: str) -> None:
    """415 for a patch type the resource does not take: custom resources have no strategic merge
    patch (no Go struct carries its merge keys), and plain application/json is no patch at all."""
    accepted = PATCH_TYPES if res.custom else (*PATCH_TYPES, STRATEGIC)
    if content_type not in accepted:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
        )


# ------------------------------------------------------------------------------------------ selectors

_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


Requirement = tuple[str, str, frozenset[str]]
"""(key, operator, values): operator is one of = != in notin exists !exists."""


def parse_label_selector(selector: str | None) -> list[Requirement]:
    out: list[Requirement] = []
    for part in _split_selector(selector or ""):
        m = _SET.match(part)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            out.append((m.group(1), m.group(2), values))
        elif "!=" in part:
            k, v = (s.strip() for s in part.split("!=", 1))
            out.append((k, "!=", frozenset([v])))
        elif "=" in part:
            k, v = (s.strip() for s in part.replace("==", "=").split("=", 1))
            out.append((k, "=", frozenset([v])))
        elif part.startswith("!"):
            out.append((part[1:].strip(), "!exists", frozenset()))
        else:
            out.append((part, "exists", frozenset()))
    return out


def _holds(value: str | None, op: str, values: frozenset[str]) -> bool:
    if op in ("=", "in"):
        return value in values
    if op in ("!=", "notin"):
        return value not in values
    if op == "exists":
        return value is not None
    return value is None


def check_requirements(reqs: list[Requirement]) -> None:
    """labels.Parse refuses a key that is not a qualified name or a value that is not a label value:
    400 `unable to parse requirement: ...`, as for a list or watch with such a labelSelector."""
    for key, _op, values in reqs:
        for msg in is_qualified_name(key):
            raise ApiError(
                400, "BadRequest", f'unable to parse requirement: key: Invalid value: "{key}": {msg}'
            )
        for i, value in enumerate(sorted(values)):
            for msg in is_valid_label_value(value):
                raise ApiError(
                    400,
                    "BadRequest",
                    f'unable to parse requirement: values[{i}][{key}]: Invalid value: "{value}": {msg}',
                )


def label_matcher(selector: str | None) -> Callable[[dict[str, str]], bool]:
    reqs = parse_label_selector(selector)
    check_requirements(reqs)

    def match(labels: dict[str, str]) -> bool:
        return all(_holds(labels.get(k), op, vs) for k, op, vs in reqs)

    return match


def _field(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


_FIELD_ALIASES = {"source": "source.component"}


def field_matcher(selector: str | None, res: Resource | None = None) -> Callable[[Obj], bool]:
    """A field selector; given res, only the field labels the real server supports for it (else 400)."""
    reqs: list[tuple[str, bool, str]] = []
    for part in _split_selector(selector or ""):
        negate = "!=" in part
        if not negate and "=" not in part:
            raise ApiError(
                400, "BadRequest", f"invalid field selector {part!r}: expected key=value or key!=value"
            )
        k, v = part.split("!=", 1) if negate else part.replace("==", "=").split("=", 1)
        key = k.strip()
        if res is not None and key not in _META_FIELDS:
            if res.custom:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'"{key}" is not a known field selector: only "metadata.name", "metadata.namespace"',
                )
            if key not in FIELD_LABELS.get((res.group, res.plural), frozenset()):
                raise ApiError(400, "BadRequest", f"field label not supported: {key}")
        reqs.append((_FIELD_ALIASES.get(key, key), negate, v.strip()))

    def match(obj: Obj) -> bool:
        return all((_field(obj, k) != v) if neg else (_field(obj, k) == v) for k, neg, v in reqs)

    return match


# ------------------------------------------------------------------------------------------ patching


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patches are applied the same way here)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: Obj, ops: list[Obj]) -> Obj:
    doc = copy.deepcopy(target)
    for op in ops:
        path = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for p in path[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = path[-1] if path else ""
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        else:
            raise ApiError(422, "Invalid", f"unsupported json-patch op {kind!r}")
    return doc


# ------------------------------------------------------------------------------------------ the store


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    code: int
    remaining: int


@dataclass
class Hook:
    method: str
    pattern: re.Pattern[str]
    callback: Callable[[str, str], None]


@dataclass
class Store:
    history: int = 100_000
    rv: int = 1
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    """(resource key, namespace, name) -> object."""
    events: list[tuple[int, str, str, Obj, Obj | None]] = field(default_factory=list)
    """(resourceVersion, resource key, type, object, previous version) in order; older ones are
    compacted away. The previous version lets a watch with a selector turn a change into ADDED or
    DELETED when the object starts or stops matching."""
    event_rvs: list[int] = field(default_factory=list)
    compacted_rv: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def bump(self) -> int:
        self.rv += 1
        return self.rv

    def record(self, res_key: str, kind: str, obj: Obj, prev: Obj | None = None) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        # Stored objects are replaced on every write, never changed in place: no copy needed.
        self.events.append((rv, res_key, kind, obj, prev))
        self.event_rvs.append(rv)
        if len(self.events) > self.history * 3 // 2:
            cut = len(self.events) - self.history
            self.compacted_rv = self.event_rvs[cut - 1]
            del self.events[:cut]
            del self.event_rvs[:cut]
        self.cond.notify_all()

    def since(self, rv: int, res_key: str) -> list[tuple[int, str, Obj, Obj | None]]:
        start = bisect.bisect_right(self.event_rvs, rv)
        return [(r, t, o, p) for r, k, t, o, p in self.events[start:] if k == res_key]


def _res_key(res: Resource) -> str:
    return f"{res.group}/{res.plural}"


def _storage_order(item: tuple[tuple[str, str, str], Obj]) -> str:
    """How a real API server lists: in etcd key order (/registry/<resource>/<namespace>/<name>), so
    by "namespace/name" for namespaced objects and by name for cluster-scoped ones; never by when
    they were created. Code that wants submission order must sort by creationTimestamp itself."""
    (_rk, ns, name), _obj = item
    return f"{ns}/{name}" if ns else name


REAL_CLUSTER: dict[str, Any] = {
    "node_lifecycle": True,
    "node_grace_s": 6.0,
    "serviceaccount_admission": True,
    "taint_new_nodes": True,
    "namespace_lifecycle": True,
    "pod_gc": True,
    "pod_gc_quarantine_s": 3.0,
    "require_crds": True,
    "crd_establish_s": 0.3,
}
"""FakeKubeAPI(**REAL_CLUSTER): a bare API server with the controllers a real cluster runs on its
nodes' behalf (node lifecycle, PodGC) but none that would create what a client must create itself
(no default ServiceAccounts, no namespace controller), with grace periods short enough for tests."""


class FakeKubeAPI:
    """Start with `with FakeKubeAPI() as api:`; point a kubeconfig at api.url (see write_kubeconfig).

    The keyword arguments switch on what a real cluster does beyond the API itself (all off by
    default; `FakeKubeAPI(**REAL_CLUSTER)` turns on all of them, with short test timings):

    - node_lifecycle: the node lifecycle controller. A node whose kube-node-lease Lease renewTime
      and Ready heartbeat have not changed for node_grace_s (node_startup_grace_s for a node that
      never reported Ready) gets Ready=Unknown ("Kubelet stopped posting node status.") and the
      node.kubernetes.io/unreachable NoSchedule and NoExecute taints (not-ready ones for
      Ready=False); the taints go again once Ready=True. Pods on a NoExecute-tainted node that do
      not tolerate the taint are evicted (deleted with their grace period), at once or after their
      tolerationSeconds. (The DefaultTolerationSeconds admission plugin, which gives every pod 300
      s of toleration on a real cluster, is not emulated: here eviction is immediate.)
    - serviceaccount_admission: the ServiceAccount admission plugin. A pod gets
      spec.serviceAccountName "default" if it names none, and is refused with 403 Forbidden
      `pods "<name>" is forbidden: error looking up service account <ns>/<sa>: serviceaccount
      "<sa>" not found` while that ServiceAccount does not exist. Nothing creates `default`
      ServiceAccounts here: on a bare kube-apiserver (envtest) that is the controller-manager's job.
      An admitted pod gets the projected kube-api-access volume, as on a real server.
    - taint_new_nodes: the TaintNodesByCondition admission plugin. A new Node gets the
      node.kubernetes.io/not-ready:NoSchedule taint, which only the node lifecycle controller removes
      (once the node is Ready): on a bare kube-apiserver it stays.
    - namespace_lifecycle: the system namespaces exist from the start; creating a namespaced object
      in a missing namespace is 404, in a terminating one 403; deleting a namespace leaves it
      Terminating for good (no namespace controller).
    - pod_gc: the PodGC controller. Pods bound to a node that has not existed for
      pod_gc_quarantine_s are marked Failed (condition DisruptionTarget, reason DeletionByPodGC)
      and deleted with grace 0.
    - require_crds: gpujobs and gpunodes are served (else 404, as for any unknown resource) only
      once their CustomResourceDefinition exists and is Established, crd_establish_s after it was
      created (NamesAccepted and Established conditions, acceptedNames, storedVersions).
    """

    def __init__(
        self,
        history: int = 100_000,
        *,
        node_lifecycle: bool = False,
        node_grace_s: float = 40.0,
        node_startup_grace_s: float | None = None,
        serviceaccount_admission: bool = False,
        taint_new_nodes: bool = False,
        namespace_lifecycle: bool = False,
        pod_gc: bool = False,
        pod_gc_quarantine_s: float = 40.0,
        require_crds: bool = False,
        crd_establish_s: float = 0.0,
        controller_period_s: float | None = None,
    ) -> None:
        self.store = Store(history=history)
        self.node_lifecycle, self.node_grace_s = node_lifecycle, node_grace_s
        self.node_startup_grace_s = node_startup_grace_s if node_startup_grace_s is not None else node_grace_s
        self.serviceaccount_admission = serviceaccount_admission
        self.taint_new_nodes = taint_new_nodes
        self.namespace_lifecycle = namespace_lifecycle
        self.pod_gc, self.pod_gc_quarantine_s = pod_gc, pod_gc_quarantine_s
        self.require_crds, self.crd_establish_s = require_crds, crd_establish_s
        self.controller_period_s = controller_period_s or max(
            0.05, min(1.0, node_grace_s / 8 if node_lifecycle else 1.0, pod_gc_quarantine_s / 4)
        )
        self.served_crds: set[tuple[str, str]] = set()
        """(group, plural) of the custom resources whose CRD is Established."""
        self._probes: dict[str, tuple[float, tuple[Any, Any]]] = {}
        """Node lifecycle: node -> (when its heartbeat last changed, (lease renewTime, Ready heartbeat))."""
        self._orphans: dict[str, float] = {}
        """PodGC: missing node -> when it was first seen missing."""
        self._timers: list[threading.Timer] = []
        self.evicted: list[str] = []
        """namespace/name of every pod the node lifecycle controller evicted."""
        self.controller_errors: list[str] = []
        self.by_path: dict[tuple[str, str, str], Resource] = {
            (r.group, r.version, r.plural): r for r in RESOURCES
        }
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str, str, Any]] = []
        """Every request as (method, path, content type, body), for tests that check what was sent."""
        self.faults: list[Fault] = []
        self.hooks: list[Hook] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self._port = 0
        self.latency_s = 0.0
        self.bind_times: list[float] = []
        """Wall-clock time of every successful binding, or pod created with spec.nodeName
        (benchmarks read it through /_stats)."""
        self.requests_by_token: dict[str, Counter[str]] = {}
        """The `requests` counts per bearer token: which client (see write_kubeconfig) asked what."""
        self._controllers: threading.Thread | None = None
        if namespace_lifecycle:
            nss = self.by_path[("", "v1", "namespaces")]
            for ns_name in SYSTEM_NAMESPACES:
                self.create(nss, "", {"metadata": {"name": ns_name}})

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKubeAPI:
        api = self

        class Handler(_Handler):
            server_api = api

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-kube-api", daemon=True)
        self._thread.start()
        if self.node_lifecycle or self.pod_gc:
            self._controllers = threading.Thread(
                target=self._run_controllers, name="fake-kube-controllers", daemon=True
            )
            self._controllers.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for timer in self._timers:
            timer.cancel()
        with self.store.cond:
            self.store.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def write_kubeconfig(self, path: str, token: str = "fake-token") -> str:
        """A kubeconfig for this server; give each client its own token to tell their requests
        apart in requests_by_token (as a real server's audit log tells users apart)."""
        import yaml

        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": token}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}
            ],
            "current-context": "fake",
        }
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(doc, fh)
        return path

    # ------------------------------------------------------------------ test controls

    def fail(self, method: str, path_regex: str, code: int, times: int = 1) -> None:
        """The next `times` requests matching method ('*' for any) and path get `code` (500, 409, 429 ...)."""
        self.faults.append(Fault(method.upper(), re.compile(path_regex), code, times))

    def on(self, method: str, path_regex: str, callback: Callable[[str, str], None]) -> None:
        """Call callback(method, path) before serving each matching request (it may block it)."""
        self.hooks.append(Hook(method.upper(), re.compile(path_regex), callback))

    def compact(self) -> None:
        """Forget the whole event history: every watch resuming from an older version gets 410."""
        with self.store.cond:
            self.store.compacted_rv = self.store.rv
            self.store.events.clear()
            self.store.event_rvs.clear()
            # Open watches are cut too (as an API server restart would): they must re-list.
            self.store.cond.notify_all()
            self._generation_cut = self.store.rv

    _generation_cut = 0

    def objects(self, plural: str, namespace: str | None = None, group: str | None = None) -> list[Obj]:
        with self.store.cond:
            return [
                copy.deepcopy(o)
                for (rk, ns, _), o in self.store.objects.items()
                if rk.endswith("/" + plural)
                and (group is None or rk == f"{group}/{plural}")
                and (namespace is None or ns == namespace)
            ]

    # ------------------------------------------------------------------ admission

    def _admit_namespace(self, res: Resource, ns: str, name: str) -> None:
        """NamespaceLifecycle: no content in a namespace that does not exist or is being deleted."""
        nss = self.by_path[("", "v1", "namespaces")]
        namespace = self.store.objects.get((_res_key(nss), "", ns))
        if namespace is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', _details(nss, ns))
        if namespace["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{_qualified(res)} "{name}" is forbidden: unable to create new content in namespace {ns} '
                "because it is being terminated",
                {
                    **_details(res, name),
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "field": "metadata.namespace",
                            "message": f"namespace {ns} is being terminated",
                        }
                    ],
                },
            )

    def _admit_service_account(self, ns: str, name: str, body: Obj) -> Obj:
        """The ServiceAccount admission plugin, for pods."""
        body = copy.deepcopy(body)
        spec = body.setdefault("spec", {})
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = spec["serviceAccount"] = account
        sas = self.by_path[("", "v1", "serviceaccounts")]
        sa = self.store.objects.get((_res_key(sas), ns, account))
        if sa is None:
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: error looking up service account {ns}/{account}: '
                f'serviceaccount "{account}" not found',
                {"name": name, "kind": "pods"},
            )
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken")
        if automount is not False:
            volume = f"kube-api-access-{uuid.uuid4().hex[:5]}"
            spec.setdefault("volumes", []).append(
                {
                    "name": volume,
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                    },
                }
            )
            for container in spec.get("containers") or []:
                container.setdefault("volumeMounts", []).append(
                    {
                        "name": volume,
                        "readOnly": True,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    }
                )
        return body

    # ------------------------------------------------------------------ CRDs

    def serves(self, res: Resource) -> bool:
        return not (res.custom and self.require_crds) or (res.group, res.plural) in self.served_crds

    def _schedule_establish(self, crd_name: str) -> None:
        if self.crd_establish_s <= 0:
            self._establish(crd_name)
            return
        timer = threading.Timer(self.crd_establish_s, self._establish_locked, args=(crd_name,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _establish_locked(self, crd_name: str) -> None:
        with self.store.cond:
            self._establish(crd_name)

    def _establish(self, crd_name: str) -> None:
        """What the apiextensions controllers do once the names are accepted: serve the resource."""
        crds = self.by_path[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
        key = (_res_key(crds), "", crd_name)
        old = self.store.objects.get(key)
        if old is None:
            return
        spec = old.get("spec") or {}
        now = k8s_time()
        new = copy.deepcopy(old)
        new["status"] = {
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
            "acceptedNames": spec.get("names") or {},
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
        }
        self._put_locked(crds, key, new, old)
        for version in spec.get("versions") or []:
            if (
                version.get("served", True)
                and (spec.get("group"), version.get("name"), (spec.get("names") or {}).get("plural"))
                in self.by_path
            ):
                self.served_crds.add((spec["group"], spec["names"]["plural"]))

    def _put_locked(self, res: Resource, key: tuple[str, str, str], new: Obj, old: Obj) -> Obj:
        """A write by the server's own controllers (the store's lock held)."""
        new["metadata"] = {**new["metadata"], "resourceVersion": str(self.store.bump())}
        self.store.objects[key] = new
        self.store.record(_res_key(res), "MODIFIED", new, old)
        return new

    # ------------------------------------------------------------------ controllers

    def _run_controllers(self) -> None:
        while not self.stopping.wait(self.controller_period_s):
            try:
                with self.store.cond:
                    if self.node_lifecycle:
                        self._node_lifecycle_pass(time.monotonic())
                    if self.pod_gc:
                        self._pod_gc_pass(time.monotonic())
            except Exception as exc:  # an odd object must not stop the controllers for good
                self.controller_errors.append(f"{type(exc).__name__}: {exc}")

    def _node_lifecycle_pass(self, now: float) -> None:
        nodes = self.by_path[("", "v1", "nodes")]
        leases = self.by_path[("coordination.k8s.io", "v1", "leases")]
        for key, node in list(self.store.objects.items()):
            if key[0] != _res_key(nodes):
                continue
            name = key[2]
            lease = self.store.objects.get((_res_key(leases), NODE_LEASE_NAMESPACE, name))
            conditions = list((node.get("status") or {}).get("conditions") or [])
            ready = next((c for c in conditions if c.get("type") == "Ready"), None)
            beat = ((lease or {}).get("spec") or {}).get("renewTime"), (ready or {}).get("lastHeartbeatTime")
            probe = self._probes.get(name)
            if probe is None or probe[1] != beat:
                # As the real controller: the time it *saw* a heartbeat change, not the time written in it.
                self._probes[name] = probe = (now, beat)
            grace = self.node_grace_s if ready is not None else self.node_startup_grace_s
            new = copy.deepcopy(node)
            if now - probe[0] > grace and (ready is None or ready.get("status") != "Unknown"):
                stamp = k8s_time()
                fresh = []
                for cond in conditions:
                    if cond.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
                        cond = {
                            **cond,
                            "status": "Unknown",
                            "reason": "NodeStatusUnknown",
                            "message": "Kubelet stopped posting node status.",
                            "lastTransitionTime": stamp,
                        }
                    fresh.append(cond)
                if ready is None:
                    fresh.append(
                        {
                            "type": "Ready",
                            "status": "Unknown",
                            "reason": "NodeStatusNeverUpdated",
                            "message": "Kubelet never posted node status.",
                            "lastTransitionTime": stamp,
                            "lastHeartbeatTime": stamp,
                        }
                    )
                new.setdefault("status", {})["conditions"] = fresh
                ready = next(c for c in fresh if c.get("type") == "Ready")
            status = (ready or {}).get("status")
            wanted_key = {"Unknown": TAINT_UNREACHABLE, "False": TAINT_NOT_READY}.get(str(status))
            taints = [
                t
                for t in (new.get("spec") or {}).get("taints") or []
                if t.get("key") not in (TAINT_UNREACHABLE, TAINT_NOT_READY) or t.get("key") == wanted_key
            ]
            if wanted_key is not None:
                for effect in ("NoSchedule", "NoExecute"):
                    if not any(t.get("key") == wanted_key and t.get("effect") == effect for t in taints):
                        taint: Obj = {"key": wanted_key, "effect": effect}
                        if effect == "NoExecute":
                            taint["timeAdded"] = k8s_time()
                        taints.append(taint)
            spec = new.setdefault("spec", {})
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)
            if new != node:
                node = self._put_locked(nodes, key, new, node)
            self._evict(name, [t for t in taints if t.get("effect") == "NoExecute"])

    def _evict(self, node: str, taints: list[Obj]) -> None:
        """The taint manager: pods on the node that do not tolerate its NoExecute taints go."""
        if not taints:
            return
        pods = self.by_path[("", "v1", "pods")]
        now = datetime.now(timezone.utc)
        for (rk, ns, name), pod in list(self.store.objects.items()):
            spec = pod.get("spec") or {}
            if (
                rk != _res_key(pods)
                or spec.get("nodeName") != node
                or pod["metadata"].get("deletionTimestamp")
            ):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for taint in taints:
                toleration = next((t for t in spec.get("tolerations") or [] if _tolerates(t, taint)), None)
                if toleration is not None and toleration.get("tolerationSeconds") is None:
                    continue
                if toleration is not None:
                    added = parse_time(taint.get("timeAdded")) or now
                    if (now - added).total_seconds() < float(toleration["tolerationSeconds"]):
                        continue
                self.evicted.append(f"{ns}/{name}")
                self._delete_locked(pods, ns, name, None)
                break

    def _pod_gc_pass(self, now: float) -> None:
        nodes = self.by_path[("", "v1", "nodes")]
        pods = self.by_path[("", "v1", "pods")]
        existing = {name for (rk, _, name) in self.store.objects if rk == _res_key(nodes)}
        for gone in [n for n in self._orphans if n in existing]:
            del self._orphans[gone]
        for (rk, ns, name), pod in list(self.store.objects.items()):
            node = (pod.get("spec") or {}).get("nodeName")
            if rk != _res_key(pods) or not node or node in existing:
                continue
            first = self._orphans.setdefault(node, now)
            if now - first < self.pod_gc_quarantine_s:
                continue
            key = (rk, ns, name)
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                new = copy.deepcopy(pod)
                status = new.setdefault("status", {})
                status["phase"] = "Failed"
                status["conditions"] = [
                    c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"
                ]
                status["conditions"].append(
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "DeletionByPodGC",
                        "message": "PodGC: node no longer exists",
                        "lastTransitionTime": k8s_time(),
                    }
                )
                self._put_locked(pods, key, new, pod)
            self._delete_locked(pods, ns, name, 0)

    # ------------------------------------------------------------------ core operations

    def _get(self, res: Resource, ns: str, name: str) -> Obj:
        obj = self.store.objects.get((_res_key(res), ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{_qualified(res)} "{name}" not found', _details(res, name))
        return obj

    def create(self, res: Resource, ns: str, body: Obj) -> Obj:
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        key = (_res_key(res), ns if res.namespaced else "", name)
        with self.store.cond:
            if res.namespaced and self.namespace_lifecycle:
                self._admit_namespace(res, ns, name)
            if res.kind == "Pod" and self.serviceaccount_admission:
                body = self._admit_service_account(ns, name, body)
            # As the real server: mutating admission, then validation, then storage (409).
            check_object(res, ns, body)
            if key in self.store.objects:
                raise ApiError(
                    409, "AlreadyExists", f'{_qualified(res)} "{name}" already exists', _details(res, name)
                )
            if res.kind == "Node" and self.taint_new_nodes:
                body = copy.deepcopy(body)
                taints = body.setdefault("spec", {}).setdefault("taints", [])
                if not any(
                    t.get("key") == TAINT_NOT_READY and t.get("effect") == "NoSchedule" for t in taints
                ):
                    taints.append({"key": TAINT_NOT_READY, "effect": "NoSchedule"})
            obj = copy.deepcopy(body)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            canonical_resources(obj)  # stored (and returned) as the server does: "2", never 2
            m = obj["metadata"]
            if res.namespaced:
                m["namespace"] = ns
            else:
                m.pop("namespace", None)
            m["uid"] = str(uuid.uuid4())
            m["creationTimestamp"] = k8s_time()
            m["generation"] = 1
            m.pop("deletionTimestamp", None)
            if res.status_subresource and res.kind != "Node":
                obj.pop("status", None)
            if res.kind == "Pod":
                obj["status"] = {"phase": "Pending"}
                obj.setdefault("spec", {}).setdefault("schedulerName", "default-scheduler")
            elif res.kind == "Namespace":
                obj["status"] = {"phase": "Active"}
                obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            elif res.kind == "CustomResourceDefinition":
                obj["status"] = {
                    "conditions": [],
                    "acceptedNames": {"plural": "", "kind": ""},
                    "storedVersions": [],
                }
            m["resourceVersion"] = str(self.store.bump())
            self.store.objects[key] = obj
            self.store.record(_res_key(res), "ADDED", obj)
            if res.kind == "Pod" and obj["spec"].get("nodeName"):
                self.bind_times.append(time.time())  # created bound: placed as by a binding
            if res.kind == "CustomResourceDefinition":
                self._schedule_establish(name)
            return copy.deepcopy(obj)

    def _write(self, res: Resource, key: tuple[str, str, str], old: Obj, new: Obj, sub: str | None) -> Obj:
        if res.status_subresource:
            if sub == "status":
                status = new.get("status")
                new = copy.deepcopy(old)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
            else:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        meta = new["metadata"] = dict(new.get("metadata") or {})  # never share it with the old version
        for immutable in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
            if immutable in old["metadata"]:
                meta[immutable] = old["metadata"][immutable]
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        canonical_resources(new)
        generation = int(old["metadata"].get("generation") or 1)
        if res.spec_generation and sub != "status" and new.get("spec") != old.get("spec"):
            generation += 1
        meta["generation"] = generation
        if new == old:
            return copy.deepcopy(old)  # a no-op write does not bump the resourceVersion
        meta["resourceVersion"] = str(self.store.bump())
        if (
            old["metadata"].get("deletionTimestamp")
            and not meta.get("finalizers")
            and res.kind not in ("Pod", "Namespace")
        ):
            del self.store.objects[key]
            self.store.record(_res_key(res), "DELETED", new)
            return copy.deepcopy(new)
        self.store.objects[key] = new
        self.store.record(_res_key(res), "MODIFIED", new, old)
        return copy.deepcopy(new)

    def replace(self, res: Resource, ns: str, name: str, body: Obj, sub: str | None) -> Obj:
        with self.store.cond:
            key = (_res_key(res), ns if res.namespaced else "", name)
            old = self._get(res, key[1], name)
            want = (body.get("metadata") or {}).get("resourceVersion")
            if want and want != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.plural} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            if sub is None:
                check_object(
                    res, key[1], {**body, "metadata": {**old["metadata"], **(body.get("metadata") or {})}}
                )
            return self._write(res, key, old, copy.deepcopy(body), sub)

    def patch(self, res: Resource, ns: str, name: str, body: Any, content_type: str, sub: str | None) -> Obj:
        with self.store.cond:
            key = (_res_key(res), ns if res.namespaced else "", name)
            old = self._get(res, key[1], name)
            if "json-patch" in content_type:
                if not isinstance(body, list):
                    raise ApiError(400, "BadRequest", "json-patch body must be a list")
                new = json_patch(old, body)
            else:
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "merge patch body must be an object")
                want = (body.get("metadata") or {}).get("resourceVersion")
                if want and want != old["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.plural} "{name}"')
                new = merge_patch(old, body)
            if sub is None:
                check_object(res, key[1], new)
            return self._write(res, key, old, new, sub)

    def delete(self, res: Resource, ns: str, name: str, grace: int | None) -> Obj:
        with self.store.cond:
            return self._delete_locked(res, ns if res.namespaced else "", name, grace)

    def _delete_locked(self, res: Resource, ns: str, name: str, grace: int | None) -> Obj:
        key = (_res_key(res), ns, name)
        old = self._get(res, ns, name)
        obj = copy.deepcopy(old)
        meta = obj["metadata"]
        if res.kind == "Pod":
            if grace is None:
                grace = int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            bound = bool((obj.get("spec") or {}).get("nodeName"))
            finished = (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if (bound and not finished and grace > 0) or meta.get("finalizers"):
                # Graceful: the kubelet sends SIGTERM, waits up to the grace period, then deletes
                # the pod with grace 0. Until then the pod is Terminating.
                if not meta.get("deletionTimestamp") or grace < int(
                    meta.get("deletionGracePeriodSeconds", 0)
                ):
                    meta["deletionTimestamp"] = meta.get("deletionTimestamp") or k8s_time()
                    meta["deletionGracePeriodSeconds"] = grace
                    meta["resourceVersion"] = str(self.store.bump())
                    self.store.objects[key] = obj
                    self.store.record(_res_key(res), "MODIFIED", obj, old)
                return copy.deepcopy(obj)
        elif meta.get("finalizers") or (res.kind == "Namespace" and self.namespace_lifecycle):
            # A namespace with the namespace lifecycle on waits for the namespace controller to
            # empty it, which a bare kube-apiserver (envtest) does not run: it stays Terminating.
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = k8s_time()
                if res.kind == "Namespace":
                    obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}
                meta["resourceVersion"] = str(self.store.bump())
                self.store.objects[key] = obj
                self.store.record(_res_key(res), "MODIFIED", obj, old)
            return copy.deepcopy(obj)
        del self.store.objects[key]
        meta["resourceVersion"] = str(self.store.bump())
        self.store.record(_res_key(res), "DELETED", obj)
        if res.kind == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            self.served_crds.discard((spec.get("group"), (spec.get("names") or {}).get("plural")))
        self._collect_garbage(meta.get("uid"))
        return obj

    def _collect_garbage(self, owner_uid: str | None) -> None:
        if not owner_uid:
            return
        for (rk, ns, name), o in list(self.store.objects.items()):
            refs = (o.get("metadata") or {}).get("ownerReferences") or []
            if any(r.get("uid") == owner_uid for r in refs):
                res = next(r for r in RESOURCES if _res_key(r) == rk)
                if (rk, ns, name) in self.store.objects:
                    self._delete_locked(res, ns, name, None)

    def bind(self, ns: str, name: str, body: Obj) -> Obj:
        pods = self.by_path[("", "v1", "pods")]
        with self.store.cond:
            key = (_res_key(pods), ns, name)
            old = self._get(pods, ns, name)
            problems = validate_binding(body, name)
            if isinstance(problems, tuple):
                raise ApiError(problems[0], "BadRequest", problems[1])
            if problems:
                raise invalid_error(pods, name, problems, kind="Binding")
            target = body["target"]["name"]
            conflict = f'Operation cannot be fulfilled on pods/binding "{name}": '
            details = {"name": name, "kind": "pods/binding"}
            if old["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    409,
                    "Conflict",
                    conflict + f"pod {name} is being deleted, cannot be assigned to a host",
                    details,
                )
            if (old.get("spec") or {}).get("nodeName"):
                raise ApiError(
                    409,
                    "Conflict",
                    conflict + f'pod {name} is already assigned to node "{old["spec"]["nodeName"]}"',
                    details,
                )
            # The real registry (BindingREST) does not look the node up: a binding to a node that does
            # not exist succeeds, and the PodGC controller deletes the orphan later (see pod_gc).
            new = copy.deepcopy(old)
            new["spec"]["nodeName"] = target
            new["status"] = {
                **(new.get("status") or {}),
                "conditions": [{"type": "PodScheduled", "status": "True"}],
            }
            new["metadata"]["resourceVersion"] = str(self.store.bump())
            self.store.objects[key] = new
            self.store.record(_res_key(pods), "MODIFIED", new, old)
            self.bind_times.append(time.time())
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def list(self, res: Resource, ns: str | None, query: dict[str, str]) -> Obj:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"), res)
        with self.store.cond:
            found = [
                ((rk, ons, name), o)
                for (rk, ons, name), o in self.store.objects.items()
                if rk == _res_key(res)
                and (ns is None or ons == ns)
                and labels((o.get("metadata") or {}).get("labels") or {})
                and fields(o)
            ]
            items = [o for _key, o in sorted(found, key=_storage_order)]
            rv = str(self.store.rv)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }


# ------------------------------------------------------------------------------------------ HTTP


_PATH = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?/?$"
)


class _Handler(BaseHTTPRequestHandler):
    server_api: FakeKubeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the tests' output stays readable
        return

    def _send(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        api = self.server_api
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
        except json.JSONDecodeError:
            self._send(400, ApiError(400, "BadRequest", "malformed JSON body").status())
            return
        watch = query.get("watch") in ("1", "true", "True")
        counted = f"{method} {'watch' if watch else ''}{self._kind(url.path)}"
        api.requests[counted] += 1
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        api.requests_by_token.setdefault(token, Counter())[counted] += 1
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        api.log.append((method, url.path, content_type, body))
        for hook in api.hooks:
            if hook.method == method and hook.pattern.search(url.path):
                hook.callback(method, url.path)
        for fault in api.faults:
            if fault.remaining > 0 and fault.method in (method, "*") and fault.pattern.search(url.path):
                fault.remaining -= 1
                self._send(
                    fault.code, ApiError(fault.code, "InjectedFault", f"injected {fault.code}").status()
                )
                return
        if api.latency_s:
            time.sleep(api.latency_s)
        try:
            if url.path == "/_stats":  # not Kubernetes: the benchmark's window into the server process
                with api.store.cond:
                    binds = list(api.bind_times)
                self._send(200, {"requests": dict(api.requests), "binds": binds})
                return
            if url.path in ("/version", "/version/"):
                self._send(200, SERVER_VERSION)
                return
            m = _PATH.match(url.path)
            if not m:
                raise ApiError(
                    404, "NotFound", f"the server could not find the requested resource ({url.path})"
                )
            group = m.group("group") or ""
            version = m.group("cv") or m.group("version")
            res = api.by_path.get((group, version, m.group("plural")))
            if res is not None and not api.serves(res):
                res = None  # its CRD is missing or not Established yet
            if res is None:
                raise ApiError(
                    404, "NotFound", f"the server could not find the requested resource ({url.path})"
                )
            ns = m.group("ns") or ("" if not res.namespaced else None)
            name, sub = m.group("name"), m.group("sub")
            self._serve(api, method, res, ns, name, sub, query, body, watch)
        except ApiError as exc:
            self._send(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            return

    @staticmethod
    def _kind(path: str) -> str:
        m = _PATH.match(path)
        if not m:
            return path
        return m.group("plural") + (f"/{m.group('sub')}" if m.group("sub") else "")

    def _serve(
        self,
        api: FakeKubeAPI,
        method: str,
        res: Resource,
        ns: str | None,
        name: str | None,
        sub: str | None,
        query: dict[str, str],
        body: Any,
        watch: bool,
    ) -> None:
        if name is None:
            if method == "GET" and watch:
                self._watch(api, res, ns, query)
            elif method == "GET":
                self._send(200, api.list(res, ns, query))
            elif method == "POST":
                if res.namespaced and ns is None:
                    raise ApiError(405, "MethodNotAllowed", "create needs a namespace")
                self._send(201, api.create(res, ns or "", body))
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} on a collection")
            return
        nsk = ns or ""
        if sub == "binding" and res.plural == "pods" and method == "POST":
            self._send(201, api.bind(nsk, name, body))
            return
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"unknown subresource {sub}")
        if sub == "status" and not res.status_subresource:
            raise ApiError(404, "NotFound", f"{res.plural} has no status subresource")
        if method == "GET":
            with api.store.cond:
                obj = copy.deepcopy(api._get(res, nsk if res.namespaced else "", name))
            self._send(200, obj)
        elif method == "PUT":
            self._send(200, api.replace(res, nsk, name, body, sub))
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            check_patch_type(res, content_type)
            self._send(200, api.patch(res, nsk, name, body, content_type, sub))
        elif method == "DELETE":
            grace = query.get("gracePeriodSeconds")
            if isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                grace = body["gracePeriodSeconds"]
            self._send(200, api.delete(res, nsk, name, int(grace) if grace is not None else None))
        else:
            raise ApiError(405, "MethodNotAllowed", method)

    def _watch(self, api: FakeKubeAPI, res: Resource, ns: str | None, query: dict[str, str]) -> None:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"), res)
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv_text = query.get("resourceVersion") or "0"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        rk = _res_key(res)

        def emit(event: Obj) -> None:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def wanted(obj: Obj) -> bool:
            meta = obj.get("metadata") or {}
            in_ns = ns is None or meta.get("namespace", "") == ns
            return bool(in_ns and labels(meta.get("labels") or {}) and fields(obj))

        store = api.store
        try:
            expired: ApiError | None = None
            initial: list[Obj] = []
            with store.cond:
                cut = api._generation_cut
                if rv_text in ("", "0"):
                    since = store.rv
                    found = [(key, o) for key, o in store.objects.items() if key[0] == rk and wanted(o)]
                    initial = [copy.deepcopy(o) for _key, o in sorted(found, key=_storage_order)]
                else:
                    since = int(rv_text)
                    if since < store.compacted_rv:
                        expired = ApiError(
                            410, "Expired", f"too old resource version: {since} ({store.compacted_rv})"
                        )
            if expired is not None:
                # What a real API server does: 200, then one ERROR event carrying a 410 Status.
                emit({"type": "ERROR", "object": expired.status()})
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True
                return
            for obj in initial:
                emit({"type": "ADDED", "object": obj})
            while not api.stopping.is_set():
                with store.cond:
                    if api._generation_cut != cut:
                        break  # compacted under us: end the stream; resuming from here gets 410
                    batch = store.since(since, rk)
                    top = store.event_rvs[-1] if store.event_rvs else since
                    if not batch:
                        since = max(since, top)
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        store.cond.wait(timeout=min(remaining, 1.0))
                        continue
                for _rv, kind, obj, prev in batch:
                    now_in = wanted(obj)
                    if kind != "MODIFIED":
                        if now_in:
                            emit({"type": kind, "object": obj})
                        continue
                    was_in = prev is not None and wanted(prev)
                    if now_in:
                        emit({"type": "MODIFIED" if was_in else "ADDED", "object": obj})
                    elif was_in and prev is not None:
                        # Stopped matching: the watch cache sends DELETED with the last matching
                        # state at the new resourceVersion.
                        gone = {
                            **prev,
                            "metadata": {
                                **prev["metadata"],
                                "resourceVersion": obj["metadata"]["resourceVersion"],
                            },
                        }
                        emit({"type": "DELETED", "object": gone})
                since = max(since, top)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        self.close_connection = True


def main() -> None:
    """`python -m gpusched.testing.apiserver [--port N]`: serve until killed; prints the URL."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--history", type=int, default=1_000_000)
    args = parser.parse_args()
    api = FakeKubeAPI(history=args.history)
    api._port = args.port
    api.start()
    print(api.url, flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or kills us)
    finally:
        api.stop()


if __name__ == "__main__":
    main()
