"""A Kubernetes API server stand-in over real HTTP, faithful to what the operator uses.

The operator's tests and benchmark run its real `kubernetes` client code against this server: it
speaks the API server's URL layout and JSON, and keeps its semantics where the operator depends on
them: CRUD with resourceVersion preconditions (409), label and field selectors, watch streams that
resume from a resourceVersion and answer 410 Gone once their history is compacted, status
subresources (a main-resource write keeps .status, a /status write changes only .status), the
pods/binding subresource (201 with a Status body, 409 for a bound pod), graceful pod deletion
(deletionTimestamp until a kubelet finishes it), ownerReference garbage collection and Leases.
kmock (the library) has no selectors, resourceVersions, 410s or subresources, hence this module.

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

Obj = dict[str, Any]


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
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True, status_subresource=False),
    Resource("events.k8s.io", "v1", "events", "Event", True, status_subresource=False),
    Resource("gpusched.io", "v1alpha1", "gpujobs", "GPUJob", True, spec_generation=True),
    Resource("gpusched.io", "v1alpha1", "gpunodes", "GPUNode", False, spec_generation=True),
]


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def label_matcher(selector: str | None) -> Callable[[dict[str, str]], bool]:
    reqs = parse_label_selector(selector)

    def match(labels: dict[str, str]) -> bool:
        return all(_holds(labels.get(k), op, vs) for k, op, vs in reqs)

    return match


def _field(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def field_matcher(selector: str | None) -> Callable[[Obj], bool]:
    reqs: list[tuple[str, bool, str]] = []
    for part in _split_selector(selector or ""):
        negate = "!=" in part
        k, v = part.split("!=", 1) if negate else part.replace("==", "=").split("=", 1)
        reqs.append((k.strip(), negate, v.strip()))

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
    events: list[tuple[int, str, str, Obj]] = field(default_factory=list)
    """(resourceVersion, resource key, type, object) in order; older ones are compacted away."""
    event_rvs: list[int] = field(default_factory=list)
    compacted_rv: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def bump(self) -> int:
        self.rv += 1
        return self.rv

    def record(self, res_key: str, kind: str, obj: Obj) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        # Stored objects are replaced on every write, never changed in place: no copy needed.
        self.events.append((rv, res_key, kind, obj))
        self.event_rvs.append(rv)
        if len(self.events) > self.history * 3 // 2:
            cut = len(self.events) - self.history
            self.compacted_rv = self.event_rvs[cut - 1]
            del self.events[:cut]
            del self.event_rvs[:cut]
        self.cond.notify_all()

    def since(self, rv: int, res_key: str) -> list[tuple[int, str, Obj]]:
        start = bisect.bisect_right(self.event_rvs, rv)
        return [(r, t, o) for r, k, t, o in self.events[start:] if k == res_key]


def _res_key(res: Resource) -> str:
    return f"{res.group}/{res.plural}"


class FakeKubeAPI:
    """Start with `with FakeKubeAPI() as api:`; point a kubeconfig at api.url (see write_kubeconfig)."""

    def __init__(self, history: int = 100_000) -> None:
        self.store = Store(history=history)
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
        """Wall-clock time of every successful binding (benchmarks read it through /_stats)."""

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
        return self

    def stop(self) -> None:
        self.stopping.set()
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

    def write_kubeconfig(self, path: str) -> str:
        import yaml

        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
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

    # ------------------------------------------------------------------ core operations

    def _get(self, res: Resource, ns: str, name: str) -> Obj:
        obj = self.store.objects.get((_res_key(res), ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
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
            if key in self.store.objects:
                raise ApiError(409, "AlreadyExists", f'{res.plural} "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            m = obj["metadata"]
            if res.namespaced:
                m["namespace"] = ns
            else:
                m.pop("namespace", None)
            m["uid"] = str(uuid.uuid4())
            m["creationTimestamp"] = _now()
            m["generation"] = 1
            m.pop("deletionTimestamp", None)
            if res.status_subresource and res.kind != "Node":
                obj.pop("status", None)
            if res.kind == "Pod":
                obj["status"] = {"phase": "Pending"}
                obj.setdefault("spec", {}).setdefault("schedulerName", "default-scheduler")
            m["resourceVersion"] = str(self.store.bump())
            self.store.objects[key] = obj
            self.store.record(_res_key(res), "ADDED", obj)
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
        generation = int(old["metadata"].get("generation") or 1)
        if res.spec_generation and sub != "status" and new.get("spec") != old.get("spec"):
            generation += 1
        meta["generation"] = generation
        if new == old:
            return copy.deepcopy(old)  # a no-op write does not bump the resourceVersion
        meta["resourceVersion"] = str(self.store.bump())
        if old["metadata"].get("deletionTimestamp") and not meta.get("finalizers") and res.kind != "Pod":
            del self.store.objects[key]
            self.store.record(_res_key(res), "DELETED", new)
            return copy.deepcopy(new)
        self.store.objects[key] = new
        self.store.record(_res_key(res), "MODIFIED", new)
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
                    meta["deletionTimestamp"] = meta.get("deletionTimestamp") or _now()
                    meta["deletionGracePeriodSeconds"] = grace
                    meta["resourceVersion"] = str(self.store.bump())
                    self.store.objects[key] = obj
                    self.store.record(_res_key(res), "MODIFIED", obj)
                return copy.deepcopy(obj)
        elif meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = _now()
                meta["resourceVersion"] = str(self.store.bump())
                self.store.objects[key] = obj
                self.store.record(_res_key(res), "MODIFIED", obj)
            return copy.deepcopy(obj)
        del self.store.objects[key]
        meta["resourceVersion"] = str(self.store.bump())
        self.store.record(_res_key(res), "DELETED", obj)
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
            target = (body.get("target") or {}).get("name")
            if not target:
                raise ApiError(422, "Invalid", "target.name: Required value")
            if (old.get("spec") or {}).get("nodeName"):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is '
                    f'already assigned to node "{old["spec"]["nodeName"]}"',
                )
            if old["metadata"].get("deletionTimestamp"):
                raise ApiError(409, "Conflict", f"pod {name} is being deleted, cannot be assigned to a host")
            nodes = self.by_path[("", "v1", "nodes")]
            if (_res_key(nodes), "", target) not in self.store.objects:
                raise ApiError(404, "NotFound", f'nodes "{target}" not found')
            new = copy.deepcopy(old)
            new["spec"]["nodeName"] = target
            new["status"] = {
                **(new.get("status") or {}),
                "conditions": [{"type": "PodScheduled", "status": "True"}],
            }
            new["metadata"]["resourceVersion"] = str(self.store.bump())
            self.store.objects[key] = new
            self.store.record(_res_key(pods), "MODIFIED", new)
            self.bind_times.append(time.time())
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def list(self, res: Resource, ns: str | None, query: dict[str, str]) -> Obj:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))
        with self.store.cond:
            items = [
                o
                for (rk, ons, _), o in self.store.objects.items()
                if rk == _res_key(res)
                and (ns is None or ons == ns)
                and labels((o.get("metadata") or {}).get("labels") or {})
                and fields(o)
            ]
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
        api.requests[f"{method} {'watch' if watch else ''}{self._kind(url.path)}"] += 1
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
                self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-gpusched-fake"})
                return
            m = _PATH.match(url.path)
            if not m:
                raise ApiError(
                    404, "NotFound", f"the server could not find the requested resource ({url.path})"
                )
            group = m.group("group") or ""
            version = m.group("cv") or m.group("version")
            res = api.by_path.get((group, version, m.group("plural")))
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
            self._send(200, api.patch(res, nsk, name, body, self.headers.get("Content-Type", ""), sub))
        elif method == "DELETE":
            grace = query.get("gracePeriodSeconds")
            if isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                grace = body["gracePeriodSeconds"]
            self._send(200, api.delete(res, nsk, name, int(grace) if grace is not None else None))
        else:
            raise ApiError(405, "MethodNotAllowed", method)

    def _watch(self, api: FakeKubeAPI, res: Resource, ns: str | None, query: dict[str, str]) -> None:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))
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
                    initial = [
                        copy.deepcopy(o) for (k, _, _), o in store.objects.items() if k == rk and wanted(o)
                    ]
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
                for _rv, kind, obj in batch:
                    if wanted(obj):
                        emit({"type": kind, "object": obj})
                since = max(since, top)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        self.close_connection = True


def main() -> None:
    """`python -m gpusched.scheduler.testserver [--port N]`: serve until killed; prints the URL."""
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
