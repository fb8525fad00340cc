"""The throughput strategy's pure parts: the formula, smoothing, rates from counters, and the
common metadata keys that turn it on."""

from __future__ import annotations

import pytest

from scaler import policy, sources
from scaler.errors import MetadataErrors
from scaler.policy import throughput

OPTIONS = throughput.ThroughputOptions(per_replica_rate=10.0, drain_within_s=60.0,
                                       half_life_s=30.0)
NO_BOUNDS = policy.ReplicaBounds()


def base(backlog: float, is_active: bool = True, limit: int | None = None) -> policy.Decision:
    return policy.Decision(metric_value=backlog, target=5.0, is_active=is_active,
                           desired_replicas=1, backlog=backlog, reasons=("source",),
                           replica_limit=limit)


@pytest.mark.parametrize(("backlog", "rate", "replicas"), [
    # (25/s + 600 / 60 s) / 10 per replica = 3.5 -> 4
    pytest.param(600, 25.0, 4, id="rate-plus-drain"),
    # (0 + 600 / 60) / 10 = 1
    pytest.param(600, 0.0, 1, id="drain-only"),
    # (30/s + 0) / 10 = 3: a steady stream with no backlog still needs consumers
    pytest.param(0, 30.0, 3, id="rate-only"),
    # active with nothing to do: KEDA keeps an active workload at 1
    pytest.param(0, 0.0, 1, id="active-floor"),
    # not measured yet: counted as 0/s, the drain term alone
    pytest.param(1200, None, 2, id="rate-unknown"),
])
def test_replicas_cover_arrivals_plus_the_backlog_drained_in_time(
        backlog: float, rate: float | None, replicas: int) -> None:
    decision = throughput.decide(base(backlog), rate, OPTIONS, NO_BOUNDS)
    assert decision.desired_replicas == replicas
    assert (decision.metric_value, decision.target) == (replicas, 1.0)


def test_an_inactive_source_decision_stays_at_zero() -> None:
    decision = throughput.decide(base(0, is_active=False), 50.0, OPTIONS, NO_BOUNDS)
    assert (decision.desired_replicas, decision.metric_value, decision.is_active) == (0, 0, False)


def test_the_source_s_replica_limit_and_the_bounds_cap_the_count() -> None:
    assert throughput.decide(base(0, limit=3), 100.0, OPTIONS, NO_BOUNDS).desired_replicas == 3
    bounded = throughput.decide(base(0), 100.0, OPTIONS, policy.ReplicaBounds(0, 4))
    assert bounded.desired_replicas == 4
    assert "lowered to maxReplicaCount 4" in bounded.reasons[-2]


def test_the_explanation_shows_the_formula_with_numbers() -> None:
    reasons = throughput.decide(base(600), 25.0, OPTIONS, NO_BOUNDS).reasons
    assert reasons[0] == "source"
    assert ("throughput: (arrivals 25/s + backlog 600 / drainWithinSeconds 60) / "
            "messagesPerSecondPerReplica 10 = 3.5 replicas") in reasons


@pytest.mark.parametrize(("previous", "sample", "elapsed", "expected"), [
    pytest.param(None, 40.0, 2.0, 40.0, id="first-sample-is-the-average"),
    pytest.param(0.0, 40.0, 30.0, 20.0, id="one-half-life-moves-halfway"),
    pytest.param(0.0, 40.0, 60.0, 30.0, id="two-half-lives-three-quarters"),
    pytest.param(10.0, 40.0, 0.0, 10.0, id="no-time-no-change"),
])
def test_smoothing_halves_the_distance_every_half_life(
        previous: float | None, sample: float, elapsed: float, expected: float) -> None:
    assert throughput.smooth(previous, sample, elapsed, 30.0) == pytest.approx(expected)


def test_a_single_spike_moves_the_average_by_its_weight_only() -> None:
    average = 10.0
    average = throughput.smooth(average, 1000.0, 2.0, 30.0)  # one 2 s burst
    assert average == pytest.approx(10.0 + 990.0 * (1 - 0.5 ** (2 / 30)))
    assert average < 60


@pytest.mark.parametrize(("before", "after", "elapsed", "rate"), [
    pytest.param(100, 160, 2.0, 30.0, id="counter-grew"),
    pytest.param(100, 100, 2.0, 0.0, id="nothing-arrived"),
    pytest.param(100, 40, 2.0, None, id="counter-went-back-no-sample"),
    pytest.param(100, 160, 0.0, None, id="no-time-no-sample"),
])
def test_rates_come_from_two_counter_readings(before: float, after: float, elapsed: float,
                                              rate: float | None) -> None:
    assert throughput.rate_between(before, after, elapsed) == rate


ARTEMIS = {"source": "activemq", "flavor": "artemis", "managementEndpoint": "a:8161",
           "brokerName": "b", "brokerAddress": "q", "queueName": "q",
           "usernameFromEnv": "u", "passwordFromEnv": "p"}


def test_the_throughput_keys_parse_with_their_defaults() -> None:
    common = sources.parse_trigger({**ARTEMIS, "scalingStrategy": "throughput",
                                    "messagesPerSecondPerReplica": "12.5"}).common
    assert common.throughput_options() == throughput.ThroughputOptions(12.5, 60.0, 30.0)
    assert sources.parse_trigger(ARTEMIS).common.throughput_options() is None


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param({"scalingStrategy": "throughput"},
                 "messagesPerSecondPerReplica: is required with scalingStrategy: throughput",
                 id="rate-required"),
    pytest.param({"drainWithinSeconds": "30"},
                 "drainWithinSeconds: applies with scalingStrategy: throughput",
                 id="key-without-the-strategy"),
    pytest.param({"scalingStrategy": "fast"},
                 "scalingStrategy: must be one of backlog, throughput", id="unknown-strategy"),
    pytest.param({"scalingStrategy": "throughput", "messagesPerSecondPerReplica": "0"},
                 "messagesPerSecondPerReplica: must be a finite number greater than 0",
                 id="zero-rate"),
])
def test_bad_throughput_keys_are_named(extra: dict[str, str], expected: str) -> None:
    with pytest.raises(MetadataErrors) as raised:
        sources.parse_trigger({**ARTEMIS, **extra})
    assert expected in str(raised.value)
