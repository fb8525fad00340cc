"""How every process of the scaler logs: one format, URL credentials masked, and the client
libraries' own copies of broker failures silenced."""

from __future__ import annotations

import logging

from scaler import redaction


class RedactingFormatter(logging.Formatter):
    """Masks URL credentials in every formatted line, tracebacks included: our own messages
    are redacted where they are made, but a library's exception text may carry a URL."""

    def format(self, record: logging.LogRecord) -> str:
        return redaction.redact_text(super().format(record))


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # The client libraries log every failed connect at ERROR; the same failure reaches KEDA
    # and our metrics as an UNAVAILABLE answer, so their copies only add noise.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
