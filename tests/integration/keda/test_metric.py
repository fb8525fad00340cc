"""Scenario 5: the external metric KEDA registers with the HPA carries our metric name and
target, and the value KEDA's metrics server serves through the aggregated API equals our own
GetMetrics answer for the same metadata."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

import grpc

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.brokers import KafkaHelper
from tests.integration.keda.workload import ACTIVATION_TIMEOUT_S, Workload, condition
from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube.client import KubeClient, wait_for

LAG_THRESHOLD = 10
PARTITIONS = 4


def test_the_hpa_gets_our_metric_name_and_target_and_the_metrics_server_our_value(
        kube: KubeClient, scaler_process: ScalerProcess, namespace: str,
        kafka_helper: KafkaHelper, unique_name: Callable[[str], str]) -> None:
    topic = kafka_helper.create_topic(unique_name("orders"), partitions=PARTITIONS)
    group = unique_name("workers")
    kafka_helper.commit(group, topic, dict.fromkeys(range(PARTITIONS), 0))
    # 23 messages: under the partition cap (4 x 10), so the value is the lag itself.
    kafka_helper.produce_round_robin(topic, [5, 6, 6, 6])
    metadata = {"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
                "consumerGroup": group, "topic": topic, "lagThreshold": str(LAG_THRESHOLD)}
    workload = Workload(kube, namespace, "orders-worker", scaler_process)
    workload.create(metadata)
    wait_for(lambda: condition(workload.scaled_object(), "Ready") == "True",
             ACTIVATION_TIMEOUT_S, "the ScaledObject to be Ready", describe=workload.seen)

    # What we answer, asked as KEDA asks (with the trigger's metadata as KEDA sends it).
    reference = pb.ScaledObjectRef(
        name=workload.name, namespace=namespace,
        scalerMetadata={"scalerAddress": workload.scaler_address, **metadata})
    with grpc.insecure_channel(workload.scaler_address) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        [spec] = stub.GetMetricSpec(reference, timeout=10).metricSpecs
        [ours] = stub.GetMetrics(pb.GetMetricsRequest(
            scaledObjectRef=reference, metricName=spec.metricName), timeout=10).metricValues
    assert spec.metricName == f"kafka-{topic}"
    assert (spec.targetSize, ours.metricValue) == (LAG_THRESHOLD, 23)

    # KEDA's HPA: one external metric, our name behind KEDA's trigger-index prefix, our target.
    [metric] = workload.hpa()["spec"]["metrics"]
    print(f"HPA spec.metrics: {metric}")
    assert metric["type"] == "External"
    registered = metric["external"]["metric"]["name"]
    assert registered == f"s0-{spec.metricName}"
    assert metric["external"]["target"] == {"type": "AverageValue",
                                            "averageValue": str(spec.targetSize)}
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {
        "scaledobject.keda.sh/name": workload.name}
    assert workload.scaled_object()["status"]["externalMetricNames"] == [registered]

    # The metrics server, through the API server's aggregation layer, as the HPA reads it.
    selector = urllib.parse.quote(f"scaledobject.keda.sh/name={workload.name}")
    served = kube.get(f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/"
                      f"{registered}?labelSelector={selector}")
    print(f"metrics server: {served['items']}")
    [item] = served["items"]
    assert item["metricName"] == registered
    assert item["value"] == str(ours.metricValue)
    # And the HPA acted on it: ceil(23 / 10) = 3.
    wait_for(lambda: workload.replicas() == 3, ACTIVATION_TIMEOUT_S * 2,
             "the HPA to scale to ceil(23 / 10) = 3", describe=workload.seen)
