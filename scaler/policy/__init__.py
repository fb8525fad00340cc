"""Pure scaling policy: broker facts + trigger options -> metric value, activity, replicas.

No I/O, no clock, no third-party imports: every input is a parameter, so every decision can be
unit-tested as a table and explained to a user. `lag` decides for Kafka consumer lag, `depth`
for queue depth and rates; both end in `decide_replicas` here. KEDA's semantics are the floor;
where KEDA's built-in scalers have reported bugs we deliberately differ, and each difference
says so where it is made.
"""

from __future__ import annotations

import dataclasses
import math


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
    """Uncapped lag (Kafka) or message count (RabbitMQ) the decision started from."""
    reasons: tuple[str, ...]
    """Human-readable steps: which inputs, which cap, why active or not."""
    replica_limit: int | None = None
    """The most replicas that can do work (Kafka: the partitions, unless allowIdleConsumers),
    for strategies that compute the count themselves."""


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


def comparison(name: str, value: float, is_active: bool, threshold_name: str,
               threshold: float) -> str:
    """'active: lag 7 > activationLagThreshold 1' and its inactive twin, for reasons."""
    return (f"{'active' if is_active else 'inactive'}: {name} {value:g} "
            f"{'>' if is_active else '<='} {threshold_name} {threshold:g}")
