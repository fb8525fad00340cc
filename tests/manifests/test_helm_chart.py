"""The Helm chart as real helm sees it: it lints, it renders objects that the API servers of the
Kubernetes versions KEDA 2.20 supports would accept, it refuses wrong values at `helm template`
naming them, and the plain manifests are its rendering."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaler import sources
from tests.manifests import schemas
from tests.manifests.rendering import CHART, NAMESPACE, REPO, Helm, one
from tests.testbed import helm as testbed_helm

PLAIN = REPO / "manifests" / "queue-scaler.yaml"
RULES = REPO / "manifests" / "prometheus" / "rules.yaml"
RENDER_SCRIPT = REPO / "scripts" / "render_manifests.sh"
# Cases that render other branches than the defaults and everything-on do.
OWN_SECRET = ("--set", "connections.existingSecret=my-connections",
              "--set", "serviceAccount.create=false", "--set", "networkPolicy.enabled=false",
              "--set", "podDisruptionBudget.enabled=false", "--set", "topologySpread.enabled=false")


def test_helm_is_the_pinned_version(helm: Helm) -> None:
    done = helm.run("version", "--template", "{{.Version}}")
    assert done.stdout.strip() == f"v{testbed_helm.VERSION}"


@pytest.mark.parametrize("everything_on", [pytest.param(False, id="defaults"),
                                           pytest.param(True, id="everything-on")])
def test_chart_lints_clean(helm: Helm, everything_args: tuple[str, ...],
                           everything_on: bool) -> None:
    done = helm.run("lint", "--strict", str(CHART), *(everything_args if everything_on else ()))
    assert done.returncode == 0, done.stdout + done.stderr
    # Lint turns a template's `fail` into an INFO line instead of failing: look for it too.
    for marker in ("[ERROR]", "[WARNING]", "Fail:"):
        assert marker not in done.stdout + done.stderr


@pytest.mark.parametrize("version", schemas.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", ["defaults", "everything-on", "own-secret"])
def test_every_rendered_object_passes_the_api_schemas(
        helm: Helm, everything_args: tuple[str, ...], case: str, version: str) -> None:
    assert version in schemas.have_schemas(), f"kubernetes-validate has no schemas for {version}"
    args = {"defaults": (), "everything-on": everything_args, "own-secret": OWN_SECRET}[case]
    objects = helm.template("--kube-version", f"{version}.0", *args)
    assert objects
    refused = {f"{o['kind']}/{o['metadata']['name']}": schemas.problems(o, version)
               for o in objects}
    assert refused == {key: [] for key in refused}


@pytest.mark.parametrize("version", schemas.KUBERNETES_VERSIONS)
def test_the_plain_manifests_pass_the_api_schemas(version: str) -> None:
    objects = [doc for doc in yaml.safe_load_all(PLAIN.read_text()) if doc]
    refused = {f"{o['kind']}/{o['metadata']['name']}": schemas.problems(o, version)
               for o in objects}
    assert refused == {key: [] for key in refused}


def test_a_schema_check_refuses_what_the_api_server_would(
        defaults: list[dict[str, Any]], everything: list[dict[str, Any]]) -> None:
    # The checks above would pass vacuously if unknown fields or wrong types got through.
    deployment = json.loads(json.dumps(one(defaults, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {}
    monitor = json.loads(json.dumps(one(everything, "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["honorlabels"] = True
    scaled_object = yaml.safe_load((REPO / "manifests" / "examples" / "kafka.yaml").read_text())
    scaled_object["spec"]["fallback"]["replica"] = 2
    for version in schemas.KUBERNETES_VERSIONS:
        for wrong in (deployment, monitor, scaled_object):
            assert len(schemas.problems(wrong, version)) == 1


def test_defaults_make_the_scaler_and_what_guards_it(defaults: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in defaults)
    assert kinds == sorted(["Deployment", "Service", "ServiceAccount", "Secret",
                            "PodDisruptionBudget", "NetworkPolicy"])


def test_everything_on_adds_the_prometheus_operator_objects(
        everything: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in everything)
    assert kinds == sorted(["Deployment", "Service", "ServiceAccount", "Secret",
                            "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
                            "PrometheusRule"])


def test_the_prometheus_rule_holds_the_groups_of_the_one_rules_file(
        everything: list[dict[str, Any]]) -> None:
    link = CHART / "files" / "prometheus-rules.yaml"
    assert link.is_symlink()
    assert link.resolve() == RULES.resolve()
    rule = one(everything, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


@pytest.mark.parametrize(("values", "named"), [
    pytest.param({"replicaCount": "two"}, ["replicaCount", "integer"], id="replicas-as-text"),
    pytest.param({"scaler": {"logFormat": "xml"}}, ["logFormat", "text", "json"],
                 id="log-format-outside-choices"),
    pytest.param({"colour": "blue"}, ["colour"], id="unknown-top-level-key"),
    pytest.param({"scaler": {"logFromat": "json"}}, ["logFromat"], id="misspelt-setting"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, ["pullPolicy"], id="pull-policy"),
    pytest.param({"scaler": {"grpcPort": 70000}}, ["grpcPort"], id="port-out-of-range"),
    pytest.param({"scaler": {"shutdownGrace": 0}}, ["shutdownGrace"], id="zero-grace"),
    pytest.param({"scaler": {"maxRequestBytes": 2.5}}, ["maxRequestBytes"], id="fraction-bytes"),
    pytest.param({"networkPolicy": {"kedaNamespace": "KEDA"}}, ["kedaNamespace"],
                 id="namespace-not-a-dns-label"),
    pytest.param({"connections": {"named": {"k": {"source": "redis"}}}}, ["source", "kafka"],
                 id="connection-of-unknown-source"),
    pytest.param({"connections": {"named": {"k": {"source": "kafka", "bootstrapServer": "x"}}}},
                 ["bootstrapServer"], id="connection-key-misspelt"),
    pytest.param({"connections": {"named": {"k": {"source": "rabbitmq", "host": 1.5}}}},
                 ["host"], id="connection-value-a-fraction"),
    pytest.param({"connections": {"existingSecret": "mine", "named": {"k": {"source": "kafka"}}}},
                 ["connections.existingSecret", "connections.named"],
                 id="own-secret-and-named-connections"),
    pytest.param({"tls": {"enabled": True}}, ["tls.secretName"], id="tls-without-secret"),
    pytest.param({"tls": {"clientCA": {"enabled": True}}}, ["tls.clientCA.enabled", "tls.enabled"],
                 id="mtls-without-tls"),
    pytest.param({"podDisruptionBudget": {"minAvailable": None}},
                 ["minAvailable", "maxUnavailable"], id="budget-without-a-bound"),
    pytest.param({"scaler": {"shutdownGrace": 30}, "terminationGracePeriodSeconds": 30},
                 ["terminationGracePeriodSeconds", "shutdownGrace"], id="grace-period-too-short"),
])
def test_a_wrong_value_fails_helm_template_naming_it(
        helm: Helm, tmp_path: Path, values: dict[str, Any], named: list[str]) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    message = helm.template_error("-f", str(values_file))
    for word in named:
        assert word in message


def test_the_values_schema_allows_each_sources_connection_keys_and_no_others() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    branches = schema["$defs"]["connection"]["allOf"]
    allowed = {b["if"]["properties"]["source"]["const"]: set(b["then"]["properties"])
               for b in branches}
    assert allowed == {name: {"source", *kind.connection_keys}
                       for name, kind in sources.SOURCES.items()}


def test_the_plain_manifests_are_the_chart_rendered_now(helm: Helm, tmp_path: Path) -> None:
    fresh = tmp_path / "queue-scaler.yaml"
    done = subprocess.run(  # noqa: S603 - the script the message names, as a person runs it
        [str(RENDER_SCRIPT), str(fresh)], env=os.environ | {"HELM": str(helm.binary)},
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert fresh.read_text() == PLAIN.read_text(), (
        "manifests/queue-scaler.yaml is stale; regenerate it with "
        "HELM=$(python -m tests.testbed.helm) scripts/render_manifests.sh")


def test_the_plain_manifests_bring_their_namespace() -> None:
    objects = [doc for doc in yaml.safe_load_all(PLAIN.read_text()) if doc]
    assert objects[0]["kind"] == "Namespace"
    assert objects[0]["metadata"]["name"] == NAMESPACE
    assert {o["metadata"].get("namespace") for o in objects[1:]} == {NAMESPACE}
