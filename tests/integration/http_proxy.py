"""A request-counting HTTP proxy on 127.0.0.1, in front of a real management endpoint: it
shows how many requests the scaler sends, and forwards each unchanged."""

from __future__ import annotations

import http.client
import http.server
import threading
from typing import Any


class CountingHttpProxy:
    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.requests: list[tuple[str, str]] = []
        guard = threading.Lock()
        requests = self.requests

        class Forward(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the scaler's client uses it

            def do_GET(self) -> None:
                self.forward()

            def do_POST(self) -> None:
                self.forward()

            def forward(self) -> None:
                with guard:
                    requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(host, int(port), timeout=10)
                try:
                    upstream.request(self.command, self.path, body=body,
                                     headers={key: value for key, value in self.headers.items()
                                              if key.lower() not in ("connection", "host")})
                    reply = upstream.getresponse()
                    content = reply.read()
                finally:
                    upstream.close()
                self.send_response(reply.status, reply.reason)
                for key, value in reply.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads the counts."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CountingHttpProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        self.requests.clear()
