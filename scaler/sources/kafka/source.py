"""Reads Kafka offsets for a trigger with kafka-python: one admin client per cluster.

For a trigger it reads the group's committed offsets (OffsetFetch to the group coordinator) and
log-end offsets (ListOffsets, one request per partition leader; log-start offsets too where
`earliest` needs them) and returns them as facts. What they mean is `policy.lag`'s job.
"""

from __future__ import annotations

import dataclasses
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

import kafka
import kafka.errors

from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    TargetNotFoundError,
)
from scaler.policy import lag

if TYPE_CHECKING:
    from scaler.sources.kafka.metadata import KafkaMetadata

_RETRY_BACKOFF_S = 0.2


@dataclasses.dataclass(frozen=True)
class KafkaReading:
    partitions: tuple[lag.PartitionOffsets, ...]

    def commits(self) -> dict[tuple[str, int], int | None]:
        return {(p.topic, p.partition): p.committed for p in self.partitions}

    def describe(self) -> dict[str, Any]:
        return {"partitions": [dataclasses.asdict(p) for p in self.partitions]}


class KafkaSource:
    """One kafka-python admin client for one cluster, created on first read."""

    def __init__(self, connection: KafkaMetadata, timeout_s: float) -> None:
        self._connection = connection
        self._timeout_ms = int(timeout_s * 1000)
        self._admin: kafka.KafkaAdminClient | None = None
        # kafka-python's admin client is not documented as thread-safe; reads take turns.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KafkaSource(bootstrap_servers={','.join(self._connection.bootstrap_servers)!r})"

    def read(self, target: KafkaMetadata) -> KafkaReading:
        deadline = time.monotonic() + self._timeout_ms / 1000
        with self._lock:
            while True:
                try:
                    return self._read(self._connect(), target)
                except kafka.errors.KafkaError as exc:
                    # Retriable errors (a coordinator still loading, a leader moving) usually
                    # clear within a few hundred milliseconds: retry inside our time budget.
                    if exc.retriable and time.monotonic() + _RETRY_BACKOFF_S < deadline:
                        time.sleep(_RETRY_BACKOFF_S)
                        continue
                    if not isinstance(exc, kafka.errors.BrokerResponseError):
                        self._drop_client()  # a connection-level failure: bootstrap afresh
                    raise _wrap(exc, target) from exc
                except OSError as exc:
                    self._drop_client()
                    raise BrokerUnavailableError(
                        f"Kafka at {self._servers()}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop_client()

    def _drop_client(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()

    def _servers(self) -> str:
        return ",".join(self._connection.bootstrap_servers)

    def _connect(self) -> kafka.KafkaAdminClient:
        if self._admin is None:
            self._admin = kafka.KafkaAdminClient(**self._client_config())
        return self._admin

    def _client_config(self) -> dict[str, Any]:
        connection = self._connection
        config: dict[str, Any] = {
            "bootstrap_servers": list(connection.bootstrap_servers),
            "client_id": "queue-scaler",
            "request_timeout_ms": self._timeout_ms,
            "bootstrap_timeout_ms": self._timeout_ms,
            # A dead broker is retried soon, but not in a tight loop.
            "reconnect_backoff_max_ms": 1000,
        }
        tls = connection.tls == "enable"
        if connection.sasl == "none":
            config["security_protocol"] = "SSL" if tls else "PLAINTEXT"
        else:
            config["security_protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
            config["sasl_mechanism"] = {
                "plaintext": "PLAIN",
                "scram_sha256": "SCRAM-SHA-256",
                "scram_sha512": "SCRAM-SHA-512",
            }[connection.sasl]
            config["sasl_plain_username"] = connection.username
            config["sasl_plain_password"] = connection.password
        if tls and connection.unsafe_ssl:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            config["ssl_context"] = context
        return config

    def _read(self, admin: kafka.KafkaAdminClient, target: KafkaMetadata) -> KafkaReading:
        group = target.consumer_group
        if target.topics:
            partitions = self._partitions_of(admin, target.topics)
            committed = admin.list_group_offsets({group: partitions})[group]
        else:
            # Differs from KEDA: without a topic we read only the topics the group committed
            # on, never every topic in the cluster; a group without commits reads nothing.
            committed = admin.list_group_offsets({group: None}).get(group, {})
            topics = tuple(sorted({tp.topic for tp, meta in committed.items() if meta.offset >= 0}))
            partitions = self._partitions_of(admin, topics) if topics else []
        partitions = [tp for tp in partitions if target.is_limited_to(tp.partition)]
        if not partitions:
            return KafkaReading(partitions=())
        commits = {tp: _committed_offset(committed.get(tp)) for tp in partitions}
        ends = admin.list_partition_offsets({tp: kafka.OffsetSpec.LATEST for tp in partitions})
        # Log-start offsets matter only for uncommitted partitions under `earliest`.
        need_start = [tp for tp in partitions if commits[tp] is None
                      and target.offset_reset_policy is lag.OffsetResetPolicy.EARLIEST]
        starts = admin.list_partition_offsets(
            {tp: kafka.OffsetSpec.EARLIEST for tp in need_start}) if need_start else {}
        return KafkaReading(partitions=tuple(
            lag.PartitionOffsets(
                topic=tp.topic,
                partition=tp.partition,
                log_start=starts[tp].offset if tp in starts else 0,
                log_end=ends[tp].offset,
                committed=commits[tp],
            )
            for tp in sorted(partitions)
        ))

    def _partitions_of(self, admin: kafka.KafkaAdminClient,
                       topics: tuple[str, ...]) -> list[kafka.TopicPartition]:
        partitions: list[kafka.TopicPartition] = []
        for topic in admin.describe_topics(list(topics)):
            error = kafka.errors.for_code(topic["error_code"])
            if error is kafka.errors.UnknownTopicOrPartitionError:
                raise TargetNotFoundError(
                    f"Kafka topic {topic['name']!r} does not exist at {self._servers()}")
            if error is not kafka.errors.NoError:
                raise error(f"describing topic {topic['name']!r}")
            partitions.extend(kafka.TopicPartition(topic["name"], p["partition_index"])
                              for p in topic["partitions"])
        return partitions


def _committed_offset(meta: Any) -> int | None:
    """kafka-python reports 'no commit' as offset -1 (or leaves the partition out)."""
    if meta is None or meta.offset < 0:
        return None
    return int(meta.offset)


def _wrap(exc: kafka.errors.KafkaError, target: KafkaMetadata) -> Exception:
    where = f"Kafka at {','.join(target.bootstrap_servers)}"
    name = type(exc).__name__
    if isinstance(exc, kafka.errors.UnknownTopicOrPartitionError):
        return TargetNotFoundError(f"{where}: a topic of {','.join(target.topics)!r} "
                                   f"does not exist ({name})")
    if isinstance(exc, (kafka.errors.AuthorizationError,
                        kafka.errors.SaslAuthenticationFailedError)):
        return BrokerAuthError(f"{where}: {name}: access refused")
    return BrokerUnavailableError(f"{where}: {name}: {exc}")
