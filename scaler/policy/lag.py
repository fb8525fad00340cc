"""Kafka consumer lag -> Decision, with KEDA's kafka trigger semantics and its bugs fixed."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Sequence

from scaler.policy import Decision, ReplicaBounds, comparison, decide_replicas


class OffsetResetPolicy(enum.Enum):
    LATEST = "latest"
    EARLIEST = "earliest"


@dataclasses.dataclass(frozen=True)
class PartitionOffsets:
    """Broker facts about one partition, as the Kafka source reads them."""

    topic: str
    partition: int
    log_start: int
    log_end: int
    committed: int | None
    """The group's committed offset, or None when the group never committed on it."""


@dataclasses.dataclass(frozen=True)
class LagOptions:
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
    """Has lag, but the committed offset has not moved for the persistence window."""
    note: str


def partition_lag(offsets: PartitionOffsets, options: LagOptions) -> tuple[int, str]:
    """Lag of one partition and how it was counted."""
    if offsets.committed is None:
        if options.scale_to_zero_on_invalid_offset:
            return 0, "no commit, scaleToZeroOnInvalidOffset: 0"
        if options.offset_reset_policy is OffsetResetPolicy.LATEST:
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


def partition_lags(
    partitions: Sequence[PartitionOffsets],
    options: LagOptions,
    stalled: Collection[tuple[str, int]],
) -> list[PartitionLag]:
    """Per-partition lag, marking persistent lag on `stalled` partitions: those whose committed
    offset (or absence of one) has not changed for the poller's persistence window."""
    result = []
    for offsets in partitions:
        lag, note = partition_lag(offsets, options)
        # Differs from KEDA: partitions without a commit can be persistent too, and
        # persistence is judged over a time window of the shared poller, not between calls.
        is_persistent = (options.exclude_persistent_lag and lag > 0
                         and (offsets.topic, offsets.partition) in stalled)
        if is_persistent:
            note += ", persistent (committed offset has not moved)"
        result.append(PartitionLag(offsets.topic, offsets.partition, lag, is_persistent, note))
    return result


def decide(
    partitions: Sequence[PartitionOffsets],
    options: LagOptions,
    bounds: ReplicaBounds,
    stalled: Collection[tuple[str, int]] = frozenset(),
) -> Decision:
    lags = partition_lags(partitions, options, stalled)
    threshold = options.lag_threshold
    total_lag = sum(p.lag for p in lags)
    scaling_lag = sum(p.lag for p in lags if not p.is_persistent)
    reasons = [f"{len(lags)} partitions, total lag {total_lag}"]
    if scaling_lag != total_lag:
        reasons.append(f"{total_lag - scaling_lag} persistent lag excluded from scaling")

    value = scaling_lag
    if not options.allow_idle_consumers or options.limit_to_partitions_with_lag:
        if options.limit_to_partitions_with_lag:
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

    if options.ensure_even_distribution_of_partitions and value > 0:
        consumers = _ceil_div(value, threshold)
        factor = _smallest_divisor_at_least(len(lags), consumers)
        if factor != consumers:
            value = factor * threshold
            reasons.append(
                f"rounded up to {factor} consumers, a divisor of {len(lags)} partitions")

    # Activation looks at all lag, persistent included, as KEDA does.
    is_active = total_lag > options.activation_lag_threshold
    reasons.append(comparison("total lag", total_lag, is_active, "activationLagThreshold",
                              options.activation_lag_threshold))
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
