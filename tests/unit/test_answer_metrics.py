"""The per-ScaledObject answer metrics, collected from the history at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scaler.history import History
from scaler.metrics import ScalerMetrics


def answer_samples(metrics: ScalerMetrics) -> list[tuple[str, dict[str, str]]]:
    text = generate_latest(metrics.registry).decode()
    return [(s.name, s.labels) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name.startswith("queue_scaler_answer_")]


def test_two_failing_triggers_of_one_scaled_object_are_one_error_sample() -> None:
    history = History(lambda: 1_000.0)
    for metric in ("kafka-orders", "kafka-refunds"):
        history.record_error(("shop", "orders", metric), "kafka", "broker down", "UNAVAILABLE",
                             stale=True)
    metrics = ScalerMetrics(CollectorRegistry())
    metrics.watch_answers(history, within_s=300)

    assert answer_samples(metrics) == [
        ("queue_scaler_answer_error", {"namespace": "shop", "scaled_object": "orders",
                                       "source": "kafka", "code": "UNAVAILABLE"}),
        ("queue_scaler_answer_stale", {"namespace": "shop", "scaled_object": "orders",
                                       "source": "kafka"})]


def test_a_good_answer_clears_the_error_sample() -> None:
    history = History(lambda: 1_000.0)
    key = ("shop", "mailer", "rabbitmq-jobs")
    history.record_error(key, "rabbitmq", "queue 'jobs' does not exist", "NOT_FOUND")
    metrics = ScalerMetrics(CollectorRegistry())
    metrics.watch_answers(history, within_s=300)
    assert [name for name, _ in answer_samples(metrics)] == ["queue_scaler_answer_error"]

    history.record_decision(key, "rabbitmq", metric_value=3, target=20, desired_replicas=1,
                            is_active=True, read_at=999.0)
    assert answer_samples(metrics) == []
