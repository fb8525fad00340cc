"""Parsing `source: activemq` metadata: both flavors, their KEDA keys and defaults, and the
Jolokia read each trigger resolves to (from the default MBean names or a template)."""

from __future__ import annotations

import pathlib

import pytest

from scaler import sources
from scaler.errors import MetadataErrors
from scaler.sources.activemq import ActiveMQMetadata, ActiveMQReading, mbeans

LOGIN = {"usernameFromEnv": "scaler", "passwordFromEnv": "J0lokia-S3cret"}
ARTEMIS = {"source": "activemq", "flavor": "artemis", "managementEndpoint": "artemis:8161",
           "brokerName": "prod", "brokerAddress": "orders", "queueName": "orders", **LOGIN}
CLASSIC = {"source": "activemq", "flavor": "classic", "managementEndpoint": "amq:8161",
           "brokerName": "localhost", "destinationName": "orders", **LOGIN}
QUEUE_MBEAN = ('org.apache.activemq.artemis:broker="prod",component=addresses,address="orders",'
               'subcomponent=queues,routing-type="anycast",queue="orders"')


def parse(base: dict[str, str], **extra: str) -> ActiveMQMetadata:
    trigger = sources.parse_trigger({**base, **extra})
    assert isinstance(trigger.source, ActiveMQMetadata)
    return trigger.source


def problems(base: dict[str, str], **extra: str) -> str:
    with pytest.raises(MetadataErrors) as raised:
        sources.parse_trigger({key: value for key, value in {**base, **extra}.items() if value})
    return str(raised.value)


def test_artemis_reads_message_count_of_keda_s_default_mbean() -> None:
    parsed = parse(ARTEMIS)
    read = parsed.jolokia_read
    assert (read.url, read.mbean, read.attribute) == (
        "http://artemis:8161/console/jolokia", QUEUE_MBEAN, "MessageCount")
    assert parsed.metric_name() == "artemis-orders"
    assert parsed.target_value() == 10
    assert parsed.origin == "http://artemis:8161"


def test_classic_reads_queue_size_of_keda_s_default_mbean() -> None:
    parsed = parse(CLASSIC)
    read = parsed.jolokia_read
    assert (read.url, read.mbean, read.attribute) == (
        "http://amq:8161/api/jolokia",
        "org.apache.activemq:type=Broker,brokerName=localhost,destinationType=Queue,"
        "destinationName=orders", "QueueSize")
    assert parsed.metric_name() == "activemq-orders"


@pytest.mark.parametrize(("base", "extra", "target", "activation"), [
    pytest.param(ARTEMIS, {}, 10, 0, id="artemis-defaults"),
    pytest.param(ARTEMIS, {"queueLength": "25", "activationQueueLength": "3"}, 25, 3,
                 id="artemis-keys"),
    pytest.param(CLASSIC, {}, 10, 0, id="classic-defaults"),
    pytest.param(CLASSIC, {"targetQueueSize": "7", "activationTargetQueueSize": "2"}, 7, 2,
                 id="classic-keys"),
])
def test_target_and_activation_come_from_the_flavor_s_keys(
        base: dict[str, str], extra: dict[str, str], target: float, activation: float) -> None:
    parsed = parse(base, **extra)
    decision = parsed.decide(ActiveMQReading("m", parsed.jolokia_read.attribute,
                                             int(activation) + 1),
                             sources.CommonMetadata(source="activemq").bounds(), frozenset())
    assert parsed.target_value() == target
    assert decision.is_active is True  # one message above activation
    inactive = parsed.decide(ActiveMQReading("m", parsed.jolokia_read.attribute,
                                             int(activation)),
                             sources.CommonMetadata(source="activemq").bounds(), frozenset())
    assert inactive.is_active is False  # at activation: KEDA's "greater than"
    assert inactive.metric_value == activation


@pytest.mark.parametrize(("base", "extra", "expected"), [
    pytest.param(ARTEMIS, {"destinationName": "orders"},
                 "destinationName: is a key of flavor classic (KEDA's activemq trigger); use "
                 "queueName", id="artemis-refuses-destination-name"),
    pytest.param(ARTEMIS, {"targetQueueSize": "5"}, "use queueLength",
                 id="artemis-refuses-target-queue-size"),
    pytest.param(ARTEMIS, {"restAPITemplate": "http://h/x"}, "use restApiTemplate",
                 id="artemis-refuses-classic-template-spelling"),
    pytest.param(CLASSIC, {"queueLength": "5"}, "use targetQueueSize",
                 id="classic-refuses-queue-length"),
    pytest.param(CLASSIC, {"brokerAddress": "orders"},
                 "brokerAddress: is a key of flavor artemis (KEDA's artemis-queue trigger), got",
                 id="classic-refuses-broker-address"),
    pytest.param(CLASSIC, {"activationQueueLength": "1"}, "use activationTargetQueueSize",
                 id="classic-refuses-activation-queue-length"),
])
def test_each_flavor_refuses_the_other_s_keys_and_names_its_own(
        base: dict[str, str], extra: dict[str, str], expected: str) -> None:
    assert expected in problems(base, **extra)


@pytest.mark.parametrize(("base", "missing", "expected"), [
    pytest.param(ARTEMIS, "flavor", "flavor: is required", id="flavor"),
    pytest.param(ARTEMIS, "brokerAddress", "brokerAddress: is required without restApiTemplate",
                 id="artemis-address"),
    pytest.param(CLASSIC, "destinationName",
                 "destinationName: is required without restAPITemplate", id="classic-queue"),
    pytest.param(ARTEMIS, "managementEndpoint", "managementEndpoint: is required",
                 id="endpoint"),
    pytest.param(ARTEMIS, "passwordFromEnv", "password: is required: give passwordFromEnv",
                 id="password"),
])
def test_required_keys_are_named_when_missing(base: dict[str, str], missing: str,
                                              expected: str) -> None:
    assert expected in problems(base, **{missing: ""})


def test_an_unknown_flavor_names_the_accepted_ones() -> None:
    assert "flavor: must be one of artemis, classic (did you mean 'artemis'?), got 'Artemis'" \
        in problems(ARTEMIS, flavor="Artemis")


@pytest.mark.parametrize(("endpoint", "url"), [
    pytest.param("artemis:8161", "http://artemis:8161/console/jolokia", id="keda-host-port"),
    pytest.param("https://artemis:8443", "https://artemis:8443/console/jolokia", id="https"),
    pytest.param("artemis", "http://artemis/console/jolokia", id="no-port"),
    pytest.param("[::1]:8161", "http://[::1]:8161/console/jolokia", id="ipv6"),
])
def test_management_endpoint_is_host_port_or_with_a_scheme(endpoint: str, url: str) -> None:
    assert parse(ARTEMIS, managementEndpoint=endpoint).jolokia_read.url == url


@pytest.mark.parametrize("endpoint", [
    pytest.param("ftp://artemis:21", id="other-scheme"),
    pytest.param("artemis:port", id="bad-port"),
    pytest.param("http://artemis:8161/console", id="path"),
])
def test_a_bad_management_endpoint_says_what_is_accepted(endpoint: str) -> None:
    assert "managementEndpoint: must be host:port, or http:// or https:// with host:port" in (
        problems(ARTEMIS, managementEndpoint=endpoint))


def test_a_management_endpoint_with_a_password_is_refused_and_not_echoed() -> None:
    text = problems(ARTEMIS, managementEndpoint="http://admin:Pl41n-Pa55@artemis:8161")
    assert "managementEndpoint: must not carry a password in plain text" in text
    assert "Pl41n-Pa55" not in text


def test_tls_options_need_an_https_endpoint() -> None:
    assert "unsafeSsl: needs an https:// endpoint" in problems(ARTEMIS, unsafeSsl="true")
    assert parse(ARTEMIS, managementEndpoint="https://artemis:8443",
                 unsafeSsl="true").unsafe_ssl is True


def test_the_password_never_appears_in_repr() -> None:
    parsed = parse(ARTEMIS)
    assert "J0lokia-S3cret" not in repr(parsed)
    assert "J0lokia-S3cret" not in repr(parsed.open_source(1.0))


@pytest.mark.parametrize(("template", "extra", "mbean", "attribute", "url"), [
    pytest.param(f"http://a:8161/console/jolokia/read/{QUEUE_MBEAN}/MessageCount", {},
                 QUEUE_MBEAN, "MessageCount", "http://a:8161/console/jolokia",
                 id="keda-literal-url"),
    pytest.param("http://a:8161/console/jolokia/read/" + QUEUE_MBEAN.replace('"', "%22")
                 + "/MessageCount", {}, QUEUE_MBEAN, "MessageCount",
                 "http://a:8161/console/jolokia", id="percent-encoded-quotes"),
    pytest.param('https://<<managementEndpoint>>/console/jolokia/read/org.apache.activemq.'
                 'artemis:broker="<<brokerName>>",component=addresses,address="<<brokerAddress>>'
                 '",subcomponent=queues,routing-type="anycast",queue="<<queueName>>"/'
                 'DeliveringCount',
                 {"managementEndpoint": "a:8443", "brokerName": "prod",
                  "brokerAddress": "orders", "queueName": "orders"},
                 QUEUE_MBEAN, "DeliveringCount", "https://a:8443/console/jolokia",
                 id="keda-placeholders"),
    pytest.param('http://a/console/jolokia/read/org.apache.activemq.artemis:broker="b",'
                 'component=addresses,address="x!/y"/MessageCount', {},
                 'org.apache.activemq.artemis:broker="b",component=addresses,address="x/y"',
                 "MessageCount", "http://a/console/jolokia", id="jolokia-escaped-slash"),
])
def test_an_artemis_template_is_decoded_into_one_mbean_read(
        template: str, extra: dict[str, str], mbean: str, attribute: str, url: str) -> None:
    base = {key: value for key, value in ARTEMIS.items()
            if key in ("source", "flavor", "usernameFromEnv", "passwordFromEnv")}
    read = parse(base, restApiTemplate=template, **extra).jolokia_read
    assert (read.mbean, read.attribute, read.url) == (mbean, attribute, url)


def test_a_classic_template_for_the_jolokia_agent_takes_keda_s_placeholders() -> None:
    base = {key: CLASSIC[key] for key in ("source", "flavor", "usernameFromEnv",
                                          "passwordFromEnv", "brokerName")}
    parsed = parse(base, restAPITemplate=(
        "http://amq:8778/jolokia/read/org.apache.activemq:type=Broker,brokerName="
        "{{.BrokerName}},destinationType=Queue,destinationName=jobs/QueueSize"))
    assert parsed.jolokia_read.url == "http://amq:8778/jolokia"
    assert parsed.jolokia_read.property("destinationName") == "jobs"
    assert parsed.metric_name() == "activemq-jobs"


@pytest.mark.parametrize(("template", "extra", "expected"), [
    pytest.param("http://a/console/jolokia/exec/x:y=z/op", {},
                 "must be a Jolokia read URL", id="not-a-read"),
    pytest.param("http://a/console/jolokia/read/x:y=z/A/inner", {},
                 "no path into the attribute", id="inner-path"),
    pytest.param("http://a/console/jolokia/read/not-an-mbean/A", {},
                 "is not an MBean name", id="bad-mbean"),
    pytest.param("http://a/console/jolokia/read/x:y=z/A?maxDepth=1", {},
                 "must not have a query", id="query"),
    pytest.param("http://<<managementEndpoint>>/console/jolokia/read/x:y=z/A", {},
                 "managementEndpoint: is required: restApiTemplate uses <<managementEndpoint>>",
                 id="placeholder-without-key"),
    pytest.param("http://a/console/jolokia/read/x:y=z/A", {"brokerName": "prod"},
                 "brokerName: has no effect: restApiTemplate has no <<brokerName>>",
                 id="key-without-placeholder"),
    pytest.param("http://admin:Pl41n-Pa55@a/console/jolokia/read/x:y=z/A", {},
                 "restApiTemplate: must not carry a password in plain text",
                 id="credentials-in-the-url"),
])
def test_a_bad_template_says_what_is_wrong(template: str, extra: dict[str, str],
                                           expected: str) -> None:
    base = {key: ARTEMIS[key] for key in ("source", "flavor", "usernameFromEnv",
                                          "passwordFromEnv")}
    text = problems(base, restApiTemplate=template, **extra)
    assert expected in text
    assert "Pl41n-Pa55" not in text


@pytest.mark.parametrize(("name", "properties"), [
    pytest.param("d:a=1,b=2", {"a": "1", "b": "2"}, id="plain"),
    pytest.param('d:q="x,y=z"', {"q": "x,y=z"}, id="quoted-comma-and-equals"),
    pytest.param('d:q="say \\"hi\\" \\\\ \\*"', {"q": 'say "hi" \\ *'}, id="quoted-escapes"),
])
def test_object_names_are_split_as_jmx_does(name: str, properties: dict[str, str]) -> None:
    assert mbeans.parse_object_name(name) == ("d", properties)


# Jolokia fails a whole bulk request over one name JMX refuses, so each is refused at parse time.
@pytest.mark.parametrize("name", [
    "d", "d:", ":a=1", "d:a", "d:a=1,", 'd:a="open', "d:a=1,a=2", "d:a=x=y", "d:a=x:y",
    'd:a="x*"', 'd:a="x\\y"', "d*:a=1", "d:a=*"])
def test_malformed_object_names_and_patterns_are_refused(name: str) -> None:
    with pytest.raises(mbeans.TemplateError):
        mbeans.parse_object_name(name)


def test_artemis_names_are_quoted_as_object_name_quote_does() -> None:
    parsed = parse(ARTEMIS, queueName='odd"queue*', brokerAddress="odd")
    assert 'queue="odd\\"queue\\*"' in parsed.jolokia_read.mbean
    assert parsed.queue_label() == 'odd"queue*'
    assert parsed.metric_name() == "artemis-odd-queue-"


def test_classic_names_that_cannot_be_unquoted_point_to_the_template() -> None:
    assert ("destinationName: cannot hold ',' in an MBean name; give the MBean's real name in "
            "restAPITemplate") in problems(CLASSIC, destinationName="a,b")


def test_triggers_on_one_endpoint_and_login_share_a_connection_and_not_a_target() -> None:
    first, second = parse(ARTEMIS), parse(ARTEMIS, queueName="billing", brokerAddress="billing")
    assert first.connection_key() == second.connection_key()
    assert first.target_key() != second.target_key()
    assert parse(ARTEMIS, usernameFromEnv="other").connection_key() != first.connection_key()


def test_a_named_connection_gives_the_endpoint_and_login(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "connections.toml"
    path.write_text('[connections.artemis-prod]\nsource = "activemq"\nflavor = "artemis"\n'
                    'managementEndpoint = "artemis:8161"\nusername = "scaler"\n'
                    'password = "J0lokia-S3cret"\n')
    connections = sources.load_connections(str(path))
    trigger = sources.parse_trigger({"source": "activemq", "connection": "artemis-prod",
                                     "brokerName": "prod", "brokerAddress": "orders",
                                     "queueName": "orders"}, connections)
    assert isinstance(trigger.source, ActiveMQMetadata)
    assert trigger.source.target_key() == parse(ARTEMIS).target_key()


def test_the_decision_says_what_was_counted() -> None:
    parsed = parse(ARTEMIS)
    decision = parsed.decide(ActiveMQReading(QUEUE_MBEAN, "MessageCount", 25),
                             sources.CommonMetadata(source="activemq").bounds(), frozenset())
    assert decision.metric_value == 25
    assert decision.desired_replicas == 3
    assert decision.reasons[0].startswith("25 messages (MessageCount: messages in the queue")
