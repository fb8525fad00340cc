"""One keep-alive HTTP(S) connection to one management endpoint (RabbitMQ's management API,
ActiveMQ's Jolokia), shared by every trigger on that endpoint.

A broker closes a keep-alive connection it has held idle; the next request on it fails at once.
Such a request is sent once more on a new connection, and only when the connection had been
used before, so a broker that is down is reported after one attempt.

A server that accepts a connection and closes it without a word is asked again too, up to
twice, on a new connection each time: the JDK HTTP server behind Jolokia's JVM agent does that
to about one request in twenty on a path it does not serve, instead of sending its 404 (measured
against the test bed's agent; the user would otherwise see the 404's advice only now and then).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
from collections.abc import Mapping

from scaler.sources.tls import client_context

# A keep-alive connection the broker closed while we were idle fails on first use.
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError)
_ATTEMPTS_AFTER_SILENT_CLOSE = 3


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    body: bytes


class HttpConnection:
    """Not thread-safe: callers take turns. Raises `OSError` or `http.client.HTTPException`
    (the caller wraps them into its own errors, redacted)."""

    def __init__(self, scheme: str, host: str, port: int | None, timeout_s: float,
                 ca_file: str = "", unsafe_ssl: bool = False) -> None:
        self._scheme = scheme
        self._host = host
        self._port = port
        self._timeout_s = timeout_s
        self._ca_file = ca_file
        self._unsafe_ssl = unsafe_ssl
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, headers: Mapping[str, str],
                body: bytes | None = None) -> Reply:
        for attempt in range(1, _ATTEMPTS_AFTER_SILENT_CLOSE + 1):
            reused = self._connection is not None
            try:
                return self._send(method, path, headers, body)
            except http.client.RemoteDisconnected:
                self.close()
                if attempt == _ATTEMPTS_AFTER_SILENT_CLOSE:
                    raise
            except _STALE_CONNECTION:
                self.close()
                if not (reused and attempt == 1):
                    raise
            except (http.client.HTTPException, OSError):
                self.close()
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def _send(self, method: str, path: str, headers: Mapping[str, str],
              body: bytes | None) -> Reply:
        if self._connection is None:
            self._connection = self._open()
        self._connection.request(method, path, body=body, headers=dict(headers))
        reply = self._connection.getresponse()
        return Reply(reply.status, reply.reason, reply.read())

    def _open(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s,
                context=client_context(self._ca_file, self._unsafe_ssl))
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
