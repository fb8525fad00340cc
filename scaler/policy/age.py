"""Kafka lag in seconds (`lagMetric: seconds`) -> Decision: the age of the oldest unconsumed
record, measured from record timestamps the Kafka source read, or estimated from the consume
rate where a record has no usable timestamp.

Pure: the source measures the wall clock when it reads and passes it in (`read_at_ms`), with
per-partition record timestamps and consume rates. A partition's age is read time - timestamp
of the record at its committed offset (the oldest one not consumed); the trigger's age is the
maximum over its partitions, because a service level is about the oldest message.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Collection, Iterable
from typing import NamedTuple

from scaler.policy import Decision, ReplicaBounds, comparison, decide_replicas
from scaler.policy.lag import OffsetResetPolicy, smallest_divisor_at_least

FUTURE_TOLERANCE_MS = 5 * 60 * 1000
"""A timestamp further ahead of the read time than this is not believed (a producer's clock or
an application-set timestamp gone wrong); the age is estimated instead."""
ASSUMED_RATE = 1.0
"""Messages per second per partition assumed when no consumption has been observed yet (as
the RabbitMQ rate modes assume 1 message/s when nothing is delivered)."""


class TimestampKind(enum.IntEnum):
    """What the Kafka source knows about the record at a partition's committed offset."""

    NOT_READ = 0
    """Nothing was needed (no lag; no commit under `latest`)."""
    CREATE_TIME = 1
    """The record's own timestamp, set by its producer."""
    LOG_APPEND_TIME = 2
    """The time the broker appended the record (topic message.timestamp.type LogAppendTime)."""
    NOTHING_WAITING = 3
    """Only transaction markers lie between the committed offset and the log end: the lag is
    not messages, so nothing waits."""
    PENDING = 4
    """Not read in this cycle (its first batch did not fit the fetch size, or the broker
    answered the partition with a retriable error); read again in the next cycle."""


AgeRow = tuple[str, int, int, int, "int | None", int, int, "float | None"]
"""(topic, partition, log_start, log_end, committed or None, timestamp in ms since the epoch or
-1, TimestampKind, consume rate in messages/s or None when none was observed)."""


class PartitionAge(NamedTuple):
    seconds: float
    estimate: str | None
    """Why and how the age was estimated; None when it was measured."""


@dataclasses.dataclass(frozen=True)
class AgeOptions:
    lag_seconds_threshold: float
    activation_lag_seconds_threshold: float
    offset_reset_policy: OffsetResetPolicy
    allow_idle_consumers: bool = False
    limit_to_partitions_with_lag: bool = False
    ensure_even_distribution_of_partitions: bool = False
    exclude_persistent_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False


def waiting(log_start: int, log_end: int, committed: int | None, options: AgeOptions) -> int:
    """Messages waiting on a partition for the age metric. Without a commit, `latest` waits
    for nothing (a consumer starting there skips what exists) and `earliest` for the retained
    messages; scaleToZeroOnInvalidOffset makes both 0."""
    if committed is not None:
        return max(0, log_end - committed)
    if options.scale_to_zero_on_invalid_offset or (
            options.offset_reset_policy is OffsetResetPolicy.LATEST):
        return 0
    return max(0, log_end - log_start)


def partition_age(lag: int, timestamp_ms: int, kind: int, rate: float | None,
                  read_at_ms: int) -> PartitionAge:
    """The age of a partition's oldest unconsumed record, in seconds: never negative, never NaN,
    0 without lag."""
    if lag <= 0 or kind == TimestampKind.NOTHING_WAITING:
        return PartitionAge(0.0, None)
    if kind in (TimestampKind.CREATE_TIME, TimestampKind.LOG_APPEND_TIME) and 0 <= (
            timestamp_ms) <= read_at_ms + FUTURE_TOLERANCE_MS:
        # A timestamp a little ahead of our clock is clock skew: the record is new, age 0.
        return PartitionAge(max(0, read_at_ms - timestamp_ms) / 1000, None)
    if kind in (TimestampKind.PENDING, TimestampKind.NOT_READ):
        why = "its record was not read in this cycle"
    elif timestamp_ms < 0:
        why = "its record has no timestamp"
    else:
        ahead = (timestamp_ms - read_at_ms) / 1000
        why = f"its record's timestamp is {ahead:.0f} s in the future"
    if rate is not None and rate > 0:
        return PartitionAge(round(lag / rate, 3),
                            f"{why}: lag {lag} / consume rate {rate:.3g} messages/s")
    return PartitionAge(float(lag) / ASSUMED_RATE,
                        f"{why}, and no consumption has been observed yet: lag {lag} / an "
                        f"assumed {ASSUMED_RATE:g} message/s")


def decide(
    partitions: Iterable[AgeRow],
    read_at_ms: int,
    options: AgeOptions,
    bounds: ReplicaBounds,
    stalled: Collection[tuple[str, int]] = frozenset(),
) -> Decision:
    """`read_at_ms`: the wall-clock time (ms since the epoch) at which the source read the
    committed offsets. `stalled`: as for `lag.decide` (excludePersistentLag). One pass over
    `partitions`, as for lag."""
    threshold = options.lag_seconds_threshold
    count = total_lag = uncommitted = with_lag = estimated = 0
    oldest: tuple[float, str, int, int, PartitionAge] | None = None  # for scaling
    oldest_overall = 0.0  # for activation: persistent lag included
    for topic, partition, log_start, log_end, committed, timestamp, kind, rate in partitions:
        count += 1
        if committed is None:
            uncommitted += 1
        elif log_end <= committed:
            continue  # no lag: the common case, without a call
        lag = waiting(log_start, log_end, committed, options)
        if not lag or kind == TimestampKind.NOTHING_WAITING:
            continue
        age = partition_age(lag, timestamp, kind, rate, read_at_ms)
        total_lag += lag
        estimated += age.estimate is not None
        oldest_overall = max(oldest_overall, age.seconds)
        if options.exclude_persistent_lag and (topic, partition) in stalled:
            continue
        with_lag += 1
        if oldest is None or age.seconds > oldest[0]:
            offset = log_start if committed is None else max(committed, log_start)
            oldest = (age.seconds, topic, partition, offset, age)

    reasons = [f"{count} partitions ({uncommitted} without a commit, "
               f"{_uncommitted_rule(options)}), {with_lag} with messages waiting, total lag "
               f"{total_lag}"]
    value = 0.0
    if oldest is not None:
        value, topic, partition, offset, age = oldest
        how = "estimated: " + age.estimate if age.estimate else "from its timestamp"
        reasons.append(f"oldest unconsumed record: {topic}/{partition} offset {offset}, "
                       f"age {value:g} s ({how})")
    if estimated:
        reasons.append(f"{estimated} of the partitions with lag have an estimated age")
    if oldest_overall > value:
        reasons.append(f"older persistent lag ({oldest_overall:g} s, committed offset has not "
                       "moved) excluded from scaling")

    upper: int | None = None
    if not options.allow_idle_consumers or options.limit_to_partitions_with_lag:
        if options.limit_to_partitions_with_lag:
            upper, cap_name = with_lag, "partitions with lag"
        else:
            upper, cap_name = count, "partitions"
        # As for lag in messages: ceil(value / threshold) never exceeds the cap, so the HPA
        # never asks for more consumers than can be given partitions.
        if math.ceil(value / threshold) > upper:
            value = _value_for(upper, threshold)
            reasons.append(f"capped at {upper} {cap_name} x lagSecondsThreshold {threshold:g}"
                           f" = {value:g}")

    if options.ensure_even_distribution_of_partitions and value > 0:
        consumers = math.ceil(value / threshold)
        factor = smallest_divisor_at_least(count, consumers)
        if factor != consumers:
            value = _value_for(factor, threshold)
            reasons.append(f"rounded up to {factor} consumers, a divisor of {count} partitions")

    is_active = oldest_overall > options.activation_lag_seconds_threshold
    reasons.append(comparison("oldest record age", oldest_overall, is_active,
                              "activationLagSecondsThreshold",
                              options.activation_lag_seconds_threshold))
    replicas, why = decide_replicas(value, threshold, is_active, bounds)
    reasons.append(why)
    return Decision(
        metric_value=value,
        target=threshold,
        is_active=is_active,
        desired_replicas=replicas,
        backlog=float(total_lag),
        reasons=tuple(reasons),
        replica_limit=upper,
    )


def _uncommitted_rule(options: AgeOptions) -> str:
    if options.scale_to_zero_on_invalid_offset:
        return "0 s (scaleToZeroOnInvalidOffset)"
    if options.offset_reset_policy is OffsetResetPolicy.EARLIEST:
        return "aged from their first retained record (earliest)"
    return "0 s: nothing waits for a consumer that starts at the log end (latest)"


def _value_for(replicas: int, threshold: float) -> float:
    """The largest value v <= replicas x threshold with ceil(v / threshold) <= replicas (a
    float product can land a hair above it: 3 x 0.1 / 0.1 > 3)."""
    value = replicas * threshold
    while value > 0 and math.ceil(value / threshold) > replicas:
        value = math.nextafter(value, 0.0)
    return value
