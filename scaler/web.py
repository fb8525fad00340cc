"""The HTTP port: / (the status page, scaler.status_page), /metrics for Prometheus, /healthz
(process alive), /readyz (serving gRPC), and /scaledobjects[/<namespace>/<name>]: each
trigger's newest decision and why, as JSON.

A small threaded stdlib server: these endpoints are cheap, and keeping them off the asyncio
loop means a scrape can never delay an RPC.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from scaler import status_page
from scaler.history import View


class HttpEndpoints:
    def __init__(self, address: str, *, render_metrics: Callable[[], tuple[bytes, str]],
                 is_ready: Callable[[], bool],
                 explain_all: Callable[[], list[dict[str, Any]]],
                 explain_one: Callable[[str, str], list[dict[str, Any]]],
                 status: Callable[[str | None], View]) -> None:
        """`status(namespace or None)`: what the status page shows."""
        host, _, port = address.rpartition(":")
        endpoints = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoints._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes and probes every few seconds would drown the log

        self._render_metrics = render_metrics
        self._is_ready = is_ready
        self._explain_all = explain_all
        self._explain_one = explain_one
        self._status = status
        self._server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-endpoints", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, request: http.server.BaseHTTPRequestHandler) -> None:
        path, _, query = request.path.partition("?")
        if path == "/":
            # ?namespace= (empty) is the form's "all namespaces".
            namespace = urllib.parse.parse_qs(query).get("namespace", [""])[0] or None
            page = status_page.render(self._status(namespace), namespace)
            _reply(request, 200, page.encode(), "text/html; charset=utf-8")
        elif path == "/metrics":
            body, content_type = self._render_metrics()
            _reply(request, 200, body, content_type)
        elif path == "/healthz":
            _reply(request, 200, b"ok\n")
        elif path == "/readyz":
            if self._is_ready():
                _reply(request, 200, b"ready\n")
            else:
                _reply(request, 503, b"not ready\n")
        elif path == "/scaledobjects":
            _reply_json(request, 200, {"scaledObjects": self._explain_all()})
        elif path.startswith("/scaledobjects/") and path.count("/") == 3:
            _, _, namespace, name = path.split("/")
            found = self._explain_one(urllib.parse.unquote(namespace), urllib.parse.unquote(name))
            if found:
                _reply_json(request, 200, {"triggers": found})
            else:
                _reply_json(request, 404, {"error": f"no decision for {namespace}/{name} yet: "
                                                    "KEDA has not asked about it recently"})
        else:
            _reply(request, 404,
                   b"not found: try /, /metrics, /healthz, /readyz, /scaledobjects\n")


def _reply_json(request: http.server.BaseHTTPRequestHandler, status: int,
                body: dict[str, Any]) -> None:
    _reply(request, status, json.dumps(body, indent=2, default=str).encode() + b"\n",
           "application/json")


def _reply(request: http.server.BaseHTTPRequestHandler, status: int, body: bytes,
           content_type: str = "text/plain; charset=utf-8") -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)
