"""The operator's only door to the API server: the official `kubernetes` client, raw JSON, retries.

Objects stay plain dicts end to end (`_preload_content=False` and json.loads): the decision code is
written against the API's JSON, and skipping the client's model classes keeps a 10,000-pod list cheap.
Every call goes through `call`, which retries conflicts on writes that are safe to repeat, 429s,
5xx and connection errors with exponential backoff and jitter, and counts requests for /metrics.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from gpusched.backoff import Backoff
from gpusched.scheduler.crd import GPUNODE_PLURAL, GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)
Obj = dict[str, Any]
T = TypeVar("T")

RETRYABLE = {429, 500, 502, 503, 504}


class KubeError(Exception):
    """An API error after retries: status is the HTTP code (0 for a connection failure)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status, self.reason, self.message = status, reason, message


class Gone(KubeError):
    """410: the resourceVersion a watch asked for has been compacted away; re-list."""


@dataclass(frozen=True)
class Kind:
    """A resource the operator lists and watches."""

    name: str
    group: str
    version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


GPUJOBS = Kind("gpujobs", GROUP, VERSION, PLURAL, True)
GPUNODES = Kind("gpunodes", GROUP, VERSION, GPUNODE_PLURAL, False)
PODS = Kind("pods", "", "v1", "pods", True)
NODES = Kind("nodes", "", "v1", "nodes", False)


POOL_SIZE = 64
"""Connections kept open to the API server. The client's default is 5 per CPU (10 on a 2-core pod):
less than the operator's apply threads plus its four long-lived watches, so that most writes of a
busy round would open a new TLS connection and throw it away ("Connection pool is full")."""


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """In-cluster config when running in a pod without --kubeconfig, else the kubeconfig file."""
    from kubernetes import client, config

    cfg = client.Configuration()
    loaded = False
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=cfg)
            loaded = True
        except config.ConfigException:
            pass
    if not loaded:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    cfg.connection_pool_maxsize = max(POOL_SIZE, cfg.connection_pool_maxsize or 0)
    return client.ApiClient(configuration=cfg)


def _error_from(exc: Exception) -> KubeError:
    status = int(getattr(exc, "status", 0) or 0)
    body = getattr(exc, "body", None)
    message, reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__, ""
    if body:
        try:
            data = json.loads(body)
            message, reason = data.get("message", message), data.get("reason", "")
        except (ValueError, TypeError):
            pass
    cls = Gone if status == 410 else KubeError
    return cls(status, message, reason)


def connection_problem(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words, not urllib3's nested repr."""
    text = str(getattr(exc, "reason", None) or exc)
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if m:
        return m.group(0).strip()
    if "timed out" in text.lower():
        return "timed out"
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class Kube:
    """Typed-by-path helpers over one ApiClient; thread-safe (urllib3's pool is)."""

    def __init__(
        self, api_client: Any, max_attempts: int = 6, base_delay: float = 0.1, max_delay: float = 5.0
    ):
        from kubernetes import client

        self.api_client = api_client
        # Typed as Any: we pass the API's JSON as dicts, which the client accepts for its models.
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.coordination: Any = client.CoordinationV1Api(api_client)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.on_request: Callable[[str, int], None] | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def server(self) -> str:
        """The API server's URL, as the kubeconfig (or the in-cluster config) names it."""
        return str(getattr(self.api_client.configuration, "host", "") or "(no server configured)")

    def probe(self, timeout: float = 5.0) -> str | None:
        """One GET /version without retries: None when the server answered, else why not, in a few
        words ("[Errno 111] Connection refused", "timed out", "HTTP 401 Unauthorized")."""
        from urllib3.exceptions import HTTPError

        try:
            method, url, headers, _body, _post = self.api_client.param_serialize(
                method="GET",
                resource_path="/version",
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            resp = self.api_client.call_api(
                method, url, header_params=headers, _request_timeout=(timeout, timeout)
            )
            resp.read()
        except (HTTPError, OSError, ValueError) as exc:
            return connection_problem(exc)
        if not 200 <= resp.status < 300:
            return f"HTTP {resp.status} {resp.reason or ''}".strip()
        return None

    def _count(self, verb: str, status: int) -> None:
        with self._lock:
            self.requests[verb] += 1
        if self.on_request is not None:
            self.on_request(verb, status)

    def call(
        self, verb: str, fn: Callable[[], Any], ok: tuple[int, ...] = (), retry_conflict: bool = False
    ) -> Obj:
        """Run fn (a client call with _preload_content=False) and return its JSON body.

        Statuses in `ok` are returned as {"_status": code} instead of raised (409 on create, 404 on
        delete: the state we wanted is already there).
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        backoff = Backoff(self.base_delay, self.max_delay, jitter=True)
        for attempt in range(1, self.max_attempts + 1):
            try:
                resp = fn()
                self._count(verb, resp.status)
                data = resp.data
                return json.loads(data) if data else {}
            except ApiException as exc:
                self._count(verb, exc.status or 0)
                if exc.status in ok:
                    return {"_status": exc.status}
                err = _error_from(exc)
                retry = exc.status in RETRYABLE or (retry_conflict and exc.status == 409)
            except (HTTPError, OSError) as exc:
                self._count(verb, 0)
                err, retry = KubeError(0, str(exc), "ConnectionError"), True
            if not retry or attempt == self.max_attempts:
                raise err
            log.info("retrying after API error", extra={"verb": verb, "error": str(err), "attempt": attempt})
            time.sleep(backoff.next())
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ list / watch

    def list(
        self, kind: Kind, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[Obj], str]:
        kwargs: dict[str, Any] = {"_preload_content": False}
        if label_selector:
            kwargs["label_selector"] = label_selector
        data = self.call(f"list {kind.name}", lambda: self._list_fn(kind, namespace)(**kwargs))
        items = data.get("items") or []
        for item in items:  # list items carry no apiVersion/kind; the decision code does not need them
            item.setdefault("metadata", {})
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _list_fn(self, kind: Kind, namespace: str | None) -> Callable[..., Any]:
        if kind.group:
            if kind.namespaced and namespace:
                return lambda **kw: self.custom.list_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, **kw
                )
            return lambda **kw: self.custom.list_cluster_custom_object(
                kind.group, kind.version, kind.plural, **kw
            )
        if kind.plural == "pods":
            if namespace:
                return lambda **kw: self.core.list_namespaced_pod(namespace, **kw)
            return self.core.list_pod_for_all_namespaces
        if kind.plural == "nodes":
            return self.core.list_node
        raise ValueError(kind)

    def watch(
        self,
        kind: Kind,
        resource_version: str,
        namespace: str | None = None,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Obj]:
        """Events after resource_version until the server ends the stream; raises Gone on 410."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        kwargs: dict[str, Any] = {
            "_preload_content": False,
            "watch": True,
            "resource_version": resource_version,
            "timeout_seconds": timeout_seconds,
            "allow_watch_bookmarks": True,
            "_request_timeout": (10, timeout_seconds + 15),
        }
        if label_selector:
            kwargs["label_selector"] = label_selector
        from urllib3.exceptions import HTTPError

        try:
            resp = self._list_fn(kind, namespace)(**kwargs)
        except ApiException as exc:
            self._count(f"watch {kind.name}", exc.status or 0)
            raise _error_from(exc) from None
        except HTTPError as exc:
            self._count(f"watch {kind.name}", 0)
            raise KubeError(0, str(exc), "ConnectionError") from None
        self._count(f"watch {kind.name}", resp.status)
        try:
            for line in iter_resp_lines(resp):
                if stop is not None and stop.is_set():
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code = int(status.get("code") or 500)
                    cls = Gone if code == 410 else KubeError
                    raise cls(code, status.get("message", ""), status.get("reason", ""))
                yield event
        except HTTPError as exc:
            raise KubeError(0, str(exc), "ConnectionError") from None
        finally:
            resp.release_conn()

    # ------------------------------------------------------------------ writes

    def _raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: builtins.list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Callable[[], Any]:
        """A request through the client's own ApiClient (auth, TLS, retries of the connection pool)
        with the JSON body as-is: the generated methods would first validate it into their pydantic
        models and serialise it back, which costs more than the request itself on the hot path."""
        from kubernetes.client.exceptions import ApiException

        def send() -> Any:
            method_, url, headers, body_, post = self.api_client.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = self.api_client.call_api(
                method_, url, header_params=headers, body=body_, post_params=post, _request_timeout=30
            )
            resp.read()
            if not 200 <= resp.status < 300:
                text = resp.data.decode("utf-8", "replace") if resp.data else ""
                raise ApiException(status=resp.status, reason=resp.reason, body=text)
            return resp

        return send

    def request(
        self,
        verb: str,
        method: str,
        path: str,
        body: Any = None,
        ok: tuple[int, ...] = (),
        content_type: str = "application/json",
    ) -> Obj:
        """Any request by path with its JSON body sent as is, through `call` (retries, counting):
        for objects the client's models would re-serialise (CRDs and their OpenAPI schemas)."""
        return self.call(verb, self._raw(method, path, body, content_type=content_type), ok=ok)

    # The writes below send the operator's JSON as is (through `_raw`), never through the generated
    # methods: those validate a dict into the client's pydantic model first, which refuses what the
    # API server accepts (a template's `cpu: 2` is an int, not the model's string: a ValidationError
    # before any request) and re-serialises timestamps with isoformat(), which drops a MicroTime's
    # fraction when it is .000000 (the API server then answers 400).

    def create_pod(self, namespace: str, body: Obj) -> Obj:
        return self.request("create pod", "POST", f"/api/v1/namespaces/{namespace}/pods", body, ok=(409,))

    def create_service(self, namespace: str, body: Obj) -> Obj:
        return self.request(
            "create service", "POST", f"/api/v1/namespaces/{namespace}/services", body, ok=(409,)
        )

    def bind_pod(self, namespace: str, name: str, node: str) -> Obj:
        """POST pods/<name>/binding. The API server answers a Status, which the generated method
        cannot parse (it expects a Binding): another reason to send it raw."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/binding"
        return self.request("bind pod", "POST", path, body, ok=(409,))

    def read_pod(self, namespace: str, name: str) -> Obj:
        return self.call(
            "read pod",
            lambda: self.core.read_namespaced_pod(name, namespace, _preload_content=False),
            ok=(404,),
        )

    def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> Obj:
        return self.call(
            "delete pod",
            lambda: self.core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=grace_seconds, _preload_content=False
            ),
            ok=(404,),
        )

    def patch_job_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        return self.call(
            "patch gpujob status",
            lambda: self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": patch},
                _preload_content=False,
                _content_type="application/merge-patch+json",
            ),
            ok=(404,),
        )

    def create_event(self, namespace: str, body: Obj) -> Obj:
        return self.request("create event", "POST", f"/api/v1/namespaces/{namespace}/events", body, ok=(409,))

    # ------------------------------------------------------------------ leases

    def read_lease(self, namespace: str, name: str) -> Obj:
        return self.call(
            "read lease",
            lambda: self.coordination.read_namespaced_lease(name, namespace, _preload_content=False),
            ok=(404,),
        )

    def create_lease(self, namespace: str, body: Obj) -> Obj:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return self.request("create lease", "POST", path, body, ok=(409,))

    def replace_lease(self, namespace: str, name: str, body: Obj) -> Obj:
        """PUT with the resourceVersion we read: 409 means someone else wrote it first."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        return self.request("replace lease", "PUT", path, body, ok=(409,))
