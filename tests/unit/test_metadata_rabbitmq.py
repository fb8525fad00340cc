"""Parsing `source: rabbitmq` metadata (the keys of the walking skeleton), and MessageAge's
rules over management API listings as RabbitMQ 3.10 answers them."""

from __future__ import annotations

import grpc
import pytest

from scaler import policy, sources
from scaler.errors import BrokerUnavailableError, MetadataErrors, TargetNotFoundError
from scaler.policy import depth
from scaler.service import status_for
from scaler.sources.rabbitmq import RabbitMQMetadata, RabbitMQReading, management

BASE = {"source": "rabbitmq", "hostFromEnv": "amqp://user:S3cret@rabbit:5672/prod",
        "queueName": "jobs"}


def parse(**extra: str) -> RabbitMQMetadata:
    trigger = sources.parse_trigger({**BASE, **extra})
    assert isinstance(trigger.source, RabbitMQMetadata)
    return trigger.source


def problems(metadata: dict[str, str]) -> str:
    with pytest.raises(MetadataErrors) as raised:
        sources.parse_trigger(metadata)
    return str(raised.value)


def test_defaults_are_queue_length_20_over_the_url_scheme() -> None:
    parsed = parse()
    assert parsed.options() == depth.DepthOptions(depth.Mode.QUEUE_LENGTH, 20.0, 0.0)
    assert parsed.is_http is False
    assert parsed.vhost == "prod"
    assert parsed.credentials == ("user", "S3cret")


@pytest.mark.parametrize(("host", "vhost"), [
    pytest.param("amqp://u:p@h:5672/", "/", id="root"),
    pytest.param("amqp://u:p@h:5672", "/", id="no-path"),
    pytest.param("amqp://u:p@h:5672/%2F", "/", id="escaped-root"),
    pytest.param("http://u:p@h:15672/team%2Fa", "team/a", id="escaped-slash"),
])
def test_vhost_comes_from_the_url_path(host: str, vhost: str) -> None:
    assert parse(hostFromEnv=host).vhost == vhost


@pytest.mark.parametrize(("host", "vhost", "sub_path"), [
    pytest.param("http://u:p@h:15672/", "/", "", id="root"),
    pytest.param("http://u:p@h:15672/prod", "prod", "", id="vhost"),
    pytest.param("http://u:p@h/rabbitmq/prod", "prod", "/rabbitmq", id="sub-path-and-vhost"),
    pytest.param("https://u:p@h/a/b/", "/", "/a/b", id="sub-path-root-vhost"),
])
def test_management_url_path_is_sub_path_then_vhost(host: str, vhost: str, sub_path: str
                                                    ) -> None:
    parsed = parse(hostFromEnv=host)
    assert (parsed.vhost, parsed.http_sub_path) == (vhost, sub_path)


def test_regex_options_over_http() -> None:
    parsed = parse(hostFromEnv="http://u:p@h:15672/", queueName="^orders-.*$", useRegex="true",
                   operation="max", pageSize="250")
    assert (parsed.use_regex, parsed.operation, parsed.effective_page_size) == (
        True, depth.Operation.MAX, 250)


@pytest.mark.parametrize("mode", [m.value for m in depth.Mode if m.needs_rates])
def test_every_rate_mode_parses_over_http(mode: str) -> None:
    parsed = parse(hostFromEnv="http://u:p@h:15672/", mode=mode, value="3")
    assert parsed.options().mode.value == mode


def test_vhost_name_overrides_the_url() -> None:
    assert parse(vhostName="other").vhost == "other"


def test_credentials_from_env_override_the_url() -> None:
    parsed = parse(usernameFromEnv="app", passwordFromEnv="pw")
    assert parsed.credentials == ("app", "pw")


def test_deprecated_queue_length_sets_the_target() -> None:
    assert parse(queueLength="7").options().value == 7.0


def test_message_rate_over_http() -> None:
    parsed = parse(hostFromEnv="http://u:p@h:15672/", mode="MessageRate", value="2.5",
                   activationValue="1")
    assert parsed.options() == depth.DepthOptions(depth.Mode.MESSAGE_RATE, 2.5, 1.0)


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param({"hostFromEnv": "ftp://h/"}, "host: must be a URL with a host and one of the "
                 "schemes amqp, amqps, http, https", id="bad-scheme"),
    pytest.param({"hostFromEnv": "amqp://h:99999/"}, "host: must be a URL such as", id="bad-port"),
    pytest.param({"mode": "QueueLength"}, "value: is required when mode is set",
                 id="mode-without-value"),
    pytest.param({"value": "5"}, "mode: is required when value is set", id="value-without-mode"),
    pytest.param({"mode": "Length", "value": "5"}, "mode: must be one of QueueLength, "
                 "MessageRate, DeliverGetRate, PublishedToDeliveredRatio, "
                 "ExpectedQueueConsumptionTime", id="unknown-mode"),
    pytest.param({"mode": "MessageRate", "value": "5"}, "mode: needs the management API",
                 id="rate-over-amqp"),
    pytest.param({"queueLength": "5", "mode": "QueueLength", "value": "5"},
                 "queueLength: is the deprecated form", id="queue-length-with-mode"),
    pytest.param({"value": "0", "mode": "QueueLength"},
                 "value: must be a finite number greater than 0", id="value-zero"),
    pytest.param({"activationValue": "nan"}, "activationValue: must be a finite number",
                 id="activation-nan"),
    pytest.param({"protocol": "http"}, "protocol: must be auto or amqp for a amqp:// host",
                 id="protocol-mismatch"),
    pytest.param({"timeout": "1000"}, "timeout: applies to the management API only",
                 id="timeout-with-amqp"),
    pytest.param({"excludeUnacknowledged": "true"}, "excludeUnacknowledged: applies to the "
                 "management API only", id="exclude-unacked-with-amqp"),
    pytest.param({"queName": "x"}, "queName: is not a known key (did you mean 'queueName'?)",
                 id="typo"),
    pytest.param({"useRegex": "true"}, "useRegex: needs the management API", id="regex-amqp"),
    pytest.param({"operation": "sum"}, "operation: applies with useRegex: true",
                 id="operation-without-regex"),
    pytest.param({"pageSize": "10"}, "pageSize: applies with useRegex: true",
                 id="page-size-without-regex"),
    pytest.param({"hostFromEnv": "http://h/", "useRegex": "true", "pageSize": "501"},
                 "pageSize: must be a whole number from 1 to 500", id="page-size-too-big"),
    pytest.param({"hostFromEnv": "http://h/", "useRegex": "true", "operation": "median"},
                 "operation: must be one of sum, avg, max", id="unknown-operation"),
    pytest.param({"hostFromEnv": "http://h/", "useRegex": "true", "queueName": "(unclosed"},
                 "queueName: must be a valid regex", id="bad-regex"),
    pytest.param({"queueName": "q" * 256}, "queueName: must be at most 255 bytes",
                 id="queue-name-too-long"),
    pytest.param({"tls": "enable"}, "tls: needs an amqps:// or https:// host",
                 id="tls-with-plain-scheme"),
])
def test_bad_value_is_named_with_what_is_accepted(extra: dict[str, str], expected: str) -> None:
    assert expected in problems({**BASE, **extra})


def test_password_in_host_never_appears_in_repr_or_errors() -> None:
    parsed = parse()
    assert "S3cret" not in repr(parsed)
    text = problems({**BASE, "hostFromEnv": "ftp://user:S3cret@rabbit/"})
    assert "S3cret" not in text
    assert "user:***@rabbit" in text


@pytest.mark.parametrize(("queue", "name"), [
    pytest.param("jobs", "rabbitmq-jobs", id="plain"),
    pytest.param("team/jobs.eu", "rabbitmq-team-2Fjobs-eu", id="escaped"),
])
def test_metric_name_is_formed_as_keda_forms_it(queue: str, name: str) -> None:
    assert parse(queueName=queue).metric_name() == name


def test_a_password_in_a_plain_host_url_is_refused() -> None:
    text = problems({"source": "rabbitmq", "host": "amqp://app:S3cret@rabbit:5672/prod",
                     "queueName": "jobs"})
    assert "host: must not carry a password in plain text: use hostFromEnv" in text
    assert "S3cret" not in text
    # Without a password the plain key is fine; with one, hostFromEnv is the way.
    assert parse(hostFromEnv="", host="amqp://rabbit:5672/prod").vhost == "prod"
    assert parse(hostFromEnv="amqp://app:S3cret@rabbit:5672/prod").credentials == (
        "app", "S3cret")


def test_a_missing_host_names_the_dropped_host_from_env_as_the_likely_cause() -> None:
    # What KEDA sends when hostFromEnv names a variable the workload's container lacks: it
    # drops the key, so the scaler sees no host at all.
    text = problems({"source": "rabbitmq", "queueName": "jobs"})
    assert ("host: is required (if the ScaledObject sets hostFromEnv, the workload's container "
            "must define that variable: KEDA drops the key when it does not)") in text


HTTP = {**BASE, "hostFromEnv": "http://user:S3cret@rabbit:15672/prod"}


@pytest.mark.parametrize(("mode", "expected"), [
    pytest.param("MessageAge", depth.Mode.MESSAGE_AGE, id="message-age"),
    pytest.param("DrainTime", depth.Mode.DRAIN_TIME, id="drain-time"),
])
def test_service_level_modes_parse_over_http(mode: str, expected: depth.Mode) -> None:
    parsed = parse(hostFromEnv=HTTP["hostFromEnv"], mode=mode, value="30",
                   activationValue="5")
    assert parsed.options() == depth.DepthOptions(expected, 30.0, 5.0)


@pytest.mark.parametrize("mode", ["MessageAge", "DrainTime"])
def test_service_level_modes_over_amqp_are_invalid_argument(mode: str) -> None:
    with pytest.raises(MetadataErrors) as raised:
        sources.parse_trigger({**BASE, "mode": mode, "value": "30"})
    assert status_for(raised.value) is grpc.StatusCode.INVALID_ARGUMENT
    assert (f"mode: needs the management API (an http:// or https:// host); over AMQP only "
            f"QueueLength is available, got '{mode}'") in str(raised.value)


@pytest.mark.parametrize(("extra", "operation"), [
    # MessageAge's only meaningful aggregate is the oldest head: max, also by default.
    pytest.param({}, depth.Operation.MAX, id="default-is-max"),
    pytest.param({"operation": "max"}, depth.Operation.MAX, id="max"),
])
def test_message_age_over_a_regex_takes_the_oldest_head(
        extra: dict[str, str], operation: depth.Operation) -> None:
    parsed = parse(hostFromEnv=HTTP["hostFromEnv"], mode="MessageAge", value="30",
                   queueName="^orders-.*$", useRegex="true", **extra)
    assert parsed.effective_operation is operation


def test_other_modes_keep_kedas_default_sum() -> None:
    parsed = parse(hostFromEnv=HTTP["hostFromEnv"], mode="DrainTime", value="30",
                   queueName="^orders-.*$", useRegex="true")
    assert parsed.effective_operation is depth.Operation.SUM


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param({"useRegex": "true", "queueName": "^o-.*$", "operation": "sum"},
                 "operation: must be max (the default with MessageAge): the age of the oldest "
                 "head message over the matching queues; a sum or an average of ages is the "
                 "age of no message, got 'sum' with mode MessageAge", id="sum-of-ages"),
    pytest.param({"useRegex": "true", "queueName": "^o-.*$", "operation": "avg"},
                 "operation: must be max (the default with MessageAge)", id="avg-of-ages"),
    pytest.param({"excludeUnacknowledged": "true"},
                 "excludeUnacknowledged: does not apply to MessageAge: RabbitMQ's "
                 "head_message_timestamp is the oldest of the next ready message and the "
                 "messages delivered but not yet acknowledged", id="exclude-unacknowledged"),
])
def test_message_age_refuses_what_it_cannot_mean(extra: dict[str, str], expected: str) -> None:
    assert expected in problems({**HTTP, "mode": "MessageAge", "value": "30", **extra})


def test_message_age_reads_a_target_of_its_own() -> None:
    # A queue without head timestamps is an error for MessageAge only: the other modes on the
    # same queue share one connection but not the reading that carries that error.
    age = parse(hostFromEnv=HTTP["hostFromEnv"], mode="MessageAge", value="30")
    length = parse(hostFromEnv=HTTP["hostFromEnv"])
    drain = parse(hostFromEnv=HTTP["hostFromEnv"], mode="DrainTime", value="30")
    assert age.connection_key() == length.connection_key()
    assert age.target_key() != length.target_key()
    assert drain.target_key() == length.target_key()


READ_AT = 1796171819.0

# Queue listings exactly as RabbitMQ 3.10.8's management API answered them (columns as the
# scaler asks; rates left out). The AMQP timestamp of the classic queues' messages was
# READ_AT - 103 where one was set.
CLASSIC_TIMESTAMPED = {"name": "a", "type": "classic", "messages_ready": 1,
                       "messages_unacknowledged": 0, "head_message_timestamp": 1796171716}
CLASSIC_EMPTY = {"name": "b", "type": "classic", "messages_ready": 0,
                 "messages_unacknowledged": 0, "head_message_timestamp": None}
CLASSIC_UNTIMED = {"name": "c", "type": "classic", "messages_ready": 1,
                   "messages_unacknowledged": 0, "head_message_timestamp": None}
# The head timestamp counts messages delivered and not yet acknowledged.
CLASSIC_IN_FLIGHT = {"name": "d", "type": "classic", "messages_ready": 0,
                     "messages_unacknowledged": 1, "head_message_timestamp": 1796171716}
QUORUM = {"name": "e", "type": "quorum", "messages_ready": 1, "messages_unacknowledged": 0}
QUORUM_EMPTY = {**QUORUM, "messages_ready": 0}


def reading_of(*bodies: dict[str, object]) -> RabbitMQReading:
    return RabbitMQReading(vhost="/", queues=tuple(management.queue_stats(body, "rabbit")
                                                   for body in bodies),
                           via="http", read_at=READ_AT)


@pytest.mark.parametrize(("bodies", "error", "text"), [
    # A timestamped head, an empty queue, a head being processed: ages can be measured.
    pytest.param([CLASSIC_TIMESTAMPED], None, "", id="timestamped"),
    pytest.param([CLASSIC_EMPTY], None, "", id="empty"),
    pytest.param([CLASSIC_IN_FLIGHT], None, "", id="in-flight-head"),
    # Messages with a null head: retried (the statistics can be momentarily skewed), with
    # what the publisher must do.
    pytest.param([CLASSIC_UNTIMED], BrokerUnavailableError,
                 "queue 'c' in vhost '/' holds messages but the statistics report no timestamp "
                 "for the head message (head_message_timestamp null). MessageAge needs "
                 "publishers to set the AMQP timestamp property", id="untimed"),
    pytest.param([CLASSIC_TIMESTAMPED, CLASSIC_UNTIMED, {**CLASSIC_UNTIMED, "name": "f"}],
                 BrokerUnavailableError, "queues 'c', 'f' in vhost '/' hold messages",
                 id="untimed-among-timestamped"),
    # A quorum queue never reports the field, even empty: NOT_FOUND at once.
    pytest.param([QUORUM_EMPTY], TargetNotFoundError,
                 "queue 'e' in vhost '/' reports no head_message_timestamp (quorum; RabbitMQ "
                 "3.10 reports it for classic queues only)", id="quorum-empty"),
    pytest.param([CLASSIC_TIMESTAMPED, QUORUM], TargetNotFoundError,
                 "narrow queueName to classic queues", id="quorum-among-classic"),
])
def test_message_age_needs_a_head_timestamp_for_every_queue_with_messages(
        bodies: list[dict[str, object]], error: type[Exception] | None, text: str) -> None:
    found = management.head_timestamp_error(reading_of(*bodies), "rabbit", is_regex=True)
    if error is None:
        assert found is None
    else:
        assert isinstance(found, error)
        assert text in str(found)


@pytest.mark.parametrize(("body", "age", "messages"), [
    # 1796171819 - 1796171716 = 103 s.
    pytest.param(CLASSIC_TIMESTAMPED, 103, 1, id="timestamped"),
    pytest.param(CLASSIC_EMPTY, 0, 0, id="empty"),
    # Being processed still counts: the management API's messages are ready + unacked.
    pytest.param(CLASSIC_IN_FLIGHT, 103, 1, id="in-flight-head"),
])
def test_message_age_decided_from_a_real_listing(body: dict[str, object], age: float,
                                                 messages: float) -> None:
    parsed = parse(hostFromEnv=HTTP["hostFromEnv"], mode="MessageAge", value="30")
    decision = parsed.decide(reading_of(body), policy.ReplicaBounds(), frozenset())
    assert (decision.metric_value, decision.backlog) == (age, messages)
