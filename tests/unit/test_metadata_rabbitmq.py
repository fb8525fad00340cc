"""Parsing `source: rabbitmq` metadata (the keys of the walking skeleton)."""

from __future__ import annotations

import pytest

from scaler import sources
from scaler.errors import MetadataErrors
from scaler.policy import depth
from scaler.sources.rabbitmq import RabbitMQMetadata

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
