"""`source: rabbitmq` metadata: every key of SPEC §3.2 declared once, KEDA's validation rules
(rates, message ages and regex need the management API, mode and value go together), vhost and
sub-path from the URL, and the metric name KEDA would give the trigger."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Hashable
from typing import ClassVar

from scaler import metadata, policy, redaction
from scaler.errors import MetadataError
from scaler.policy import depth
from scaler.sources import base
from scaler.sources.rabbitmq.amqp import AmqpSource
from scaler.sources.rabbitmq.management import ManagementSource
from scaler.sources.rabbitmq.reading import RabbitMQReading

_SCHEMES = ("amqp", "amqps", "http", "https")
_DEFAULT_VALUE = 20.0
_DEFAULT_TIMEOUT_MS = 3000
_DEFAULT_PAGE_SIZE = 100
_MAX_PAGE_SIZE = 500  # the management API refuses larger pages
_MAX_REGEX_LENGTH = 1000
_MAX_QUEUE_NAME_BYTES = 255  # AMQP short string


def _broker_url(value: str) -> urllib.parse.SplitResult:
    try:
        url = urllib.parse.urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise metadata.InvalidValueError(
            "must be a URL such as amqp://user:pass@host:5672/vhost or "
            "http://user:pass@host:15672/vhost") from None
    if url.scheme not in _SCHEMES or not url.hostname:
        raise metadata.InvalidValueError(
            f"must be a URL with a host and one of the schemes {', '.join(_SCHEMES)}")
    return url


def _mode(value: str) -> depth.Mode:
    return depth.Mode(metadata.choice(*(mode.value for mode in depth.Mode))(value))


def _operation(value: str) -> depth.Operation:
    return depth.Operation(metadata.choice(*(op.value for op in depth.Operation))(value))


@dataclasses.dataclass(frozen=True)
class RabbitMQMetadata:
    source_name: ClassVar[str] = "rabbitmq"
    # The keys a named connection may set (scaler.sources.connections).
    connection_keys: ClassVar[frozenset[str]] = frozenset(
        {"host", "tls", "unsafeSsl", "caFile", "username", "password"})

    host: urllib.parse.SplitResult = metadata.declare(
        "host", _broker_url, may_hold_credentials=True)
    queue_name: str = metadata.declare("queueName", metadata.text)
    protocol: str = metadata.declare(
        "protocol", metadata.choice("auto", "amqp", "http"), "auto")
    mode: depth.Mode | None = metadata.declare("mode", _mode, None)
    value: float | None = metadata.declare("value", metadata.number(exclusive_minimum=0), None)
    activation_value: float = metadata.declare(
        "activationValue", metadata.number(minimum=0), 0.0)
    queue_length: float | None = metadata.declare(
        "queueLength", metadata.number(exclusive_minimum=0), None)
    vhost_name: str | None = metadata.declare("vhostName", metadata.text, None)
    use_regex: bool = metadata.declare("useRegex", metadata.boolean, False)
    operation: depth.Operation | None = metadata.declare("operation", _operation, None)
    page_size: int | None = metadata.declare(
        "pageSize", metadata.integer(minimum=1, maximum=_MAX_PAGE_SIZE), None)
    exclude_unacknowledged: bool = metadata.declare(
        "excludeUnacknowledged", metadata.boolean, False)
    timeout_ms: int | None = metadata.declare(
        "timeout", metadata.integer(minimum=1, maximum=600_000), None)
    tls: str = metadata.declare("tls", metadata.choice("enable", "disable"), "disable")
    unsafe_ssl: bool = metadata.declare("unsafeSsl", metadata.boolean, False)
    ca_file: str = metadata.declare("caFile", metadata.text, "", connection_only=True)
    username: str = metadata.declare("username", metadata.text, "")
    password: str = metadata.declare("password", metadata.text, "", secret=True)

    def validate(self) -> list[MetadataError]:
        problems = []
        scheme_protocol = "http" if self.is_http else "amqp"
        http_only = "needs the management API (an http:// or https:// host)"
        if self.protocol not in ("auto", scheme_protocol):
            problems.append(MetadataError(
                "protocol", repr(self.protocol),
                f"must be auto or {scheme_protocol} for a {self.host.scheme}:// host"))
        if self.queue_length is not None and (self.mode is not None or self.value is not None):
            problems.append(MetadataError(
                "queueLength", "queueLength together with mode/value",
                "is the deprecated form of mode: QueueLength + value; give one or the other"))
        if self.mode is not None and self.value is None:
            problems.append(MetadataError("value", None, "is required when mode is set"))
        if self.value is not None and self.mode is None:
            problems.append(MetadataError("mode", None, "is required when value is set"))
        if self.effective_mode.needs_management_api and not self.is_http:
            problems.append(MetadataError(
                "mode", repr(self.effective_mode.value),
                f"{http_only}; over AMQP only QueueLength is available"))
        if self.effective_mode is depth.Mode.MESSAGE_AGE:
            problems.extend(self._validate_message_age())
        if self.use_regex and not self.is_http:
            problems.append(MetadataError("useRegex", "true with an AMQP host", http_only))
        for key, is_set in (("operation", self.operation is not None),
                            ("pageSize", self.page_size is not None)):
            if is_set and not self.use_regex:
                problems.append(MetadataError(key, "useRegex false", "applies with useRegex: true"))
        if self.use_regex:
            problems.extend(self._validate_regex())
        elif len(self.queue_name.encode()) > _MAX_QUEUE_NAME_BYTES:
            problems.append(MetadataError(
                "queueName", f"{len(self.queue_name.encode())} bytes",
                f"must be at most {_MAX_QUEUE_NAME_BYTES} bytes (an AMQP queue name)"))
        if self.exclude_unacknowledged and not self.is_http:
            problems.append(MetadataError(
                "excludeUnacknowledged", "true with an AMQP host",
                "applies to the management API only (AMQP already counts ready messages only)"))
        if self.timeout_ms is not None and not self.is_http:
            problems.append(MetadataError(
                "timeout", str(self.timeout_ms), "applies to the management API only"))
        if self.tls == "enable" and self.host.scheme not in ("amqps", "https"):
            problems.append(MetadataError(
                "tls", "enable with a " + self.host.scheme + ":// host",
                "needs an amqps:// or https:// host"))
        if self.ca_file and self.host.scheme not in ("amqps", "https"):
            problems.append(MetadataError(
                "caFile", repr(self.ca_file), "needs an amqps:// or https:// host"))
        return problems

    def _validate_message_age(self) -> list[MetadataError]:
        problems = []
        if self.operation not in (None, depth.Operation.MAX):
            problems.append(MetadataError(
                "operation", f"{self.operation.value!r} with mode MessageAge",
                "must be max (the default with MessageAge): the age of the oldest head message "
                "over the matching queues; a sum or an average of ages is the age of no "
                "message"))
        if self.exclude_unacknowledged:
            problems.append(MetadataError(
                "excludeUnacknowledged", "true with mode MessageAge",
                "does not apply to MessageAge: RabbitMQ's head_message_timestamp is the oldest "
                "of the next ready message and the messages delivered but not yet "
                "acknowledged, and cannot leave the latter out"))
        return problems

    def _validate_regex(self) -> list[MetadataError]:
        if len(self.queue_name) > _MAX_REGEX_LENGTH:
            return [MetadataError("queueName", f"{len(self.queue_name)} characters",
                                  f"a regex must be at most {_MAX_REGEX_LENGTH} characters")]
        try:
            re.compile(self.queue_name)
        except re.error as exc:
            return [MetadataError("queueName", repr(self.queue_name[:80]),
                                  f"must be a valid regex with useRegex: true ({exc})")]
        return []

    @property
    def is_http(self) -> bool:
        return self.host.scheme in ("http", "https")

    @property
    def effective_mode(self) -> depth.Mode:
        return self.mode or depth.Mode.QUEUE_LENGTH

    @property
    def effective_operation(self) -> depth.Operation:
        """KEDA's default sum, except for MessageAge, whose only meaningful aggregate is max."""
        if self.operation is not None:
            return self.operation
        if self.effective_mode is depth.Mode.MESSAGE_AGE:
            return depth.Operation.MAX
        return depth.Operation.SUM

    @property
    def needs_head_timestamp(self) -> bool:
        """MessageAge: the source answers an error for a queue that holds messages but whose
        head carries no timestamp, so such triggers are read as targets of their own."""
        return self.effective_mode is depth.Mode.MESSAGE_AGE

    @property
    def timeout_s(self) -> float:
        return (self.timeout_ms or _DEFAULT_TIMEOUT_MS) / 1000

    @property
    def effective_page_size(self) -> int:
        return self.page_size or _DEFAULT_PAGE_SIZE

    @property
    def vhost(self) -> str:
        """vhostName, else from the URL path: all of it over AMQP; over HTTP the last segment,
        anything before it being a sub-path the management API is served under (as KEDA)."""
        if self.vhost_name is not None:
            return self.vhost_name
        path = self.host.path.lstrip("/")
        if self.is_http:
            path = path.rsplit("/", 1)[-1]
        return urllib.parse.unquote(path) if path else "/"

    @property
    def http_sub_path(self) -> str:
        """'/rabbitmq' for http://host/rabbitmq/vhost: where the management API is served."""
        prefix = self.host.path.rsplit("/", 1)[0] if self.host.path.count("/") > 1 else ""
        return prefix.rstrip("/")

    @property
    def credentials(self) -> tuple[str, str]:
        user = self.username or urllib.parse.unquote(self.host.username or "guest")
        password = self.password or urllib.parse.unquote(self.host.password or "guest")
        return user, password

    def display_host(self) -> str:
        return redaction.redact_url(self.host.geturl())

    def connection_key(self) -> Hashable:
        if self.is_http:
            # One HTTP client per management API serves every vhost on the broker.
            return ("rabbitmq-http", self.host.scheme, self.host.hostname, self.host.port,
                    self.http_sub_path, self.credentials, self.unsafe_ssl, self.ca_file,
                    self.timeout_s)
        # An AMQP connection is bound to one vhost.
        return ("rabbitmq-amqp", self.host.scheme, self.host.hostname, self.host.port,
                self.vhost, self.credentials, self.unsafe_ssl, self.ca_file)

    def target_key(self) -> Hashable:
        # needs_head_timestamp: a queue without head timestamps is an error for MessageAge
        # only; other modes on the same queue still get their reading.
        return (self.connection_key(), self.vhost, self.queue_name, self.use_regex,
                self.effective_page_size, self.needs_head_timestamp)

    def metric_name(self) -> str:
        # KEDA's name: rabbitmq-<queue name, query-escaped>, then normalised.
        return metadata.metric_name("rabbitmq-" + urllib.parse.quote_plus(self.queue_name))

    def target_value(self) -> float:
        return self.options().value

    def measures_arrivals(self) -> bool:
        return self.is_http  # publish rates come from the management API only

    def needs_progress(self) -> bool:
        return False

    def options(self) -> depth.DepthOptions:
        target = self.value if self.value is not None else (self.queue_length or _DEFAULT_VALUE)
        return depth.DepthOptions(self.effective_mode, target, self.activation_value)

    def open_source(self, timeout_s: float) -> AmqpSource | ManagementSource:
        if self.is_http:
            return ManagementSource(self, min(timeout_s, self.timeout_s))
        return AmqpSource(self, timeout_s)

    def decide(self, reading: base.Reading, bounds: policy.ReplicaBounds,
               stalled: frozenset[Hashable]) -> policy.Decision:
        assert isinstance(reading, RabbitMQReading)  # noqa: S101 - the poller pairs them
        facts = reading.facts(self.exclude_unacknowledged, self.effective_operation)
        return depth.decide(facts, self.options(), bounds)
