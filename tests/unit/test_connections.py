"""Named connections: the scaler's own file of broker addresses, credentials and CA files, and
how a trigger's `connection: <name>` fills them in."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import pytest

from scaler import cli, sources
from scaler.errors import MetadataErrors
from scaler.sources.kafka import KafkaMetadata
from scaler.sources.rabbitmq import RabbitMQMetadata

PASSWORD = "hunter2-connection-secret"
# Any PEM CA bundle will do for parsing; the system's is always there where Python has TLS.
SYSTEM_CA = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    shutil.copy(SYSTEM_CA, path)
    return str(path)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "connections.toml"
    path.write_text(text)
    return str(path)


def good_file(tmp_path: Path, ca_file: str) -> str:
    return write(tmp_path, f"""
[connections.kafka-prod]
source = "kafka"
bootstrapServers = "k1:9093,k2:9093"
tls = "enable"
caFile = "{ca_file}"
sasl = "scram_sha512"
username = "scaler"
password = "{PASSWORD}"

[connections.rabbit]
source = "rabbitmq"
host = "amqps://app:{PASSWORD}@rabbit:5671/prod"
unsafeSsl = true
""")


def test_a_trigger_gets_the_connections_keys(tmp_path: Path, ca_file: str) -> None:
    connections = sources.load_connections(good_file(tmp_path, ca_file))
    trigger = sources.parse_trigger(
        {"source": "kafka", "connection": "kafka-prod", "consumerGroup": "workers"}, connections)
    assert isinstance(trigger.source, KafkaMetadata)
    assert trigger.source.bootstrap_servers == ("k1:9093", "k2:9093")
    assert (trigger.source.tls, trigger.source.ca_file) == ("enable", ca_file)
    assert (trigger.source.sasl, trigger.source.password) == ("scram_sha512", PASSWORD)

    rabbit = sources.parse_trigger(
        {"source": "rabbitmq", "connection": "rabbit", "queueName": "orders"}, connections)
    assert isinstance(rabbit.source, RabbitMQMetadata)
    assert rabbit.source.unsafe_ssl
    assert rabbit.source.vhost == "prod"


def test_the_connection_name_may_come_from_the_environment(tmp_path: Path, ca_file: str
                                                          ) -> None:
    connections = sources.load_connections(good_file(tmp_path, ca_file))
    trigger = sources.parse_trigger(
        {"source": "rabbitmq", "connectionFromEnv": "rabbit", "queueName": "orders"},
        connections)
    assert isinstance(trigger.source, RabbitMQMetadata)
    assert trigger.source.vhost == "prod"


def test_connections_never_show_their_values(tmp_path: Path, ca_file: str) -> None:
    connections = sources.load_connections(good_file(tmp_path, ca_file))
    assert PASSWORD not in repr(connections)
    assert PASSWORD not in repr(connections.by_name["rabbit"])
    trigger = sources.parse_trigger(
        {"source": "rabbitmq", "connection": "rabbit", "queueName": "orders"}, connections)
    assert PASSWORD not in repr(trigger)


def problems(metadata: dict[str, str], connections: sources.Connections) -> str:
    with pytest.raises(MetadataErrors) as raised:
        sources.parse_trigger(metadata, connections)
    return str(raised.value)


def test_an_unknown_connection_lists_the_known_names(tmp_path: Path, ca_file: str) -> None:
    connections = sources.load_connections(good_file(tmp_path, ca_file))
    text = problems({"source": "kafka", "connection": "kafka-prd", "consumerGroup": "g"},
                    connections)
    assert "connection" in text
    assert "kafka-prod, rabbit" in text
    # Without a file the message says there is none, and how to give one.
    text = problems({"source": "kafka", "connection": "kafka-prod", "consumerGroup": "g"},
                    sources.NO_CONNECTIONS)
    assert "--connections-file" in text


def test_a_connection_of_another_source_is_refused(tmp_path: Path, ca_file: str) -> None:
    connections = sources.load_connections(good_file(tmp_path, ca_file))
    text = problems({"source": "kafka", "connection": "rabbit", "consumerGroup": "g"},
                    connections)
    assert "is a rabbitmq connection; this trigger's source is kafka" in text


def test_a_key_set_by_the_connection_cannot_be_set_again(tmp_path: Path, ca_file: str) -> None:
    connections = sources.load_connections(good_file(tmp_path, ca_file))
    text = problems({"source": "kafka", "connection": "kafka-prod", "consumerGroup": "g",
                     "bootstrapServers": "other:9092", "passwordFromEnv": "x"}, connections)
    assert "bootstrapServers: " in text
    assert "password: " in text
    assert "is set by connection 'kafka-prod'" in text


def test_ca_file_only_in_a_named_connection(ca_file: str) -> None:
    text = problems({"source": "kafka", "bootstrapServers": "k:9093", "consumerGroup": "g",
                     "tls": "enable", "caFile": ca_file}, sources.NO_CONNECTIONS)
    assert "caFile" in text
    assert "can only be set in a named connection" in text


@pytest.mark.parametrize(("body", "expected"), [
    ('[connections.a]\nsource = "kafka"\nbootstrapServer = "k:9092"\n',
     "'bootstrapServer' is not a kafka connection key (did you mean 'bootstrapServers'?)"),
    ('[connections.a]\nsource = "kafka"\nconsumerGroup = "g"\n',
     "'consumerGroup' is not a kafka connection key"),
    ('[connections.a]\nsource = "kafak"\n', "connection 'a': source must be one of kafka, "
     "rabbitmq"),
    ('[connections.a]\nsource = "kafka"\ntls = "yes"\n',
     "connection 'a': tls must be one of enable, disable"),
    ('[connections.a]\nsource = "kafka"\ntls = "enable"\ncaFile = "/nonexistent/ca.pem"\n',
     "caFile '/nonexistent/ca.pem' cannot be read"),
    ('[connections.a]\nsource = "rabbitmq"\nhost = ["x"]\n',
     "host must be a string, a boolean or a whole number"),
    ("[connections.a\n", "is not valid TOML"),
    ('[connection.a]\nsource = "kafka"\n', "unknown top-level keys ['connection']"),
])
def test_a_bad_file_names_the_connection_and_key(tmp_path: Path, body: str, expected: str,
                                                 ) -> None:
    with pytest.raises(sources.ConnectionsFileError) as raised:
        sources.load_connections(write(tmp_path, body))
    assert expected in str(raised.value)


def test_a_ca_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    path = write(tmp_path, f'[connections.a]\nsource = "kafka"\ncaFile = "{not_pem}"\n')
    with pytest.raises(sources.ConnectionsFileError, match="holds no PEM certificate"):
        sources.load_connections(path)


def test_a_bad_value_error_never_shows_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path, f'[connections.a]\nsource = "rabbitmq"\n'
                 f'host = "ftp://app:{PASSWORD}@rabbit/"\n')
    with pytest.raises(sources.ConnectionsFileError) as raised:
        sources.load_connections(path)
    assert "host" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_the_cli_exits_2_on_a_bad_connections_file(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[connections.a]\nsource = "kafka"\nsasl = "kerberos"\n')
    with pytest.raises(SystemExit) as raised:
        cli.main(["check", "--connections-file", path, "--metadata", "source=kafka"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--connections-file" in err
    assert "connection 'a': sasl must be one of none, plaintext, scram_sha256, scram_sha512" in err
