"""The real gRPC server, driven through a stub generated from protos/, against real brokers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from scaler import app
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.brokers import KafkaHelper, RabbitMQHelper, wait_until, with_password


def ref(**metadata: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name="worker", namespace="default", scalerMetadata=metadata)


async def metric_value(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef
                       ) -> pb.MetricValue:
    spec = await stub.GetMetricSpec(so_ref)
    name = spec.metricSpecs[0].metricName
    reply = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=so_ref, metricName=name))
    [value] = reply.metricValues
    return value


async def status_of(call: asyncio.Future[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code()


async def test_kafka_lag_is_produced_minus_committed_and_activity_follows_activation(
        stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        unique_name: Callable[[str], str]) -> None:
    topic = kafka_helper.create_topic(unique_name("orders"), partitions=3)
    group = unique_name("workers")
    kafka_helper.produce_round_robin(topic, [10, 10, 10])  # N = 30
    kafka_helper.commit(group, topic, {0: 4, 1: 5, 2: 6})  # M = 15
    metadata = dict(source="kafka", bootstrapServers=kafka_helper.bootstrap,
                    consumerGroup=group, topic=topic)

    value = await metric_value(stub, ref(**metadata))

    assert value.metricValueFloat == 15.0
    assert value.metricValue == 15
    assert (await stub.IsActive(ref(**metadata, activationLagThreshold="15"))).result is False
    assert (await stub.IsActive(ref(**metadata, activationLagThreshold="14"))).result is True


async def test_metric_spec_reports_keda_metric_name_and_both_target_fields(
        stub: pb_grpc.ExternalScalerStub) -> None:
    reply = await stub.GetMetricSpec(ref(
        source="kafka", bootstrapServers="127.0.0.1:1", consumerGroup="g",
        topic="orders.eu", lagThreshold="50"))

    [spec] = reply.metricSpecs
    assert spec.metricName == "kafka-orders-eu"
    assert spec.targetSize == 50
    assert spec.targetSizeFloat == 50.0


async def test_get_metrics_matches_metric_name_case_insensitively(
        stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        unique_name: Callable[[str], str]) -> None:
    topic = kafka_helper.create_topic(unique_name("Orders"), partitions=1)
    kafka_helper.produce(topic, 4)
    so_ref = ref(source="kafka", bootstrapServers=kafka_helper.bootstrap,
                 consumerGroup=unique_name("g"), topic=topic, offsetResetPolicy="earliest")

    reply = await stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=so_ref, metricName=f"KAFKA-{topic.upper()}"))

    assert reply.metricValues[0].metricValueFloat == 4.0


async def test_get_metrics_with_another_metric_name_is_invalid_argument(
        stub: pb_grpc.ExternalScalerStub) -> None:
    so_ref = ref(source="kafka", bootstrapServers="127.0.0.1:1", consumerGroup="g", topic="a")
    code = await status_of(stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=so_ref, metricName="kafka-b")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT


async def test_rabbitmq_depth_over_amqp_and_http(
        stub: pb_grpc.ExternalScalerStub, rabbitmq_helper: RabbitMQHelper,
        unique_name: Callable[[str], str]) -> None:
    queue = rabbitmq_helper.declare(unique_name("jobs"))
    rabbitmq_helper.publish(queue, 7)

    over_amqp = await metric_value(stub, ref(
        source="rabbitmq", hostFromEnv=rabbitmq_helper.amqp_url, queueName=queue))
    # The management API's counters refresh on the broker's statistics interval.
    wait_until(lambda: rabbitmq_helper.api_messages(queue) == 7, "the management API to count 7")
    over_http = await metric_value(stub, ref(
        source="rabbitmq", hostFromEnv=rabbitmq_helper.http_url, queueName=queue))

    assert over_amqp.metricValueFloat == 7.0
    assert over_http.metricValueFloat == 7.0
    rabbitmq_helper.delete(queue)


async def test_bad_metadata_lists_every_problem_in_one_invalid_argument(
        stub: pb_grpc.ExternalScalerStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetMetrics(pb.GetMetricsRequest(
            scaledObjectRef=ref(source="kafka", consumerGroup="g", lagThreshold="-1",
                                offsetResetPolicy="newest", lagTreshold="5"),
            metricName="kafka-g-topics"))

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = raised.value.details()
    assert "bootstrapServers: is required" in details
    assert "lagThreshold: must be a whole number of at least 1, got '-1'" in details
    assert "offsetResetPolicy: must be one of latest, earliest, got 'newest'" in details
    assert "lagTreshold: is not a known key (did you mean 'lagThreshold'?)" in details


@pytest.mark.parametrize("method", ["IsActive", "GetMetrics"])
async def test_unreachable_kafka_is_unavailable_never_zero_or_inactive(
        stub: pb_grpc.ExternalScalerStub, method: str) -> None:
    so_ref = ref(source="kafka", bootstrapServers="127.0.0.1:1", consumerGroup="g",
                 topic="orders")
    call = stub.IsActive(so_ref) if method == "IsActive" else stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=so_ref, metricName="kafka-orders"))
    assert await status_of(call) is grpc.StatusCode.UNAVAILABLE


async def test_unreachable_rabbitmq_is_unavailable(stub: pb_grpc.ExternalScalerStub) -> None:
    so_ref = ref(source="rabbitmq", hostFromEnv="amqp://guest:guest@127.0.0.1:1/", queueName="q")
    assert await status_of(stub.IsActive(so_ref)) is grpc.StatusCode.UNAVAILABLE


async def test_missing_topic_is_not_found(stub: pb_grpc.ExternalScalerStub,
                                          kafka_helper: KafkaHelper,
                                          unique_name: Callable[[str], str]) -> None:
    so_ref = ref(source="kafka", bootstrapServers=kafka_helper.bootstrap,
                 consumerGroup="g", topic=unique_name("absent"))
    assert await status_of(stub.IsActive(so_ref)) is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("url_fixture", ["rabbitmq_amqp_url", "rabbitmq_http_url"])
async def test_missing_queue_is_not_found(stub: pb_grpc.ExternalScalerStub,
                                          request: pytest.FixtureRequest, url_fixture: str,
                                          unique_name: Callable[[str], str]) -> None:
    so_ref = ref(source="rabbitmq", hostFromEnv=request.getfixturevalue(url_fixture),
                 queueName=unique_name("absent"))
    assert await status_of(stub.IsActive(so_ref)) is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("scheme", ["amqp", "http"])
async def test_wrong_rabbitmq_password_is_permission_denied_without_the_password(
        stub: pb_grpc.ExternalScalerStub, scheme: str, rabbitmq_amqp_url: str,
        rabbitmq_http_url: str) -> None:
    url = rabbitmq_amqp_url if scheme == "amqp" else rabbitmq_http_url
    so_ref = ref(source="rabbitmq", hostFromEnv=with_password(url, "Wr0ngSecret"), queueName="q")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.IsActive(so_ref)
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "Wr0ngSecret" not in (raised.value.details() or "")


async def test_stream_is_active_sends_true_when_messages_arrive(
        stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        unique_name: Callable[[str], str]) -> None:
    topic = kafka_helper.create_topic(unique_name("wake"), partitions=1)
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0})
    stream = stub.StreamIsActive(ref(source="kafka", bootstrapServers=kafka_helper.bootstrap,
                                     consumerGroup=group, topic=topic))
    first = asyncio.ensure_future(stream.read())
    # Inactive: nothing may arrive (the scaler never sends false).
    done, _ = await asyncio.wait({first}, timeout=1.0)
    assert not done

    kafka_helper.produce(topic, 1)

    message = await asyncio.wait_for(first, timeout=20)
    assert message.result is True
    stream.cancel()


async def test_health_is_serving_and_reflection_lists_the_scaler(
        channel: grpc.aio.Channel) -> None:
    health = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="externalscaler.ExternalScaler"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = [s.name async for reply in replies for s in reply.list_services_response.service]
    assert "externalscaler.ExternalScaler" in names


async def test_stop_turns_health_not_serving(scaler: app.App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.ensure_future(scaler.stop())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping
