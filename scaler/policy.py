"""Pure scaling policy: broker facts + trigger options -> metric value, activity, replicas.

No I/O, no clock, no third-party imports: every input is a parameter, so every decision can be
unit-tested as a table and explained to a user. KEDA's semantics are the floor; where KEDA's
built-in scalers have reported bugs we deliberately differ, and each difference says so below.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence


class OffsetResetPolicy(enum.Enum):
    LATEST = "latest"
    EARLIEST = "earliest"


@dataclasses.dataclass(frozen=True)
class ReplicaBounds:
    """Optional minReplicaCount / maxReplicaCount, mirroring the ScaledObject."""

    minimum: int = 0
    maximum: int | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the scaler reports for one trigger, and why."""

    metric_value: float
    """The value KEDA hands the HPA (after caps)."""
    target: float
    """Per-replica target: lagThreshold or value."""
    is_active: bool
    desired_replicas: int
    backlog: float
    """Uncapped lag (Kafka) or depth/rate (RabbitMQ) the decision started from."""
    reasons: tuple[str, ...]
    """Human-readable steps: which inputs, which cap, why active or not."""


def decide_replicas(
    metric_value: float, target: float, is_active: bool, bounds: ReplicaBounds
) -> tuple[int, str]:
    """The replica count the HPA should reach: ceil(value / target) while active, else 0,
    then clamped to the ScaledObject's bounds. KEDA keeps an active workload at >= 1 replica."""
    if is_active:
        replicas = max(1, math.ceil(metric_value / target))
        why = f"active: ceil({metric_value:g} / {target:g}) = {replicas}"
    else:
        replicas = 0
        why = "inactive: 0 replicas"
    if replicas < bounds.minimum:
        replicas = bounds.minimum
        why += f", raised to minReplicaCount {bounds.minimum}"
    if bounds.maximum is not None and replicas > bounds.maximum:
        replicas = bounds.maximum
        why += f", lowered to maxReplicaCount {bounds.maximum}"
    return replicas, why


# --- Kafka ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PartitionOffsets:
    """Broker facts about one partition, as a Kafka source reads them."""

    topic: str
    partition: int
    log_start: int
    log_end: int
    committed: int | None
    """The group's committed offset, or None when the group never committed on it."""


@dataclasses.dataclass(frozen=True)
class KafkaScaling:
    lag_threshold: int
    activation_lag_threshold: int
    offset_reset_policy: OffsetResetPolicy
    allow_idle_consumers: bool = False
    limit_to_partitions_with_lag: bool = False
    ensure_even_distribution_of_partitions: bool = False
    exclude_persistent_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False


@dataclasses.dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    lag: int
    is_persistent: bool
    """Committed offset did not move since the previous poll (excludePersistentLag)."""
    note: str


def partition_lag(offsets: PartitionOffsets, scaling: KafkaScaling) -> tuple[int, str]:
    """Lag of one partition and how it was counted."""
    if offsets.committed is None:
        if scaling.scale_to_zero_on_invalid_offset:
            return 0, "no commit, scaleToZeroOnInvalidOffset: 0"
        if scaling.offset_reset_policy is OffsetResetPolicy.LATEST:
            # A consumer starting at `latest` skips the backlog; one message's worth of lag lets
            # one consumer wake up and commit a position (even on an empty partition, so that
            # later messages are counted from there), as KEDA does.
            return 1, "no commit, latest: 1"
        # Differs from KEDA: it counts the log-end offset, which includes deleted messages.
        retained = max(0, offsets.log_end - offsets.log_start)
        return retained, f"no commit, earliest: {retained} retained messages"
    # Differs from KEDA: negative lag (a commit past the end, e.g. after a topic was recreated)
    # is clamped per partition, instead of cancelling other partitions' lag.
    lag = max(0, offsets.log_end - offsets.committed)
    return lag, f"log end {offsets.log_end} - committed {offsets.committed}"


def kafka_partition_lags(
    partitions: Sequence[PartitionOffsets],
    scaling: KafkaScaling,
    previous_commits: Mapping[tuple[str, int], int | None] | None,
) -> list[PartitionLag]:
    """Per-partition lag, marking persistent lag when `previous_commits` (the last poll's
    committed offsets, None on the first poll) shows the group did not move."""
    result = []
    for offsets in partitions:
        lag, note = partition_lag(offsets, scaling)
        key = (offsets.topic, offsets.partition)
        # Differs from KEDA: partitions without a commit can be persistent too (still None).
        is_persistent = (
            scaling.exclude_persistent_lag
            and lag > 0
            and previous_commits is not None
            and key in previous_commits
            and previous_commits[key] == offsets.committed
        )
        if is_persistent:
            note += ", persistent (committed offset unchanged since the last poll)"
        result.append(PartitionLag(offsets.topic, offsets.partition, lag, is_persistent, note))
    return result


def decide_kafka(
    partitions: Sequence[PartitionOffsets],
    scaling: KafkaScaling,
    bounds: ReplicaBounds,
    previous_commits: Mapping[tuple[str, int], int | None] | None = None,
) -> Decision:
    lags = kafka_partition_lags(partitions, scaling, previous_commits)
    threshold = scaling.lag_threshold
    total_lag = sum(p.lag for p in lags)
    scaling_lag = sum(p.lag for p in lags if not p.is_persistent)
    reasons = [f"{len(lags)} partitions, total lag {total_lag}"]
    if scaling_lag != total_lag:
        reasons.append(f"{total_lag - scaling_lag} persistent lag excluded from scaling")

    value = scaling_lag
    if not scaling.allow_idle_consumers or scaling.limit_to_partitions_with_lag:
        if scaling.limit_to_partitions_with_lag:
            upper = sum(1 for p in lags if p.lag > 0 and not p.is_persistent)
            cap_name = "partitions with lag"
        else:
            upper = len(lags)
            cap_name = "partitions"
        # Differs from KEDA: ceiling division, so the HPA's ceil(value / threshold) can never
        # exceed the cap (KEDA's integer division lets 3 partitions ask for 4 replicas).
        if _ceil_div(value, threshold) > upper:
            value = upper * threshold
            reasons.append(f"capped at {upper} {cap_name} x lagThreshold {threshold} = {value}")

    if scaling.ensure_even_distribution_of_partitions and value > 0:
        consumers = _ceil_div(value, threshold)
        factor = _smallest_divisor_at_least(len(lags), consumers)
        if factor != consumers:
            value = factor * threshold
            reasons.append(
                f"rounded up to {factor} consumers, a divisor of {len(lags)} partitions")

    # Activation looks at all lag, persistent included, as KEDA does.
    is_active = total_lag > scaling.activation_lag_threshold
    reasons.append(
        f"{'active' if is_active else 'inactive'}: total lag {total_lag} "
        f"{'>' if is_active else '<='} activationLagThreshold {scaling.activation_lag_threshold}")
    replicas, why = decide_replicas(value, threshold, is_active, bounds)
    reasons.append(why)
    return Decision(
        metric_value=float(value),
        target=float(threshold),
        is_active=is_active,
        desired_replicas=replicas,
        backlog=float(total_lag),
        reasons=tuple(reasons),
    )


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _smallest_divisor_at_least(total: int, wanted: int) -> int:
    """Smallest divisor of `total` that is >= `wanted`, so partitions split evenly."""
    for candidate in range(max(1, wanted), total + 1):
        if total % candidate == 0:
            return candidate
    return max(total, wanted)


# --- RabbitMQ ------------------------------------------------------------------------------


class QueueMode(enum.Enum):
    QUEUE_LENGTH = "QueueLength"
    MESSAGE_RATE = "MessageRate"


@dataclasses.dataclass(frozen=True)
class QueueScaling:
    mode: QueueMode
    value: float
    activation_value: float


@dataclasses.dataclass(frozen=True)
class QueueDepth:
    """Broker facts about one queue (or an aggregate of matching queues)."""

    messages: int
    """Messages counted for QueueLength: ready only over AMQP; ready + unacked over HTTP unless
    excludeUnacknowledged."""
    publish_rate: float | None
    """Messages published per second (management API only)."""
    counted: str
    """What `messages` counts, for explanations."""


def decide_queue(depth: QueueDepth, scaling: QueueScaling, bounds: ReplicaBounds) -> Decision:
    reasons = [f"{depth.messages} messages ({depth.counted})"]
    if scaling.mode is QueueMode.QUEUE_LENGTH:
        value = float(depth.messages)
        is_active = value > scaling.activation_value
        reasons.append(
            f"{'active' if is_active else 'inactive'}: messages {depth.messages} "
            f"{'>' if is_active else '<='} activationValue {scaling.activation_value:g}")
    else:
        if depth.publish_rate is None:
            raise ValueError("MessageRate needs a publish rate; only the HTTP API reports one")
        value = depth.publish_rate
        # KEDA: a queue that still holds messages is active even when nobody publishes.
        is_active = value > scaling.activation_value or depth.messages > scaling.activation_value
        reasons.append(
            f"publish rate {value:g}/s; {'active' if is_active else 'inactive'}: rate or "
            f"messages {'>' if is_active else '<='} activationValue {scaling.activation_value:g}")
    replicas, why = decide_replicas(value, scaling.value, is_active, bounds)
    reasons.append(why)
    return Decision(
        metric_value=value,
        target=scaling.value,
        is_active=is_active,
        desired_replicas=replicas,
        backlog=float(depth.messages),
        reasons=tuple(reasons),
    )
