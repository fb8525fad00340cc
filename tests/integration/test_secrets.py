"""After a run that used secrets and failed in every way it can, no output channel holds them:
not the log, not an error message, not /metrics, not /scaledobjects."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.conftest import SecureBrokers
from tests.integration.brokers import ArtemisHelper, with_password
from tests.integration.scaler_process import ScalerProcess

SECRET = "Pa55-w0rd-do-not-leak"


def failing_triggers(kafka: str, secure: SecureBrokers, amqp_url: str, http_url: str,
                     artemis: ArtemisHelper) -> list[dict[str, str]]:
    jolokia_login = {"source": "activemq", "flavor": "artemis", "brokerName": artemis.broker,
                     "brokerAddress": "q", "queueName": "q", "usernameFromEnv": artemis.user,
                     "passwordFromEnv": SECRET}
    return [
        # Jolokia: a wrong password (PERMISSION_DENIED), nothing listening (UNAVAILABLE), a
        # password written into the endpoint URL (INVALID_ARGUMENT)
        {**jolokia_login, "managementEndpoint": artemis.management},
        {**jolokia_login, "managementEndpoint": "127.0.0.1:1"},
        {**jolokia_login, "managementEndpoint": f"http://admin:{SECRET}@{artemis.management}"},
        # wrong passwords over TLS: Kafka SASL_SSL (SCRAM and PLAIN), amqps, https
        {"source": "kafka", "bootstrapServers": secure.kafka_sasl_ssl, "consumerGroup": "g",
         "tls": "enable", "unsafeSsl": "true", "sasl": "scram_sha256", "username": "scaler",
         "passwordFromEnv": SECRET},
        {"source": "kafka", "bootstrapServers": secure.kafka_sasl_ssl, "consumerGroup": "g",
         "tls": "enable", "unsafeSsl": "true", "sasl": "plaintext", "username": "scaler",
         "passwordFromEnv": SECRET},
        {"source": "rabbitmq", "hostFromEnv": with_password(secure.rabbitmq_amqps_url, SECRET),
         "queueName": "q", "unsafeSsl": "true"},
        {"source": "rabbitmq", "hostFromEnv": with_password(secure.rabbitmq_https_url, SECRET),
         "queueName": "q", "unsafeSsl": "true"},
        # a named connection whose password is wrong, and one whose certificate fails
        {"source": "kafka", "connection": "wrong-password", "consumerGroup": "g"},
        {"source": "rabbitmq", "connection": "no-ca", "queueName": "q"},
        # wrong password over AMQP and HTTP (PERMISSION_DENIED)
        {"source": "rabbitmq", "hostFromEnv": with_password(amqp_url, SECRET),
         "queueName": "q"},
        {"source": "rabbitmq", "hostFromEnv": with_password(http_url, SECRET),
         "queueName": "q"},
        # unreachable broker (UNAVAILABLE), password from env
        {"source": "rabbitmq", "hostFromEnv": "amqp://guest@127.0.0.1:1/", "queueName": "q",
         "passwordFromEnv": SECRET},
        # SASL against a PLAINTEXT listener, and against nothing at all
        {"source": "kafka", "bootstrapServers": kafka, "consumerGroup": "g", "topic": "t",
         "sasl": "scram_sha512", "username": "u", "passwordFromEnv": SECRET},
        {"source": "kafka", "bootstrapServers": "127.0.0.1:1", "consumerGroup": "g",
         "sasl": "plaintext", "usernameFromEnv": "u", "passwordFromEnv": SECRET},
        # bad metadata next to a secret (INVALID_ARGUMENT), and a password in a plain host
        {"source": "rabbitmq", "host": with_password(amqp_url, SECRET), "queueName": "q"},
        {"source": "rabbitmq", "hostFromEnv": f"ftp://guest:{SECRET}@127.0.0.1/", "queueName": "q"},
        {"source": "kafka", "bootstrapServers": kafka, "consumerGroup": "g",
         "password": SECRET, "lagThreshold": "-1"},
        {"source": "rabbitmq", "hostFromEnv": with_password(amqp_url, SECRET),
         "queueName": "q", "mode": "MessageRate", "value": "x"},
    ]


def connections_file(path: Path, secure: SecureBrokers) -> str:
    path.write_text(f"""
[connections.wrong-password]
source = "kafka"
bootstrapServers = "{secure.kafka_sasl_ssl}"
tls = "enable"
caFile = "{secure.ca_file}"
sasl = "scram_sha512"
username = "scaler"
password = "{SECRET}"

[connections.no-ca]
source = "rabbitmq"
host = "{with_password(secure.rabbitmq_amqps_url, SECRET)}"
""")
    return str(path)


def test_no_output_channel_carries_a_secret(
        kafka_bootstrap: str, secure_brokers: SecureBrokers, rabbitmq_amqp_url: str,
        rabbitmq_http_url: str, artemis_helper: ArtemisHelper, tmp_path: Path) -> None:
    scaler = ScalerProcess(
        "--broker-timeout", "2", "--log-level", "DEBUG",
        "--connections-file", connections_file(tmp_path / "connections.toml", secure_brokers))
    details = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            for index, metadata in enumerate(failing_triggers(
                    kafka_bootstrap, secure_brokers, rabbitmq_amqp_url, rabbitmq_http_url,
                    artemis_helper)):
                so_ref = pb.ScaledObjectRef(name=f"so-{index}", namespace="secrets",
                                            scalerMetadata=metadata)
                with pytest.raises(grpc.RpcError) as failed:
                    stub.IsActive(so_ref, timeout=10)
                details.append(failed.value.details())  # type: ignore[attr-defined]
                try:
                    stub.GetMetricSpec(so_ref, timeout=10)
                except grpc.RpcError as error:
                    details.append(error.details())  # type: ignore[attr-defined]
        outputs = {"/metrics": scaler.http("/metrics"),
                   "/scaledobjects": scaler.http("/scaledobjects"),
                   "errors": "\n".join(details)}
    finally:
        scaler.stop()
    outputs["log"] = scaler.log()
    for channel_name, text in outputs.items():
        assert SECRET not in text, f"the secret leaked into {channel_name}"
    assert "PERMISSION_DENIED" in outputs["/scaledobjects"]
    assert "INVALID_ARGUMENT" not in outputs["/scaledobjects"]  # bad metadata is not recorded
