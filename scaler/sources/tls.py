"""TLS client contexts for broker connections, built the same way for every queue system."""

from __future__ import annotations

import ssl


def client_context(ca_file: str | None, unsafe_ssl: bool) -> ssl.SSLContext:
    """Verifies the broker against `ca_file` (a named connection's private CA) or the system's
    CAs; `unsafeSsl` turns verification off, as KEDA's key of that name does."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if unsafe_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
