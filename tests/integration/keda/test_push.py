"""Scenario 2: with `type: external-push` on RabbitMQ, KEDA wakes a Deployment from 0 within
about one `--stream-interval` of the first message; the `pollingInterval` is 300 s, so
polling cannot be what woke it."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.brokers import RabbitMQHelper
from tests.integration.keda.workload import ACTIVATION_TIMEOUT_S, Workload, condition
from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube.client import KubeClient, wait_for

POLLING_INTERVAL_S = 300


def test_external_push_wakes_a_deployment_from_zero_without_waiting_for_a_poll(
        kube: KubeClient, scaler_process: ScalerProcess, namespace: str,
        rabbitmq_helper: RabbitMQHelper, unique_name: Callable[[str], str]) -> None:
    queue = rabbitmq_helper.declare(unique_name("jobs"))
    workload = Workload(kube, namespace, "jobs-worker", scaler_process)
    # The broker URL carries a password, so it comes from the workload's environment.
    workload.create({"source": "rabbitmq", "hostFromEnv": "RABBITMQ_URL", "queueName": queue,
                     "mode": "QueueLength", "value": "10"},
                    trigger_type="external-push", env={"RABBITMQ_URL": rabbitmq_helper.amqp_url},
                    pollingInterval=POLLING_INTERVAL_S)
    wait_for(lambda: condition(workload.scaled_object(), "Ready") == "True",
             ACTIVATION_TIMEOUT_S, "the ScaledObject to be Ready", describe=workload.seen)
    # The first poll, at creation, found the queue empty. (Until a push scaler is active, its
    # Active condition stays Unknown; the trigger's own activity is what KEDA records.)
    wait_for(lambda: [activity.get("isActive") for activity in (
        workload.scaled_object().get("status", {}).get("triggersActivity") or {}).values()]
        == [False], ACTIVATION_TIMEOUT_S, "KEDA to record the trigger as inactive",
        describe=workload.seen)
    assert workload.replicas() == 0

    rabbitmq_helper.publish(queue, 1)
    began = time.monotonic()
    wait_for(lambda: workload.replicas() == 1, ACTIVATION_TIMEOUT_S,
             "KEDA to activate to 1 on the pushed activity", interval_s=0.05,
             describe=workload.seen)
    woke = time.monotonic() - began
    print(f"activated 0 -> 1 {woke:.2f} s after the first message "
          f"(pollingInterval {POLLING_INTERVAL_S} s)")
    # Well below the polling interval: the push, not a poll, woke it. (The first poll ran when
    # the ScaledObject was created; the next is due 300 s later.)
    assert woke < 60, f"woke after {woke:.1f} s"
    assert condition(workload.scaled_object(), "Active") == "True"
