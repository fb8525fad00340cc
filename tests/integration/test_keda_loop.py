"""KEDA in the loop: a real KEDA operator and metrics server and a real HPA (the testbed's "kube"
cluster: etcd, kube-apiserver, kube-controller-manager, KEDA, all on 127.0.0.1) scale a
Deployment through a real queue-scaler process reading a real Kafka. There is no kubelet: pods
stay Pending, but `spec.replicas`, the scale subresource and the HPA are real, and they are what
KEDA and the HPA act on."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.brokers import KafkaHelper
from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube import apiserver, cluster, programs
from tests.testbed.kube.client import KubeClient, wait_for
from tests.testbed.pytest_plugin import Testbed

POLLING_INTERVAL_S = 2
COOLDOWN_PERIOD_S = 10
LAG_THRESHOLD = 10
PARTITIONS = 4
# Generous bounds for a busy two-core machine; the times observed are printed.
ACTIVATION_TIMEOUT_S = 30.0
HPA_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def kube(testbed: Testbed) -> KubeClient:
    return KubeClient.from_kubeconfig(Path(testbed.variable("QUEUE_SCALER_TEST_KUBECONFIG")))


@pytest.fixture
def namespace(kube: KubeClient, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("keda")[:63].rstrip("-")
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name}})
    yield name
    # The ScaledObjects first, and gone (KEDA's finalizer removes its HPA), so that KEDA
    # neither asks a scaler that is about to stop nor looks for a Deployment the namespace
    # controller has deleted already; then the rest.
    scaled_objects = f"/apis/keda.sh/v1alpha1/namespaces/{name}/scaledobjects"
    kube.delete(scaled_objects)
    wait_for(lambda: not kube.get(scaled_objects)["items"], 30.0,
             f"the ScaledObjects of {name} to be deleted")
    kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def scaler_process() -> Iterator[ScalerProcess]:
    process = ScalerProcess("--poll-interval", "0.5")
    yield process
    process.stop()


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         # Never pulled: no kubelet runs.
                         {"name": "worker", "image": "registry.invalid/worker:never-pulled"}]}}}}


def scaled_object(name: str, scaler_address: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"name": name},
                     "pollingInterval": POLLING_INTERVAL_S,
                     "cooldownPeriod": COOLDOWN_PERIOD_S,
                     "minReplicaCount": 0, "maxReplicaCount": 10,
                     "triggers": [{"type": "external",
                                   "metadata": {"scalerAddress": scaler_address, **metadata}}]}}


def condition(resource: dict[str, Any], kind: str) -> str | None:
    for found in (resource.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return str(found.get("status"))
    return None


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
    name = "orders-worker"
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    kube.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment(name))
    kube.create(f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects", scaled_object(
        name, f"127.0.0.1:{scaler_process.grpc_port}",
        {"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
         "consumerGroup": group, "topic": topic, "lagThreshold": str(LAG_THRESHOLD)}))
    so_path = f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/{name}"

    def replicas() -> int:
        return int(kube.get(base)["spec"].get("replicas", 0))

    def seen() -> str:
        scaled = kube.get(so_path).get("status", {})
        return (f"replicas {replicas()}; ScaledObject status {json.dumps(scaled)[:1500]}; "
                f"scaler log tail: {scaler_process.log()[-1500:]}")

    def explanation() -> dict[str, Any]:
        text = scaler_process.http(f"/scaledobjects/{namespace}/{name}")
        try:
            [trigger] = json.loads(text)["triggers"]
        except (ValueError, KeyError):
            return {}
        return dict(trigger)

    # KEDA has made its HPA and asked our scaler: ready, inactive, still at 0.
    wait_for(lambda: condition(kube.get(so_path), "Ready") == "True", ACTIVATION_TIMEOUT_S,
             "the ScaledObject to be Ready", describe=seen)
    wait_for(lambda: condition(kube.get(so_path), "Active") == "False", ACTIVATION_TIMEOUT_S,
             "the ScaledObject to be inactive without lag", describe=seen)
    hpa_path = (f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/"
                f"keda-hpa-{name}")
    hpa = kube.get(hpa_path)
    assert hpa["spec"]["scaleTargetRef"]["name"] == name
    assert replicas() == 0

    # Messages arrive: KEDA activates the Deployment (0 -> 1) itself, from IsActive.
    kafka_helper.produce(topic, 3, partition=0)
    began = time.monotonic()
    wait_for(lambda: replicas() == 1, ACTIVATION_TIMEOUT_S, "KEDA to activate to 1",
             describe=seen)
    print(f"activated 0 -> 1 in {time.monotonic() - began:.1f} s "
          f"(pollingInterval {POLLING_INTERVAL_S} s)")

    # More lag: the HPA scales to what the explanation says. 57 messages over 4 partitions at
    # a threshold of 10 ask for 6 replicas, but replicas are capped at the partition count
    # (allowIdleConsumers false): the metric is capped at 40, so the HPA asks for 4.
    kafka_helper.produce_round_robin(topic, [0, 18, 18, 18])
    began = time.monotonic()
    trigger = wait_for(lambda: (found := explanation()).get("metricValue") == 40 and found,
                       HPA_TIMEOUT_S, "the scaler to see the capped lag")
    assert trigger["desiredReplicas"] == PARTITIONS
    wait_for(lambda: replicas() == trigger["desiredReplicas"], HPA_TIMEOUT_S,
             f"the HPA to scale to {trigger['desiredReplicas']}", describe=seen)
    print(f"HPA scaled 1 -> {trigger['desiredReplicas']} {time.monotonic() - began:.1f} s "
          f"after the messages (HPA sync period {cluster.HPA_SYNC_PERIOD_S} s)")
    # And it stays there: the HPA, reading the metric through KEDA's metrics server, keeps
    # asking for exactly that many, sync after sync (not 6, the uncapped count).
    time.sleep(3 * cluster.HPA_SYNC_PERIOD_S)
    hpa = kube.get(hpa_path)
    assert replicas() == trigger["desiredReplicas"]
    assert hpa["status"]["desiredReplicas"] == trigger["desiredReplicas"], hpa["status"]
    assert condition(kube.get(so_path), "Active") == "True"

    # The backlog drained (the group commits the log end): back to 0, but only after the
    # cooldown, counted from the last poll that found the trigger active.
    kafka_helper.commit(group, topic, {p: kafka_helper.log_end(topic, p)
                                       for p in range(PARTITIONS)})
    drained = time.monotonic()
    wait_for(lambda: replicas() == 0, COOLDOWN_PERIOD_S + HPA_TIMEOUT_S,
             "KEDA to scale back to 0 after the cooldown", describe=seen)
    to_zero = time.monotonic() - drained
    print(f"back to 0 {to_zero:.1f} s after the drain (cooldownPeriod {COOLDOWN_PERIOD_S} s)")
    assert to_zero >= COOLDOWN_PERIOD_S - POLLING_INTERVAL_S - 1, (
        f"scaled to 0 {to_zero:.1f} s after the drain, before the {COOLDOWN_PERIOD_S} s cooldown")
    assert explanation()["metricValue"] == 0
