"""Throughput-aware replicas (`scalingStrategy: throughput`, any source): enough replicas for
the messages arriving now plus the backlog drained within a deadline,

    desired = ceil((arrival rate + backlog / drainWithinSeconds) / messagesPerSecondPerReplica)

with the arrival rate smoothed over polls (an exponentially weighted moving average with a
half-life), so that one burst does not flap replicas.

Reported to KEDA as the metric value `desired` with a per-replica target of 1: the HPA's
AverageValue rule asks for ceil(value / target) = desired replicas. The HPA skips a change while
value / (target x current replicas) is within 10 % of 1, so a step of less than 10 % of the
current count (from 20 to 21 replicas, say) waits until the formula moves further; every larger
step lands exactly on `desired`. Activity stays the source's own decision (its activation keys).
"""

from __future__ import annotations

import dataclasses
import math

from scaler.policy import Decision, ReplicaBounds, decide_replicas


@dataclasses.dataclass(frozen=True)
class ThroughputOptions:
    per_replica_rate: float
    """messagesPerSecondPerReplica: what one replica consumes per second."""
    drain_within_s: float
    """drainWithinSeconds: how soon the backlog should be gone."""
    half_life_s: float
    """arrivalRateHalfLife: after this long, a rate sample weighs half."""


def smooth(previous: float | None, sample: float, elapsed_s: float, half_life_s: float
           ) -> float:
    """The moving average after one more rate sample taken `elapsed_s` after the last one."""
    if previous is None:
        return sample
    weight = 1.0 - math.exp(-math.log(2.0) * max(0.0, elapsed_s) / half_life_s)
    return previous + weight * (sample - previous)


def rate_between(total_before: float, total_after: float, elapsed_s: float) -> float | None:
    """Arrivals per second from two readings of a cumulative counter (Kafka's log-end offsets,
    a queue's enqueue count); None when the counter went back (a recreated topic or queue) or
    no time passed, so that such a pair is no sample at all."""
    if elapsed_s <= 0 or total_after < total_before:
        return None
    return (total_after - total_before) / elapsed_s


def decide(base: Decision, arrival_rate: float | None, options: ThroughputOptions,
           bounds: ReplicaBounds) -> Decision:
    """`base`: the source's own decision (its backlog and activity). `arrival_rate`: the
    smoothed arrivals per second, None until two polls have measured it."""
    reasons = [*base.reasons, "scalingStrategy throughput replaces that replica count:"]
    rate = 0.0 if arrival_rate is None else max(0.0, arrival_rate)
    if arrival_rate is None:
        reasons.append("arrival rate not measured yet (it needs two polls): counted as 0/s")
    backlog = max(0.0, base.backlog)
    needed = (rate + backlog / options.drain_within_s) / options.per_replica_rate
    reasons.append(
        f"throughput: (arrivals {rate:.4g}/s + backlog {backlog:g} / drainWithinSeconds "
        f"{options.drain_within_s:g}) / messagesPerSecondPerReplica "
        f"{options.per_replica_rate:g} = {needed:.4g} replicas")
    wanted = math.ceil(needed)
    if base.replica_limit is not None and wanted > base.replica_limit:
        wanted = base.replica_limit
        reasons.append(f"capped at {wanted}, the most replicas that can consume")
    replicas, why = decide_replicas(wanted, 1.0, base.is_active, bounds)
    reasons.append(why)
    if base.is_active:
        reasons.append(f"reported as value {replicas} with target 1: the HPA asks for "
                       f"{replicas} unless that is within 10 % of its current count")
    return Decision(metric_value=float(replicas) if base.is_active else 0.0, target=1.0,
                    is_active=base.is_active, desired_replicas=replicas, backlog=backlog,
                    reasons=tuple(reasons))
