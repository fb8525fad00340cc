"""The status page's HTML, from a real History: escaping, redaction, filter, charts, links."""

from __future__ import annotations

import html.parser
import re

from scaler import status_page
from scaler.history import History


class Clock:
    def __init__(self) -> None:
        self.now = 50_000.0

    def __call__(self) -> float:
        return self.now


class Page(html.parser.HTMLParser):
    """The parts of the page the tests look at: rows, links, tags and the text of cells."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._cell: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "tr" and "trigger" in (attributes.get("class") or ""):
            self.rows.append({"data-namespace": attributes["data-namespace"] or "",
                              "data-name": attributes["data-name"] or ""})
        elif tag == "td" and self.rows:
            self._cell = (attributes.get("class") or "").split(" ")[-1]
            self.rows[-1].setdefault(self._cell, "")

    def handle_data(self, data: str) -> None:
        if self._cell is not None and self.rows:
            self.rows[-1][self._cell] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None


def make_history(clock: Clock) -> History:
    history = History(clock)
    for step in range(40):
        clock.now += 15
        history.record_decision(("shop", "mailer", "rabbitmq-jobs"), "rabbitmq",
                                metric_value=float(step), target=20.0,
                                desired_replicas=(step + 19) // 20, is_active=step > 0,
                                read_at=clock.now - 0.25)
    history.record_error(("billing", "invoices", "kafka-invoices"), "kafka",
                         "topic 'invoices' not found", "NOT_FOUND")
    return history


def test_one_row_per_trigger_with_value_replicas_activity_and_error_code() -> None:
    clock = Clock()
    history = make_history(clock)
    clock.now += 90  # KEDA has not asked since

    page = Page(status_page.render(history.view()))

    rows = {row["data-name"]: row for row in page.rows}
    assert sorted(rows) == ["invoices", "mailer"]
    assert rows["mailer"]["value"].split() == ["39", "/", "20"]
    assert rows["mailer"]["replicas"].strip() == "2"
    assert rows["mailer"]["active"].strip() == "active"
    # The data was 0.25 s old when the decision was made, 90 s ago.
    assert rows["mailer"]["age"].strip() == "0.2 sanswered 90 s ago"
    assert rows["mailer"]["last-error"].strip() == "none"
    assert "NOT_FOUND" in rows["invoices"]["last-error"]
    assert "topic 'invoices' not found" in rows["invoices"]["last-error"]
    assert rows["invoices"]["value"].strip() == "no value"


def test_each_row_has_a_chart_and_a_link_to_its_json_explanation() -> None:
    clock = Clock()
    text = status_page.render(make_history(clock).view())
    page = Page(text)

    svgs = [attrs for tag, attrs in page.tags if tag == "svg" and attrs.get("class") == "chart"]
    assert len(svgs) == 2
    lines = [attrs["class"] for tag, attrs in page.tags
             if tag == "path" and attrs.get("class") in ("value", "target", "replicas")]
    # The legend's three, then value, target and replicas of the one trigger with decisions.
    assert sorted(lines) == sorted(["value", "target", "replicas"] * 2)
    paths = [attrs["d"] or "" for tag, attrs in page.tags if tag == "path"]
    assert all(path.startswith("M") for path in paths)
    hrefs = {attrs.get("href") for tag, attrs in page.tags if tag == "a"}
    assert "/scaledobjects/shop/mailer" in hrefs
    assert "/scaledobjects/billing/invoices" in hrefs
    assert "no decision yet" in text


def test_names_and_errors_are_escaped_and_credentials_redacted() -> None:
    history = History(Clock())
    evil = '<script>alert("x")</script>'
    history.record_error((f"ns{evil}", f"so{evil}", f"m{evil}"), "rabbitmq",
                         f"cannot reach amqp://admin:Hunter2-secret@broker:5672/ {evil}",
                         "UNAVAILABLE")

    text = status_page.render(history.view(), namespace=f"ns{evil}")
    page = Page(text)

    assert "<script" not in text
    assert "Hunter2-secret" not in text
    assert "amqp://admin:***@broker:5672/" in page.rows[0]["last-error"]
    assert page.rows[0]["data-name"] == f"so{evil}"
    hrefs = [attrs.get("href") or "" for tag, attrs in page.tags if tag == "a"]
    assert any(href.startswith("/scaledobjects/ns%3Cscript%3E") for href in hrefs)


def test_the_page_loads_nothing_from_elsewhere() -> None:
    text = status_page.render(make_history(Clock()).view())
    page = Page(text)

    assert not [tag for tag, attrs in page.tags
                if tag in ("script", "link", "img", "iframe") or attrs.get("src")]
    assert not re.search(r"(?:href|src)=\"(?:https?:)?//", text)
    assert "@import" not in text
    assert "url(" not in text


def test_the_namespace_filter_offers_every_namespace_and_marks_the_chosen_one() -> None:
    history = make_history(Clock())

    page = Page(status_page.render(history.view("shop"), namespace="shop"))

    assert [row["data-namespace"] for row in page.rows] == ["shop"]
    options = [attrs for tag, attrs in page.tags if tag == "option"]
    assert [option["value"] for option in options] == ["", "billing", "shop"]
    assert [option["value"] for option in options if "selected" in option] == ["shop"]
    hrefs = {attrs.get("href") for tag, attrs in page.tags if tag == "a"}
    assert {"/?namespace=billing", "/?namespace=shop", "/"} <= hrefs


def test_a_gap_without_answers_breaks_the_lines() -> None:
    clock = Clock()
    history = History(clock)
    for start in (0, 600):  # ten minutes without an answer in between
        clock.now = 50_000.0 + start
        for _ in range(5):
            clock.now += 15
            history.record_decision(("ns", "so", "m"), "kafka", metric_value=5.0, target=1.0,
                                    desired_replicas=5, is_active=True, read_at=clock.now)

    page = Page(status_page.render(history.view()))

    [_, value_path] = [attrs["d"] or "" for tag, attrs in page.tags
                       if tag == "path" and attrs.get("class") == "value"]  # legend, chart
    assert value_path.count("M") == 2


def test_no_triggers_says_so() -> None:
    text = status_page.render(History(Clock()).view())

    assert "No triggers" in text
    assert "<table" not in text


def test_the_data_age_is_the_age_when_answered_and_silence_shows_only_after_a_minute() -> None:
    clock = Clock()
    history = make_history(clock)

    fresh = {row["data-name"]: row for row in Page(status_page.render(history.view())).rows}
    clock.now += 59
    quiet = {row["data-name"]: row for row in Page(status_page.render(history.view())).rows}
    clock.now += 2
    silent = {row["data-name"]: row for row in Page(status_page.render(history.view())).rows}

    assert fresh["mailer"]["age"] == quiet["mailer"]["age"] == "0.2 s"
    assert silent["mailer"]["age"] == "0.2 sanswered 61 s ago"


def test_a_value_that_is_no_number_still_renders() -> None:
    history = History(Clock())
    history.record_decision(("ns", "so", "m"), "kafka", metric_value=float("inf"), target=1.0,
                            desired_replicas=4, is_active=True, read_at=0.0)

    [row] = Page(status_page.render(history.view())).rows

    assert row["value"].split() == ["\u221e", "/", "1"]
