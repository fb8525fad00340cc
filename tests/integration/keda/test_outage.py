"""Scenario 3: the broker becomes unreachable while the Deployment runs at N replicas: KEDA
applies the ScaledObject's `fallback` replicas, never 0, and after the broker is back it
follows fresh values.

Other test sessions share the testbed's RabbitMQ, so it is not killed: this ScaledObject
reaches it through a TCP proxy of its own, which stands for the broker dying. Torn down, it
cuts every connection and refuses new ones, which is what the scaler sees of a dead broker
too; brought back on the same port, it is the broker restarted."""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

from tests.integration.brokers import RabbitMQHelper, address_of
from tests.integration.kafka_proxy import CountingKafkaProxy
from tests.integration.keda.workload import HPA_TIMEOUT_S, Workload, condition
from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube import cluster
from tests.testbed.kube.client import KubeClient

PER_REPLICA = 10
FALLBACK_REPLICAS = 5
FAILURE_THRESHOLD = 3
STALE_AFTER_S = 3


@pytest.fixture
def outage_scaler() -> Iterator[ScalerProcess]:
    """A scaler that serves the last good reading for 3 s only (not 60 s), then UNAVAILABLE."""
    process = ScalerProcess("--poll-interval", "0.5", "--stale-after", str(STALE_AFTER_S))
    yield process
    process.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_broker_gives_the_fallback_replicas_never_zero_then_fresh_values(
        outage_scaler: ScalerProcess, kube: KubeClient, namespace: str,
        rabbitmq_helper: RabbitMQHelper, unique_name: Callable[[str], str]) -> None:
    queue = rabbitmq_helper.declare(unique_name("jobs"))
    rabbitmq_helper.publish(queue, 3 * PER_REPLICA)
    # A plain TCP proxy (CountingKafkaProxy counts Kafka frames; for AMQP it only forwards).
    listen, upstream = f"127.0.0.1:{free_port()}", address_of(rabbitmq_helper.amqp_url)
    through_proxy = urllib.parse.urlsplit(rabbitmq_helper.amqp_url)
    through_proxy = through_proxy._replace(
        netloc=f"{through_proxy.username}:{through_proxy.password}@{listen}")
    workload = Workload(kube, namespace, "jobs-worker", outage_scaler)
    replicas_seen: list[int] = []

    def replicas() -> int:
        replicas_seen.append(workload.replicas())
        return replicas_seen[-1]

    def until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Seconds until `check()`, sampling the replicas meanwhile; fails naming `what`."""
        began = time.monotonic()
        while not check():
            assert time.monotonic() - began < timeout_s, f"{what}; {workload.seen()}"
            time.sleep(0.2)
        return time.monotonic() - began

    proxy = CountingKafkaProxy(listen, upstream).__enter__()
    try:
        workload.create({"source": "rabbitmq", "hostFromEnv": "RABBITMQ_URL",
                         "queueName": queue, "mode": "QueueLength", "value": str(PER_REPLICA)},
                        env={"RABBITMQ_URL": through_proxy.geturl()},
                        fallback={"failureThreshold": FAILURE_THRESHOLD,
                                  "replicas": FALLBACK_REPLICAS})
        until(lambda: replicas() == 3, HPA_TIMEOUT_S, "KEDA and the HPA to reach 3")
        replicas_seen.clear()

        proxy.stop()  # the broker dies
        rabbitmq_helper.publish(queue, 3 * PER_REPLICA)  # meanwhile the backlog grows to 60
        to_fallback = until(
            lambda: replicas() == FALLBACK_REPLICAS
            and condition(workload.scaled_object(), "Fallback") == "True",
            HPA_TIMEOUT_S, f"KEDA to apply the {FALLBACK_REPLICAS} fallback replicas")
        print(f"broker down: 3 -> {FALLBACK_REPLICAS} (fallback) replicas in {to_fallback:.1f} s "
              f"(failureThreshold {FAILURE_THRESHOLD}, --stale-after {STALE_AFTER_S} s)")
        # And it holds there, sync after sync, while the broker stays away.
        held_since = time.monotonic()
        until(lambda: replicas() != FALLBACK_REPLICAS
              or time.monotonic() - held_since > 5 * cluster.HPA_SYNC_PERIOD_S,
              HPA_TIMEOUT_S, "the wait to end")
        assert replicas_seen[-1] == FALLBACK_REPLICAS, replicas_seen
        # The scaler answers UNAVAILABLE (older than --stale-after), not 0: that is what makes
        # KEDA count failures and fall back.
        explained = workload.explanation()
        assert explained.get("code") == "UNAVAILABLE", explained
        print(f"scaler's explanation meanwhile: {explained}")

        proxy = CountingKafkaProxy(listen, upstream).__enter__()  # the broker is back
        back = until(lambda: workload.explanation().get("metricValue") == 6 * PER_REPLICA
                     and replicas() == 6
                     and condition(workload.scaled_object(), "Fallback") == "False",
                     HPA_TIMEOUT_S, "fresh values (60 messages: 6 replicas) after the broker")
        print(f"broker back: {FALLBACK_REPLICAS} -> 6 replicas on fresh values in {back:.1f} s")
    finally:
        proxy.stop()
    # Never 0, from the outage to the fresh values.
    assert 0 not in replicas_seen, replicas_seen
    print(f"replicas seen from the outage on: {sorted(set(replicas_seen))}")
