"""Many outage/recovery cycles leave open sockets, threads and memory flat.

The outage is a TCP proxy between the scaler and the real broker that is torn down (every
connection cut, the port refusing) and brought back on the same port.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import socket
import threading
from collections.abc import Callable

import pytest

from scaler.errors import BrokerUnavailableError
from scaler.poller import Poller, PollerSettings
from scaler.service import parse
from tests.integration.brokers import KafkaHelper, RabbitMQHelper, address_of, wait_until
from tests.integration.kafka_proxy import CountingKafkaProxy
from tests.testbed.pytest_plugin import Testbed

Names = Callable[[str], str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def open_fds() -> int:
    gc.collect()  # kafka-python leaves failed sockets to the collector
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(("kind", "cycles"), [
    pytest.param("amqp", 100, id="amqp-100-cycles"),
    pytest.param("http", 100, id="http-100-cycles"),
    pytest.param("kafka", 20, id="kafka-20-cycles"),
])
async def test_outage_cycles_leave_resources_flat(
        kind: str, cycles: int, rabbitmq_helper: RabbitMQHelper, kafka_bootstrap: str,
        unique_name: Names, caplog: pytest.LogCaptureFixture, testbed: Testbed) -> None:
    # As `queue-scaler serve` does: the client libraries' own error logs are silenced. Here it
    # also matters for the count: pytest keeps captured records, and kafka-python's records
    # reference its connection objects, sockets included.
    caplog.set_level(logging.CRITICAL, logger="kafka")
    caplog.set_level(logging.CRITICAL, logger="pika")
    # The Kafka source keeps its own level on this one (to learn why a bootstrap failed).
    caplog.set_level(logging.CRITICAL, logger="kafka.net.manager")
    if kind == "kafka":
        # Kafka clients follow the advertised address after bootstrapping: go through the
        # PROXIED listener, which advertises the proxy's own address.
        listen = testbed.variable("QUEUE_SCALER_TEST_KAFKA_PROXY_ADDRESS")
        upstream = testbed.variable("QUEUE_SCALER_TEST_KAFKA_PROXIED_LISTENER")
        helper = KafkaHelper(kafka_bootstrap)
        metadata = {"source": "kafka", "consumerGroup": "g", "bootstrapServers": listen,
                    "topic": helper.create_topic(unique_name("t"))}
        helper.close()
    else:
        listen = f"127.0.0.1:{free_port()}"
        upstream = address_of(rabbitmq_helper.amqp_url if kind == "amqp"
                              else rabbitmq_helper.http_url)
        queue = rabbitmq_helper.declare(unique_name("q"))
        metadata = {"source": "rabbitmq", "queueName": queue,
                    "hostFromEnv": f"{kind}://guest:guest@{listen}/"}
        # A queue is in the management API's statistics a moment after it is declared.
        wait_until(lambda: "messages_ready" in rabbitmq_helper.api_queue(queue),
                   "the queue's statistics")
    trigger = parse(metadata).source
    # Every request reads (max age 0): each cycle really goes to the broker or fails.
    poller = Poller(PollerSettings(broker_timeout_s=3.0, poll_interval_s=60.0, max_age_s=0.0,
                                   stale_after_s=0.001))
    outcomes: dict[str, int] = {"ok": 0, "unavailable": 0}
    baseline: tuple[int, int, int] | None = None
    try:
        for cycle in range(cycles + 1):
            with CountingKafkaProxy(listen, upstream):
                # Kafka's client reconnects with a backoff; give it the timeout to come back.
                try:
                    await poller.read(trigger)
                    outcomes["ok"] += 1
                except BrokerUnavailableError:
                    await poller.read(trigger)
                    outcomes["ok"] += 1
            try:
                snapshot = await poller.read(trigger)
            except BrokerUnavailableError:
                outcomes["unavailable"] += 1
            else:
                # Within the (1 ms) staleness bound the last good reading is served, marked.
                assert snapshot.last_error is not None, f"cycle {cycle}: no error while away"
                outcomes["unavailable"] += 1
            if cycle == 0:  # measured after the first cycle has created what it keeps
                baseline = (open_fds(), threading.active_count(),
                            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        after = (open_fds(), threading.active_count(),
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    finally:
        poller.close()

    assert baseline is not None
    assert outcomes == {"ok": cycles + 1, "unavailable": cycles + 1}
    fds, threads, peak_kib = after
    assert fds <= baseline[0] + 3, (baseline, after)
    assert threads <= baseline[1] + 2, (baseline, after)
    assert peak_kib <= baseline[2] + 50 * 1024, (baseline, after)  # peak RSS grew < 50 MiB


@pytest.mark.parametrize("kind", ["kafka", "amqp", "http"])
async def test_a_broker_that_stays_down_leaves_resources_flat(
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every poll cycle against a broker that never comes back makes a new connection
    attempt; none of them may be left behind (kafka-python's client constructor used to leave
    four file descriptors per failed bootstrap)."""
    caplog.set_level(logging.CRITICAL, logger="kafka")
    caplog.set_level(logging.CRITICAL, logger="kafka.net.manager")
    caplog.set_level(logging.CRITICAL, logger="pika")
    address = f"127.0.0.1:{free_port()}"  # nothing listens: every connect is refused
    metadata = ({"source": "kafka", "consumerGroup": "g", "bootstrapServers": address,
                 "topic": "t"} if kind == "kafka" else
                {"source": "rabbitmq", "queueName": "q", "hostFromEnv": f"{kind}://guest:guest@{address}/"})
    trigger = parse(metadata).source
    poller = Poller(PollerSettings(broker_timeout_s=1.0, poll_interval_s=60.0, max_age_s=0.0,
                                   stale_after_s=0.001))
    counts = []
    try:
        for _ in range(30):
            with pytest.raises(BrokerUnavailableError):
                await poller.read(trigger)
            counts.append((open_fds(), threading.active_count()))
    finally:
        poller.close()
    first, last = counts[0], counts[-1]
    assert last[0] <= first[0] + 3, counts
    assert last[1] <= first[1] + 2, counts
