"""The HTTP port: Prometheus metrics after real RPCs, health and readiness."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scaler import app
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.brokers import RabbitMQHelper


def get(scaler: app.App, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{scaler.http.port}{path}",
                                    timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
async def one_good_one_broken(stub: pb_grpc.ExternalScalerStub, rabbitmq_helper: RabbitMQHelper,
                              unique_name: Callable[[str], str]) -> str:
    """shop/mailer reads a queue of 45 messages (GetMetrics); shop/broken has a password and
    an unreachable broker (IsActive fails). Returns the queue's name."""
    queue = rabbitmq_helper.declare(unique_name("jobs"))
    rabbitmq_helper.publish(queue, 45)
    so_ref = pb.ScaledObjectRef(name="mailer", namespace="shop", scalerMetadata={
        "source": "rabbitmq", "hostFromEnv": rabbitmq_helper.amqp_url, "queueName": queue})
    await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=so_ref,
                                               metricName=f"rabbitmq-{queue}"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.IsActive(pb.ScaledObjectRef(name="broken", namespace="shop", scalerMetadata={
            "source": "rabbitmq", "hostFromEnv": "amqp://guest:Sup3rSecret@127.0.0.1:1/",
            "queueName": queue}))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetMetricSpec(pb.ScaledObjectRef(name="typo", namespace="shop",
                                                    scalerMetadata={
            "source": "rabbitmq", "hostFromEnv": rabbitmq_helper.amqp_url, "queueName": queue,
            "queueLenght": "5"}))
    return queue


async def test_metrics_follow_the_last_decision_and_carry_no_secrets(
        scaler: app.App, one_good_one_broken: str) -> None:
    queue = one_good_one_broken

    status, text = get(scaler, "/metrics")

    assert status == 200
    values = samples(text)
    labels = frozenset({("namespace", "shop"), ("scaled_object", "mailer"),
                        ("source", "rabbitmq")})
    assert values[("queue_scaler_metric_value", labels)] == 45
    assert values[("queue_scaler_desired_replicas", labels)] == 3  # ceil(45 / 20)
    assert values[("queue_scaler_active", labels)] == 1
    assert values[("queue_scaler_target_per_replica", labels)] == 20
    # Which ScaledObjects are answered with an error, and with which code; none for mailer.
    failing = {dict(labels)["scaled_object"]: dict(labels) for (name, labels), value
               in values.items() if name == "queue_scaler_answer_error" and value == 1}
    assert failing == {
        "broken": {"namespace": "shop", "scaled_object": "broken", "source": "rabbitmq",
                   "code": "UNAVAILABLE"},
        "typo": {"namespace": "shop", "scaled_object": "typo", "source": "rabbitmq",
                 "code": "INVALID_ARGUMENT"}}
    assert not [name for name, _ in values if name == "queue_scaler_answer_stale"]
    assert values[("process_resident_memory_bytes", frozenset())] > 0
    ok = frozenset({("method", "GetMetrics"), ("code", "OK")})
    assert values[("queue_scaler_grpc_requests_total", ok)] == 1
    unavailable = frozenset({("method", "IsActive"), ("code", "UNAVAILABLE")})
    assert values[("queue_scaler_grpc_requests_total", unavailable)] == 1
    failed_read = frozenset({("source", "rabbitmq"), ("outcome", "unavailable")})
    assert values[("queue_scaler_source_reads_total", failed_read)] == 1
    for secret_or_host in ("Sup3rSecret", "guest", "127.0.0.1", queue):
        assert secret_or_host not in text


async def test_health_and_readiness(scaler: app.App) -> None:
    assert get(scaler, "/healthz") == (200, "ok\n")
    assert get(scaler, "/readyz") == (200, "ready\n")
    await scaler.begin_shutdown()
    assert get(scaler, "/readyz")[0] == 503


async def test_scaledobjects_explain_each_decision_and_error_without_secrets(
        scaler: app.App, one_good_one_broken: str) -> None:
    queue = one_good_one_broken

    status, text = get(scaler, "/scaledobjects/shop/mailer")
    all_status, all_text = get(scaler, "/scaledobjects")
    missing_status, _ = get(scaler, "/scaledobjects/shop/nobody")

    assert (status, all_status, missing_status) == (200, 200, 404)
    [mailer] = json.loads(text)["triggers"]
    assert mailer["metricName"] == f"rabbitmq-{queue}"
    assert mailer["metricValue"] == 45
    assert mailer["desiredReplicas"] == 3
    assert mailer["reading"]["queues"][0]["ready"] == 45
    assert any("ready only" in reason for reason in mailer["reasons"])
    broken = [e for e in json.loads(all_text)["scaledObjects"] if e["name"] == "broken"]
    assert broken[0]["code"] == "UNAVAILABLE"
    assert "Sup3rSecret" not in all_text
