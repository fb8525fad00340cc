"""Queue depth and rates -> Decision, with KEDA's rabbitmq trigger semantics and more modes."""

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

    @property
    def needs_rates(self) -> bool:
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


@dataclasses.dataclass(frozen=True)
class DepthOptions:
    mode: Mode
    value: float
    activation_value: float


def aggregate(queues: Sequence[QueueFacts], operation: Operation) -> QueueFacts:
    """Combines the queues a regex matched, field by field (as KEDA does for sum, avg, max)."""
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

    return QueueFacts(
        messages=combine([q.messages for q in queues]),
        publish_rate=combine_rates([q.publish_rate for q in queues]),
        deliver_get_rate=combine_rates([q.deliver_get_rate for q in queues]),
        counted=f"{operation.value} over {len(queues)} queues, {queues[0].counted}",
    )


def metric_of(facts: QueueFacts, mode: Mode) -> tuple[float, str]:
    """The metric a mode scales on, and how it was computed."""
    if mode is Mode.QUEUE_LENGTH:
        return facts.messages, f"{facts.messages:g} messages ({facts.counted})"
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
    seconds = facts.messages / effective
    return seconds, (f"{facts.messages:g} messages / deliver {effective:g}/s = {seconds:g} s to "
                     f"drain{assumed}")


def decide(facts: QueueFacts, options: DepthOptions, bounds: ReplicaBounds) -> Decision:
    value, how = metric_of(facts, options.mode)
    reasons = [how]
    if options.mode is Mode.QUEUE_LENGTH:
        is_active = value > options.activation_value
        reasons.append(comparison("messages", value, is_active, "activationValue",
                                  options.activation_value))
    else:
        # KEDA: a queue that still holds messages is active even when the metric is idle.
        is_active = value > options.activation_value or facts.messages > options.activation_value
        reasons.append(comparison(f"{options.mode.value} or messages",
                                  max(value, facts.messages), is_active, "activationValue",
                                  options.activation_value))
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
