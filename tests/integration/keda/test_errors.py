"""Scenario 4: where our INVALID_ARGUMENT message reaches the user, for a typo'd key and for a
`hostFromEnv` whose variable the workload's container does not define (KEDA drops that key
without a word, so our message names it as the likely cause).

KEDA 2.21 asks GetMetricSpec first, to build its HPA; on an error it logs our message in the
operator's log and returns no metric spec, so the ScaledObject's Ready condition shows only
its own generic message, and the Warning Event it emits for that is rejected by Kubernetes
1.36 (its events.k8s.io `action` is empty). The operator's log is where our message shows."""

from __future__ import annotations

import pytest

from tests.integration.brokers import KafkaHelper
from tests.integration.keda.workload import ACTIVATION_TIMEOUT_S, Workload, condition_of
from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube.client import KubeClient, wait_for
from tests.testbed.pytest_plugin import Testbed

TYPO = "lagTreshold: is not a known key (did you mean 'lagThreshold'?)"
DROPPED_FROM_ENV = ("host: is required (if the ScaledObject sets hostFromEnv, the workload's "
                    "container must define that variable: KEDA drops the key when it does not)")


def operator_log(testbed: Testbed) -> str:
    if testbed.is_users_own("kube"):
        pytest.fail("this test reads the testbed's KEDA operator log, and "
                    "QUEUE_SCALER_TEST_KUBECONFIG points at a cluster of yours; unset it",
                    pytrace=False)
    [log] = [path for path in testbed.service("kube").log_files()
             if path.name == "keda-operator.log"]
    return log.read_text(errors="replace")


@pytest.mark.parametrize(("case", "message"), [
    pytest.param("typo", TYPO, id="typo-d-key"),
    pytest.param("dropped-from-env", DROPPED_FROM_ENV, id="host-from-env-without-the-variable"),
])
def test_our_invalid_argument_message_reaches_the_keda_operator_log(
        case: str, message: str, kube: KubeClient, scaler_process: ScalerProcess,
        namespace: str, kafka_helper: KafkaHelper, testbed: Testbed) -> None:
    workload = Workload(kube, namespace, "misconfigured-worker", scaler_process)
    if case == "typo":
        workload.create({"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
                         "consumerGroup": "workers", "topic": "orders", "lagTreshold": "5"})
    else:
        # The container defines another variable, not RABBITMQ_URL: KEDA drops hostFromEnv.
        workload.create({"source": "rabbitmq", "hostFromEnv": "RABBITMQ_URL",
                         "queueName": "jobs"}, env={"RABBITMQ_HOST": "rabbitmq"})

    # KEDA's operator logs exactly our message, for this ScaledObject.
    line = wait_for(lambda: next(
        (line for line in operator_log(testbed).splitlines()
         if f'"namespace": "{namespace}"' in line and "external_scaler" in line), None),
        ACTIVATION_TIMEOUT_S, "the KEDA operator to log the scaler's error",
        describe=workload.seen)
    print(f"KEDA operator log: {line}")
    assert f"rpc error: code = InvalidArgument desc = {message}" in line

    # The ScaledObject says it is not ready, in KEDA's words, not ours.
    ready = wait_for(lambda: (found := condition_of(workload.scaled_object(), "Ready"))
                     and found.get("status") == "False" and found, ACTIVATION_TIMEOUT_S,
                     "the ScaledObject to be not Ready", describe=workload.seen)
    print(f"Ready condition: {ready}")
    assert ready["reason"] == "ScaledObjectCheckFailed"
    assert "no metric specs returned from scalers" in ready["message"]
    # Tripwires for the README: should KEDA start to carry our message in the ScaledObject's
    # conditions or in an Event, these fail and the README's "where it shows" must change.
    conditions = workload.scaled_object()["status"]["conditions"]
    assert not [found for found in conditions if message in (found.get("message") or "")]
    assert not [event for event in workload.events() if message in (event.get("message") or "")]
    # And no HPA was made: nothing scales on a default the user did not mean.
    assert not kube.answers(workload.hpa_path)
    assert workload.replicas() == 0
