"""Scenario 6: two ScaledObjects pointing at one scaler: KEDA keeps one gRPC connection to it,
and the scaler reads both targets (same Kafka) in one batched poll per cycle."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.brokers import KafkaHelper
from tests.integration.keda.workload import HPA_TIMEOUT_S, Workload, condition
from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube.client import KubeClient, wait_for

LAG_THRESHOLD = 10
PARTITIONS = 4


def kafka_poll_counts(scaler: ScalerProcess) -> tuple[float, float]:
    """(queue_scaler_poll_cycles_total, queue_scaler_poll_cycle_targets_total) for Kafka."""
    found = {sample.name: sample.value
             for family in text_string_to_metric_families(scaler.http("/metrics"))
             for sample in family.samples
             if sample.name in ("queue_scaler_poll_cycles_total",
                                "queue_scaler_poll_cycle_targets_total")
             and sample.labels.get("source") == "kafka"}
    return (found.get("queue_scaler_poll_cycles_total", 0.0),
            found.get("queue_scaler_poll_cycle_targets_total", 0.0))


def unmapped(address: Any) -> tuple[str, int]:
    """(ip, port), IPv4 for an IPv4-mapped IPv6 address (the scaler's socket is dual-stack)."""
    ip, port = address
    return ip.removeprefix("::ffff:"), port


def grpc_peers(scaler: ScalerProcess) -> list[psutil.Process]:
    """The processes at the other end of every established connection to the gRPC port."""
    accepted = [unmapped(connection.raddr) for connection in
                psutil.Process(scaler.process.pid).net_connections(kind="tcp")
                if connection.laddr.port == scaler.grpc_port
                and connection.status == psutil.CONN_ESTABLISHED]
    every = psutil.net_connections(kind="tcp")
    peers = []
    for address in accepted:
        [owner] = [connection.pid for connection in every
                   if unmapped(connection.laddr) == address and connection.pid is not None]
        peers.append(psutil.Process(owner))
    return peers


def is_ready(workload: Workload) -> bool:
    return condition(workload.scaled_object(), "Ready") == "True"


def has_replicas(workload: Workload, replicas: int) -> bool:
    return workload.replicas() == replicas


def test_two_scaled_objects_share_one_grpc_connection_and_one_batched_poll(
        kube: KubeClient, scaler_process: ScalerProcess, namespace: str,
        kafka_helper: KafkaHelper, unique_name: Callable[[str], str]) -> None:
    workloads = []
    # 15 messages ask for 2 replicas; 35 for 4 (under the cap of 4 partitions x 10).
    for name, lag in (("orders-worker", [0, 5, 5, 5]), ("payments-worker", [5, 10, 10, 10])):
        topic = kafka_helper.create_topic(unique_name(name), partitions=PARTITIONS)
        group = unique_name("workers")
        kafka_helper.commit(group, topic, dict.fromkeys(range(PARTITIONS), 0))
        kafka_helper.produce_round_robin(topic, lag)
        workload = Workload(kube, namespace, name, scaler_process)
        workload.create({"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
                         "consumerGroup": group, "topic": topic,
                         "lagThreshold": str(LAG_THRESHOLD)})
        workloads.append(workload)
    for workload, replicas in zip(workloads, (2, 4), strict=True):
        wait_for(functools.partial(is_ready, workload), HPA_TIMEOUT_S,
                 f"{workload.name} to be Ready", describe=workload.seen)
        wait_for(functools.partial(has_replicas, workload, replicas), HPA_TIMEOUT_S,
                 f"{workload.name} to scale to {replicas}", describe=workload.seen)

    # One connection, and it is KEDA's operator's (the metrics server asks the operator).
    peers = grpc_peers(scaler_process)
    print(f"gRPC connections to the scaler: {len(peers)}, from "
          f"{[' '.join(peer.cmdline()[:1]) for peer in peers]}")
    assert len(peers) == 1, peers
    assert peers[0].name() == "keda-operator", peers[0].cmdline()

    # One poller: every Kafka cycle (one per broker connection) reads both targets at once.
    cycles_before, targets_before = kafka_poll_counts(scaler_process)
    time.sleep(5)
    cycles_after, targets_after = kafka_poll_counts(scaler_process)
    cycles, targets = cycles_after - cycles_before, targets_after - targets_before
    print(f"in 5 s: {cycles:g} Kafka poll cycles read {targets:g} targets "
          f"(--poll-interval 0.5 s)")
    assert cycles >= 3
    assert targets == 2 * cycles
