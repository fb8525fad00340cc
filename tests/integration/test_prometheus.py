"""The dashboard and the rules against a real Prometheus scraping a real scaler.

One scaler serves four ScaledObjects of a namespace of its own against the testbed's Kafka and
RabbitMQ (a lag trigger, a throughput trigger, a queue trigger and one whose broker cannot be
reached) while a background workload keeps asking, as KEDA would. The testbed's Prometheus
scrapes it through a file_sd file and evaluates manifests/prometheus/rules.yaml; then every
query of manifests/grafana/queue-scaler.json, with its template variables filled in as Grafana
would, and every rule must answer from that data. The broken ScaledObject is answered
UNAVAILABLE every time, so queue_scaler_answer_error and QueueScalerAnsweringErrors must name it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import yaml

from scaler import app
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.settings import Settings
from tests.integration.brokers import KafkaHelper, RabbitMQHelper
from tests.testbed.pytest_plugin import Testbed

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "manifests" / "prometheus" / "rules.yaml"
DASHBOARD = REPO / "manifests" / "grafana" / "queue-scaler.json"
JOB = "queue-scaler"
# Grafana's own variables: a rate window of several 1 s scrapes, as $__rate_interval is
# (4 x the scrape interval at least), and the dashboard's time range for $__range.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__range": "5m"}
# The ScaledObjects that get decisions; `broken` only ever gets errors (its broker cannot be
# reached), answered UNAVAILABLE.
ANSWERED = ("orders", "orders-throughput", "mailer")
BROKEN = "broken"
SCALED_OBJECTS = (*ANSWERED, BROKEN)
# The target per replica each one's metadata asks for (1 for scalingStrategy: throughput).
TARGETS = {"orders": 10.0, "orders-throughput": 1.0, "mailer": 20.0}
# Alerts whose condition this workload creates (the broken trigger), and those that must stay
# quiet for a healthy scaler.
EXPECTED_ALERTS = {"QueueScalerReadsFailing": {"source": "rabbitmq", "outcome": "unavailable"},
                   "QueueScalerAnsweringErrors": {"scaled_object": BROKEN, "source": "rabbitmq",
                                                  "code": "UNAVAILABLE"}}
TIMEOUT_S = 60.0


class PrometheusApi:
    """Prometheus' HTTP API (blocking: call through asyncio.to_thread)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"GET {path} {params}: {body.get('errorType')}: "
                                 f"{body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200


@dataclasses.dataclass
class Scenario:
    prometheus: PrometheusApi
    namespace: str
    instance: str  # the scaler's HTTP address, as Prometheus labels its target


async def eventually(condition: Callable[[], Any], what: str,
                     timeout_s: float = TIMEOUT_S) -> Any:
    """Calls `condition` (in a thread) until it returns something truthy; fails naming `what`
    and the last AssertionError it raised."""
    deadline = time.monotonic() + timeout_s
    last: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            result = await asyncio.to_thread(condition)
        except AssertionError as error:
            last = error
        else:
            if result:
                return result
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}"
                         + (f": {last}" if last else ""))


async def keep_asking(stub: pb_grpc.ExternalScalerStub, good: list[tuple[pb.ScaledObjectRef, str]],
                      broken: pb.ScaledObjectRef, produce: Callable[[], None]) -> None:
    """What KEDA does, faster: GetMetrics and IsActive for every ScaledObject, while messages
    keep arriving on the Kafka topic (so the throughput trigger measures a rate)."""
    while True:
        for ref, metric_name in good:
            await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref,
                                                       metricName=metric_name))
            await stub.IsActive(ref)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.IsActive(broken)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value.details()
        await asyncio.to_thread(produce)
        await asyncio.sleep(0.5)


def write_targets(path: Path, targets: list[dict[str, Any]]) -> None:
    """A file_sd file, written whole (renamed into place) so Prometheus never reads half."""
    scratch = path.with_name(f".{path.name}.partial")
    scratch.write_text(json.dumps(targets))
    scratch.rename(path)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scenario(testbed: Testbed, kafka_helper: KafkaHelper, rabbitmq_amqp_url: str,
                   rabbitmq_http_url: str) -> AsyncIterator[Scenario]:
    prometheus = PrometheusApi(testbed.variable("QUEUE_SCALER_TEST_PROMETHEUS"))
    targets = Path(testbed.variable("QUEUE_SCALER_TEST_PROMETHEUS_TARGETS"))
    # The rules as they are in this checkout, whatever the running Prometheus loaded at start.
    loaded_rules = Path(testbed.variable("QUEUE_SCALER_TEST_PROMETHEUS_RULES"))
    await asyncio.to_thread(loaded_rules.write_text, RULES.read_text())
    await asyncio.to_thread(prometheus.reload)

    suffix = uuid.uuid4().hex[:8]
    namespace = f"dashboard-{suffix}"
    topic = kafka_helper.create_topic(f"orders-{suffix}")
    group = f"orders-worker-{suffix}"
    kafka_helper.produce_round_robin(topic, [10, 10, 10])
    kafka_helper.commit(group, topic, {0: 2, 1: 2, 2: 2})
    rabbitmq = RabbitMQHelper(rabbitmq_amqp_url, rabbitmq_http_url)
    queue = rabbitmq.declare(f"mailer-{suffix}")
    rabbitmq.publish(queue, 45)
    kafka = {"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
             "consumerGroup": group, "topic": topic, "lagThreshold": "10"}
    metadata = {
        "orders": kafka,
        "orders-throughput": {**kafka, "scalingStrategy": "throughput",
                              "messagesPerSecondPerReplica": "2", "arrivalRateHalfLife": "1"},
        "mailer": {"source": "rabbitmq", "hostFromEnv": rabbitmq_amqp_url, "queueName": queue,
                   "mode": "QueueLength", "value": "20"},
    }
    broken = pb.ScaledObjectRef(namespace=namespace, name=BROKEN, scalerMetadata={
        "source": "rabbitmq", "hostFromEnv": "amqp://guest:guest@127.0.0.1:1/",
        "queueName": queue})

    scaler = await app.start(Settings(
        grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", poll_interval_s=0.5,
        max_data_age_s=0.05, stream_interval_s=0.2, shutdown_grace_s=1.0))
    instance = f"127.0.0.1:{scaler.http.port}"
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{scaler.grpc_port}")
    targets_file = targets / f"scaler-{suffix}.json"
    workload: asyncio.Task[None] | None = None
    try:
        stub = pb_grpc.ExternalScalerStub(channel)
        good = []
        for name in ANSWERED:
            ref = pb.ScaledObjectRef(namespace=namespace, name=name,
                                     scalerMetadata=metadata[name])
            spec = await stub.GetMetricSpec(ref)
            good.append((ref, spec.metricSpecs[0].metricName))
        workload = asyncio.create_task(
            keep_asking(stub, good, broken, lambda: kafka_helper.produce(topic, 3)))
        write_targets(targets_file, [{"targets": [instance]}])
        await eventually(lambda: prometheus.query(
            f'queue_scaler_desired_replicas{{instance="{instance}", namespace="{namespace}"}}'),
            f"Prometheus to scrape the scaler at {instance} through {targets_file}")
        yield Scenario(prometheus, namespace, instance)
        assert not workload.done(), workload.exception()
    finally:
        targets_file.unlink(missing_ok=True)
        if workload is not None:
            workload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await workload
        await channel.close()
        await scaler.stop()
        rabbitmq.delete(queue)
        rabbitmq.close()


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def fill_in(expr: str, scenario: Scenario) -> str:
    """The query as Grafana sends it: one scaler, our namespace, and every ScaledObject in it
    (a multi-value variable becomes an alternation)."""
    values = {**GRAFANA_VARIABLES, "$instance": scenario.instance,
              "$namespace": scenario.namespace,
              "$scaled_object": "(" + "|".join(SCALED_OBJECTS) + ")"}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"a variable the test does not fill in: {expr}"
    return expr


def dashboard_queries() -> list[Any]:
    return [pytest.param(target["expr"], id=f"{panel['title']}-{target['refId']}")
            for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def rules(kind: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if kind in rule]


def is_ours(series: dict[str, Any], scenario: Scenario) -> bool:
    return has_our_labels(series["metric"], scenario)


def has_our_labels(labels: dict[str, str], scenario: Scenario) -> bool:
    """Our scaler's series, or (merged over scaler replicas) our namespace's."""
    return bool(labels.get("instance") == scenario.instance
            or labels.get("namespace") == scenario.namespace)


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


async def test_prometheus_scrapes_the_scaler_through_the_file_sd_file(
        scenario: Scenario) -> None:
    [up] = await asyncio.to_thread(
        scenario.prometheus.query, f'up{{job="{JOB}", instance="{scenario.instance}"}}')
    assert up["value"][1] == "1"
    active = (await asyncio.to_thread(scenario.prometheus.get, "/api/v1/targets"))[
        "activeTargets"]
    [ours] = [t for t in active if t["labels"].get("instance") == scenario.instance]
    assert (ours["health"], ours["lastError"], ours["labels"]["job"]) == ("up", "", JOB)


@pytest.mark.parametrize("expr", dashboard_queries())
async def test_every_dashboard_query_returns_series_for_our_scaled_objects(
        scenario: Scenario, expr: str) -> None:
    query = fill_in(expr, scenario)

    result = await eventually(
        lambda: (lambda r: r if finite(r) else None)(scenario.prometheus.query(query)),
        f"a finite value from {query}")

    names = {series["metric"].get("scaled_object") for series in result} - {None}
    assert names <= set(SCALED_OBJECTS), names
    if "namespace" in expr:
        assert {series["metric"].get("namespace") for series in result} == {
            scenario.namespace}


async def test_the_template_variables_offer_our_scaler_namespace_and_scaled_objects(
        scenario: Scenario) -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    expected = {"instance": scenario.instance, "namespace": scenario.namespace}

    offered = {}
    for name in ("instance", "namespace", "scaled_object"):
        found = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name]["query"]["query"])
        assert found is not None, variables[name]
        selector = fill_in(found.group(1), scenario)
        offered[name] = set(await asyncio.to_thread(
            scenario.prometheus.get, f"/api/v1/label/{found.group(2)}/values",
            **{"match[]": selector}))

    assert expected["instance"] in offered["instance"]
    assert expected["namespace"] in offered["namespace"]
    # Within our namespace: exactly the ScaledObjects that got an answer, with a decision or
    # (broken) with errors only.
    assert offered["scaled_object"] == set(SCALED_OBJECTS)


async def test_answer_error_names_the_failing_scaled_object_with_its_code(
        scenario: Scenario) -> None:
    selector = f'{{instance="{scenario.instance}", namespace="{scenario.namespace}"}}'

    def failing() -> list[tuple[str, str, str, str]]:
        return sorted((s["metric"]["scaled_object"], s["metric"]["source"], s["metric"]["code"],
                       s["value"][1])
                      for s in scenario.prometheus.query(f"queue_scaler_answer_error{selector}"))

    # Only broken: the others' newest answers are decisions.
    assert await eventually(failing, "queue_scaler_answer_error for broken") == [
        (BROKEN, "rabbitmq", "UNAVAILABLE", "1")]
    # It never had a good reading, so it is no stale answer; nor is anything else of ours.
    assert await asyncio.to_thread(
        scenario.prometheus.query, f"queue_scaler_answer_stale{selector}") == []


async def test_target_per_replica_is_each_triggers_target(scenario: Scenario) -> None:
    selector = f'{{instance="{scenario.instance}", namespace="{scenario.namespace}"}}'

    def targets() -> dict[str, float]:
        return {s["metric"]["scaled_object"]: float(s["value"][1]) for s in
                scenario.prometheus.query(f"queue_scaler_target_per_replica{selector}")}

    assert await eventually(lambda: (lambda t: t if set(t) == set(TARGETS) else None)(
        targets()), "queue_scaler_target_per_replica for every answered ScaledObject") == TARGETS


async def test_the_serving_process_exports_its_process_metrics(scenario: Scenario) -> None:
    [started] = await asyncio.to_thread(
        scenario.prometheus.query, f'process_start_time_seconds{{instance="{scenario.instance}"}}')
    # This process started the scaler in this test run: within the last hour, not in the future.
    assert time.time() - 3600 < float(started["value"][1]) <= time.time()


async def test_the_rules_load_and_evaluate_without_errors(scenario: Scenario) -> None:
    in_file = {rule.get("record") or rule["alert"] for rule in rules("expr")}

    def all_evaluated() -> list[dict[str, Any]]:
        groups = scenario.prometheus.get("/api/v1/rules")["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        assert {rule["name"] for rule in loaded} == in_file
        assert not [(r["name"], r.get("lastError")) for r in loaded if r["health"] == "err"]
        return loaded if all(rule["health"] == "ok" for rule in loaded) else []

    loaded = await eventually(all_evaluated, "every rule to evaluate healthy")
    assert len(loaded) == len(in_file)


@pytest.mark.parametrize("rule", [pytest.param(r, id=r["record"]) for r in rules("record")])
async def test_every_recording_rule_records_our_scalers_series(
        scenario: Scenario, rule: dict[str, Any]) -> None:
    def ours(expr: str) -> list[dict[str, Any]]:
        return [s for s in scenario.prometheus.query(expr) if is_ours(s, scenario)]

    assert await eventually(lambda: ours(rule["expr"]), f"data from {rule['expr']}")
    assert await eventually(lambda: ours(rule["record"]),
                            f"Prometheus to record {rule['record']}")


@pytest.mark.parametrize("rule", [pytest.param(r, id=r["alert"]) for r in rules("alert")])
async def test_every_alert_evaluates_and_fires_only_on_what_is_wrong(
        scenario: Scenario, rule: dict[str, Any]) -> None:
    name = rule["alert"]
    if name in EXPECTED_ALERTS:
        wanted = EXPECTED_ALERTS[name]

        def firing_for_us() -> list[dict[str, Any]]:
            return [s for s in scenario.prometheus.query(rule["expr"])
                    if is_ours(s, scenario)
                    and all(s["metric"].get(k) == v for k, v in wanted.items())]

        assert await eventually(firing_for_us, f"{name}'s condition for {wanted}")

        def pending_for_us() -> list[dict[str, Any]]:
            alerts = scenario.prometheus.get("/api/v1/alerts")["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == name
                    and has_our_labels(a["labels"], scenario)
                    and all(a["labels"].get(k) == v for k, v in wanted.items())
                    and a["state"] in ("pending", "firing")]

        # `for: 5m`: pending within this test, with the labels and severity of the rule.
        [alert] = await eventually(pending_for_us, f"{name} pending for our scaler")
        assert alert["labels"]["severity"] == rule["labels"]["severity"]
    else:
        # Evaluates (a bad expression is an HTTP 400), and says nothing about a healthy scaler.
        result = await asyncio.to_thread(scenario.prometheus.query, rule["expr"])
        assert not [s for s in result if is_ours(s, scenario)], result
        if name == "QueueScalerAbsent":
            assert result == []  # our target exists
