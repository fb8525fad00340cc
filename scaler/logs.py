"""How every process of the scaler logs: one format for all of them (`text` or `json`), URL
credentials masked, and the client libraries' own copies of broker failures silenced."""

from __future__ import annotations

import datetime
import json
import logging
import os
from typing import Any

from scaler import redaction

FORMATS = ("text", "json")
# The serving process sets it, and the reader process (started with the serving process's
# environment, scaler.sources.reader_process) reads it, so that both write one format.
_FORMAT_VARIABLE = "QUEUE_SCALER_LOG_FORMAT"
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Every attribute a plain LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class RedactingFormatter(logging.Formatter):
    """Masks URL credentials in every formatted line, tracebacks included: our own messages
    are redacted where they are made, but a library's exception text may carry a URL."""

    def format(self, record: logging.LogRecord) -> str:
        return redaction.redact_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `time` (UTC, ISO 8601), `level`, `logger`, `message`, every
    field given with `extra=` under its own name, and `exception` with the traceback. Every
    string is redacted as the text format's lines are."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                fields.setdefault(name, value)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_redacted(fields), ensure_ascii=False, default=_redacted_text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redaction.redact_text(value)
    if isinstance(value, dict):
        return {str(key): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _redacted_text(value: object) -> str:
    """Anything json cannot encode (an exception, a path) as its redacted text."""
    return redaction.redact_text(str(value))


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return RedactingFormatter(_TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")


def configure(level: str, log_format: str | None = None) -> None:
    """Logs to stderr at `level` in `log_format`; without one, in the format the process that
    started this one was configured with (text by default)."""
    if log_format is None:
        log_format = os.environ.get(_FORMAT_VARIABLE, "text")
        if log_format not in FORMATS:
            log_format = "text"
    os.environ[_FORMAT_VARIABLE] = log_format
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    # The client libraries log every failed connect at ERROR; the same failure reaches KEDA
    # and our metrics as an UNAVAILABLE answer, so their copies only add noise.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
