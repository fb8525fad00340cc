"""Faults against the real brokers: a killed and restarted Kafka, a listener that never
answers, a topic deleted under one ScaledObject, a stopped and a killed RabbitMQ, a killed
Artemis. Throughout,
an answer is the last good value (within the staleness bound) or an error: never 0, never
inactive."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import grpc
import pytest

from scaler import app, errors, sources
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.settings import Settings
from tests.integration.brokers import ArtemisHelper, KafkaHelper, RabbitMQHelper
from tests.testbed.artemis import Artemis
from tests.testbed.kafka import Kafka
from tests.testbed.rabbitmq import RabbitMQ

Names = Callable[[str], str]


@pytest.fixture
def scaler_settings() -> Settings:
    return Settings(grpc_address="127.0.0.1:0", http_address="127.0.0.1:0",
                    poll_interval_s=0.5, max_data_age_s=1.0, stale_after_s=60.0,
                    broker_timeout_s=2.0, shutdown_grace_s=1.0)


def ref(name: str, **metadata: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace="faults", scalerMetadata=metadata)


async def value_or_code(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef,
                        metric: str) -> float | grpc.StatusCode:
    try:
        reply = await stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=so_ref, metricName=metric), timeout=3)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return reply.metricValues[0].metricValueFloat


async def wait_for_value(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef,
                         metric: str, expected: float, timeout_s: float = 60.0
                         ) -> float | grpc.StatusCode:
    """Polls GetMetrics until it says `expected` (fresh data after a fault) or time runs out;
    returns the last answer."""
    deadline = time.monotonic() + timeout_s
    answer = await value_or_code(stub, so_ref, metric)
    while answer != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        answer = await value_or_code(stub, so_ref, metric)
    return answer


async def wait_for_answers(stub: pb_grpc.ExternalScalerStub,
                           calls: list[tuple[pb.ScaledObjectRef, str]],
                           expected: list[float | grpc.StatusCode], timeout_s: float = 30.0,
                           ) -> list[float | grpc.StatusCode]:
    """Polls GetMetrics for every (ScaledObject, metric) until the answers are `expected` or
    time runs out; returns the last answers."""
    deadline = time.monotonic() + timeout_s
    answers = [await value_or_code(stub, so_ref, metric) for so_ref, metric in calls]
    while answers != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        answers = [await value_or_code(stub, so_ref, metric) for so_ref, metric in calls]
    return answers


async def active_or_code(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef
                         ) -> bool | grpc.StatusCode:
    try:
        return (await stub.IsActive(so_ref, timeout=3)).result
    except grpc.aio.AioRpcError as error:
        return error.code()


async def test_killed_kafka_never_reads_as_zero_and_recovers(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        kafka_service: Kafka, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"))
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
    kafka_helper.produce_round_robin(topic, [1, 1, 1])
    so_ref = ref("orders", source="kafka", bootstrapServers=kafka_helper.bootstrap,
                 consumerGroup=group, topic=topic)
    metric = f"kafka-{topic}"
    assert await value_or_code(stub, so_ref, metric) == 3

    await asyncio.to_thread(kafka_service.kill)
    during = []
    for _ in range(20):  # about 5 s of outage, polled the way KEDA and the HPA would
        during.append(await value_or_code(stub, so_ref, metric))
        during.append(await active_or_code(stub, so_ref))
        await asyncio.sleep(0.25)
    await asyncio.to_thread(kafka_service.up)
    kafka_helper.produce(topic, 2, partition=0)
    after = await wait_for_value(stub, so_ref, metric, 5)

    assert set(during) <= {3.0, True, grpc.StatusCode.UNAVAILABLE}, during
    assert 0 not in during
    assert False not in during
    assert after == 5


async def test_black_hole_broker_is_bounded_and_does_not_slow_others(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        unique_name: Names) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(100)  # the kernel accepts connections; nobody ever reads or answers
    try:
        hole_address = f"127.0.0.1:{hole.getsockname()[1]}"
        topic = kafka_helper.create_topic(unique_name("t"))
        healthy = ref("healthy", source="kafka", bootstrapServers=kafka_helper.bootstrap,
                      consumerGroup=unique_name("g"), topic=topic)
        assert await active_or_code(stub, healthy) is True  # latest, no commits: 1 each

        stuck = [ref(f"stuck-{kind}", **metadata) for kind, metadata in (
            ("kafka", {"source": "kafka", "bootstrapServers": hole_address,
                       "consumerGroup": "g", "topic": "t"}),
            ("amqp", {"source": "rabbitmq", "hostFromEnv": f"amqp://u:p@{hole_address}/",
                      "queueName": "q"}),
            ("http", {"source": "rabbitmq", "hostFromEnv": f"http://u:p@{hole_address}/",
                      "queueName": "q"}),
            ("jolokia", {"source": "activemq", "flavor": "artemis",
                         "managementEndpoint": hole_address, "brokerName": "b",
                         "brokerAddress": "q", "queueName": "q", "usernameFromEnv": "u",
                         "passwordFromEnv": "p"}))]
        stuck_calls = [asyncio.ensure_future(active_or_code(stub, so_ref)) for so_ref in stuck]
        await asyncio.sleep(0.5)  # the stuck reads are now in flight
        healthy_answers = [await active_or_code(stub, healthy) for _ in range(10)]
        stuck_answers = await asyncio.gather(*stuck_calls)
    finally:
        hole.close()

    # Within the 3 s RPC deadline (KEDA's budget) the stuck ones say UNAVAILABLE, not
    # DEADLINE_EXCEEDED, and the healthy one kept answering meanwhile.
    assert stuck_answers == [grpc.StatusCode.UNAVAILABLE] * 4
    assert healthy_answers == [True] * 10


def amqp_read_failure(port: int, password: str) -> errors.BrokerUnavailableError:
    """What the AMQP reader itself raises for one read of 127.0.0.1:`port` (1 s timeout)."""
    target = sources.parse_trigger({"source": "rabbitmq", "queueName": "q",
                                    "hostFromEnv": f"amqp://u:{password}@127.0.0.1:{port}/"}
                                   ).source
    reader = target.open_source(timeout_s=1.0)
    try:
        with pytest.raises(errors.BrokerUnavailableError) as failed:
            reader.read_many([target])
    finally:
        reader.close()
    return failed.value


def test_amqp_handshake_that_never_finishes_is_broker_unavailable() -> None:
    """pika gives up on such a peer with its own exception (not an AMQPError); the reader says
    UNAVAILABLE for it itself, rather than leaving it to the poller's timeout of the same
    length."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(10)  # connections complete in the kernel; no AMQP handshake ever comes back
    try:
        failure = amqp_read_failure(hole.getsockname()[1], "hole-secret")
    finally:
        hole.close()

    assert "no AMQP handshake within 1 s" in str(failure)
    assert "hole-secret" not in str(failure)


def test_amqp_connection_refused_says_so() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the connect is refused

    failure = amqp_read_failure(port, "refused-secret")

    assert "Connection refused" in str(failure)
    assert "refused-secret" not in str(failure)


async def test_deleted_topic_fails_only_its_scaled_object(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, kafka_helper: KafkaHelper,
        unique_name: Names) -> None:
    kept, doomed = (kafka_helper.create_topic(unique_name(n)) for n in ("kept", "doomed"))
    group = unique_name("g")
    for topic in (kept, doomed):
        kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
    refs = {topic: ref(topic, source="kafka", bootstrapServers=kafka_helper.bootstrap,
                       consumerGroup=group, topic=topic, allowIdleConsumers="true")
            for topic in (kept, doomed)}
    assert await value_or_code(stub, refs[doomed], f"kafka-{doomed}") == 0

    kafka_helper.admin.delete_topics([doomed])
    kafka_helper.produce(kept, 4)
    answers = await wait_for_answers(
        stub, [(refs[kept], f"kafka-{kept}"), (refs[doomed], f"kafka-{doomed}")],
        [4.0, grpc.StatusCode.NOT_FOUND])
    assert answers == [4.0, grpc.StatusCode.NOT_FOUND]


@pytest.mark.parametrize("protocol", ["amqp", "http"])
async def test_deleted_queue_fails_only_its_scaled_object(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, rabbitmq_helper: RabbitMQHelper,
        unique_name: Names, protocol: str) -> None:
    kept, doomed = (rabbitmq_helper.declare(unique_name(n)) for n in ("kept", "doomed"))
    host = rabbitmq_helper.amqp_url if protocol == "amqp" else rabbitmq_helper.http_url
    refs = {queue: ref(queue, source="rabbitmq", hostFromEnv=host, queueName=queue)
            for queue in (kept, doomed)}
    for queue in (kept, doomed):  # both read through one connection, in one poll cycle
        assert await wait_for_value(stub, refs[queue], f"rabbitmq-{queue}", 0) == 0

    rabbitmq_helper.delete(doomed)
    rabbitmq_helper.publish(kept, 3)
    answers = await wait_for_answers(
        stub, [(refs[kept], f"rabbitmq-{kept}"), (refs[doomed], f"rabbitmq-{doomed}")],
        [3.0, grpc.StatusCode.NOT_FOUND])
    rabbitmq_helper.delete(kept)
    assert answers == [3.0, grpc.StatusCode.NOT_FOUND]


def stop_rabbitmq(service: RabbitMQ, how: str) -> None:
    if how == "stop_app":
        service.ctl("stop_app")  # the node stays up, the broker application stops
    else:
        # RabbitMQ writes a queue's declaration to its schema log lazily: killed seconds after
        # the declare, the node came back without the durable queue (NOT_FOUND, correctly).
        # The outage is what this test is about, so the schema is written out first.
        service.ctl("eval", "mnesia:dump_log().")
        service.kill()  # SIGKILL of the Erlang VM: no goodbye to any client


def start_rabbitmq(service: RabbitMQ, how: str) -> None:
    if how == "stop_app":
        service.ctl("start_app")
    service.up()  # a killed node is started again; either way: wait until it answers


@pytest.mark.parametrize("how", ["stop_app", "kill"])
async def test_stopped_or_killed_rabbitmq_never_reads_as_zero_and_recovers(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, rabbitmq_amqp_url: str,
        rabbitmq_http_url: str, rabbitmq_service: RabbitMQ, unique_name: Names, how: str) -> None:
    before = RabbitMQHelper(rabbitmq_amqp_url, rabbitmq_http_url)
    queue = before.declare(unique_name("durable"), durable=True)
    before.publish(queue, 5, persistent=True)
    before.close()
    refs = [ref(f"rabbit-{kind}", source="rabbitmq", hostFromEnv=url, queueName=queue)
            for kind, url in (("amqp", rabbitmq_amqp_url), ("http", rabbitmq_http_url))]
    metric = f"rabbitmq-{queue}"
    for so_ref in refs:  # the management API samples every second
        assert await wait_for_value(stub, so_ref, metric, 5, timeout_s=30) == 5

    await asyncio.to_thread(stop_rabbitmq, rabbitmq_service, how)
    during = []
    for _ in range(12):
        for so_ref in refs:
            during.append(await value_or_code(stub, so_ref, metric))
            during.append(await active_or_code(stub, so_ref))
        await asyncio.sleep(0.25)
    await asyncio.to_thread(start_rabbitmq, rabbitmq_service, how)
    after = RabbitMQHelper(rabbitmq_amqp_url, rabbitmq_http_url)
    after.publish(queue, 2, persistent=True)
    fresh = [await wait_for_value(stub, so_ref, metric, 7) for so_ref in refs]
    after.delete(queue)
    after.close()

    assert set(during) <= {5.0, True, grpc.StatusCode.UNAVAILABLE}, during
    assert fresh == [7.0, 7.0]


async def test_killed_artemis_never_reads_as_zero_and_recovers(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper,
        artemis_service: Artemis, unique_name: Names) -> None:
    queue = unique_name("durable")
    artemis_helper.create(queue, durable=True)
    artemis_helper.send(queue, 4, durable=True)
    so_ref = ref("artemis", source="activemq", flavor="artemis",
                 managementEndpoint=artemis_helper.management, brokerName=artemis_helper.broker,
                 brokerAddress=queue, queueName=queue, usernameFromEnv=artemis_helper.user,
                 passwordFromEnv=artemis_helper.password)
    metric = f"artemis-{queue}"
    assert await value_or_code(stub, so_ref, metric) == 4

    await asyncio.to_thread(artemis_service.kill)
    during = []
    for _ in range(12):
        during.append(await value_or_code(stub, so_ref, metric))
        during.append(await active_or_code(stub, so_ref))
        await asyncio.sleep(0.25)
    await asyncio.to_thread(artemis_service.up)
    artemis_helper.send(queue, 1, durable=True)
    fresh = await wait_for_value(stub, so_ref, metric, 5)
    artemis_helper.delete(queue)

    assert set(during) <= {4.0, True, grpc.StatusCode.UNAVAILABLE}, during
    # The last good value was served because reads failed meanwhile, not because none ran.
    assert scaler.registry.get_sample_value(
        "queue_scaler_source_reads_total", {"source": "activemq", "outcome": "unavailable"})
    assert fresh == 5
