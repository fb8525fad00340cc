"""RabbitMQ depth and rates with KEDA's semantics, against the real broker (management on)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator

import grpc
import pika
import pytest

from scaler.errors import BrokerAuthError, BrokerUnavailableError, TargetNotFoundError
from scaler.poller import Poller
from scaler.service import Evaluation, parse, status_for
from tests.integration.brokers import RabbitMQHelper
from tests.integration.conftest import TEST_POLLER

Evaluate = Callable[..., Awaitable[Evaluation]]
Names = Callable[[str], str]


async def evaluate_until(evaluate: Evaluate, condition: Callable[[Evaluation], bool],
                         what: str, timeout_s: float = 30.0, **metadata: str) -> Evaluation:
    """Re-reads until `condition` holds: the management API's statistics refresh on the broker's
    collection interval, so a fixed sleep would be either flaky or slow."""
    deadline = time.monotonic() + timeout_s
    last: Evaluation | Exception | None = None
    while time.monotonic() < deadline:
        try:
            last = await evaluate(**metadata)
        except Exception as exc:  # noqa: BLE001 - a fresh queue has no statistics for a moment
            last = exc
        else:
            if condition(last):
                return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last answer: {last!r}")


@pytest.fixture
def held_messages(rabbitmq_helper: RabbitMQHelper, unique_name: Names
                  ) -> Iterator[tuple[str, pika.BlockingConnection]]:
    """A queue with 10 messages of which a real consumer holds 4 unacknowledged."""
    queue = rabbitmq_helper.declare(unique_name("held"))
    rabbitmq_helper.publish(queue, 10)
    consumer = pika.BlockingConnection(pika.URLParameters(rabbitmq_helper.amqp_url))
    channel = consumer.channel()
    channel.basic_qos(prefetch_count=4)
    delivered: list[int] = []
    channel.basic_consume(queue, lambda ch, method, props, body: delivered.append(1),
                          auto_ack=False)
    deadline = time.monotonic() + 10
    while len(delivered) < 4 and time.monotonic() < deadline:
        consumer.process_data_events(time_limit=0.1)
    assert len(delivered) == 4
    yield queue, consumer
    consumer.close()
    rabbitmq_helper.delete(queue)


async def test_amqp_counts_ready_messages_only(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper,
        held_messages: tuple[str, pika.BlockingConnection]) -> None:
    queue, _ = held_messages
    result = await evaluate(source="rabbitmq", hostFromEnv=rabbitmq_helper.amqp_url,
                            queueName=queue)
    assert result.decision.metric_value == 6
    assert "ready only" in result.decision.reasons[0]


async def test_http_counts_ready_and_unacknowledged_unless_excluded(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper,
        held_messages: tuple[str, pika.BlockingConnection]) -> None:
    queue, _ = held_messages
    metadata = {"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.http_url, "queueName": queue}

    both = await evaluate_until(evaluate, lambda e: e.decision.metric_value == 10,
                                "ready + unacked = 10", **metadata)
    ready = await evaluate(**metadata, excludeUnacknowledged="true")

    assert both.decision.reasons[0] == "10 messages (ready + unacknowledged)"
    assert ready.decision.metric_value == 6


class Traffic:
    """Publishes and consumes ~20 messages/s on one queue from background threads, for at most
    `limit_s` seconds or until stopped."""

    def __init__(self, amqp_url: str, queue: str, limit_s: float = 60.0) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=target, args=(amqp_url, queue, limit_s))
                         for target in (self._publish, self._consume)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _publish(self, amqp_url: str, queue: str, limit_s: float) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        deadline = time.monotonic() + limit_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            channel.basic_publish("", queue, b"tick")
            connection.sleep(0.05)
        connection.close()

    def _consume(self, amqp_url: str, queue: str, limit_s: float) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        channel.basic_consume(queue, lambda *args: None, auto_ack=True)
        deadline = time.monotonic() + limit_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        connection.close()


@pytest.mark.parametrize("mode", ["MessageRate", "DeliverGetRate"])
async def test_rates_come_from_real_traffic(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names,
        mode: str) -> None:
    queue = rabbitmq_helper.declare(unique_name("busy"))
    metadata = {"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.http_url, "queueName": queue,
                "mode": mode, "value": "5"}
    with Traffic(rabbitmq_helper.amqp_url, queue):
        result = await evaluate_until(evaluate, lambda e: e.decision.metric_value > 5,
                                      f"a {mode} above 5/s", timeout_s=45, **metadata)
    # About 20/s flows; the broker's rate is a moving average, so allow a wide band.
    assert 5 < result.decision.metric_value < 60
    assert result.decision.is_active is True
    assert result.decision.desired_replicas >= 2
    rabbitmq_helper.delete(queue)


@pytest.fixture
def six_hundred_queues(rabbitmq_helper: RabbitMQHelper, unique_name: Names
                       ) -> Iterator[str]:
    prefix = unique_name("many")
    names = [f"{prefix}-{index:03d}" for index in range(600)]
    for name in names:
        rabbitmq_helper.declare(name)
    rabbitmq_helper.publish(names[0], 7)
    rabbitmq_helper.publish(names[599], 3)
    yield prefix
    for name in names:
        rabbitmq_helper.delete(name)


@pytest.mark.parametrize(("operation", "expected"), [
    pytest.param("sum", 10.0, id="sum"),
    pytest.param("avg", 10 / 600, id="avg"),
    pytest.param("max", 7.0, id="max"),
])
async def test_regex_reads_every_page_and_aggregates(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, six_hundred_queues: str,
        operation: str, expected: float) -> None:
    metadata = {"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.http_url,
                "queueName": f"^{six_hundred_queues}-[0-9]+$", "useRegex": "true",
                "pageSize": "100", "operation": operation}

    result = await evaluate_until(evaluate, lambda e: e.decision.backlog == expected,
                                  f"{operation} of 600 queues = {expected}", **metadata)

    assert len(result.snapshot.reading.describe()["queues"]) == 600


async def test_regex_matching_nothing_is_not_found(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    with pytest.raises(TargetNotFoundError, match="matches the regex"):
        await evaluate(source="rabbitmq", hostFromEnv=rabbitmq_helper.http_url,
                       queueName=f"^{unique_name('none')}$", useRegex="true")


@pytest.fixture
def named_vhost(rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> Iterator[str]:
    vhost = unique_name("team/vh")
    rabbitmq_helper.create_vhost(vhost)
    yield vhost
    rabbitmq_helper.delete_vhost(vhost)


async def test_named_vhost_over_amqp_and_http(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, named_vhost: str) -> None:
    quoted = urllib.parse.quote(named_vhost, safe="")
    amqp_url = rabbitmq_helper.amqp_url.rstrip("/") + "/" + quoted
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare("inbox")
    for _ in range(3):
        channel.basic_publish("", "inbox", b"x")
    connection.close()

    over_amqp = await evaluate(source="rabbitmq", hostFromEnv=amqp_url, queueName="inbox")
    over_http = await evaluate_until(
        evaluate, lambda e: e.decision.metric_value == 3, "3 messages in the vhost",
        source="rabbitmq", hostFromEnv=rabbitmq_helper.http_url, vhostName=named_vhost,
        queueName="inbox")

    assert over_amqp.decision.metric_value == 3
    assert over_http.snapshot.reading.describe()["vhost"] == named_vhost


@pytest.mark.parametrize("url_kind", ["amqp", "http"])
async def test_missing_vhost_is_not_found_and_says_vhost(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names,
        url_kind: str) -> None:
    base = rabbitmq_helper.amqp_url if url_kind == "amqp" else rabbitmq_helper.http_url
    with pytest.raises(TargetNotFoundError, match=r"vhost .* does not exist"):
        await evaluate(source="rabbitmq", hostFromEnv=base.rstrip("/") + "/" + unique_name("novh"),
                       queueName="q")


@pytest.mark.parametrize("url_kind", ["amqp", "http"])
async def test_user_without_access_to_the_vhost_is_denied(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names,
        url_kind: str) -> None:
    user = unique_name("limited")
    rabbitmq_helper.create_user(user, "limited-pw")
    try:
        base = rabbitmq_helper.amqp_url if url_kind == "amqp" else rabbitmq_helper.http_url
        scheme, rest = base.split("://", 1)
        host = f"{scheme}://{user}:limited-pw@{rest.split('@', 1)[1]}"
        with pytest.raises(BrokerAuthError) as raised:
            await evaluate(source="rabbitmq", hostFromEnv=host, queueName="q")
        assert "limited-pw" not in str(raised.value)
    finally:
        rabbitmq_helper.delete_user(user)


async def test_one_connection_survives_many_polls_and_channel_errors(
        rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    queue = rabbitmq_helper.declare(unique_name("steady"))
    before = rabbitmq_helper.scaler_connections()
    poller = Poller(TEST_POLLER)
    present = parse({"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.amqp_url,
                     "queueName": queue}).source
    absent = parse({"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.amqp_url,
                    "queueName": unique_name("absent")}).source
    try:
        for index in range(200):
            await poller.read(present)
            if index % 10 == 0:  # 20 reads of a missing queue: each closes the channel (404)
                with pytest.raises(TargetNotFoundError):
                    await poller.read(absent)
        await poller.read(present)
        during = wait_for_connections(rabbitmq_helper, before + 1)
    finally:
        poller.close()
    after = wait_for_connections(rabbitmq_helper, before)
    assert (during, after) == (before + 1, before)
    rabbitmq_helper.delete(queue)


def wait_for_connections(rabbitmq_helper: RabbitMQHelper, expected: int) -> int:
    """The broker's connection list follows closes within moments; wait for it to settle."""
    deadline = time.monotonic() + 15
    count = rabbitmq_helper.scaler_connections()
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        count = rabbitmq_helper.scaler_connections()
    return count


def age_metadata(rabbitmq_helper: RabbitMQHelper, queue: str, **extra: str) -> dict[str, str]:
    return {"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.http_url, "queueName": queue,
            "mode": "MessageAge", "value": "30", **extra}


async def until_statistics_count(evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper,
                                 queue: str, messages: int) -> None:
    """Waits until the management API's statistics show `messages` in the queue."""
    await evaluate_until(evaluate, lambda e: e.decision.backlog == messages,
                         f"statistics showing {messages} messages", source="rabbitmq",
                         hostFromEnv=rabbitmq_helper.http_url, queueName=queue)


async def test_message_age_follows_a_timestamped_message(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    queue = rabbitmq_helper.declare(unique_name("aged"))
    published = int(time.time()) - 120  # the AMQP timestamp: whole seconds
    rabbitmq_helper.publish(queue, 1, timestamp=published)
    rabbitmq_helper.publish(queue, 2, timestamp=published + 100)  # behind it: not the head

    # The broker samples counts and head timestamps apart: wait for a sample with both.
    result = await evaluate_until(
        evaluate, lambda e: e.decision.backlog == 3 and e.decision.metric_value >= 120,
        "the head message's age", **age_metadata(rabbitmq_helper, queue))

    read_at = result.snapshot.reading.describe()["readAt"]
    (stats,) = result.snapshot.reading.describe()["queues"]
    assert stats["head_message_timestamp"] == published
    # Age = read time - head timestamp, to the scaler's clock.
    assert result.decision.metric_value == pytest.approx(read_at - published)
    assert result.decision.is_active is True
    assert result.decision.desired_replicas == math.ceil(result.decision.metric_value / 30)
    assert result.decision.reasons[0].startswith(f"head message timestamp {published}, read at ")
    assert "3 messages (ready + unacknowledged)" in result.decision.reasons[0]

    # Emptied, the queue has no head message: age 0, inactive (once the statistics catch up).
    rabbitmq_helper.purge(queue)
    empty = await evaluate_until(evaluate, lambda e: e.decision.backlog == 0,
                                 "the purge in the statistics",
                                 **age_metadata(rabbitmq_helper, queue))
    assert (empty.decision.metric_value, empty.decision.is_active) == (0, False)
    rabbitmq_helper.delete(queue)


async def test_message_age_of_an_empty_queue_is_0(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    queue = rabbitmq_helper.declare(unique_name("empty-age"))
    # A queue declared a moment ago has no statistics yet (UNAVAILABLE): wait for them.
    result = await evaluate_until(evaluate, lambda e: True, "statistics of the new queue",
                                  **age_metadata(rabbitmq_helper, queue))

    assert (result.decision.metric_value, result.decision.is_active,
            result.decision.desired_replicas) == (0, False, 0)
    assert result.decision.reasons[0].startswith("no message in the queue, read at ")
    rabbitmq_helper.delete(queue)


async def test_message_age_of_messages_without_timestamps_is_unavailable_never_0(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    queue = rabbitmq_helper.declare(unique_name("untimed"))
    rabbitmq_helper.publish(queue, 3)  # no timestamp property
    await until_statistics_count(evaluate, rabbitmq_helper, queue, 3)

    with pytest.raises(BrokerUnavailableError) as raised:
        await evaluate(**age_metadata(rabbitmq_helper, queue))

    assert status_for(raised.value) is grpc.StatusCode.UNAVAILABLE
    message = str(raised.value)
    assert (f"queue {queue!r} in vhost '/' holds messages but the statistics report no "
            "timestamp for the head message") in message
    assert "MessageAge needs publishers to set the AMQP timestamp property" in message
    assert "guest:guest" not in message
    # Only MessageAge fails: the same queue still has its depth.
    length = await evaluate(source="rabbitmq", hostFromEnv=rabbitmq_helper.http_url,
                            queueName=queue)
    assert length.decision.metric_value == 3
    rabbitmq_helper.delete(queue)


async def test_message_age_on_a_quorum_queue_is_not_found_even_when_empty(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    # RabbitMQ 3.10 leaves head_message_timestamp out for quorum queues: an empty one must not
    # read as age 0 and then fail once messages arrive.
    queue = rabbitmq_helper.declare_quorum(unique_name("quorum-age"))
    await until_statistics_count(evaluate, rabbitmq_helper, queue, 0)

    with pytest.raises(TargetNotFoundError, match=r"reports no head_message_timestamp \(quorum; "
                       "RabbitMQ 3.10 reports it for classic queues only\\)"):
        await evaluate(**age_metadata(rabbitmq_helper, queue))
    rabbitmq_helper.delete(queue)


async def test_message_age_over_a_regex_is_the_oldest_head(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    prefix = unique_name("ages")
    now = int(time.time())
    queues = [rabbitmq_helper.declare(f"{prefix}-{index}") for index in range(3)]
    rabbitmq_helper.publish(queues[0], 1, timestamp=now - 50)
    rabbitmq_helper.publish(queues[1], 4, timestamp=now - 300)  # the oldest head
    # queues[2] stays empty: no head, no age.
    metadata = age_metadata(rabbitmq_helper, f"^{prefix}-[0-9]$", useRegex="true")

    result = await evaluate_until(
        evaluate, lambda e: e.decision.backlog == 4 and e.decision.metric_value >= 300,
        "the oldest head's age", **metadata)

    read_at = result.snapshot.reading.describe()["readAt"]
    assert result.decision.metric_value == pytest.approx(read_at - (now - 300))
    assert result.decision.backlog == 4  # max over the queues, as the age is
    assert "max over 3 queues" in result.decision.reasons[0]
    for queue in queues:
        rabbitmq_helper.delete(queue)


async def test_drain_time_equals_expected_queue_consumption_time(
        evaluate: Evaluate, rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> None:
    queue = rabbitmq_helper.declare(unique_name("drain"))
    rabbitmq_helper.publish(queue, 10)
    await until_statistics_count(evaluate, rabbitmq_helper, queue, 10)
    base = {"source": "rabbitmq", "hostFromEnv": rabbitmq_helper.http_url, "queueName": queue,
            "value": "4"}

    expected = await evaluate(**base, mode="ExpectedQueueConsumptionTime")
    drain = await evaluate(**base, mode="DrainTime")
    # And decided on the very reading ExpectedQueueConsumptionTime was decided on.
    same_reading = parse({**base, "mode": "DrainTime"}).source.decide(
        expected.snapshot.reading, expected.trigger.common.bounds(), frozenset())

    for decision in (drain.decision, same_reading):
        assert (decision.metric_value, decision.is_active, decision.desired_replicas) == (
            expected.decision.metric_value, expected.decision.is_active,
            expected.decision.desired_replicas)
        assert decision.reasons[0] == expected.decision.reasons[0].replace(
            "ExpectedQueueConsumptionTime:", "DrainTime (alias of ExpectedQueueConsumptionTime):")
    # Nobody consumes: 1 message/s per replica is assumed, 10 messages take 10 s.
    assert expected.decision.metric_value == 10
    assert "nothing delivered: assumed 1/s" in expected.decision.reasons[0]
    rabbitmq_helper.delete(queue)
