"""Fixtures for the KEDA-in-the-loop tests: a client for the testbed's "kube" cluster (etcd,
kube-apiserver, kube-controller-manager, KEDA's operator and metrics server, all on 127.0.0.1),
a namespace per test that is emptied and deleted afterwards, and a real queue-scaler process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube.client import KubeClient, wait_for
from tests.testbed.pytest_plugin import Testbed


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
