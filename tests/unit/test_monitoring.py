"""The monitoring files hold together without a Prometheus: the dashboard JSON is what
scripts/gen_dashboard.py makes, every metric the rules and the dashboard name is one the scaler
exports, every alert says what to do and is tested firing and clearing, and the docs cover every
alert and panel. (tests/integration/test_prometheus*.py run them against the real thing.)"""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from scaler.history import History
from scaler.metrics import ScalerMetrics

REPO = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((REPO / "manifests" / "prometheus" / "rules.yaml").read_text())
UNIT_TESTS = yaml.safe_load((REPO / "tests" / "prometheus" / "rules_test.yaml").read_text())
DASHBOARD = json.loads((REPO / "manifests" / "grafana" / "queue-scaler.json").read_text())
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule]
RECORDS = {rule["record"] for group in RULES["groups"] for rule in group["rules"]
           if "record" in rule}
PANELS = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
# Series from elsewhere that the rules rely on: Prometheus' own, and kube-state-metrics' HPA
# maximum (QueueScalerPinnedAtMaxReplicas).
FOREIGN = {"up", "kube_horizontalpodautoscaler_spec_max_replicas"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def generated_dashboard() -> Any:
    return runpy.run_path(str(REPO / "scripts" / "gen_dashboard.py"))["build"]()


def exported_families() -> dict[str, str]:
    """Every metric family /metrics can carry, name to type, from a registry put together as
    scaler.app does: the serving process's process_* metrics, ScalerMetrics, and the answers
    collected at scrape time (queue_scaler_answer_error, queue_scaler_answer_stale)."""
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=registry)
    ScalerMetrics(registry).watch_answers(History(lambda: 0.0), within_s=300.0)
    return {family.name: family.type for family in registry.collect()}


def exported_series() -> set[str]:
    return {name + suffix for name, kind in exported_families().items()
            for suffix in SUFFIXES[kind]}


def test_the_registry_exports_the_answer_target_and_process_metrics() -> None:
    exported = exported_series()
    assert {"queue_scaler_answer_error", "queue_scaler_answer_stale",
            "queue_scaler_target_per_replica", "process_cpu_seconds_total",
            "process_resident_memory_bytes", "process_start_time_seconds"} <= exported


def test_docs_metrics_names_every_metric_the_scaler_exports_and_no_other() -> None:
    text = (REPO / "docs" / "metrics.md").read_text()
    named = set(re.findall(r"`(queue_scaler_[a-z0-9_]+)", text))
    # A counter by the name of its series (`..._total`), a gauge or histogram by its own.
    ours = {name + ("_total" if kind == "counter" else "")
            for name, kind in exported_families().items() if name.startswith("queue_scaler_")}
    assert sorted(ours - named) == [], "exported but not in docs/metrics.md"
    assert sorted(named - ours) == [], "in docs/metrics.md but not exported"
    assert "`process_*`" in text


def headings(doc: str) -> set[str]:
    text = (REPO / "docs" / doc).read_text()
    return {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}


def expressions() -> list[Any]:
    found = [pytest.param(rule["expr"], id=rule.get("alert") or rule["record"])
             for group in RULES["groups"] for rule in group["rules"]]
    found += [pytest.param(target["expr"], id=f"{panel['title']}-{target['refId']}")
              for panel in PANELS for target in panel["targets"]]
    found += [pytest.param(v["query"]["query"], id=f"variable-{v['name']}")
              for v in DASHBOARD["templating"]["list"] if v["type"] == "query"]
    return found


def test_the_dashboard_is_what_the_generator_makes() -> None:
    assert generated_dashboard() == DASHBOARD, (
        "manifests/grafana/queue-scaler.json is stale: run python scripts/gen_dashboard.py")


@pytest.mark.parametrize("expr", expressions())
def test_every_series_a_query_names_exists(expr: str) -> None:
    exported = exported_series()
    # A metric name is an identifier followed by a selector, a range or the end of an argument.
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|,|$)", expr))
    # And the names a {__name__=~"a|b"} selector alternates between.
    for alternatives in re.findall(r'__name__=~?"([^"]+)"', expr):
        names |= set(alternatives.split("|"))
    names -= {"by", "on", "ignoring", "group_left", "le", "instance", "namespace",
              "scaled_object", "source", "method", "outcome", "code", "job"}
    unknown = {n for n in names if n not in exported and n not in FOREIGN}
    assert not unknown, f"{unknown} is no series the scaler exports ({sorted(exported)})"
    recorded = set(re.findall(r"\bqueue_scaler:[a-z0-9_:]+", expr))
    assert recorded <= RECORDS, recorded - RECORDS


@pytest.mark.parametrize("alert", [pytest.param(a, id=a["alert"]) for a in ALERTS])
def test_every_alert_has_a_severity_and_says_what_to_do(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in ("critical", "warning")
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    assert len(annotations["description"].split()) >= 20  # what it means and what to do
    assert annotations["runbook"] == f"docs/alerts.md#{alert['alert'].lower()}"
    assert alert["alert"] in headings("alerts.md")


@pytest.mark.parametrize("alert", [pytest.param(a["alert"], id=a["alert"]) for a in ALERTS])
def test_every_alert_is_unit_tested_firing_and_then_clearing(alert: str) -> None:
    evaluations = sorted(
        (_seconds(case["eval_time"]), bool(case["exp_alerts"]))
        for test in UNIT_TESTS["tests"] for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert)
    fired = [t for t, firing in evaluations if firing]
    assert fired, f"no test of {alert} expects it to fire"
    assert any(not firing and t > fired[0] for t, firing in evaluations), (
        f"no test of {alert} expects it to clear after firing")
    assert any(not firing and t < fired[0] for t, firing in evaluations), (
        f"no test of {alert} expects it quiet before it fires")


def test_every_panel_is_described_and_queries_the_datasource_variable() -> None:
    described = headings("dashboard.md")
    assert [p["title"] for p in PANELS if p["title"] not in described] == []
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]


def _seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))
