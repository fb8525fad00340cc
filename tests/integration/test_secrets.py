"""After a run that used secrets and failed in every way it can, no output channel holds them:
not the log, not an error message, not /metrics, not /scaledobjects."""

from __future__ import annotations

import grpc
import pytest

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.scaler_process import ScalerProcess

SECRET = "Pa55-w0rd-do-not-leak"


def failing_triggers(kafka: str) -> list[dict[str, str]]:
    return [
        # wrong password over AMQP and HTTP (PERMISSION_DENIED)
        {"source": "rabbitmq", "host": f"amqp://guest:{SECRET}@127.0.0.1:5672/", "queueName": "q"},
        {"source": "rabbitmq", "host": f"http://guest:{SECRET}@127.0.0.1:15672/", "queueName": "q"},
        # unreachable broker (UNAVAILABLE), password from env
        {"source": "rabbitmq", "host": "amqp://guest@127.0.0.1:1/", "queueName": "q",
         "passwordFromEnv": SECRET},
        # SASL against a PLAINTEXT listener, and against nothing at all
        {"source": "kafka", "bootstrapServers": kafka, "consumerGroup": "g", "topic": "t",
         "sasl": "scram_sha512", "username": "u", "password": SECRET},
        {"source": "kafka", "bootstrapServers": "127.0.0.1:1", "consumerGroup": "g",
         "sasl": "plaintext", "usernameFromEnv": "u", "passwordFromEnv": SECRET},
        # bad metadata next to a secret (INVALID_ARGUMENT)
        {"source": "rabbitmq", "host": f"ftp://guest:{SECRET}@127.0.0.1/", "queueName": "q"},
        {"source": "kafka", "bootstrapServers": kafka, "consumerGroup": "g",
         "password": SECRET, "lagThreshold": "-1"},
        {"source": "rabbitmq", "host": f"amqp://guest:{SECRET}@127.0.0.1:5672/",
         "queueName": "q", "mode": "MessageRate", "value": "x"},
    ]


def test_no_output_channel_carries_a_secret(kafka_bootstrap: str) -> None:
    scaler = ScalerProcess("--broker-timeout", "2", "--log-level", "DEBUG")
    details = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            for index, metadata in enumerate(failing_triggers(kafka_bootstrap)):
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
