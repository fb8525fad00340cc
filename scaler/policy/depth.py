"""Queue depth, rates and head-message age -> Decision, with KEDA's rabbitmq trigger semantics
and more modes. Ages arrive as numbers (the head message's timestamp and the time the source
read it): nothing here reads a clock."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from scaler.policy import Decision, ReplicaBounds, comparison, decide_replicas

# Rates of 0 would make the ratio modes infinite. Until consumers deliver, each replica is
# assumed to handle 1 message per second: scaling starts, and measured rates take over.
ASSUMED_DELIVER_RATE = 1.0


class Mode(enum.Enum):
    QUEUE_LENGTH = "QueueLength"
    MESSAGE_RATE = "MessageRate"
    DELIVER_GET_RATE = "DeliverGetRate"
    PUBLISHED_TO_DELIVERED_RATIO = "PublishedToDeliveredRatio"
    EXPECTED_QUEUE_CONSUMPTION_TIME = "ExpectedQueueConsumptionTime"
    DRAIN_TIME = "DrainTime"
    """An alias of ExpectedQueueConsumptionTime (messages / deliver rate, the same quantity,
    computed the same way), named as a service level is; kept as its own member so that an
    explanation says which name the trigger used."""
    MESSAGE_AGE = "MessageAge"
    """Seconds since the message at the head of the queue was published (its AMQP timestamp)."""

    @property
    def needs_rates(self) -> bool:
        """Computed from the management API's publish/deliver rates."""
        return self not in (Mode.QUEUE_LENGTH, Mode.MESSAGE_AGE)

    @property
    def needs_management_api(self) -> bool:
        """Rates and head-message timestamps: AMQP's passive declare reports only a count."""
        return self is not Mode.QUEUE_LENGTH


class Operation(enum.Enum):
    SUM = "sum"
    AVG = "avg"
    MAX = "max"


@dataclasses.dataclass(frozen=True)
class QueueFacts:
    """Broker facts about one queue, or the aggregate of the queues a regex matched."""

    messages: float
    """Ready messages, plus unacknowledged ones where the source counts them (see counted)."""
    publish_rate: float | None
    """Messages published per second (management API only)."""
    deliver_get_rate: float | None
    """Messages delivered to consumers or fetched with basic.get per second."""
    counted: str
    """What `messages` counts, for explanations."""
    head_message_timestamp: float | None = None
    """Seconds since the epoch: the AMQP `timestamp` of the oldest message at the queue's head
    (of several queues: the oldest head). None when the queue holds no message."""
    read_at: float | None = None
    """Seconds since the epoch at which the source read the queue; None from a source that
    reports no message timestamps (AMQP, ActiveMQ)."""


@dataclasses.dataclass(frozen=True)
class DepthOptions:
    mode: Mode
    value: float
    activation_value: float


def aggregate(queues: Sequence[QueueFacts], operation: Operation) -> QueueFacts:
    """Combines the queues a regex matched, field by field (as KEDA does for sum, avg, max).
    The head timestamp is the oldest head of the queues holding messages, whatever the
    operation: ages do not add up (a sum or mean of ages is the age of no message), so
    MessageAge takes only max (metadata)."""
    if not queues:
        raise ValueError("aggregate needs at least one queue")

    def combine(values: list[float]) -> float:
        if operation is Operation.SUM:
            return sum(values)
        if operation is Operation.AVG:
            return sum(values) / len(values)
        return max(values)

    def combine_rates(rates: list[float | None]) -> float | None:
        known = [rate for rate in rates if rate is not None]
        return combine(known) if len(known) == len(rates) else None

    # An empty queue has no head, whatever timestamp a skewed statistics sample gives it.
    heads = [q.head_message_timestamp for q in queues
             if q.head_message_timestamp is not None and q.messages > 0]
    read_ats = [q.read_at for q in queues if q.read_at is not None]
    return QueueFacts(
        messages=combine([q.messages for q in queues]),
        publish_rate=combine_rates([q.publish_rate for q in queues]),
        deliver_get_rate=combine_rates([q.deliver_get_rate for q in queues]),
        counted=f"{operation.value} over {len(queues)} queues, {queues[0].counted}",
        head_message_timestamp=min(heads) if heads else None,
        # One read serves every matching queue; without it for all of them, no age at all.
        read_at=min(read_ats) if len(read_ats) == len(queues) else None,
    )


def _seconds(value: float) -> str:
    """Epoch seconds and ages to the millisecond, without an exponent (`:g` would write
    1.79617e+09 for a timestamp)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def message_age(facts: QueueFacts) -> tuple[float, str]:
    """read time - head message timestamp, clamped at 0; 0 for a queue without messages (its
    count of 0 decides, whatever head timestamp comes with it)."""
    read_at, head = facts.read_at, facts.head_message_timestamp
    if read_at is None:
        raise ValueError("MessageAge needs head message timestamps; only the management API "
                         "reports them")
    held = f"{facts.messages:g} messages ({facts.counted})"
    if facts.messages == 0:
        # Nothing waits. A head timestamp next to a count of 0 is RabbitMQ sampling the two
        # at different moments (a queue just drained, or just filled): the count decides, as
        # it does activity.
        stale = "" if head is None else f" (head timestamp {_seconds(head)} left out)"
        return 0.0, (f"no message in the queue, read at {_seconds(read_at)}: MessageAge 0 s"
                     f"{stale}; {held}")
    if head is None:
        # The source answers an error for a queue whose head carries no timestamp.
        raise ValueError("MessageAge needs the head message's timestamp of a queue that "
                         "holds messages")
    age = read_at - head
    how = (f"head message timestamp {_seconds(head)}, read at {_seconds(read_at)}: "
           f"MessageAge {_seconds(max(age, 0.0))} s")
    if age < 0:
        # The timestamp is the publisher's clock; one ahead of ours must not give a negative
        # age (an HPA metric below 0 would mean nothing).
        how += f" ({_seconds(age)} s clamped to 0: the publisher's clock is ahead of ours"
        # 1000 times too far: a publisher writing milliseconds, which AMQP does not mean.
        how += (", or it writes milliseconds where AMQP means seconds)"
                if head > read_at * 100 else ")")
    return max(age, 0.0), f"{how}; {held}"


def metric_of(facts: QueueFacts, mode: Mode) -> tuple[float, str]:
    """The metric a mode scales on, and how it was computed."""
    if mode is Mode.QUEUE_LENGTH:
        return facts.messages, f"{facts.messages:g} messages ({facts.counted})"
    if mode is Mode.MESSAGE_AGE:
        return message_age(facts)
    publish, deliver = facts.publish_rate, facts.deliver_get_rate
    if publish is None or deliver is None:
        raise ValueError(f"{mode.value} needs rates; only the management API reports them")
    if mode is Mode.MESSAGE_RATE:
        return publish, f"publish rate {publish:g}/s"
    if mode is Mode.DELIVER_GET_RATE:
        return deliver, f"deliver/get rate {deliver:g}/s"
    effective = deliver if deliver > 0 else ASSUMED_DELIVER_RATE
    assumed = "" if deliver > 0 else f" (nothing delivered: assumed {ASSUMED_DELIVER_RATE:g}/s)"
    if mode is Mode.PUBLISHED_TO_DELIVERED_RATIO:
        if publish == 0:
            return 0.0, "publish rate 0/s: ratio 0"
        ratio = publish / effective
        return ratio, f"publish {publish:g}/s / deliver {effective:g}/s = {ratio:g}{assumed}"
    # ExpectedQueueConsumptionTime, or DrainTime, its alias.
    seconds = facts.messages / effective
    name = (mode.value if mode is Mode.EXPECTED_QUEUE_CONSUMPTION_TIME
            else f"{mode.value} (alias of ExpectedQueueConsumptionTime)")
    return seconds, (f"{name}: {facts.messages:g} messages / deliver {effective:g}/s = "
                     f"{seconds:g} s to drain{assumed}")


def decide(facts: QueueFacts, options: DepthOptions, bounds: ReplicaBounds) -> Decision:
    value, how = metric_of(facts, options.mode)
    reasons = [how]
    if options.mode is Mode.QUEUE_LENGTH:
        is_active = value > options.activation_value
        reasons.append(comparison("messages", value, is_active, "activationValue",
                                  options.activation_value))
    else:
        is_active, why_active = _metric_mode_activity(value, facts.messages, options)
        reasons.append(why_active)
    replicas, why = decide_replicas(value, options.value, is_active, bounds)
    reasons.append(why)
    return Decision(
        metric_value=value,
        target=options.value,
        is_active=is_active,
        desired_replicas=replicas,
        backlog=facts.messages,
        reasons=tuple(reasons),
    )


def _metric_mode_activity(value: float, messages: float, options: DepthOptions) -> tuple[bool, str]:
    """KEDA's rule for every mode but QueueLength: active when the metric or the message count
    is above activationValue, so a queue that still holds messages is active even when its
    metric is idle (nothing published, every message fresh)."""
    mode, threshold = options.mode.value, options.activation_value
    if value > threshold:
        return True, comparison(mode, value, True, "activationValue", threshold)
    if messages > threshold:
        return True, (f"active: {messages:g} messages > activationValue {threshold:g}, "
                      f"although {mode} {value:g} <= {threshold:g} (as KEDA: a queue that "
                      "still holds messages is active even when its metric is idle)")
    return False, (f"inactive: {mode} {value:g} and {messages:g} messages <= activationValue "
                   f"{threshold:g} (either above it would be active, as KEDA)")
