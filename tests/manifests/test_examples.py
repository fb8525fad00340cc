"""The example manifests (manifests/examples/, and those of docs/install.md): KEDA v2.20.2's
CRDs accept each object, every external trigger's metadata parses as the scaler will parse it,
each points at the chart's Service, and each example shows what it is there to show."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaler import sources
from tests.manifests import schemas
from tests.manifests.rendering import REPO, Helm, one

INSTALL_GUIDE = REPO / "docs" / "install.md"
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))
EXTERNAL = ("external", "external-push")
# The workload's environment, from which KEDA resolves each `<key>FromEnv` before it calls the
# scaler (it sends the key with the value).
ENVIRONMENT = {"RABBITMQ_MANAGEMENT_URL": "https://scaler:secret@rabbitmq.messaging.svc:15671/",
               "ARTEMIS_USER": "scaler", "ARTEMIS_PASSWORD": "secret"}
MTLS_PARAMETERS = {"tlsClientCert", "tlsClientKey", "caCert"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def scaled_objects() -> list[Any]:
    return [pytest.param(doc, id=f"{path.stem}:{doc['metadata']['name']}")
            for path in EXAMPLES for doc in documents(path) if doc["kind"] == "ScaledObject"]


def triggers(scaled_object: dict[str, Any]) -> list[dict[str, Any]]:
    found = [t for t in scaled_object["spec"]["triggers"] if t["type"] in EXTERNAL]
    assert found, "an example without a queue-scaler trigger"
    return found


def as_keda_sends(metadata: dict[str, str]) -> dict[str, str]:
    return {key: ENVIRONMENT[value] if key.endswith("FromEnv") else value
            for key, value in metadata.items()}


def test_there_is_an_example_per_broker_and_for_knative() -> None:
    assert {path.stem for path in EXAMPLES} == {"kafka", "rabbitmq-mtls", "artemis",
                                                 "knative-kafkasource"}


@pytest.mark.parametrize("version", schemas.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_object_passes_its_schema(path: Path, version: str) -> None:
    refused = {f"{d['kind']}/{d['metadata']['name']}": schemas.problems(d, version)
               for d in documents(path)}
    assert refused
    assert refused == {key: [] for key in refused}


@pytest.mark.parametrize("scaled_object", scaled_objects())
def test_every_external_trigger_parses_as_the_scaler_parses_it(
        scaled_object: dict[str, Any]) -> None:
    for trigger in triggers(scaled_object):
        sources.parse_trigger(as_keda_sends(trigger["metadata"]))


@pytest.mark.parametrize("scaled_object", scaled_objects())
def test_every_example_falls_back_on_errors(scaled_object: dict[str, Any]) -> None:
    fallback = scaled_object["spec"]["fallback"]
    assert fallback["failureThreshold"] >= 1
    assert fallback["replicas"] >= 1


@pytest.mark.parametrize("scaled_object", scaled_objects())
def test_every_trigger_points_at_the_charts_service(
        scaled_object: dict[str, Any], defaults: list[dict[str, Any]]) -> None:
    service = one(defaults, "Service")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    address = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}"
    for trigger in triggers(scaled_object):
        assert trigger["metadata"]["scalerAddress"] == address


def test_the_kafka_example_is_polled_and_the_rabbitmq_one_pushed() -> None:
    def types(stem: str) -> set[str]:
        (found,) = [d for d in documents(REPO / "manifests" / "examples" / f"{stem}.yaml")
                    if d["kind"] == "ScaledObject"]
        return {t["type"] for t in found["spec"]["triggers"]}

    assert types("kafka") == {"external"}
    assert types("rabbitmq-mtls") == {"external-push"}
    assert types("artemis") == {"external"}


def test_the_rabbitmq_example_authenticates_to_the_scaler_with_a_client_certificate() -> None:
    objects = documents(REPO / "manifests" / "examples" / "rabbitmq-mtls.yaml")
    authentication = one(objects, "TriggerAuthentication")
    (trigger,) = triggers(one(objects, "ScaledObject"))
    assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    assert trigger["metadata"]["enableTLS"] == "true"
    parameters = {p["parameter"]: p for p in authentication["spec"]["secretTargetRef"]}
    assert set(parameters) == MTLS_PARAMETERS
    assert len({p["name"] for p in parameters.values()}) == 1, "one Secret holds all three"


def test_the_knative_example_scales_the_kafka_source_on_its_own_group() -> None:
    objects = documents(REPO / "manifests" / "examples" / "knative-kafkasource.yaml")
    source, scaled_object = one(objects, "KafkaSource"), one(objects, "ScaledObject")
    target = scaled_object["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        source["apiVersion"], source["kind"], source["metadata"]["name"])
    (trigger,) = triggers(scaled_object)
    metadata = sources.parse_trigger(trigger["metadata"]).source
    assert metadata.source_name == "kafka"
    given = trigger["metadata"]
    assert given["bootstrapServers"].split(",") == source["spec"]["bootstrapServers"]
    assert given["topic"].split(",") == source["spec"]["topics"]
    assert given["consumerGroup"] == source["spec"]["consumerGroup"]


def test_the_install_guides_values_serve_its_scaled_object(helm: Helm, tmp_path: Path) -> None:
    blocks = [list(yaml.safe_load_all(block)) for block in
              re.findall(r"```yaml\n(.*?)```", INSTALL_GUIDE.read_text(), re.DOTALL)]
    (values,) = [docs[0] for docs in blocks if "connections" in docs[0]]
    scaled = [d for docs in blocks for d in docs if d.get("kind") == "ScaledObject"]
    assert scaled, "the guide shows a ScaledObject"
    values_file = tmp_path / "my-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    secret = one(helm.template("-f", str(values_file)), "Secret")
    (tmp_path / "connections.toml").write_text(secret["stringData"]["connections.toml"])
    connections = sources.load_connections(str(tmp_path / "connections.toml"))
    for scaled_object in scaled:
        for version in schemas.KUBERNETES_VERSIONS:
            assert schemas.problems(scaled_object, version) == []
        for trigger in triggers(scaled_object):
            sources.parse_trigger(as_keda_sends(trigger["metadata"]), connections)
