"""The bounded per-trigger history behind the status page and the decision-change log lines."""

from __future__ import annotations

import pytest

from scaler.history import Change, History, Key

KEY: Key = ("shop", "mailer", "rabbitmq-jobs")


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def decide(history: History, key: Key = KEY, *, value: float = 0.0, target: float = 20.0,
           replicas: int = 0, active: bool = False, error: str | None = None) -> Change | None:
    return history.record_decision(
        key, "rabbitmq", metric_value=value, target=target, desired_replicas=replicas,
        is_active=active, read_at=0.0, error=error, error_code=None if error is None else "X")


def test_decisions_in_one_bucket_keep_the_highest_value_and_replicas_and_the_last_target(
        ) -> None:
    clock = Clock()
    clock.now = 150.0  # the start of a 15 s bucket
    history = History(clock, step_s=15.0)
    decide(history, value=40, replicas=2, target=20, active=True)
    clock.now += 5
    decide(history, value=90, replicas=5, target=25, active=True)
    clock.now += 5
    decide(history, value=10, replicas=1, target=30, active=True)

    [row] = history.view().triggers

    assert list(row.values) == [90]
    assert list(row.replicas) == [5]
    assert list(row.targets) == [30]
    assert list(row.times) == [160.0]
    assert row.answer.metric_value == 10  # the row itself shows the newest decision


def test_one_sample_per_bucket_and_the_buffer_holds_only_the_window() -> None:
    clock = Clock()
    history = History(clock, window_s=60.0, step_s=10.0)
    for value in range(100):
        decide(history, value=value)
        clock.now += 10.0
    clock.now -= 10.0

    [row] = history.view().triggers

    # 60 s at 10 s a bucket: the buckets of the last 60 s, oldest first.
    assert list(row.values) == [float(v) for v in range(93, 100)]
    assert list(row.times) == sorted(row.times)
    assert all(clock.now - at <= 60.0 for at in row.times)


def test_the_least_recently_answered_trigger_goes_first_over_the_cap() -> None:
    clock = Clock()
    history = History(clock, max_triggers=3)
    for name in ("a", "b", "c"):
        decide(history, ("ns", name, "m"))
    decide(history, ("ns", "a", "m"))  # a is now the most recent
    decide(history, ("ns", "d", "m"))

    assert [row.name for row in history.view().triggers] == ["a", "c", "d"]
    assert len(history) == 3


def test_a_trigger_without_an_answer_for_the_window_is_forgotten() -> None:
    clock = Clock()
    history = History(clock, window_s=600.0, step_s=15.0)
    decide(history, ("ns", "quiet", "m"))
    for _ in range(50):
        clock.now += 15.0
        decide(history, ("ns", "busy", "m"))

    assert [row.name for row in history.view().triggers] == ["busy"]
    assert len(history) == 1


def test_memory_stays_bounded_at_a_thousand_triggers_over_hours() -> None:
    clock = Clock()
    history = History(clock, window_s=1800.0, step_s=15.0, max_triggers=1000)
    keys = [("ns", f"so-{index}", "m") for index in range(1200)]
    for _ in range(2 * 3600 // 30):  # two hours of KEDA's 30 s polling
        clock.now += 30.0
        for key in keys:
            decide(history, key, value=clock.now % 97)

    view = history.view()

    assert len(history) == 1000
    assert len(view.triggers) == 1000
    assert max(len(row.times) for row in view.triggers) <= 1800 / 15 + 1


@pytest.mark.parametrize(("before", "after", "expected"), [
    # Nothing to compare with: reported as a first decision.
    pytest.param(None, (False, 0), Change(None, False, None, 0), id="first-decision"),
    # The same activity and replicas again is no change, whatever the value did.
    pytest.param((True, 3), (True, 3), None, id="same-decision-is-no-change"),
    # Activity flips, and replicas follow.
    pytest.param((False, 0), (True, 2), Change(False, True, 0, 2), id="activity-flip"),
    pytest.param((True, 1), (False, 0), Change(True, False, 1, 0), id="deactivation"),
    # Replicas move while active.
    pytest.param((True, 3), (True, 4), Change(True, True, 3, 4), id="replicas-change"),
    # minReplicaCount can keep replicas while activity flips.
    pytest.param((True, 2), (False, 2), Change(True, False, 2, 2), id="flip-at-min-replicas"),
])
def test_a_decision_is_a_change_when_activity_or_replicas_differ(
        before: tuple[bool, int] | None, after: tuple[bool, int], expected: Change | None,
        ) -> None:
    history = History(Clock())
    if before is not None:
        decide(history, active=before[0], replicas=before[1], value=7)

    assert decide(history, active=after[0], replicas=after[1], value=8) == expected


def test_an_error_between_two_decisions_does_not_hide_the_change_or_fake_one() -> None:
    clock = Clock()
    history = History(clock)
    decide(history, active=True, replicas=3, value=60)
    clock.now += 20
    history.record_error(KEY, "rabbitmq", "queue 'jobs' not found", "NOT_FOUND")

    [row] = history.view().triggers
    assert (row.answer.error, row.answer.error_code) == ("queue 'jobs' not found", "NOT_FOUND")
    assert row.answer.metric_value is None
    assert list(row.values) == [60]  # the chart keeps what was decided before
    assert decide(history, active=True, replicas=3, value=61) is None
    assert decide(history, active=False, replicas=0) == Change(True, False, 3, 0)


def test_the_view_filters_by_namespace_and_still_lists_every_namespace() -> None:
    history = History(Clock())
    for key in [("b", "two", "m"), ("a", "one", "m"), ("b", "one", "m")]:
        decide(history, key)

    everything = history.view()
    only_b = history.view("b")

    assert [(row.namespace, row.name) for row in everything.triggers] == [
        ("a", "one"), ("b", "one"), ("b", "two")]
    assert [(row.namespace, row.name) for row in only_b.triggers] == [("b", "one"), ("b", "two")]
    assert only_b.namespaces == ["a", "b"]
    assert history.view("nobody").triggers == []


def test_an_error_first_has_an_answer_and_no_samples() -> None:
    history = History(Clock())
    history.record_error(KEY, "rabbitmq", "refused", "PERMISSION_DENIED")

    [row] = history.view().triggers

    assert row.answer.error_code == "PERMISSION_DENIED"
    assert len(row.times) == 0


def test_a_value_that_is_no_number_is_shown_in_the_row_but_not_charted() -> None:
    history = History(Clock())
    decide(history, value=float("inf"), replicas=4, active=True)

    [row] = history.view().triggers

    assert row.answer.metric_value == float("inf")
    assert len(row.times) == 0


def test_failing_lists_recent_error_answers_until_a_decision_replaces_them() -> None:
    clock = Clock()
    history = History(clock)
    stale_key: Key = ("shop", "orders", "kafka-orders")
    history.record_error(KEY, "rabbitmq", "queue 'jobs' does not exist", "NOT_FOUND")
    history.record_error(stale_key, "kafka", "newest good reading is 61 s old", "UNAVAILABLE",
                         stale=True)
    decide(history, ("shop", "fine", "rabbitmq-fine"), value=3)

    failing = dict(history.failing(within_s=300))
    assert set(failing) == {KEY, stale_key}
    assert (failing[KEY].error_code, failing[KEY].stale) == ("NOT_FOUND", False)
    assert (failing[stale_key].error_code, failing[stale_key].stale) == ("UNAVAILABLE", True)

    decide(history, value=5)  # the queue is back
    clock.now += 301  # and KEDA stopped asking about the stale one
    assert history.failing(within_s=300) == []
