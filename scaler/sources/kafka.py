"""Kafka consumer lag: `source: kafka` metadata and the source that reads offsets (kafka-python).

`KafkaMetadata` declares every key of SPEC §3.1 once. `KafkaSource` is one admin client per
cluster (bootstrap servers + credentials); for a trigger it reads the group's committed offsets
(OffsetFetch to the group coordinator) and log-start/end offsets (ListOffsets, one request per
partition leader), and returns them as facts. What the facts mean is `policy.decide_kafka`'s job.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Hashable
from typing import Any, ClassVar

import kafka
import kafka.errors

from scaler import metadata, policy
from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    MetadataError,
    TargetNotFoundError,
)
from scaler.sources import base

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_MAX_PARTITION = 1_000_000
_RETRY_BACKOFF_S = 0.2
_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _bootstrap_servers(value: str) -> tuple[str, ...]:
    servers = metadata.comma_list(value)
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise metadata.InvalidValueError(
                "must be a comma-separated list of host:port with a port from 1 to 65535")
    return servers


def _topics(value: str) -> tuple[str, ...]:
    topics = metadata.comma_list(value)
    for topic in topics:
        if not _TOPIC_NAME.fullmatch(topic):
            raise metadata.InvalidValueError(
                "must be topic names of 1 to 249 characters from A-Z a-z 0-9 . _ -, "
                "separated by commas")
    return topics


def _partition_ranges(value: str) -> tuple[tuple[int, int], ...]:
    """`1,2,10-20` -> ((1, 1), (2, 2), (10, 20)); spaces allowed, ranges inclusive."""
    ranges = []
    for item in metadata.comma_list(value):
        low, dash, high = item.partition("-")
        try:
            first = int(low.strip(), 10)
            last = int(high.strip(), 10) if dash else first
        except ValueError:
            first, last = -1, -1
        if not 0 <= first <= last <= _MAX_PARTITION:
            raise metadata.InvalidValueError(
                "must be partition numbers or inclusive ranges such as 1,2,10-20 "
                f"(from 0 to {_MAX_PARTITION}, low-high with low <= high)")
        ranges.append((first, last))
    return tuple(ranges)


def _reset_policy(value: str) -> policy.OffsetResetPolicy:
    return policy.OffsetResetPolicy(metadata.choice("latest", "earliest")(value))


@dataclasses.dataclass(frozen=True)
class KafkaMetadata:
    source_name: ClassVar[str] = "kafka"

    bootstrap_servers: tuple[str, ...] = metadata.declare("bootstrapServers", _bootstrap_servers)
    consumer_group: str = metadata.declare("consumerGroup", metadata.text)
    topics: tuple[str, ...] = metadata.declare("topic", _topics, ())
    partition_limitation: tuple[tuple[int, int], ...] | None = metadata.declare(
        "partitionLimitation", _partition_ranges, None)
    lag_threshold: int = metadata.declare("lagThreshold", metadata.integer(minimum=1), 10)
    activation_lag_threshold: int = metadata.declare(
        "activationLagThreshold", metadata.integer(minimum=0), 0)
    offset_reset_policy: policy.OffsetResetPolicy = metadata.declare(
        "offsetResetPolicy", _reset_policy, policy.OffsetResetPolicy.LATEST)
    allow_idle_consumers: bool = metadata.declare("allowIdleConsumers", metadata.boolean, False)
    limit_to_partitions_with_lag: bool = metadata.declare(
        "limitToPartitionsWithLag", metadata.boolean, False)
    ensure_even_distribution_of_partitions: bool = metadata.declare(
        "ensureEvenDistributionOfPartitions", metadata.boolean, False)
    exclude_persistent_lag: bool = metadata.declare(
        "excludePersistentLag", metadata.boolean, False)
    scale_to_zero_on_invalid_offset: bool = metadata.declare(
        "scaleToZeroOnInvalidOffset", metadata.boolean, False)
    tls: str = metadata.declare("tls", metadata.choice("enable", "disable"), "disable")
    unsafe_ssl: bool = metadata.declare("unsafeSsl", metadata.boolean, False)
    sasl: str = metadata.declare(
        "sasl", metadata.choice("none", "plaintext", "scram_sha256", "scram_sha512"), "none")
    username: str = metadata.declare("username", metadata.text, "")
    password: str = metadata.declare("password", metadata.text, "", secret=True)
    # Accepted for compatibility with KEDA's kafka trigger; kafka-python negotiates the version.
    version: str = metadata.declare("version", metadata.text, "")

    def validate(self) -> list[MetadataError]:
        problems = []
        if self.allow_idle_consumers and self.limit_to_partitions_with_lag:
            problems.append(MetadataError(
                "allowIdleConsumers", "true together with limitToPartitionsWithLag: true",
                "cannot be combined with limitToPartitionsWithLag"))
        if self.limit_to_partitions_with_lag and self.ensure_even_distribution_of_partitions:
            problems.append(MetadataError(
                "ensureEvenDistributionOfPartitions",
                "true together with limitToPartitionsWithLag: true",
                "cannot be combined with limitToPartitionsWithLag"))
        for key, is_set in (
            ("partitionLimitation", self.partition_limitation is not None),
            ("limitToPartitionsWithLag", self.limit_to_partitions_with_lag),
            ("ensureEvenDistributionOfPartitions", self.ensure_even_distribution_of_partitions),
        ):
            if is_set and not self.topics:
                problems.append(MetadataError(key, "no topic", "needs topic to be set"))
        if self.sasl != "none" and not (self.username and self.password):
            problems.append(MetadataError(
                "sasl", repr(self.sasl), "needs username and password (or their FromEnv keys)"))
        if self.sasl == "none" and self.password:
            problems.append(MetadataError(
                "password", "a password", "is only used with sasl plaintext, scram_sha256 or "
                "scram_sha512"))
        return problems

    def connection_key(self) -> Hashable:
        return ("kafka", self.bootstrap_servers, self.tls, self.unsafe_ssl, self.sasl,
                self.username, self.password)

    def target_key(self) -> Hashable:
        return (self.connection_key(), self.consumer_group, self.topics,
                self.partition_limitation, self.offset_reset_policy)

    def metric_name(self) -> str:
        # KEDA's names: kafka-<topics joined by ','>, or kafka-<group>-topics without a topic.
        raw = f"kafka-{','.join(self.topics)}" if self.topics else (
            f"kafka-{self.consumer_group}-topics")
        return _METRIC_NAME_UNSAFE.sub("-", raw)

    def target_value(self) -> float:
        return float(self.lag_threshold)

    def scaling(self) -> policy.KafkaScaling:
        return policy.KafkaScaling(
            lag_threshold=self.lag_threshold,
            activation_lag_threshold=self.activation_lag_threshold,
            offset_reset_policy=self.offset_reset_policy,
            allow_idle_consumers=self.allow_idle_consumers,
            limit_to_partitions_with_lag=self.limit_to_partitions_with_lag,
            ensure_even_distribution_of_partitions=self.ensure_even_distribution_of_partitions,
            exclude_persistent_lag=self.exclude_persistent_lag,
            scale_to_zero_on_invalid_offset=self.scale_to_zero_on_invalid_offset,
        )

    def is_limited_to(self, partition: int) -> bool:
        if self.partition_limitation is None:
            return True
        return any(low <= partition <= high for low, high in self.partition_limitation)

    def open_source(self, timeout_s: float) -> KafkaSource:
        return KafkaSource(self, timeout_s)

    def decide(self, reading: base.Reading, bounds: policy.ReplicaBounds,
               previous: base.Reading | None) -> policy.Decision:
        assert isinstance(reading, KafkaReading)  # noqa: S101 - the pool pairs them
        previous_commits = previous.commits() if isinstance(previous, KafkaReading) else None
        return policy.decide_kafka(reading.partitions, self.scaling(), bounds, previous_commits)


@dataclasses.dataclass(frozen=True)
class KafkaReading:
    partitions: tuple[policy.PartitionOffsets, ...]

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
            import ssl

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
                      and target.offset_reset_policy is policy.OffsetResetPolicy.EARLIEST]
        starts = admin.list_partition_offsets(
            {tp: kafka.OffsetSpec.EARLIEST for tp in need_start}) if need_start else {}
        return KafkaReading(partitions=tuple(
            policy.PartitionOffsets(
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
