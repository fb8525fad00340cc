"""Checks a rendered or example object against the schema the API server would use: Kubernetes'
own OpenAPI schemas (kubernetes-validate) for each Kubernetes version KEDA 2.20 supports, KEDA's
CRDs (tests/schemas/keda-v2.20.2, from KEDA v2.20.2's config/crd) and, for the Prometheus
Operator's and Knative's kinds, whose CRDs we do not ship, the structure of the fields we use."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kubernetes_validate_utils

# KEDA 2.20 is tested on Kubernetes 1.33 to 1.35 (keda.sh/docs/2.20/operate/cluster/).
KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35")
KEDA_CRDS = Path(__file__).resolve().parents[1] / "schemas" / "keda-v2.20.2"
KEDA_FILES = {"ScaledObject": "keda.sh_scaledobjects.yaml",
              "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}
DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}


def _closed(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    metadata = {"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1},
                               "namespace": {"type": "string"},
                               "labels": STRINGS, "annotations": STRINGS}}
    return _closed({"apiVersion": {"const": api_version}, "kind": {"const": kind},
                    "metadata": metadata, "spec": spec}, ["apiVersion", "kind", "metadata", "spec"])


_SELECTOR = {"type": "object", "properties": {"matchLabels": STRINGS},
             "required": ["matchLabels"]}
_RULE = {"type": "object", "required": ["expr"],
         "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
         "properties": {"alert": {"type": "string", "minLength": 1},
                        "record": {"type": "string", "minLength": 1},
                        "expr": {"type": ["string", "integer"]}, "for": DURATION,
                        "keep_firing_for": DURATION, "labels": STRINGS, "annotations": STRINGS},
         "additionalProperties": False}
# The spec fields of monitoring.coreos.com/v1 and sources.knative.dev/v1beta1 that we use.
SPECS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _closed({
        "selector": _SELECTOR, "jobLabel": {"type": "string"},
        "namespaceSelector": _closed({"matchNames": {"type": "array", "minItems": 1,
                                                     "items": {"type": "string"}}}, []),
        "endpoints": {"type": "array", "minItems": 1, "items": _closed({
            "port": {"type": "string", "minLength": 1}, "path": {"type": "string"},
            "interval": DURATION, "scrapeTimeout": DURATION,
            "honorLabels": {"type": "boolean"}}, ["port"])},
    }, ["selector", "endpoints"]),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _closed({
        "groups": {"type": "array", "minItems": 1, "items": _closed({
            "name": {"type": "string", "minLength": 1}, "interval": DURATION,
            "rules": {"type": "array", "minItems": 1, "items": _RULE}}, ["name", "rules"])},
    }, ["groups"]),
    ("sources.knative.dev/v1beta1", "KafkaSource"): _closed({
        "bootstrapServers": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "topics": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "consumerGroup": {"type": "string"}, "consumers": {"type": "integer", "minimum": 0},
        "sink": _closed({"ref": _closed({"apiVersion": {"type": "string"},
                                         "kind": {"type": "string"},
                                         "name": {"type": "string"}},
                                        ["apiVersion", "kind", "name"]),
                         "uri": {"type": "string"}}, []),
    }, ["bootstrapServers", "topics", "sink"]),
}
STRUCTURES = {key: _resource(*key, spec) for key, spec in SPECS.items()}


def strict(schema: Any) -> Any:
    """A CRD's OpenAPI schema with unknown fields refused, as the API server's strict field
    validation (kubectl's default since 1.27) refuses them; CRD schemas leave that implicit."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict(value) if key != "properties" else
              {name: strict(sub) for name, sub in value.items()} for key, value in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        closed["additionalProperties"] = False
    return closed


@functools.cache
def keda_validator(kind: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((KEDA_CRDS / KEDA_FILES[kind]).read_text())
    (version,) = (v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = strict(version["schema"]["openAPIV3Schema"])
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema)
    return validator


def problems(document: dict[str, Any], kubernetes_version: str) -> list[str]:
    """What the API server of that version would refuse in `document` (empty: nothing)."""
    api_version, kind = document["apiVersion"], document["kind"]
    if api_version == "keda.sh/v1alpha1":
        found = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                 for e in keda_validator(kind).iter_errors(document)]
        spec = document.get("spec", {})
        # The CRD's one x-kubernetes-validations rule, a CEL expression jsonschema cannot run.
        if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
            found.append("spec: minReplicaCount must be less than or equal to maxReplicaCount")
        return found
    if (api_version, kind) in STRUCTURES:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in
                jsonschema.Draft202012Validator(STRUCTURES[api_version, kind]).iter_errors(
                    document)]
    try:
        kubernetes_validate.validate(document, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
    return []


def have_schemas() -> list[str]:
    """The Kubernetes versions kubernetes-validate has schemas for, as major.minor."""
    return sorted({kubernetes_validate_utils.major_minor(v)
                   for v in kubernetes_validate_utils.all_versions()})
