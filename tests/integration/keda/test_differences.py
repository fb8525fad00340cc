"""Where queue-scaler deliberately differs from KEDA's built-in `kafka` and `rabbitmq` scalers
(docs/kafka.md, docs/rabbitmq.md), checked against KEDA itself: the same broker state is read by
KEDA's own scaler (pkg/scalers of the KEDA version the testbed runs, through our Go program
tests/testbed/kube/keda_scalers_go/main.go) and by queue-scaler over gRPC. Each test asserts both
answers, so it fails when KEDA's behaviour changes and the docs need another look. No Kubernetes
cluster is needed: KEDA's scaler talks to the brokers directly, as it does inside the operator.

Each test prints what both answered (pytest -s shows it)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from scaler import app
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.settings import Settings
from tests.integration.brokers import KafkaHelper, RabbitMQHelper, wait_until
from tests.testbed.kube import keda_scalers, programs
from tests.testbed.places import Places

Names = Callable[[str], str]
KEDA = f"KEDA {programs.KEDA_VERSION}"


@pytest.fixture(scope="session")
def keda_scalers_binary() -> Path:
    places = Places.from_environment()
    return keda_scalers.ensure(places, places.state_dir("kube") / "logs")


@dataclasses.dataclass(frozen=True)
class Answer:
    value: float | None  # None: an error
    active: bool
    error: str = ""


def keda(binary: Path, trigger_type: str, metadata: dict[str, str], *, calls: int = 1,
         interval_ms: int = 0) -> list[Answer]:
    """KEDA's built-in scaler's answers to `calls` GetMetricsAndActivity calls in one process
    (one scaler, as the operator keeps one per trigger)."""
    answer = keda_scalers.run(binary, trigger_type, metadata, calls=calls,
                              interval_ms=interval_ms)
    assert not answer.get("error"), f"{KEDA} could not build its scaler: {answer['error']}"
    return [Answer(call.get("value"), call["isActive"], call.get("error", ""))
            for call in answer["calls"]]


def ref(metadata: dict[str, str]) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name="worker", namespace="default", scalerMetadata=metadata)


async def ours(stub: pb_grpc.ExternalScalerStub, metadata: dict[str, str]) -> Answer:
    """queue-scaler's GetMetrics and IsActive, as KEDA calls them; an error status is the
    answer's error (its code and message)."""
    so_ref = ref(metadata)
    try:
        spec = await stub.GetMetricSpec(so_ref)
        name = spec.metricSpecs[0].metricName
        reply = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=so_ref,
                                                           metricName=name))
        active = await stub.IsActive(so_ref)
    except grpc.aio.AioRpcError as error:
        return Answer(None, False, f"{error.code().name}: {error.details()}")
    return Answer(reply.metricValues[0].metricValueFloat, active.result)


def report(what: str, keda_answers: list[Answer], our_answers: list[Answer]) -> None:
    print(f"\n{what}\n  {KEDA}: {keda_answers}\n  queue-scaler: {our_answers}")


def kafka_trigger(kafka_helper: KafkaHelper, group: str, **extra: str) -> dict[str, str]:
    """A `kafka` trigger's metadata as KEDA reads it (queue-scaler's adds `source`)."""
    return {"bootstrapServers": kafka_helper.bootstrap, "consumerGroup": group, **extra}


def with_source(source: str, metadata: dict[str, str]) -> dict[str, str]:
    return {"source": source, **metadata}


# --- Kafka -----------------------------------------------------------------------------------


async def test_earliest_without_commits_after_delete_records_both_count_retained_messages(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    kafka_helper.produce(topic, 10)
    kafka_helper.delete_records(topic, {0: 7})  # as retention would: 3 messages left
    metadata = kafka_trigger(kafka_helper, unique_name("g"), topic=topic,
                             offsetResetPolicy="earliest", allowIdleConsumers="true",
                             lagThreshold="1")

    theirs = keda(keda_scalers_binary, "kafka", metadata)
    mine = await ours(stub, with_source("kafka", metadata))

    report("earliest, no commits, 7 of 10 records deleted", theirs, [mine])
    # Not a difference (any more): KEDA counts log-end - log-start, as we do.
    assert theirs == [Answer(3.0, True)]
    assert mine == Answer(3.0, True)


async def test_group_without_commits_and_without_topic(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        kafka_helper: KafkaHelper, unique_name: Names) -> None:
    # Another topic with a backlog exists, and the group never committed anything.
    topic = kafka_helper.create_topic(unique_name("t"), partitions=2)
    kafka_helper.produce_round_robin(topic, [5, 5])
    metadata = kafka_trigger(kafka_helper, unique_name("never-committed"), lagThreshold="1",
                             allowIdleConsumers="true")

    theirs = keda(keda_scalers_binary, "kafka", metadata)
    mine = await ours(stub, with_source("kafka", metadata))

    report("no topic, a group without commits", theirs, [mine])
    # KEDA describes every topic in the cluster and counts 1 per partition (latest, no commit):
    # at least the 2 partitions of ours, and those of every other topic.
    [answer] = theirs
    assert answer.error == ""
    assert answer.value is not None
    assert answer.value >= 2
    assert answer.active is True
    assert mine == Answer(0.0, False)


async def test_commit_past_the_log_end_on_one_partition(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=2)
    group = unique_name("g")
    kafka_helper.produce_round_robin(topic, [10, 10])
    # Partition 0 committed far past its log end (a recreated topic); partition 1 has lag 5.
    kafka_helper.commit(group, topic, {0: 500, 1: 5})
    metadata = kafka_trigger(kafka_helper, group, topic=topic, allowIdleConsumers="true",
                             lagThreshold="1")

    theirs = keda(keda_scalers_binary, "kafka", metadata)
    mine = await ours(stub, with_source("kafka", metadata))

    report("commits {0: 500, 1: 5} on log ends {0: 10, 1: 10}", theirs, [mine])
    # KEDA sums -490 + 5 = -485, reports a negative total as 0, and is inactive (-485 > 0 is
    # false), though partition 1 has 5 messages waiting.
    assert theirs == [Answer(0.0, False)]
    assert mine == Answer(5.0, True)


async def test_partition_cap_division(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=3)
    group = unique_name("g")
    kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
    kafka_helper.produce_round_robin(topic, [13, 13, 13])  # lag 39
    metadata = kafka_trigger(kafka_helper, group, topic=topic, lagThreshold="10")

    theirs = keda(keda_scalers_binary, "kafka", metadata)
    mine = await ours(stub, with_source("kafka", metadata))

    report("3 partitions, lagThreshold 10, lag 39", theirs, [mine])
    # KEDA: 39 / 10 = 3 (integer division) is not > 3 partitions: 39 stands, and the HPA asks
    # for ceil(39 / 10) = 4 replicas for 3 partitions. Ours: capped at 3 x 10.
    assert theirs == [Answer(39.0, True)]
    assert mine == Answer(30.0, True)


async def test_persistent_lag_with_commits_is_judged_between_two_calls(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    group = unique_name("g")
    kafka_helper.produce(topic, 4)
    kafka_helper.commit(group, topic, {0: 0})
    metadata = kafka_trigger(kafka_helper, group, topic=topic, excludePersistentLag="true",
                             allowIdleConsumers="true", lagThreshold="1")

    # Two calls 100 ms apart; nothing moved in between.
    theirs = keda(keda_scalers_binary, "kafka", metadata, calls=2, interval_ms=100)
    first = await ours(stub, with_source("kafka", metadata))
    await asyncio.sleep(0.1)
    second = await ours(stub, with_source("kafka", metadata))

    report("excludePersistentLag, a commit that did not move for 100 ms", theirs,
           [first, second])
    # KEDA: the second call saw the same offset, so the lag is persistent at once (still
    # active). Ours: not until it stood still for --persistent-lag-after (30 s).
    assert theirs == [Answer(4.0, True), Answer(0.0, True)]
    assert [first, second] == [Answer(4.0, True), Answer(4.0, True)]


@pytest.fixture
async def short_window_stub(scaler_settings: Settings
                            ) -> AsyncIterator[pb_grpc.ExternalScalerStub]:
    """A scaler whose --persistent-lag-after is 0.5 s."""
    running = await app.start(dataclasses.replace(scaler_settings, persistent_lag_after_s=0.5))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            yield pb_grpc.ExternalScalerStub(channel)
    finally:
        await running.stop()


async def test_persistent_lag_without_commits(
        keda_scalers_binary: Path, short_window_stub: pb_grpc.ExternalScalerStub,
        kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    kafka_helper.produce(topic, 4)
    metadata = kafka_trigger(kafka_helper, unique_name("g"), topic=topic,
                             offsetResetPolicy="earliest", excludePersistentLag="true",
                             allowIdleConsumers="true", lagThreshold="1")

    theirs = keda(keda_scalers_binary, "kafka", metadata, calls=3, interval_ms=600)
    first = await ours(short_window_stub, with_source("kafka", metadata))
    await asyncio.sleep(1.0)  # past the 0.5 s window, nothing committed
    second = await ours(short_window_stub, with_source("kafka", metadata))

    report("excludePersistentLag, earliest, no commits, 3 calls 0.6 s apart", theirs,
           [first, second])
    # KEDA answers a partition without a commit before it looks at persistence: never
    # excluded. Ours: excluded once the window passed, still active.
    assert theirs == [Answer(4.0, True)] * 3
    assert [first, second] == [Answer(4.0, True), Answer(0.0, True)]


# --- RabbitMQ --------------------------------------------------------------------------------


def wait_for_depths(rabbitmq_helper: RabbitMQHelper, depths: dict[str, int]) -> None:
    """The management API's counts lag behind by up to one statistics interval."""
    def counted(queue: str, depth: int) -> Callable[[], bool]:
        return lambda: rabbitmq_helper.api_messages(queue) == depth

    for queue, depth in depths.items():
        wait_until(counted(queue, depth),
                   f"the management API to count {depth} messages in {queue}")


async def test_regex_matching_more_queues_than_one_page(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    prefix = unique_name("paged")
    depths = {f"{prefix}-{index}": index + 1 for index in range(3)}  # 1 + 2 + 3
    for queue, depth in depths.items():
        rabbitmq_helper.declare(queue)
        rabbitmq_helper.publish(queue, depth)
    wait_for_depths(rabbitmq_helper, depths)
    metadata = {"queueName": f"^{prefix}-[0-9]$", "useRegex": "true", "pageSize": "2",
                "mode": "QueueLength", "value": "1"}

    try:
        theirs = keda(keda_scalers_binary, "rabbitmq",
                      {"host": rabbitmq_helper.http_url, **metadata})
        mine = await ours(stub, with_source(
            "rabbitmq", {"hostFromEnv": rabbitmq_helper.http_url, **metadata}))
    finally:
        for queue in depths:
            rabbitmq_helper.delete(queue)

    report("useRegex over 3 queues, pageSize 2", theirs, [mine])
    [answer] = theirs
    assert answer.value is None
    assert "regex matches more queues than can be recovered at once" in answer.error
    assert mine == Answer(6.0, True)


async def test_regex_matching_nothing(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    metadata = {"queueName": f"^{unique_name('none')}$", "useRegex": "true",
                "mode": "QueueLength", "value": "1"}

    theirs = keda(keda_scalers_binary, "rabbitmq", {"host": rabbitmq_helper.http_url, **metadata})
    mine = await ours(stub, with_source(
        "rabbitmq", {"hostFromEnv": rabbitmq_helper.http_url, **metadata}))

    report("useRegex matching no queue", theirs, [mine])
    assert theirs == [Answer(0.0, False)]
    assert mine.value is None
    assert mine.error.startswith("NOT_FOUND: ")




def publish_rate(rabbitmq_helper: RabbitMQHelper, queue: str) -> float:
    stats = rabbitmq_helper.api_queue(queue).get("message_stats") or {}
    return float((stats.get("publish_details") or {}).get("rate", 0.0))


# KEDA's activity per mode (rabbitmq_scaler.go, GetMetricsAndActivity), 5 messages waiting, no
# consumer, the publish rate back to 0, activationValue 0: MessageRate is active by the message
# count; DeliverGetRate only by its rate; PublishedToDeliveredRatio by its ratio or "published
# but nothing delivered"; ExpectedQueueConsumptionTime by its time or "messages but nothing
# delivered" (and then reports activationValue as the time). Ours: active whenever the message
# count is above activationValue, and a drain time that assumes 1 message/s per replica.
@pytest.mark.parametrize(("mode", "keda_answer", "our_answer"), [
    pytest.param("MessageRate", Answer(0.0, True), Answer(0.0, True), id="MessageRate"),
    pytest.param("DeliverGetRate", Answer(0.0, False), Answer(0.0, True), id="DeliverGetRate"),
    pytest.param("PublishedToDeliveredRatio", Answer(0.0, False), Answer(0.0, True),
                 id="PublishedToDeliveredRatio"),
    pytest.param("ExpectedQueueConsumptionTime", Answer(0.0, True), Answer(5.0, True),
                 id="ExpectedQueueConsumptionTime"),
])
async def test_rate_modes_with_messages_waiting_and_no_consumer(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        rabbitmq_helper: RabbitMQHelper, unique_name: Names, mode: str, keda_answer: Answer,
        our_answer: Answer) -> None:
    queue = rabbitmq_helper.declare(unique_name("rates"))
    metadata = {"queueName": queue, "mode": mode, "value": "2", "activationValue": "0"}
    our_metadata = with_source("rabbitmq", {"hostFromEnv": rabbitmq_helper.http_url, **metadata})
    try:
        rabbitmq_helper.publish(queue, 5)
        wait_for_depths(rabbitmq_helper, {queue: 5})
        # The publish rate decays to 0 within a few statistics intervals (1 s on the testbed).
        wait_until(lambda: "message_stats" in rabbitmq_helper.api_queue(queue)
                   and publish_rate(rabbitmq_helper, queue) == 0.0,
                   f"the publish rate of {queue} to fall back to 0")
        theirs = keda(keda_scalers_binary, "rabbitmq",
                      {"host": rabbitmq_helper.http_url, **metadata})
        mine = await ours(stub, our_metadata)
    finally:
        rabbitmq_helper.delete(queue)

    report(f"{mode}: 5 messages, no consumer, publish rate 0, activationValue 0", theirs, [mine])
    assert theirs == [keda_answer]
    assert mine == our_answer


async def test_metric_names_and_targets(
        keda_scalers_binary: Path, stub: pb_grpc.ExternalScalerStub,
        kafka_helper: KafkaHelper, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    queue = rabbitmq_helper.declare(unique_name("q"))
    kafka = kafka_trigger(kafka_helper, unique_name("g"), topic=topic, lagThreshold="7")
    rabbitmq = {"queueName": queue, "mode": "QueueLength", "value": "4"}
    try:
        keda_kafka = keda_scalers.run(keda_scalers_binary, "kafka", kafka)
        keda_rabbitmq = keda_scalers.run(keda_scalers_binary, "rabbitmq",
                                         {"host": rabbitmq_helper.http_url, **rabbitmq})
        our_kafka = (await stub.GetMetricSpec(ref(with_source("kafka", kafka)))).metricSpecs
        our_rabbitmq = (await stub.GetMetricSpec(ref(with_source(
            "rabbitmq", {"hostFromEnv": rabbitmq_helper.http_url, **rabbitmq})))).metricSpecs
    finally:
        rabbitmq_helper.delete(queue)

    print(f"\n{KEDA}: {keda_kafka}\n{keda_rabbitmq}\nqueue-scaler: {our_kafka}\n{our_rabbitmq}")
    # Not a difference: KEDA puts "s<trigger index>-" before an external scaler's metric name
    # (external_scaler.go, GenerateMetricNameWithIndex), which gives its built-in scaler's name.
    for theirs, [mine] in ((keda_kafka, our_kafka), (keda_rabbitmq, our_rabbitmq)):
        assert theirs["metricName"] == f"s0-{mine.metricName}"
        assert theirs["targetType"] == "AverageValue"
        assert theirs["target"] == mine.targetSizeFloat
    assert keda_kafka["target"] == 7
    assert keda_rabbitmq["target"] == 4
