"""A minimal Kubernetes API server over real HTTP, faithful for what the agent's publisher uses.

The real `kubernetes` client talks to it unchanged. Kept semantics: cluster-scoped custom objects
with a status subresource (POST drops .status; a /status write changes only .status; JSON patch and
merge patch per Content-Type, other patch types 415), resourceVersion/uid/creationTimestamp set by
the server, 404/409 with Status bodies, Nodes read-only, Events created per namespace. Every
request is recorded (method, path, content type, body) for assertions; `fail_next` injects errors.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonpatch

CR = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)
NODE = re.compile(r"^/api/v1/nodes/(?P<name>[^/]+)$")
EVENTS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class KubeAPI:
    def __init__(self, custom_plurals: set[tuple[str, str, str]]) -> None:
        self.plurals = custom_plurals
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}  # (plural, name) -> object
        self.nodes: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, str, Any]] = []
        self.fail_next: list[int] = []
        self._rv = 0
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._handle(self, "GET")

            def do_POST(self) -> None:
                api._handle(self, "POST")

            def do_PATCH(self) -> None:
                api._handle(self, "PATCH")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_node(self, name: str) -> dict[str, Any]:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv()},
        }
        self.nodes[name] = node
        return node

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        body = json.loads(raw) if raw else None
        path = req.path.split("?", 1)[0]
        with self._lock:
            self.requests.append((method, path, ctype, body))
            if self.fail_next:
                code = self.fail_next.pop(0)
                return self._send(req, code, _status(code, "InternalError", "injected failure"))
            code, out = self._route(method, path, ctype, body)
        self._send(req, code, out)

    def _route(self, method: str, path: str, ctype: str, body: Any) -> tuple[int, dict[str, Any]]:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if m := NODE.match(path):
            node = self.nodes.get(m["name"])
            if method != "GET":
                return 405, _status(405, "MethodNotAllowed", "nodes are read-only here")
            return (200, node) if node else (404, _status(404, "NotFound", f'nodes "{m["name"]}" not found'))
        if m := EVENTS.match(path):
            if method != "POST":
                return 405, _status(405, "MethodNotAllowed", method)
            event = copy.deepcopy(body)
            event.setdefault("metadata", {})["namespace"] = m["ns"]
            event["metadata"]["resourceVersion"] = self._next_rv()
            self.events.append(event)
            return 201, event
        m = CR.match(path)
        if not m or (m["group"], m["version"], m["plural"]) not in self.plurals:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource ({path})")
        plural, name, sub = m["plural"], m["name"], m["sub"]
        if method == "POST" and name is None:
            name = body["metadata"]["name"]
            if (plural, name) in self.objects:
                return 409, _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            obj = copy.deepcopy(body)
            obj.pop("status", None)  # status subresource: create ignores .status
            obj["metadata"].update(
                uid=str(uuid.uuid4()), resourceVersion=self._next_rv(), creationTimestamp=now, generation=1
            )
            self.objects[(plural, name)] = obj
            return 201, obj
        obj = self.objects.get((plural, name or ""))
        if obj is None:
            return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
        if method == "GET":
            return 200, obj
        if method == "PATCH" and sub == "status":
            if ctype == "application/json-patch+json":
                try:
                    patched = jsonpatch.apply_patch(obj, body)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                    return 422, _status(422, "Invalid", str(exc))
            elif ctype == "application/merge-patch+json":
                patched = _merge(copy.deepcopy(obj), body)
            else:
                return 415, _status(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r}")
            obj["status"] = patched.get("status")  # only .status changes through the subresource
            obj["metadata"]["resourceVersion"] = self._next_rv()
            return 200, obj
        return 405, _status(405, "MethodNotAllowed", method)

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, code: int, out: dict[str, Any]) -> None:
        data = json.dumps(out).encode()
        req.send_response(code)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target
