"""The HTTP port: /metrics for Prometheus, /healthz (process alive), /readyz (serving gRPC).

A small threaded stdlib server: these endpoints are cheap, and keeping them off the asyncio
loop means a scrape can never delay an RPC.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable


class HttpEndpoints:
    def __init__(self, address: str, *, render_metrics: Callable[[], tuple[bytes, str]],
                 is_ready: Callable[[], bool]) -> None:
        host, _, port = address.rpartition(":")
        endpoints = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoints._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes and probes every few seconds would drown the log

        self._render_metrics = render_metrics
        self._is_ready = is_ready
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
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            body, content_type = self._render_metrics()
            _reply(request, 200, body, content_type)
        elif path == "/healthz":
            _reply(request, 200, b"ok\n")
        elif path == "/readyz":
            if self._is_ready():
                _reply(request, 200, b"ready\n")
            else:
                _reply(request, 503, b"not ready\n")
        else:
            _reply(request, 404, b"not found: try /metrics, /healthz or /readyz\n")


def _reply(request: http.server.BaseHTTPRequestHandler, status: int, body: bytes,
           content_type: str = "text/plain; charset=utf-8") -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)
