"""Scenario 1: KEDA wakes a Deployment on Kafka lag, the HPA follows the backlog to the count
our explanation predicts, and KEDA returns it to 0 after the cooldown; all through a real KEDA
operator and metrics server, a real HPA and a real queue-scaler process reading a real Kafka."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.brokers import KafkaHelper
from tests.integration.keda.workload import (
    ACTIVATION_TIMEOUT_S,
    COOLDOWN_PERIOD_S,
    HPA_TIMEOUT_S,
    POLLING_INTERVAL_S,
    Workload,
    condition,
)
from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube import apiserver, cluster, programs
from tests.testbed.kube.client import KubeClient, wait_for

LAG_THRESHOLD = 10
PARTITIONS = 4


def test_the_cluster_runs_the_versions_under_test_with_the_metrics_api_wired(
        kube: KubeClient) -> None:
    version = kube.get("/version")
    api_service = kube.get(
        f"/apis/apiregistration.k8s.io/v1/apiservices/{apiserver.EXTERNAL_METRICS}")
    crd = kube.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                   "scaledobjects.keda.sh")

    assert version["gitVersion"] == f"v{programs.KUBERNETES_VERSION}"
    assert condition(api_service, "Available") == "True", api_service.get("status")
    assert condition(crd, "Established") == "True"
    # The aggregated API answers through the API server, from KEDA's metrics server.
    resources = kube.get("/apis/external.metrics.k8s.io/v1beta1")
    assert resources["groupVersion"] == "external.metrics.k8s.io/v1beta1"


def test_keda_wakes_a_deployment_on_kafka_lag_the_hpa_follows_it_and_it_returns_to_zero(
        kube: KubeClient, scaler_process: ScalerProcess, namespace: str,
        kafka_helper: KafkaHelper, unique_name: Callable[[str], str]) -> None:
    topic = kafka_helper.create_topic(unique_name("orders"), partitions=PARTITIONS)
    group = unique_name("workers")
    # Committed at the start: the lag is exactly what the test produces.
    kafka_helper.commit(group, topic, dict.fromkeys(range(PARTITIONS), 0))
    workload = Workload(kube, namespace, "orders-worker", scaler_process)
    workload.create({"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
                     "consumerGroup": group, "topic": topic,
                     "lagThreshold": str(LAG_THRESHOLD)})

    # KEDA has made its HPA and asked our scaler: ready, inactive, still at 0.
    wait_for(lambda: condition(workload.scaled_object(), "Ready") == "True",
             ACTIVATION_TIMEOUT_S, "the ScaledObject to be Ready", describe=workload.seen)
    wait_for(lambda: condition(workload.scaled_object(), "Active") == "False",
             ACTIVATION_TIMEOUT_S, "the ScaledObject to be inactive without lag",
             describe=workload.seen)
    assert workload.hpa()["spec"]["scaleTargetRef"]["name"] == workload.name
    assert workload.replicas() == 0

    # Messages arrive: KEDA activates the Deployment (0 -> 1) itself, from IsActive.
    kafka_helper.produce(topic, 3, partition=0)
    began = time.monotonic()
    wait_for(lambda: workload.replicas() == 1, ACTIVATION_TIMEOUT_S, "KEDA to activate to 1",
             describe=workload.seen)
    print(f"activated 0 -> 1 in {time.monotonic() - began:.1f} s "
          f"(pollingInterval {POLLING_INTERVAL_S} s)")

    # More lag: the HPA scales to what the explanation says. 57 messages over 4 partitions at
    # a threshold of 10 ask for 6 replicas, but replicas are capped at the partition count
    # (allowIdleConsumers false): the metric is capped at 40, so the HPA asks for 4.
    kafka_helper.produce_round_robin(topic, [0, 18, 18, 18])
    began = time.monotonic()
    trigger = wait_for(lambda: (found := workload.explanation()).get("metricValue") == 40
                       and found, HPA_TIMEOUT_S, "the scaler to see the capped lag")
    assert trigger["desiredReplicas"] == PARTITIONS
    wait_for(lambda: workload.replicas() == trigger["desiredReplicas"], HPA_TIMEOUT_S,
             f"the HPA to scale to {trigger['desiredReplicas']}", describe=workload.seen)
    print(f"HPA scaled 1 -> {trigger['desiredReplicas']} {time.monotonic() - began:.1f} s "
          f"after the messages (HPA sync period {cluster.HPA_SYNC_PERIOD_S} s)")
    # And it stays there: the HPA, reading the metric through KEDA's metrics server, keeps
    # asking for exactly that many, sync after sync (not 6, the uncapped count).
    time.sleep(3 * cluster.HPA_SYNC_PERIOD_S)
    hpa = workload.hpa()
    assert workload.replicas() == trigger["desiredReplicas"]
    assert hpa["status"]["desiredReplicas"] == trigger["desiredReplicas"], hpa["status"]
    assert condition(workload.scaled_object(), "Active") == "True"

    # The backlog drained (the group commits the log end): back to 0, but only after the
    # cooldown, counted from the last poll that found the trigger active.
    kafka_helper.commit(group, topic, {p: kafka_helper.log_end(topic, p)
                                       for p in range(PARTITIONS)})
    drained = time.monotonic()
    wait_for(lambda: workload.replicas() == 0, COOLDOWN_PERIOD_S + HPA_TIMEOUT_S,
             "KEDA to scale back to 0 after the cooldown", describe=workload.seen)
    to_zero = time.monotonic() - drained
    print(f"back to 0 {to_zero:.1f} s after the drain (cooldownPeriod {COOLDOWN_PERIOD_S} s)")
    assert to_zero >= COOLDOWN_PERIOD_S - POLLING_INTERVAL_S - 1, (
        f"scaled to 0 {to_zero:.1f} s after the drain, before the {COOLDOWN_PERIOD_S} s cooldown")
    assert workload.explanation()["metricValue"] == 0
