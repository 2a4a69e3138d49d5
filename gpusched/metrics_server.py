"""The one HTTP server for /metrics and the small status routes of the agent and the operator.

/metrics is prometheus_client's own WSGI app (make_wsgi_app): its exposition, content negotiation
(OpenMetrics when the scraper asks for it), gzip and `name[]=` filtering. prometheus_client's
start_http_server serves only that app, on every path, so the status routes (/healthz, /readyz,
/snapshot) are a small dispatcher in front of it, served by the same server class
start_wsgi_server uses (prometheus_client's ThreadingWSGIServer, from wsgiref). The socket is bound
in the constructor, so a port in use fails at start-up, before anything else runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

Route = Callable[[], tuple[int, str, bytes]]
"""A status route: () -> (HTTP status, content type, body), called per request."""

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class _QuietHandler(WSGIRequestHandler):
    """wsgiref logs every request to stderr; scrapes every few seconds belong at debug level."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class MetricsServer:
    """/metrics from `registry` plus `routes` (exact paths), on one daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        port: int,
        host: str = "0.0.0.0",
        routes: dict[str, Route] | None = None,
    ) -> None:
        metrics_app = make_wsgi_app(registry)
        table = dict(routes or {})

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            route = table.get(path)
            if route is None:
                code, ctype, body = 404, "text/plain", b"not found\n"
            elif environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                code, ctype, body = 405, "text/plain", b"use GET\n"
            else:
                code, ctype, body = route()
            start_response(
                f"{code} {_REASONS.get(code, 'Status')}",
                [("Content-Type", ctype), ("Content-Length", str(len(body)))],
            )
            return [body]

        self.httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which never ran otherwise
            self.httpd.shutdown()
        self.httpd.server_close()
