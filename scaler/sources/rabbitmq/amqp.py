"""Reads queue depth over AMQP with pika: a passive queue.declare on one shared connection.

RabbitMQ answers a passive declare with the READY message count (unacknowledged messages are
not in it) and the consumer count. One connection per broker+vhost+credentials serves every
trigger; a 404 closes only the channel, which is reopened on the next read.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from scaler import redaction
from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    SourceError,
    TargetNotFoundError,
)
from scaler.sources.rabbitmq.reading import QueueStats, RabbitMQReading
from scaler.sources.tls import client_context

if TYPE_CHECKING:
    from scaler.sources.rabbitmq.metadata import RabbitMQMetadata


class _ChannelError(BrokerUnavailableError):
    """The broker closed our channel over one queue; the connection and other queues are fine."""


class AmqpSource:
    def __init__(self, connection: RabbitMQMetadata, timeout_s: float) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._amqp: pika.BlockingConnection | None = None
        self._channel: Any = None
        # pika's BlockingConnection must not be used by two threads at once.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AmqpSource(host={self._connection.display_host()!r})"

    def read_many(self, targets: Sequence[RabbitMQMetadata]
                  ) -> dict[Hashable, RabbitMQReading | SourceError]:
        """One passive declare per queue on the shared channel. A missing queue is that
        target's error; a connection failure fails the whole cycle."""
        results: dict[Hashable, RabbitMQReading | SourceError] = {}
        with self._lock:
            for target in targets:
                try:
                    results[target.target_key()] = self._read(target)
                except (TargetNotFoundError, _ChannelError) as exc:
                    results[target.target_key()] = exc
        return results

    def close(self) -> None:
        with self._lock:
            self._close_connection()

    def _read(self, target: RabbitMQMetadata) -> RabbitMQReading:
        where = f"RabbitMQ at {target.display_host()}"
        try:
            frame = self._open_channel().queue_declare(queue=target.queue_name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            # A failed passive declare closes the channel (404 NOT_FOUND); the connection stays.
            self._channel = None
            if exc.reply_code == 404:
                raise TargetNotFoundError(
                    f"{where}: queue {target.queue_name!r} does not exist in vhost "
                    f"{target.vhost!r}") from exc
            raise _ChannelError(
                f"{where}: channel closed: {exc.reply_code} {self._scrub(exc.reply_text)}"
            ) from exc
        except pika.exceptions.ProbableAuthenticationError as exc:
            self._close_connection()
            raise BrokerAuthError(
                f"{where}: login refused for user {target.credentials[0]!r}") from exc
        except pika.exceptions.ProbableAccessDeniedError as exc:
            # The broker closes the handshake with 530 NOT_ALLOWED both for a vhost that does
            # not exist and for one the user may not use; only the text tells them apart.
            self._close_connection()
            if "not found" in str(exc):
                raise TargetNotFoundError(
                    f"{where}: vhost {target.vhost!r} does not exist") from exc
            raise BrokerAuthError(
                f"{where}: user {target.credentials[0]!r} may not use vhost "
                f"{target.vhost!r}") from exc
        except pika.exceptions.ConnectionClosedByBroker as exc:
            self._close_connection()
            raise self._refusal(target, exc.reply_code, exc.reply_text) from exc
        except AMQPConnectorStackTimeout as exc:
            # Not an AMQPError: pika's own for a peer that never finishes the handshake.
            self._close_connection()
            raise BrokerUnavailableError(
                f"{where}: no AMQP handshake within {self._timeout_s:g} s (is this the AMQP "
                "port, with amqps:// where it serves TLS?)") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._close_connection()
            # pika's AMQPConnectionError has an empty str(); its cause is in its args' repr.
            detail = str(exc) or "; ".join(repr(arg) for arg in exc.args)
            raise BrokerUnavailableError(
                f"{where}: {type(exc).__name__}: {self._scrub(detail)}") from exc
        return RabbitMQReading(
            vhost=target.vhost,
            queues=(QueueStats(
                name=target.queue_name,
                ready=int(frame.method.message_count),
                unacknowledged=None,
                publish_rate=None,
                deliver_get_rate=None,
                consumers=int(frame.method.consumer_count),
            ),),
            via="amqp",
        )

    def _open_channel(self) -> Any:
        if self._amqp is None or not self._amqp.is_open:
            self._close_connection()
            self._amqp = pika.BlockingConnection(self._parameters())
        else:
            # Lets pika answer heartbeats that arrived while we were idle.
            self._amqp.process_data_events(0)
        if self._channel is None or not self._channel.is_open:
            self._channel = self._amqp.channel()
        return self._channel

    def _parameters(self) -> pika.ConnectionParameters:
        connection = self._connection
        user, password = connection.credentials
        tls = connection.host.scheme == "amqps"
        ssl_options = None
        if tls:
            ssl_options = pika.SSLOptions(
                client_context(connection.ca_file, connection.unsafe_ssl),
                connection.host.hostname)
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

    def _close_connection(self) -> None:
        connection, self._amqp, self._channel = self._amqp, None, None
        if connection is not None and connection.is_open:
            # A broken connection may fail to close; dropping our reference is all that's left.
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    def _scrub(self, text: str) -> str:
        return redaction.redact_text(text, (self._connection.credentials[1],))

    def _refusal(self, target: RabbitMQMetadata, code: int, text: str) -> Exception:
        where = f"RabbitMQ at {target.display_host()}"
        detail = self._scrub(text)
        if code == 530 and "not found" in text:
            return TargetNotFoundError(f"{where}: vhost {target.vhost!r} does not exist")
        if code in (403, 530):
            return BrokerAuthError(f"{where}: {code} {detail}")
        return BrokerUnavailableError(f"{where}: connection closed by broker: {code} {detail}")
