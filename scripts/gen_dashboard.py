"""Writes manifests/grafana/queue-scaler.json, queue-scaler's Grafana dashboard, from the panel
declarations below: `python scripts/gen_dashboard.py`. Declared here rather than edited as JSON
so that every query uses the same template selector and the grid stays tidy;
tests/unit/test_monitoring.py fails when the committed JSON differs from a fresh run, and
tests/integration/test_prometheus.py runs every query against a real Prometheus. What each
panel shows: docs/dashboard.md.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parents[1] / "manifests" / "grafana" / "queue-scaler.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The scrape job the rules select as well (manifests/prometheus/rules.yaml).
JOB = 'job="queue-scaler"'
SCALER = 'instance=~"$instance"'
OBJECT = f'{SCALER}, namespace=~"$namespace", scaled_object=~"$scaled_object"'
# Several scaler replicas may each have answered for one ScaledObject; they read the same broker.
BY_TRIGGER = "max by (namespace, scaled_object, source)"
TRIGGER_LEGEND = "{{namespace}}/{{scaled_object}} ({{source}})"
# The variables offer every ScaledObject the scaler answers: with a decision, or with an error
# only (one that never got a value has no desired replicas).
ANSWERED = '__name__=~"queue_scaler_desired_replicas|queue_scaler_answer_error"'


@dataclasses.dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    width: int = 12
    kind: str = "timeseries"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def per_trigger(metric: str) -> str:
    return f"{BY_TRIGGER} ({metric}{{{OBJECT}}})"


def quantiles(metric: str, by: str, selector: str) -> tuple[Query, ...]:
    return tuple(Query(f"histogram_quantile({q}, sum by ({by}, le) "
                       f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
                       f"p{int(q * 100)} {{{{{by}}}}}") for q in (0.5, 0.99))


SCALED_OBJECTS = "ScaledObjects"
SCALER_PROCESS = "Scaler"
ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (SCALED_OBJECTS, (
        Panel("Backlog vs target",
              "Backlog: Kafka lag or queue depth before caps. Metric value: what KEDA's HPA "
              "compares with the target (after caps). Target x replicas: the target per replica "
              "given to the HPA times the desired replicas, the most the metric value may be "
              "for that many replicas. The metric value sits at or just under it while the "
              "replicas follow the backlog; above it, the replicas are held at their maximum.",
              (Query(per_trigger("queue_scaler_backlog_messages"), f"backlog {TRIGGER_LEGEND}"),
               Query(per_trigger("queue_scaler_metric_value"),
                     f"metric value {TRIGGER_LEGEND}"),
               Query(f"{per_trigger('queue_scaler_target_per_replica')} * "
                     f"{per_trigger('queue_scaler_desired_replicas')}",
                     f"target x replicas {TRIGGER_LEGEND}"))),
        Panel("Metric value",
              "The value last answered to GetMetrics, per trigger: messages, seconds or a "
              "rate depending on the mode; with scalingStrategy: throughput, replicas.",
              (Query(per_trigger("queue_scaler_metric_value"), TRIGGER_LEGEND),)),
        Panel("Desired replicas",
              "Replicas each trigger asks for (clamped to its min/maxReplicaCount). KEDA's HPA "
              "takes the largest over a ScaledObject's triggers.",
              (Query(per_trigger("queue_scaler_desired_replicas"), TRIGGER_LEGEND),),
              width=8),
        Panel("Activity",
              "1 while the backlog is above the activation threshold (IsActive true): what "
              "takes a ScaledObject from and to zero replicas.",
              (Query(per_trigger("queue_scaler_active"), TRIGGER_LEGEND),),
              width=8, kind="state-timeline",
              extra={"mappings": [{"type": "value", "options": {
                  "0": {"text": "inactive", "color": "text", "index": 0},
                  "1": {"text": "active", "color": "green", "index": 1}}}]}),
        Panel("Data age",
              "Age of the broker reading behind the last answer. A few seconds while reads "
              "succeed; it grows while the last good value is served, and past --stale-after "
              "(60 s by default) answers turn UNAVAILABLE, which QueueScalerDataStale reports.",
              (Query(per_trigger("queue_scaler_data_age_seconds"), TRIGGER_LEGEND),),
              unit="s", width=8,
              extra={"thresholds": {"mode": "absolute", "steps": [
                  {"color": "green", "value": None}, {"color": "orange", "value": 30},
                  {"color": "red", "value": 60}]},
                  "custom": {"thresholdsStyle": {"mode": "line"}}}),
        Panel("Arrival rate",
              "The smoothed arrival rate behind a scalingStrategy: throughput decision, once "
              "two readings have measured it.",
              (Query(per_trigger("queue_scaler_arrival_rate_messages_per_second"),
                     TRIGGER_LEGEND),),
              unit="msg/s"),
        Panel("Answer errors",
              "ScaledObjects whose newest answer is an error, by gRPC code, while KEDA keeps "
              "asking: KEDA gets no metric for them and keeps their replicas or applies their "
              "fallback. UNAVAILABLE: broker unreachable or slow, or the data went stale; "
              "INVALID_ARGUMENT: the trigger metadata does not parse (source unknown when it "
              "names none we know); NOT_FOUND, PERMISSION_DENIED: the target or credentials; "
              "INTERNAL: a bug. QueueScalerAnsweringErrors fires after 5 minutes.",
              (Query(f"max by (namespace, scaled_object, source, code) "
                     f"(queue_scaler_answer_error{{{OBJECT}}})",
                     f"{TRIGGER_LEGEND} {{{{code}}}}"),),
              kind="state-timeline",
              extra={"mappings": [{"type": "value", "options": {
                  "1": {"text": "error", "color": "red", "index": 0}}}]}),
    )),
    (SCALER_PROCESS, (
        Panel("Scrapes up",
              "1 while Prometheus scrapes the scaler replica; QueueScalerDown fires after "
              "2 minutes at 0.",
              (Query(f"up{{{JOB}, {SCALER}}}", "{{instance}}"),),
              width=6, kind="stat",
              extra={"mappings": [{"type": "value", "options": {
                  "0": {"text": "down", "color": "red", "index": 0},
                  "1": {"text": "up", "color": "green", "index": 1}}}]}),
        Panel("Reader process restarts",
              "Reader processes started over the dashboard's time range to replace one that "
              "died or stopped answering; QueueScalerReaderRestarting fires at 2 in 15 minutes.",
              (Query(f"sum by (instance) (increase("
                     f"queue_scaler_reader_process_restarts_total{{{SCALER}}}[$__range]))",
                     "{{instance}}"),),
              width=6, kind="stat", unit="none",
              extra={"decimals": 0, "thresholds": {"mode": "absolute", "steps": [
                  {"color": "green", "value": None}, {"color": "orange", "value": 1},
                  {"color": "red", "value": 2}]}}),
        Panel("Read errors by outcome",
              "Failed target reads per second by source and outcome: unavailable (broker "
              "down, unreachable or slow), auth (credentials refused), not_found (topic, group, "
              "queue or vhost missing), error (a bug).",
              (Query("sum by (source, outcome) (rate(queue_scaler_source_reads_total"
                     f'{{{SCALER}, outcome!="ok"}}[$__rate_interval]))',
                     "{{source}} {{outcome}}"),),
              unit="reqps"),
        Panel("Poll duration",
              "Duration of one batched read (one poll cycle of one broker connection, all its "
              "targets at once), by source; compare with --broker-timeout (2.5 s).",
              quantiles("queue_scaler_source_read_duration_seconds", "source", SCALER),
              unit="s"),
        Panel("Targets per batched read",
              "Targets one poll cycle reads at once, on average, and poll cycles per second, "
              "by source.",
              (Query(f"sum by (source) (rate(queue_scaler_poll_cycle_targets_total{{{SCALER}}}"
                     f"[$__rate_interval])) / sum by (source) (rate("
                     f"queue_scaler_poll_cycles_total{{{SCALER}}}[$__rate_interval]))",
                     "targets per cycle {{source}}"),
               Query(f"sum by (source) (rate(queue_scaler_poll_cycles_total{{{SCALER}}}"
                     "[$__rate_interval]))", "cycles/s {{source}}"))),
        Panel("RPC latency",
              "gRPC request duration by method (StreamIsActive left out: a stream lasts as "
              "long as KEDA keeps it open). KEDA gives a call about 3 s.",
              quantiles("queue_scaler_grpc_request_duration_seconds", "method",
                        f'{SCALER}, method!="StreamIsActive"'),
              unit="s"),
        Panel("RPC codes",
              "gRPC requests per second by method and status code. Anything but OK (and "
              "CANCELLED, a stream KEDA closed) is a ScaledObject without a metric: "
              "/scaledobjects on the scaler says which.",
              (Query("sum by (method, code) (rate(queue_scaler_grpc_requests_total"
                     f"{{{SCALER}}}[$__rate_interval]))", "{{method}} {{code}}"),),
              unit="reqps"),
    )),
)


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": name}, "definition": query,
            "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
            "current": {}, "options": [], "sort": 1, "hide": 0, "regex": ""}


_LEGEND = {"displayMode": "list", "placement": "bottom", "showLegend": True}
_TOOLTIP = {"mode": "multi", "sort": "desc"}
OPTIONS: dict[str, dict[str, Any]] = {
    "timeseries": {"legend": _LEGEND, "tooltip": _TOOLTIP},
    "state-timeline": {"legend": _LEGEND, "tooltip": _TOOLTIP, "mergeValues": True,
                       "showValue": "auto", "rowHeight": 0.9},
    "stat": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
             "colorMode": "value", "graphMode": "area", "textMode": "auto",
             "orientation": "auto", "justifyMode": "auto"},
}


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.kind == "timeseries":
        defaults["custom"] = {"lineWidth": 1, "fillOpacity": 0, "showPoints": "never"}
    for key, value in panel.extra.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            defaults[key] = {**defaults[key], **value}
        else:
            defaults[key] = value
    return {
        "id": panel_id, "type": panel.kind, "title": panel.title,
        "description": panel.description, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": 8},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": OPTIONS[panel.kind],
        "targets": [{"refId": chr(ord("A") + index), "datasource": DATASOURCE,
                     "expr": query.expr, "legendFormat": query.legend, "range": True}
                    for index, query in enumerate(panel.queries)],
    }


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for row_title, row_panels in ROWS:
        panels.append({"id": len(panels) + 1, "type": "row", "title": row_title,
                       "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
                       "panels": []})
        y += 1
        x = 0
        for panel in row_panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(panel_json(panel, len(panels) + 1, x, y))
            x += panel.width
        y += 8
    return {
        "title": "queue-scaler",
        "uid": "queue-scaler",
        "description": "KEDA external scaler for Kafka, RabbitMQ and ActiveMQ: per-ScaledObject "
                       "decisions and the scaler's reads and RPCs (docs/dashboard.md).",
        "tags": ["keda", "queue-scaler"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "current": {}, "options": [], "hide": 0, "refresh": 1,
             "regex": ""},
            variable("instance", "Scaler", f"label_values(up{{{JOB}}}, instance)"),
            variable("namespace", "Namespace",
                     f"label_values({{{ANSWERED}, {SCALER}}}, namespace)"),
            variable("scaled_object", "ScaledObject",
                     f'label_values({{{ANSWERED}, {SCALER}, namespace=~"$namespace"}}, '
                     "scaled_object)"),
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> int:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
