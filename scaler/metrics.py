"""Every Prometheus metric queue-scaler exports is defined here, on an injected registry.

Names follow SPEC §6: `queue_scaler_` prefix, base units, counters end in `_total`. Labels carry
only ScaledObject identity, source type, RPC method, gRPC code and read outcome: never hosts,
URLs, usernames or metadata values, so cardinality is bounded by the number of ScaledObjects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scaler.history import History

_PER_OBJECT = ("namespace", "scaled_object", "source")


class ScalerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.metric_value = Gauge(
            "queue_scaler_metric_value", "Metric value last reported to KEDA (after caps).",
            _PER_OBJECT, registry=registry)
        self.backlog = Gauge(
            "queue_scaler_backlog_messages",
            "Kafka consumer lag, or RabbitMQ or ActiveMQ queue depth, before caps.", _PER_OBJECT,
            registry=registry)
        self.active = Gauge(
            "queue_scaler_active", "1 if the trigger is active, else 0.", _PER_OBJECT,
            registry=registry)
        self.desired_replicas = Gauge(
            "queue_scaler_desired_replicas", "Replicas the scaler expects the HPA to choose.",
            _PER_OBJECT, registry=registry)
        self.arrival_rate = Gauge(
            "queue_scaler_arrival_rate_messages_per_second",
            "Smoothed arrival rate behind a scalingStrategy: throughput decision.", _PER_OBJECT,
            registry=registry)
        self.target_per_replica = Gauge(
            "queue_scaler_target_per_replica",
            "Metric value one replica should carry (the target given to the HPA; 1 for "
            "scalingStrategy: throughput, whose metric is the replica count).", _PER_OBJECT,
            registry=registry)
        self.data_age = Gauge(
            "queue_scaler_data_age_seconds", "Age of the broker reading behind the last answer.",
            _PER_OBJECT, registry=registry)
        self.source_reads = Counter(
            "queue_scaler_source_reads_total", "Target reads by source and outcome.",
            ("source", "outcome"), registry=registry)
        self.poll_cycles = Counter(
            "queue_scaler_poll_cycles_total",
            "Batched reads: one per broker connection per poll cycle.", ("source",),
            registry=registry)
        self.poll_cycle_targets = Counter(
            "queue_scaler_poll_cycle_targets_total",
            "Targets read by poll cycles (divide by cycles for the batch size).", ("source",),
            registry=registry)
        self.source_read_duration = Histogram(
            "queue_scaler_source_read_duration_seconds",
            "Duration of one batched read (one poll cycle of one connection).",
            ("source",), registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.reader_restarts = Counter(
            "queue_scaler_reader_process_restarts_total",
            "Reader processes started to replace one that died or stopped answering.",
            registry=registry)
        self.rpc_requests = Counter(
            "queue_scaler_grpc_requests_total", "gRPC requests by method and status code.",
            ("method", "code"), registry=registry)
        self.rpc_duration = Histogram(
            "queue_scaler_grpc_request_duration_seconds", "gRPC request duration by method.",
            ("method",), registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def record_read(self, source: str, outcome: str) -> None:
        self.source_reads.labels(source, outcome).inc()

    def record_cycle(self, source: str, targets: int, seconds: float) -> None:
        self.poll_cycles.labels(source).inc()
        self.poll_cycle_targets.labels(source).inc(targets)
        self.source_read_duration.labels(source).observe(seconds)

    def record_reader_restart(self) -> None:
        self.reader_restarts.inc()

    def record_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpc_requests.labels(method, code).inc()
        self.rpc_duration.labels(method).observe(seconds)

    def record_decision(self, namespace: str, name: str, source: str, *, metric_value: float,
                        backlog: float, is_active: bool, desired_replicas: int,
                        target: float) -> None:
        labels = (namespace, name, source)
        self.metric_value.labels(*labels).set(metric_value)
        self.target_per_replica.labels(*labels).set(target)
        self.backlog.labels(*labels).set(backlog)
        self.active.labels(*labels).set(1 if is_active else 0)
        self.desired_replicas.labels(*labels).set(desired_replicas)

    def record_arrival_rate(self, namespace: str, name: str, source: str,
                            rate: float) -> None:
        self.arrival_rate.labels(namespace, name, source).set(rate)

    def record_data_age(self, namespace: str, name: str, source: str, seconds: float) -> None:
        self.data_age.labels(namespace, name, source).set(seconds)

    def forget(self, namespace: str, name: str, source: str) -> None:
        """Drops a ScaledObject's series once KEDA stops asking about it."""
        for gauge in (self.metric_value, self.backlog, self.active, self.desired_replicas,
                      self.target_per_replica, self.arrival_rate, self.data_age):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name, source)

    def watch_answers(self, history: History, within_s: float) -> None:
        """Exports, at each scrape, which ScaledObjects' newest answer was an error, among
        those answered in the last `within_s` seconds (a deleted ScaledObject stops asking and
        drops out)."""
        self.registry.register(_FailingAnswers(history, within_s))


class _FailingAnswers(Collector):
    def __init__(self, history: History, within_s: float) -> None:
        self._history = history
        self._within_s = within_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        errors = GaugeMetricFamily(
            "queue_scaler_answer_error",
            "1 while a ScaledObject's newest answer is an error, labelled with its gRPC code "
            "(INVALID_ARGUMENT for metadata that does not parse).",
            labels=(*_PER_OBJECT, "code"))
        stale = GaugeMetricFamily(
            "queue_scaler_answer_stale",
            "1 while a ScaledObject is answered UNAVAILABLE because its newest good reading is "
            "older than --stale-after.", labels=_PER_OBJECT)
        # Two failing triggers of one ScaledObject and source share a label set: one sample.
        failing = self._history.failing(self._within_s)
        for coded in sorted({(namespace, name, answer.source, answer.error_code or "")
                             for (namespace, name, _), answer in failing}):
            errors.add_metric(coded, 1)
        for labels in sorted({(namespace, name, answer.source)
                              for (namespace, name, _), answer in failing if answer.stale}):
            stale.add_metric(labels, 1)
        yield errors
        yield stale
