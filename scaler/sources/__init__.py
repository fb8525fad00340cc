"""The queue systems queue-scaler can read, and parsing a whole trigger's metadata.

`parse_trigger` is the one entry point from a raw `scalerMetadata` map to typed values: the
keys common to every trigger (`source`, replica bounds, `connection`), the named connection's
keys filled in, the chosen source's keys, and the unknown-key check over all of them, with every
problem reported at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from scaler import metadata, policy, redaction
from scaler.errors import MetadataError
from scaler.policy import throughput
from scaler.sources import base
from scaler.sources import connections as _connections
from scaler.sources.activemq import ActiveMQMetadata
from scaler.sources.connections import NO_CONNECTIONS, Connections, ConnectionsFileError
from scaler.sources.kafka import KafkaMetadata
from scaler.sources.rabbitmq import RabbitMQMetadata

SOURCES: dict[str, type[KafkaMetadata] | type[RabbitMQMetadata] | type[ActiveMQMetadata]] = {
    KafkaMetadata.source_name: KafkaMetadata,
    RabbitMQMetadata.source_name: RabbitMQMetadata,
    ActiveMQMetadata.source_name: ActiveMQMetadata,
}


__all__ = ["NO_CONNECTIONS", "SOURCES", "CommonMetadata", "Connections", "ConnectionsFileError",
           "Trigger", "load_connections", "parse_trigger"]


def load_connections(path: str | None) -> Connections:
    """The named connections in the scaler's connections file (none without a file)."""
    return NO_CONNECTIONS if path is None else _connections.load(path, SOURCES)


BACKLOG, THROUGHPUT = "backlog", "throughput"
_THROUGHPUT_KEYS = ("messagesPerSecondPerReplica", "drainWithinSeconds", "arrivalRateHalfLife")


@dataclasses.dataclass(frozen=True)
class CommonMetadata:
    source: str = metadata.declare("source", metadata.choice(*SOURCES))
    min_replica_count: int = metadata.declare(
        "minReplicaCount", metadata.integer(minimum=0), 0)
    max_replica_count: int | None = metadata.declare(
        "maxReplicaCount", metadata.integer(minimum=1), None)
    connection: str = metadata.declare("connection", metadata.text, "")
    scaling_strategy: str = metadata.declare(
        "scalingStrategy", metadata.choice(BACKLOG, THROUGHPUT), BACKLOG)
    messages_per_second_per_replica: float | None = metadata.declare(
        "messagesPerSecondPerReplica", metadata.number(exclusive_minimum=0), None)
    drain_within_seconds: float = metadata.declare(
        "drainWithinSeconds", metadata.number(exclusive_minimum=0), 60.0)
    arrival_rate_half_life: float = metadata.declare(
        "arrivalRateHalfLife", metadata.number(exclusive_minimum=0), 30.0)

    def validate(self) -> list[MetadataError]:
        problems = []
        if self.max_replica_count is not None and self.min_replica_count > self.max_replica_count:
            problems.append(MetadataError(
                "minReplicaCount", str(self.min_replica_count),
                f"must not exceed maxReplicaCount ({self.max_replica_count})"))
        if self.scaling_strategy == THROUGHPUT and self.messages_per_second_per_replica is None:
            problems.append(MetadataError("messagesPerSecondPerReplica", None,
                                          "is required with scalingStrategy: throughput"))
        return problems

    def bounds(self) -> policy.ReplicaBounds:
        return policy.ReplicaBounds(self.min_replica_count, self.max_replica_count)

    def throughput_options(self) -> throughput.ThroughputOptions | None:
        """None unless scalingStrategy is throughput."""
        if self.messages_per_second_per_replica is None or self.scaling_strategy != THROUGHPUT:
            return None
        return throughput.ThroughputOptions(self.messages_per_second_per_replica,
                                            self.drain_within_seconds,
                                            self.arrival_rate_half_life)


@dataclasses.dataclass(frozen=True)
class Trigger:
    """A parsed trigger: what to read and how to decide."""

    common: CommonMetadata
    source: base.TriggerMetadata


def _strategy_problems(raw: Mapping[str, str], common: CommonMetadata,
                       source: base.TriggerMetadata | None) -> list[MetadataError]:
    if common.scaling_strategy != THROUGHPUT:
        return [MetadataError(key, "scalingStrategy backlog",
                              "applies with scalingStrategy: throughput")
                for key in _THROUGHPUT_KEYS
                if raw.get(key) or raw.get(key + metadata.FROM_ENV_SUFFIX)]
    if source is not None and not source.measures_arrivals():
        return [MetadataError("scalingStrategy", "throughput",
                              f"needs arrival counts, which {source.source_name} reports "
                              "only through its management API (an http:// or https:// host)")]
    return []


def parse_trigger(raw: Mapping[str, str], connections: Connections = NO_CONNECTIONS) -> Trigger:
    """Parses a trigger's metadata or raises MetadataErrors listing every problem."""
    problems: list[MetadataError] = []
    common = metadata.parse_fields(CommonMetadata, raw, problems)
    known = set(metadata.keys_of(CommonMetadata))
    source: base.TriggerMetadata | None = None
    if common is not None:
        source_type = SOURCES[common.source]
        known |= metadata.keys_of(source_type)
        problems.extend(
            MetadataError(key, "a value in the trigger", "can only be set in a named "
                          "connection in the scaler's connections file (give the trigger "
                          "connection: <name>)")
            for key in sorted(metadata.connection_only_keys(source_type))
            if key in raw or key + metadata.FROM_ENV_SUFFIX in raw)
        # A secret written into the ScaledObject is readable by anyone who can read the
        # ScaledObject: it comes resolved from the workload's environment, or from the
        # scaler's own connections file.
        problems.extend(
            MetadataError(key, "a value written in the ScaledObject",
                          f"must not be given in plain text: use {key}FromEnv (resolved by KEDA "
                          "from the workload's environment) or a named connection")
            for key in sorted(metadata.secret_keys(source_type)) if raw.get(key))
        problems.extend(
            MetadataError(key, "a URL with a password written in the ScaledObject",
                          f"must not carry a password in plain text: use {key}FromEnv (resolved "
                          "by KEDA from the workload's environment) or a named connection")
            for key in sorted(metadata.credential_url_keys(source_type))
            if redaction.has_password(raw.get(key, "")))
        merged = connections.apply(raw, common.source, common.connection, problems)
        source = metadata.parse_fields(source_type, merged, problems)
        problems.extend(metadata.check_unknown_keys(merged, known))
        problems.extend(_strategy_problems(raw, common, source))
    metadata.raise_if_any(problems)
    # No problems means both parsed.
    assert common is not None  # noqa: S101
    assert source is not None  # noqa: S101
    return Trigger(common=common, source=source)
