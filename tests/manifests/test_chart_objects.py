"""What the chart's objects say, rendered by real helm: the pod is locked down, probed on gRPC
health, reachable only from KEDA and Prometheus, given every flag of `queue-scaler serve` with
the scaler's own defaults, a grace period longer than the scaler's, and a connections file the
scaler's own loader reads back as written."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaler import sources
from tests.manifests.rendering import EVERYTHING, REPO, Helm, container, env, one

RULES = REPO / "manifests" / "prometheus" / "rules.yaml"
# What a trigger adds to a named connection to name one target, per source.
TARGET = {"kafka": {"consumerGroup": "orders"}, "rabbitmq": {"queueName": "orders"},
          "activemq": {"brokerName": "broker", "brokerAddress": "orders", "queueName": "orders"}}


def serve_flags() -> dict[str, str]:
    """QUEUE_SCALER_* variable -> default, as `queue-scaler serve --help` states them."""
    done = subprocess.run([sys.executable, "-m", "scaler", "serve", "--help"],
                          capture_output=True, text=True, timeout=60, check=True,
                          env=os.environ | {"COLUMNS": "1000"})
    found = dict(re.findall(r"\(env (QUEUE_SCALER_[A-Z_]+), default ([^)]*)\)",
                            " ".join(done.stdout.split())))
    assert "QUEUE_SCALER_GRPC_ADDRESS" in found, done.stdout
    return found


def flag_of(variable: str) -> str:
    return "--" + variable.removeprefix("QUEUE_SCALER_").lower().replace("_", "-")


def pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(objects, "Deployment")["spec"]["template"]["spec"])


def arguments(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The container's `--flag value` pairs."""
    args = container(objects)["args"]
    assert args[0] == "serve"
    return dict(zip(args[1::2], args[2::2], strict=True))


def test_every_flag_of_serve_is_set_from_a_value(everything: list[dict[str, Any]]) -> None:
    given = set(env(everything)) | {variable for variable in serve_flags()
                                    if flag_of(variable) in arguments(everything)}
    assert set(serve_flags()) - given == set()


def test_the_charts_defaults_are_the_scalers_defaults(defaults: list[dict[str, Any]]) -> None:
    passed = env(defaults)
    for variable, default in serve_flags().items():
        if default == "None":  # files: the chart's own (connections) or none (TLS off)
            continue
        assert variable in passed
        try:
            assert float(passed[variable]) == float(default), variable
        except ValueError:
            assert passed[variable] == default, variable


def test_every_value_reaches_its_variable(everything: list[dict[str, Any]]) -> None:
    scaler = yaml.safe_load(EVERYTHING.read_text())["scaler"]
    passed = env(everything)
    for value, given in scaler.items():
        variable = "QUEUE_SCALER_" + re.sub(r"(?<!^)(?=[A-Z])", "_", value).upper()
        if value in ("grpcPort", "httpPort"):
            variable, given = variable.replace("_PORT", "_ADDRESS"), f"0.0.0.0:{given}"
        assert passed[variable] == str(given), value


def test_files_named_by_flags_are_mounted(everything: list[dict[str, Any]]) -> None:
    spec = pod(everything)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(everything)["volumeMounts"]}
    secrets = {o["metadata"]["name"]: o for o in everything if o["kind"] == "Secret"}
    flags = arguments(everything)
    assert set(flags) == {"--connections-file", "--tls-cert", "--tls-key", "--tls-client-ca"}
    for flag, path in flags.items():
        folder, name = path.rsplit("/", 1)
        secret = volumes[mounts[folder]]["secret"]
        if "items" in secret:
            assert name in {item["path"] for item in secret["items"]}, flag
        else:  # the whole Secret, which the chart renders
            assert name in secrets[secret["secretName"]]["stringData"], flag
        assert next(m for m in container(everything)["volumeMounts"]
                    if m["mountPath"] == folder)["readOnly"] is True


def test_the_pod_runs_locked_down(defaults: list[dict[str, Any]]) -> None:
    spec = pod(defaults)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert one(defaults, "ServiceAccount")["automountServiceAccountToken"] is False
    context = container(defaults)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    tmp = next(m for m in container(defaults)["volumeMounts"] if m["mountPath"] == "/tmp")  # noqa: S108
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])
    resources = container(defaults)["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_two_pods_spread_over_nodes_and_a_budget_keeps_one(
        defaults: list[dict[str, Any]]) -> None:
    deployment = one(defaults, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    (spread,) = pod(defaults)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    budget = one(defaults, "PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1
    assert "maxUnavailable" not in budget
    assert budget["selector"]["matchLabels"].items() <= labels.items()


def test_max_unavailable_replaces_min_available(everything: list[dict[str, Any]]) -> None:
    assert one(everything, "PodDisruptionBudget")["spec"].keys() >= {"maxUnavailable"}
    assert "minAvailable" not in one(everything, "PodDisruptionBudget")["spec"]


def test_probes_ask_grpc_health_and_the_http_twins_under_tls(
        defaults: list[dict[str, Any]], everything: list[dict[str, Any]]) -> None:
    plain = container(defaults)
    for probe in ("readinessProbe", "livenessProbe"):
        assert plain[probe]["grpc"] == {"port": 6000}
    # The kubelet's gRPC probe has no TLS; everything-on serves TLS on the gRPC port.
    secure = container(everything)
    assert secure["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert secure["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def ingress(objects: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, str]]]:
    """(port, namespace, pod labels) for each NetworkPolicy ingress rule."""
    rules = []
    for rule in one(objects, "NetworkPolicy")["spec"]["ingress"]:
        (port,), (peer,) = rule["ports"], rule["from"]
        namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        rules.append((port["port"], namespace, peer.get("podSelector", {}).get("matchLabels", {})))
    return rules


def test_only_keda_reaches_grpc_and_only_monitoring_reaches_http(
        defaults: list[dict[str, Any]], everything: list[dict[str, Any]]) -> None:
    assert ingress(defaults) == [(6000, "keda", {}), (8080, "monitoring", {})]
    assert ingress(everything) == [
        (7000, "keda-system", {"app.kubernetes.io/name": "keda-operator"}),
        (9090, "observability", {"app.kubernetes.io/name": "prometheus"})]
    assert one(everything, "NetworkPolicy")["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize(("shutdown_grace", "period"), [
    pytest.param(None, None, id="defaults"),
    pytest.param(42.5, None, id="fractional-grace-derived"),
    pytest.param(1, None, id="short-grace-derived"),
    pytest.param(10, 11, id="explicit-period-just-above"),
])
def test_the_grace_period_outlasts_the_scalers_shutdown_grace(
        helm: Helm, shutdown_grace: float | None, period: int | None) -> None:
    args = [] if period is None else ["--set-json", f"terminationGracePeriodSeconds={period}"]
    if shutdown_grace is not None:
        args += ["--set-json", f"scaler.shutdownGrace={shutdown_grace}"]
    objects = helm.template(*args)
    grace = float(env(objects)["QUEUE_SCALER_SHUTDOWN_GRACE"])
    seconds = pod(objects)["terminationGracePeriodSeconds"]
    assert seconds > grace
    # Derived: the grace rounded up plus 5 s for the broker connections to close.
    assert seconds == (period if period is not None else math.ceil(grace) + 5)


def test_named_connections_reach_the_scalers_loader_as_written(
        everything: list[dict[str, Any]], tmp_path: Path) -> None:
    named = yaml.safe_load(EVERYTHING.read_text())["connections"]["named"]
    (secret,) = [o for o in everything if o["kind"] == "Secret"]
    folder, _ = arguments(everything)["--connections-file"].rsplit("/", 1)
    # The Secret "mounted": every key a file in tmp_path, in place of the mount folder.
    for key, content in secret["stringData"].items():
        (tmp_path / key).write_text(content.replace(folder, str(tmp_path)))
    connections = sources.load_connections(str(tmp_path / "connections.toml"))
    assert set(connections.by_name) == set(named)
    for name, keys in named.items():
        connection = connections.by_name[name]
        assert connection.source == keys["source"]
        written = {key: (str(value).lower() if isinstance(value, bool) else str(value))
                   .replace(folder, str(tmp_path)) for key, value in keys.items()
                   if key != "source"}
        assert dict(connection.values) == written
        sources.parse_trigger({"source": connection.source, "connection": name,
                               **TARGET[connection.source]}, connections)


def test_an_own_secret_replaces_the_charts(helm: Helm) -> None:
    objects = helm.template("--set", "connections.existingSecret=my-connections")
    assert [o for o in objects if o["kind"] == "Secret"] == []
    volume = next(v for v in pod(objects)["volumes"] if v["name"] == "connections")
    assert volume["secret"]["secretName"] == "my-connections"
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/connections" not in (annotations or {})


def test_a_changed_connection_rolls_the_pods(helm: Helm) -> None:
    def checksum(*args: str) -> str:
        template = one(helm.template(*args), "Deployment")["spec"]["template"]
        return str(template["metadata"]["annotations"]["checksum/connections"])

    assert checksum() != checksum("--set", "connections.named.k.source=kafka",
                                  "--set", "connections.named.k.bootstrapServers=k:9092")


def test_the_service_monitor_gives_the_job_the_rules_select(
        everything: list[dict[str, Any]]) -> None:
    monitor = one(everything, "ServiceMonitor")["spec"]
    (endpoint,) = monitor["endpoints"]
    service = one(everything, "Service")
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The scaler's `namespace` label is the ScaledObject's; the rules rely on it surviving.
    assert endpoint["honorLabels"] is True
    selected = set(re.findall(r'job="([^"]+)"', RULES.read_text()))
    assert selected
    assert {service["metadata"]["labels"][monitor["jobLabel"]]} == selected
