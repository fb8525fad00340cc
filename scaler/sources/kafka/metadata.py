"""`source: kafka` metadata: every key of SPEC §3.1 declared once, with KEDA's defaults,
validation and cross-field rules, and the metric name KEDA would give the trigger."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Hashable
from typing import ClassVar, TypeVar

from scaler import metadata, policy
from scaler.errors import MetadataError
from scaler.policy import age, lag
from scaler.sources import base
from scaler.sources.kafka.source import KafkaReading, KafkaSource

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_MAX_PARTITION = 1_000_000
MESSAGES, SECONDS = "messages", "seconds"
# Each pair of thresholds applies to one lagMetric, so neither is declared with its default:
# the declaration's None tells "not given" (and so refused with the other metric) from a value.
_DEFAULT_LAG_THRESHOLD = 10
_DEFAULT_ACTIVATION_LAG_THRESHOLD = 0
_DEFAULT_ACTIVATION_LAG_SECONDS_THRESHOLD = 0.0
_THRESHOLD_KEYS = {
    MESSAGES: ("lagThreshold", "activationLagThreshold"),
    SECONDS: ("lagSecondsThreshold", "activationLagSecondsThreshold"),
}


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


def _reset_policy(value: str) -> lag.OffsetResetPolicy:
    return lag.OffsetResetPolicy(metadata.choice("latest", "earliest")(value))


@dataclasses.dataclass(frozen=True)
class KafkaMetadata:
    source_name: ClassVar[str] = "kafka"
    # The keys a named connection may set (scaler.sources.connections).
    connection_keys: ClassVar[frozenset[str]] = frozenset(
        {"bootstrapServers", "tls", "unsafeSsl", "caFile", "sasl", "username", "password"})

    bootstrap_servers: tuple[str, ...] = metadata.declare("bootstrapServers", _bootstrap_servers)
    consumer_group: str = metadata.declare("consumerGroup", metadata.text)
    topics: tuple[str, ...] = metadata.declare("topic", _topics, ())
    partition_limitation: tuple[tuple[int, int], ...] | None = metadata.declare(
        "partitionLimitation", _partition_ranges, None)
    lag_metric: str = metadata.declare("lagMetric", metadata.choice(MESSAGES, SECONDS), MESSAGES)
    # Defaults 10 and 0 (lagMetric: messages only; see _DEFAULT_LAG_THRESHOLD).
    lag_threshold: int | None = metadata.declare(
        "lagThreshold", metadata.integer(minimum=1), None)
    activation_lag_threshold: int | None = metadata.declare(
        "activationLagThreshold", metadata.integer(minimum=0), None)
    # Required with lagMetric: seconds; activation defaults to 0 s.
    lag_seconds_threshold: float | None = metadata.declare(
        "lagSecondsThreshold", metadata.number(exclusive_minimum=0), None)
    activation_lag_seconds_threshold: float | None = metadata.declare(
        "activationLagSecondsThreshold", metadata.number(minimum=0), None)
    offset_reset_policy: lag.OffsetResetPolicy = metadata.declare(
        "offsetResetPolicy", _reset_policy, lag.OffsetResetPolicy.LATEST)
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
    ca_file: str = metadata.declare("caFile", metadata.text, "", connection_only=True)
    sasl: str = metadata.declare(
        "sasl", metadata.choice("none", "plaintext", "scram_sha256", "scram_sha512"), "none")
    username: str = metadata.declare("username", metadata.text, "")
    password: str = metadata.declare("password", metadata.text, "", secret=True)
    # Accepted for compatibility with KEDA's kafka trigger; kafka-python negotiates the version.
    version: str = metadata.declare("version", metadata.text, "")

    def validate(self) -> list[MetadataError]:
        problems = self._validate_lag_metric()
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
        if self.ca_file and self.tls != "enable":
            problems.append(MetadataError("caFile", repr(self.ca_file), "needs tls: enable"))
        return problems

    def _validate_lag_metric(self) -> list[MetadataError]:
        problems = []
        given = {"lagThreshold": self.lag_threshold,
                 "activationLagThreshold": self.activation_lag_threshold,
                 "lagSecondsThreshold": self.lag_seconds_threshold,
                 "activationLagSecondsThreshold": self.activation_lag_seconds_threshold}
        other = SECONDS if self.lag_metric == MESSAGES else MESSAGES
        for key, instead in zip(_THRESHOLD_KEYS[other], _THRESHOLD_KEYS[self.lag_metric],
                                strict=True):
            if given[key] is not None:
                problems.append(MetadataError(
                    key, f"{given[key]:g} with lagMetric: {self.lag_metric}",
                    f"applies with lagMetric: {other}; with lagMetric: {self.lag_metric} "
                    f"give {instead}"))
        if self.lag_metric == SECONDS and self.lag_seconds_threshold is None:
            problems.append(MetadataError(
                "lagSecondsThreshold", None,
                "is required with lagMetric: seconds (the target age in seconds per replica)"))
        return problems

    def connection_key(self) -> Hashable:
        return ("kafka", self.bootstrap_servers, self.tls, self.unsafe_ssl, self.ca_file,
                self.sasl, self.username, self.password)

    def target_key(self) -> Hashable:
        # lagMetric: seconds reads record timestamps too: another target on the same offsets.
        return (self.connection_key(), self.consumer_group, self.topics,
                self.partition_limitation, self.offset_reset_policy, self.measures_age())

    def metric_name(self) -> str:
        # KEDA's names: kafka-<topics joined by ','>, or kafka-<group>-topics without a topic.
        raw = f"kafka-{','.join(self.topics)}" if self.topics else (
            f"kafka-{self.consumer_group}-topics")
        return metadata.metric_name(raw)

    def target_value(self) -> float:
        if self.lag_metric == SECONDS:
            return self.age_options().lag_seconds_threshold
        return float(self.options().lag_threshold)

    def measures_age(self) -> bool:
        """True for lagMetric: seconds: the source reads record timestamps."""
        return self.lag_metric == SECONDS

    def measures_arrivals(self) -> bool:
        return True  # log-end offsets, in every reading

    def needs_progress(self) -> bool:
        return self.exclude_persistent_lag

    def options(self) -> lag.LagOptions:
        return lag.LagOptions(
            lag_threshold=_or(self.lag_threshold, _DEFAULT_LAG_THRESHOLD),
            activation_lag_threshold=_or(self.activation_lag_threshold,
                                         _DEFAULT_ACTIVATION_LAG_THRESHOLD),
            offset_reset_policy=self.offset_reset_policy,
            allow_idle_consumers=self.allow_idle_consumers,
            limit_to_partitions_with_lag=self.limit_to_partitions_with_lag,
            ensure_even_distribution_of_partitions=self.ensure_even_distribution_of_partitions,
            exclude_persistent_lag=self.exclude_persistent_lag,
            scale_to_zero_on_invalid_offset=self.scale_to_zero_on_invalid_offset,
        )

    def age_options(self) -> age.AgeOptions:
        if self.lag_seconds_threshold is None:  # validate() requires it with lagMetric: seconds
            raise ValueError("lagSecondsThreshold is only set with lagMetric: seconds")
        return age.AgeOptions(
            lag_seconds_threshold=self.lag_seconds_threshold,
            activation_lag_seconds_threshold=_or(self.activation_lag_seconds_threshold,
                                                 _DEFAULT_ACTIVATION_LAG_SECONDS_THRESHOLD),
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
               stalled: frozenset[Hashable]) -> policy.Decision:
        assert isinstance(reading, KafkaReading)  # noqa: S101 - the poller pairs them
        partitions = {key for key in stalled if isinstance(key, tuple)}
        if self.measures_age():
            times = reading.record_times
            assert times is not None  # noqa: S101 - target_key() keeps the two kinds apart
            return age.decide(reading.age_rows(), times.read_at_ms, self.age_options(),
                              bounds, partitions)
        return lag.decide(reading, self.options(), bounds, partitions)


_N = TypeVar("_N", int, float)


def _or(value: _N | None, default: _N) -> _N:
    return default if value is None else value
