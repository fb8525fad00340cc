"""A Deployment and its ScaledObject in a test namespace, and reads of what KEDA and the HPA
did to them. There is no kubelet: pods stay Pending, but `spec.replicas`, the scale
subresource and the HPA are real, and they are what KEDA and the HPA act on."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.scaler_process import ScalerProcess
from tests.testbed.kube.client import KubeClient

POLLING_INTERVAL_S = 2
COOLDOWN_PERIOD_S = 10
# Generous bounds for a busy two-core machine; the times observed are printed.
ACTIVATION_TIMEOUT_S = 30.0
HPA_TIMEOUT_S = 60.0


def condition(resource: dict[str, Any], kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of the condition `kind`, or None."""
    found = condition_of(resource, kind)
    return None if found is None else str(found.get("status"))


def condition_of(resource: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for found in (resource.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


class Workload:
    """Deployment `name` (0 replicas, one container) and ScaledObject `name` in `namespace`,
    whose triggers point at `scaler`."""

    def __init__(self, kube: KubeClient, namespace: str, name: str,
                 scaler: ScalerProcess) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.scaler = scaler
        self.deployment_path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        self.scaled_object_path = (f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/"
                                   f"scaledobjects/{name}")
        self.hpa_path = (f"/apis/autoscaling/v2/namespaces/{namespace}/"
                         f"horizontalpodautoscalers/keda-hpa-{name}")

    @property
    def scaler_address(self) -> str:
        return f"127.0.0.1:{self.scaler.grpc_port}"

    def create(self, metadata: dict[str, str], *, trigger_type: str = "external",
               env: dict[str, str] | None = None, **spec: Any) -> None:
        """The Deployment (with `env` in its container, for `*FromEnv` keys) and a
        ScaledObject with one trigger; `spec` overrides the ScaledObject's spec keys."""
        labels = {"app": self.name}
        container: dict[str, Any] = {
            "name": "worker", "image": "registry.invalid/worker:never-pulled",  # never pulled
            "env": [{"name": key, "value": value} for key, value in (env or {}).items()]}
        self.kube.create(
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments",
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": self.name},
             "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels},
                                   "spec": {"containers": [container]}}}})
        self.kube.create(
            f"/apis/keda.sh/v1alpha1/namespaces/{self.namespace}/scaledobjects",
            {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
             "metadata": {"name": self.name},
             "spec": {"scaleTargetRef": {"name": self.name},
                      "pollingInterval": POLLING_INTERVAL_S,
                      "cooldownPeriod": COOLDOWN_PERIOD_S,
                      "minReplicaCount": 0, "maxReplicaCount": 10,
                      "triggers": [{"type": trigger_type,
                                    "metadata": {"scalerAddress": self.scaler_address,
                                                 **metadata}}],
                      **spec}})

    def replicas(self) -> int:
        return int(self.kube.get(self.deployment_path)["spec"].get("replicas", 0))

    def scaled_object(self) -> dict[str, Any]:
        return dict(self.kube.get(self.scaled_object_path))

    def hpa(self) -> dict[str, Any]:
        return dict(self.kube.get(self.hpa_path))

    def events(self) -> list[dict[str, Any]]:
        """The namespace's Events about the ScaledObject."""
        items = self.kube.get(f"/api/v1/namespaces/{self.namespace}/events")["items"]
        return [event for event in items
                if event.get("involvedObject", {}).get("kind") == "ScaledObject"
                and event["involvedObject"].get("name") == self.name]

    def explanation(self) -> dict[str, Any]:
        """The scaler's explanation of the (one) trigger, or {} while it has none."""
        text = self.scaler.http(f"/scaledobjects/{self.namespace}/{self.name}")
        try:
            [trigger] = json.loads(text)["triggers"]
        except (ValueError, KeyError):
            return {}
        return dict(trigger)

    def seen(self) -> str:
        """What a failed wait prints: replicas, the ScaledObject's status, the scaler's log."""
        status = self.scaled_object().get("status", {})
        return (f"replicas {self.replicas()}; ScaledObject status {json.dumps(status)[:1500]}; "
                f"scaler log tail: {self.scaler.log()[-1500:]}")
