"""RabbitMQ queue depth: `source: rabbitmq` metadata and the source that reads it.

Two ways to read, chosen by the URL scheme or `protocol`: AMQP (pika, a passive queue.declare,
which reports READY messages only) and the management HTTP API (`/api/queues/<vhost>/<queue>`,
whose `messages` counts ready + unacknowledged, and which also has publish rates). One
`RabbitMQSource` is one connection to one broker, shared by every trigger that points at it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Hashable
from typing import Any, ClassVar

import pika
import pika.exceptions

from scaler import metadata, policy, redaction
from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    MetadataError,
    TargetNotFoundError,
)
from scaler.sources import base

_SCHEMES = ("amqp", "amqps", "http", "https")
_DEFAULT_VALUE = 20.0
_DEFAULT_TIMEOUT_MS = 3000
_MODES = tuple(mode.value for mode in policy.QueueMode)


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


@dataclasses.dataclass(frozen=True)
class RabbitMQMetadata:
    source_name: ClassVar[str] = "rabbitmq"

    host: urllib.parse.SplitResult = metadata.declare(
        "host", _broker_url, may_hold_credentials=True)
    queue_name: str = metadata.declare("queueName", metadata.text)
    protocol: str = metadata.declare(
        "protocol", metadata.choice("auto", "amqp", "http"), "auto")
    mode: policy.QueueMode | None = metadata.declare(
        "mode", lambda text: policy.QueueMode(metadata.choice(*_MODES)(text)), None)
    value: float | None = metadata.declare(
        "value", metadata.number(exclusive_minimum=0), None)
    activation_value: float = metadata.declare(
        "activationValue", metadata.number(minimum=0), 0.0)
    queue_length: float | None = metadata.declare(
        "queueLength", metadata.number(exclusive_minimum=0), None)
    vhost_name: str | None = metadata.declare("vhostName", metadata.text, None)
    exclude_unacknowledged: bool = metadata.declare(
        "excludeUnacknowledged", metadata.boolean, False)
    timeout_ms: int | None = metadata.declare(
        "timeout", metadata.integer(minimum=1, maximum=600_000), None)
    unsafe_ssl: bool = metadata.declare("unsafeSsl", metadata.boolean, False)
    username: str = metadata.declare("username", metadata.text, "")
    password: str = metadata.declare("password", metadata.text, "", secret=True)

    def validate(self) -> list[MetadataError]:
        problems = []
        scheme_protocol = "http" if self.host.scheme.startswith("http") else "amqp"
        if self.protocol not in ("auto", scheme_protocol):
            problems.append(MetadataError(
                "protocol", repr(self.protocol),
                f"must be auto or {scheme_protocol} for a {self.host.scheme}:// host"))
        if self.queue_length is not None and (self.mode is not None or self.value is not None):
            problems.append(MetadataError(
                "queueLength", "queueLength together with mode/value",
                "is the deprecated form of mode: QueueLength + value; give one or the other"))
        if (self.mode is None) != (self.value is None):
            missing = "value" if self.value is None else "mode"
            problems.append(MetadataError(
                missing, None, "is required when " + ("mode" if missing == "value" else "value")
                + " is set"))
        if self.effective_mode is not policy.QueueMode.QUEUE_LENGTH and not self.is_http:
            problems.append(MetadataError(
                "mode", repr(self.effective_mode.value),
                "needs the management API (an http:// or https:// host); over AMQP only "
                "QueueLength is available"))
        if self.exclude_unacknowledged and not self.is_http:
            problems.append(MetadataError(
                "excludeUnacknowledged", "true with an AMQP host",
                "applies to the management API only (AMQP already counts ready messages only)"))
        if self.timeout_ms is not None and not self.is_http:
            problems.append(MetadataError(
                "timeout", str(self.timeout_ms), "applies to the management API only"))
        return problems

    @property
    def timeout_s(self) -> float:
        return (self.timeout_ms or _DEFAULT_TIMEOUT_MS) / 1000

    @property
    def is_http(self) -> bool:
        return self.host.scheme in ("http", "https")

    @property
    def effective_mode(self) -> policy.QueueMode:
        return self.mode or policy.QueueMode.QUEUE_LENGTH

    @property
    def vhost(self) -> str:
        if self.vhost_name is not None:
            return self.vhost_name
        path = self.host.path.lstrip("/")
        return urllib.parse.unquote(path) if path else "/"

    @property
    def credentials(self) -> tuple[str, str]:
        user = self.username or urllib.parse.unquote(self.host.username or "guest")
        password = self.password or urllib.parse.unquote(self.host.password or "guest")
        return user, password

    def display_host(self) -> str:
        return redaction.redact_url(self.host.geturl())

    def connection_key(self) -> Hashable:
        return ("rabbitmq", self.host.scheme, self.host.hostname, self.host.port, self.vhost,
                self.credentials, self.unsafe_ssl, self.timeout_ms)

    def target_key(self) -> Hashable:
        return (self.connection_key(), self.queue_name)

    def metric_name(self) -> str:
        # KEDA's name: rabbitmq-<url-escaped queue name>, normalised.
        escaped = urllib.parse.quote(self.queue_name, safe="")
        return "rabbitmq-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in escaped)

    def target_value(self) -> float:
        return self.scaling().value

    def scaling(self) -> policy.QueueScaling:
        target = self.value if self.value is not None else (self.queue_length or _DEFAULT_VALUE)
        return policy.QueueScaling(self.effective_mode, target, self.activation_value)

    def open_source(self, timeout_s: float) -> RabbitMQSource:
        return RabbitMQSource(self, timeout_s)

    def decide(self, reading: base.Reading, bounds: policy.ReplicaBounds,
               previous: base.Reading | None) -> policy.Decision:
        assert isinstance(reading, RabbitMQReading)  # noqa: S101 - the pool pairs them
        return policy.decide_queue(reading.depth(self.exclude_unacknowledged),
                                   self.scaling(), bounds)


@dataclasses.dataclass(frozen=True)
class RabbitMQReading:
    queue: str
    ready: int
    unacknowledged: int | None
    """None over AMQP, which does not report it."""
    publish_rate: float | None
    consumers: int | None
    via: str

    def depth(self, exclude_unacknowledged: bool) -> policy.QueueDepth:
        if self.unacknowledged is None:
            return policy.QueueDepth(self.ready, self.publish_rate,
                                     "ready only: AMQP reports no unacknowledged count")
        if exclude_unacknowledged:
            return policy.QueueDepth(self.ready, self.publish_rate,
                                     "ready only: excludeUnacknowledged")
        return policy.QueueDepth(self.ready + self.unacknowledged, self.publish_rate,
                                 "ready + unacknowledged")

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RabbitMQSource:
    """One AMQP connection (or one HTTP client) for one broker and vhost."""

    def __init__(self, connection: RabbitMQMetadata, timeout_s: float) -> None:
        self._connection = connection
        self._timeout_s = min(timeout_s, connection.timeout_s)
        self._amqp: pika.BlockingConnection | None = None
        self._channel: Any = None
        # pika's BlockingConnection must not be used by two threads at once.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RabbitMQSource(host={self._connection.display_host()!r})"

    def read(self, target: RabbitMQMetadata) -> RabbitMQReading:
        with self._lock:
            if target.is_http:
                return self._read_http(target)
            return self._read_amqp(target)

    def close(self) -> None:
        with self._lock:
            self._close_amqp()

    # --- AMQP

    def _read_amqp(self, target: RabbitMQMetadata) -> RabbitMQReading:
        try:
            channel = self._open_channel()
            frame = channel.queue_declare(queue=target.queue_name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            # A failed passive declare closes the channel (404 NOT_FOUND); the connection stays.
            self._channel = None
            if exc.reply_code == 404:
                raise TargetNotFoundError(
                    f"RabbitMQ at {target.display_host()}: queue {target.queue_name!r} does not "
                    f"exist in vhost {target.vhost!r}") from exc
            raise BrokerUnavailableError(
                f"RabbitMQ at {target.display_host()}: channel closed: {exc.reply_code} "
                f"{redaction.redact_text(exc.reply_text)}") from exc
        except pika.exceptions.ProbableAuthenticationError as exc:
            self._close_amqp()
            raise BrokerAuthError(
                f"RabbitMQ at {target.display_host()}: login refused for user "
                f"{target.credentials[0]!r}") from exc
        except pika.exceptions.ConnectionClosedByBroker as exc:
            self._close_amqp()
            raise _connection_refusal(target, exc.reply_code, exc.reply_text) from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._close_amqp()
            raise BrokerUnavailableError(
                f"RabbitMQ at {target.display_host()}: {type(exc).__name__}: "
                f"{redaction.redact_text(str(exc), (target.credentials[1],))}") from exc
        return RabbitMQReading(
            queue=target.queue_name,
            ready=int(frame.method.message_count),
            unacknowledged=None,
            publish_rate=None,
            consumers=int(frame.method.consumer_count),
            via="amqp",
        )

    def _open_channel(self) -> Any:
        if self._amqp is None or not self._amqp.is_open:
            self._close_amqp()
            self._amqp = pika.BlockingConnection(self._amqp_parameters())
        else:
            # Lets pika answer heartbeats that arrived while we were idle.
            self._amqp.process_data_events(0)
        if self._channel is None or not self._channel.is_open:
            self._channel = self._amqp.channel()
        return self._channel

    def _amqp_parameters(self) -> pika.ConnectionParameters:
        connection = self._connection
        user, password = connection.credentials
        tls = connection.host.scheme == "amqps"
        ssl_options = None
        if tls:
            context = ssl.create_default_context()
            if connection.unsafe_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            ssl_options = pika.SSLOptions(context, connection.host.hostname)
        return pika.ConnectionParameters(
            host=connection.host.hostname,
            port=connection.host.port or (5671 if tls else 5672),
            virtual_host=connection.vhost,
            credentials=pika.PlainCredentials(user, password),
            ssl_options=ssl_options,
            connection_attempts=1,
            socket_timeout=self._timeout_s,
            stack_timeout=self._timeout_s,
            blocked_connection_timeout=self._timeout_s,
            client_properties={"connection_name": "queue-scaler"},
        )

    def _close_amqp(self) -> None:
        connection, self._amqp, self._channel = self._amqp, None, None
        if connection is not None and connection.is_open:
            # A broken connection may fail to close; dropping our reference is all that's left.
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    # --- management HTTP API

    def _read_http(self, target: RabbitMQMetadata) -> RabbitMQReading:
        host = target.host
        url = (f"{host.scheme}://{host.hostname}:{host.port or _default_http_port(host.scheme)}"
               f"/api/queues/{urllib.parse.quote(target.vhost, safe='')}/"
               f"{urllib.parse.quote(target.queue_name, safe='')}"
               "?columns=name,messages,messages_ready,messages_unacknowledged,consumers,"
               "message_stats.publish_details.rate")
        body = self._get_json(target, url)
        stats = body.get("message_stats") or {}
        publish_rate = float((stats.get("publish_details") or {}).get("rate", 0.0))
        return RabbitMQReading(
            queue=target.queue_name,
            ready=int(body.get("messages_ready", 0)),
            unacknowledged=int(body.get("messages_unacknowledged", 0)),
            publish_rate=publish_rate,
            consumers=int(body.get("consumers", 0)),
            via="http",
        )

    def _get_json(self, target: RabbitMQMetadata, url: str) -> dict[str, Any]:
        user, password = target.credentials
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310 - scheme checked in metadata
        context = None
        if target.host.scheme == "https":
            context = ssl.create_default_context()
            if target.unsafe_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        where = f"RabbitMQ management API at {target.display_host()}"
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s, context=context) as reply:  # noqa: S310
                body = json.load(reply)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise TargetNotFoundError(
                    f"{where}: queue {target.queue_name!r} in vhost {target.vhost!r} does not "
                    "exist (or the vhost does not)") from exc
            if exc.code in (401, 403):
                raise BrokerAuthError(
                    f"{where}: HTTP {exc.code}: access refused for user {user!r}") from exc
            raise BrokerUnavailableError(f"{where}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise BrokerUnavailableError(
                f"{where}: {type(exc).__name__}: "
                f"{redaction.redact_text(str(exc), (password,))}") from exc
        if not isinstance(body, dict):
            raise BrokerUnavailableError(f"{where}: answered with something other than a queue")
        return body


def _default_http_port(scheme: str) -> int:
    return 15671 if scheme == "https" else 15672


def _connection_refusal(target: RabbitMQMetadata, code: int, text: str) -> Exception:
    where = f"RabbitMQ at {target.display_host()}"
    detail = redaction.redact_text(text, (target.credentials[1],))
    if code == 530 and "not found" in text:
        return TargetNotFoundError(f"{where}: vhost {target.vhost!r} does not exist ({detail})")
    if code in (403, 530):
        return BrokerAuthError(f"{where}: {code} {detail}")
    return BrokerUnavailableError(f"{where}: connection closed by broker: {code} {detail}")
