"""Parsing `source: kafka` metadata: every key, its default, and every kind of bad value."""

from __future__ import annotations

import pytest

from scaler import sources
from scaler.errors import MetadataErrors
from scaler.policy import lag
from scaler.sources.kafka import KafkaMetadata

BASE = {"source": "kafka", "bootstrapServers": "b1:9092,b2:9092", "consumerGroup": "workers"}


def parse(**extra: str) -> KafkaMetadata:
    trigger = sources.parse_trigger({**BASE, **extra})
    assert isinstance(trigger.source, KafkaMetadata)
    return trigger.source


def problems(metadata: dict[str, str]) -> str:
    with pytest.raises(MetadataErrors) as raised:
        sources.parse_trigger(metadata)
    return str(raised.value)


def test_defaults_match_keda() -> None:
    parsed = parse()
    assert parsed.bootstrap_servers == ("b1:9092", "b2:9092")
    assert parsed.topics == ()
    assert parsed.partition_limitation is None
    assert parsed.lag_metric == "messages"
    assert (parsed.options().lag_threshold, parsed.target_value()) == (10, 10.0)
    assert parsed.options().activation_lag_threshold == 0
    assert parsed.offset_reset_policy is lag.OffsetResetPolicy.LATEST
    assert not parsed.allow_idle_consumers
    assert not parsed.limit_to_partitions_with_lag
    assert not parsed.ensure_even_distribution_of_partitions
    assert not parsed.exclude_persistent_lag
    assert not parsed.scale_to_zero_on_invalid_offset
    assert (parsed.tls, parsed.sasl) == ("disable", "none")


def test_every_key_is_read() -> None:
    parsed = parse(topic="a, b", partitionLimitation="1, 2,10-20", lagThreshold="5",
                   activationLagThreshold="3", offsetResetPolicy="earliest",
                   allowIdleConsumers="false", limitToPartitionsWithLag="true",
                   excludePersistentLag="True", scaleToZeroOnInvalidOffset="1",
                   tls="enable", unsafeSsl="true", sasl="scram_sha512", username="u",
                   passwordFromEnv="p", version="1.0.0")
    assert parsed.topics == ("a", "b")
    assert parsed.partition_limitation == ((1, 1), (2, 2), (10, 20))
    assert [parsed.is_limited_to(p) for p in (0, 1, 2, 3, 10, 20, 21)] == [
        False, True, True, False, True, True, False]
    assert (parsed.lag_threshold, parsed.activation_lag_threshold) == (5, 3)
    assert parsed.offset_reset_policy is lag.OffsetResetPolicy.EARLIEST
    assert parsed.limit_to_partitions_with_lag
    assert parsed.exclude_persistent_lag
    assert parsed.scale_to_zero_on_invalid_offset
    assert parsed.unsafe_ssl
    assert (parsed.sasl, parsed.username, parsed.password) == ("scram_sha512", "u", "p")


def test_from_env_keys_are_accepted_as_keda_resolves_them() -> None:
    parsed = parse(sasl="plaintext", usernameFromEnv="u", passwordFromEnv="p")
    assert (parsed.username, parsed.password) == ("u", "p")


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param({"lagThreshold": "0"}, "lagThreshold: must be a whole number of at least 1, "
                 "got '0'", id="lag-threshold-zero"),
    pytest.param({"lagThreshold": "1.5"}, "lagThreshold: must be a whole number", id="lag-float"),
    pytest.param({"activationLagThreshold": "-1"}, "activationLagThreshold: must be a whole "
                 "number of at least 0, got '-1'", id="activation-negative"),
    pytest.param({"offsetResetPolicy": "Latest"}, "offsetResetPolicy: must be one of latest, "
                 "earliest (did you mean 'latest'?)", id="reset-policy-case"),
    pytest.param({"allowIdleConsumers": "yes"}, "allowIdleConsumers: must be true or false, "
                 "got 'yes'", id="bool-yes"),
    pytest.param({"topic": "a,,b"}, "topic: must be a comma-separated list without empty items",
                 id="topic-empty-item"),
    pytest.param({"topic": "bad topic"}, "topic: must be topic names", id="topic-space"),
    pytest.param({"topic": "a", "partitionLimitation": "3-1"}, "partitionLimitation: must be "
                 "partition numbers or inclusive ranges", id="partition-range-reversed"),
    pytest.param({"topic": "a", "partitionLimitation": "x"}, "partitionLimitation: must be",
                 id="partition-not-number"),
    pytest.param({"bootstrapServers": "host"}, "bootstrapServers: must be a comma-separated "
                 "list of host:port", id="bootstrap-without-port"),
    pytest.param({"sasl": "gssapi"}, "sasl: must be one of none, plaintext, scram_sha256, "
                 "scram_sha512", id="sasl-unknown"),
    pytest.param({"tls": "true"}, "tls: must be one of enable, disable", id="tls-true"),
    pytest.param({"allowIdleConsumers": "true", "limitToPartitionsWithLag": "true",
                  "topic": "a"}, "allowIdleConsumers: cannot be combined with "
                 "limitToPartitionsWithLag", id="idle-with-limit"),
    pytest.param({"limitToPartitionsWithLag": "true", "topic": "a",
                  "ensureEvenDistributionOfPartitions": "true"},
                 "ensureEvenDistributionOfPartitions: cannot be combined",
                 id="even-with-limit"),
    pytest.param({"limitToPartitionsWithLag": "true"}, "limitToPartitionsWithLag: needs topic",
                 id="limit-without-topic"),
    pytest.param({"ensureEvenDistributionOfPartitions": "true"},
                 "ensureEvenDistributionOfPartitions: needs topic", id="even-without-topic"),
    pytest.param({"partitionLimitation": "1"}, "partitionLimitation: needs topic",
                 id="partitions-without-topic"),
    pytest.param({"sasl": "plaintext"}, "sasl: needs username and password",
                 id="sasl-without-credentials"),
    pytest.param({"lagThreshold": "5", "lagThresholdFromEnv": "6"},
                 "lagThreshold: give only one of them", id="key-and-from-env"),
    pytest.param({"minReplicaCount": "5", "maxReplicaCount": "2"},
                 "minReplicaCount: must not exceed maxReplicaCount (2)", id="min-above-max"),
    pytest.param({"lagTreshold": "5"}, "lagTreshold: is not a known key (did you mean "
                 "'lagThreshold'?)", id="typo-did-you-mean"),
])
def test_bad_value_is_named_with_what_is_accepted(extra: dict[str, str], expected: str) -> None:
    assert expected in problems({**BASE, **extra})


def test_lag_metric_seconds_reads_its_keys_and_defaults() -> None:
    parsed = parse(lagMetric="seconds", lagSecondsThreshold="30")
    options = parsed.age_options()
    assert (options.lag_seconds_threshold, options.activation_lag_seconds_threshold) == (30.0, 0.0)
    assert parsed.target_value() == 30.0
    assert parsed.measures_age()
    assert not parse().measures_age()
    assert parse(lagMetric="seconds", lagSecondsThreshold="0.5",
                 activationLagSecondsThreshold="2.5").age_options(
                 ).activation_lag_seconds_threshold == 2.5


def test_seconds_and_messages_triggers_on_the_same_offsets_are_read_apart() -> None:
    # One reading carries record timestamps, the other does not: they may not share a target.
    seconds = parse(topic="a", lagMetric="seconds", lagSecondsThreshold="30")
    assert seconds.target_key() != parse(topic="a").target_key()
    assert seconds.connection_key() == parse(topic="a").connection_key()


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param({"lagMetric": "minutes"}, "lagMetric: must be one of messages, seconds, got "
                 "'minutes'", id="lag-metric-unknown"),
    pytest.param({"lagMetric": "Seconds"}, "lagMetric: must be one of messages, seconds (did "
                 "you mean 'seconds'?)", id="lag-metric-case"),
    pytest.param({"lagMetric": "seconds"}, "lagSecondsThreshold: is required with lagMetric: "
                 "seconds", id="seconds-without-threshold"),
    pytest.param({"lagMetric": "seconds", "lagSecondsThreshold": "10", "lagThreshold": "5"},
                 "lagThreshold: applies with lagMetric: messages; with lagMetric: seconds give "
                 "lagSecondsThreshold, got 5 with lagMetric: seconds",
                 id="lag-threshold-with-seconds"),
    pytest.param({"lagMetric": "seconds", "lagSecondsThreshold": "10",
                  "activationLagThreshold": "0"},
                 "activationLagThreshold: applies with lagMetric: messages; with lagMetric: "
                 "seconds give activationLagSecondsThreshold",
                 id="activation-lag-threshold-with-seconds"),
    pytest.param({"lagSecondsThreshold": "10"}, "lagSecondsThreshold: applies with lagMetric: "
                 "seconds; with lagMetric: messages give lagThreshold",
                 id="seconds-threshold-without-seconds"),
    pytest.param({"lagMetric": "messages", "activationLagSecondsThreshold": "3"},
                 "activationLagSecondsThreshold: applies with lagMetric: seconds; with "
                 "lagMetric: messages give activationLagThreshold",
                 id="activation-seconds-with-messages"),
    pytest.param({"lagMetric": "seconds", "lagSecondsThreshold": "0"},
                 "lagSecondsThreshold: must be a finite number greater than 0, got '0'",
                 id="seconds-threshold-zero"),
    pytest.param({"lagMetric": "seconds", "lagSecondsThreshold": "nan"},
                 "lagSecondsThreshold: must be a finite number greater than 0",
                 id="seconds-threshold-nan"),
    pytest.param({"lagMetric": "seconds", "lagSecondsThreshold": "5",
                  "activationLagSecondsThreshold": "-1"},
                 "activationLagSecondsThreshold: must be a finite number of at least 0",
                 id="activation-seconds-negative"),
    pytest.param({"lagSecondThreshold": "5"}, "lagSecondThreshold: is not a known key (did you "
                 "mean 'lagSecondsThreshold'?)", id="seconds-typo"),
])
def test_lag_metric_problems_name_the_key_that_applies(extra: dict[str, str],
                                                       expected: str) -> None:
    assert expected in problems({**BASE, **extra})


def test_both_mismatched_thresholds_are_reported_at_once() -> None:
    text = problems({**BASE, "lagMetric": "seconds", "lagThreshold": "5",
                     "activationLagThreshold": "1"})
    for key in ("lagThreshold:", "activationLagThreshold:", "lagSecondsThreshold: is required"):
        assert key in text


def test_every_missing_required_key_names_its_from_env_twin() -> None:
    text = problems({"source": "kafka", "topic": "orders"})
    for key in ("bootstrapServers", "consumerGroup"):
        assert (f"{key}: is required (if the ScaledObject sets {key}FromEnv, the workload's "
                "container must define that variable") in text


def test_all_problems_are_reported_at_once() -> None:
    text = problems({"source": "kafka", "lagThreshold": "-1", "offsetResetPolicy": "newest",
                     "lagTreshold": "5"})
    for key in ("bootstrapServers", "consumerGroup", "lagThreshold:", "offsetResetPolicy",
                "lagTreshold"):
        assert key in text


def test_keda_connection_keys_are_accepted_and_ignored() -> None:
    parse(scalerAddress="queue-scaler:6000", enableTLS="false", caCert="x",
          tlsClientCert="y", tlsClientKey="z")


def test_unknown_source_lists_the_valid_ones() -> None:
    assert "source: must be one of kafka, rabbitmq, activemq, got 'kafak'" in problems(
        {"source": "kafak"})


def test_password_is_absent_from_repr_and_errors() -> None:
    parsed = parse(sasl="plaintext", username="u", passwordFromEnv="hunter2-secret")
    assert "hunter2-secret" not in repr(parsed)
    assert "hunter2-secret" not in str(parsed)
    assert "hunter2-secret" not in problems({**BASE, "passwordFromEnv": "hunter2-secret"})


def test_a_password_written_in_the_scaled_object_is_refused() -> None:
    text = problems({**BASE, "sasl": "plaintext", "username": "u", "password": "hunter2-secret"})
    assert "password: must not be given in plain text: use passwordFromEnv" in text
    assert "or a named connection" in text
    assert "hunter2-secret" not in text


@pytest.mark.parametrize(("extra", "name"), [
    pytest.param({"topic": "orders.eu"}, "kafka-orders-eu", id="one-topic"),
    pytest.param({"topic": "a,b"}, "kafka-a-b", id="topic-list"),
    pytest.param({}, "kafka-workers-topics", id="no-topic"),
])
def test_metric_name_is_formed_as_keda_forms_it(extra: dict[str, str], name: str) -> None:
    assert parse(**extra).metric_name() == name
