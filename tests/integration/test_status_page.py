"""The status page at `/`, loaded in a real browser (Debian's headless Chromium) from a scaler
that answered KEDA's calls for real Kafka and RabbitMQ triggers, one on a missing queue and one
with a typo in its metadata.

The screenshot goes to the test's tmp folder. With QUEUE_SCALER_UPDATE_DOCS=1 it is also copied
to docs/status-page.png (the picture the README shows): a run's screenshot always differs in
pixels (names, ages), so an ordinary run leaves the work tree alone.
"""

from __future__ import annotations

import asyncio
import html.parser
import os
import re
import shutil
import struct
import time
import uuid
from pathlib import Path

import grpc
import pytest

from scaler import app, history
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.brokers import KafkaHelper, RabbitMQHelper
from tests.testbed.browser import Chromium

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
HISTORY_STEP_S = history.STEP_S


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    return Chromium()


class RenderedPage(html.parser.HTMLParser):
    """The rows of the DOM Chromium serialised: per row its data attributes and the text of
    each cell by the cell's class; and whether each row holds an <svg>."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._cell: str | None = None
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "tr" and "trigger" in classes:
            self.rows.append({"data-namespace": attributes.get("data-namespace") or "",
                              "data-name": attributes.get("data-name") or "", "svg": "",
                              "failing": "yes" if "failing" in classes else ""})
        elif tag == "td" and self.rows:
            self._cell = classes[-1] if classes else "unnamed"
            self.rows[-1].setdefault(self._cell, "")
        elif tag == "svg" and self.rows and self._cell == "chart":
            self.rows[-1]["svg"] = "yes"
        elif tag == "path" and self.rows and "value" in classes:
            # The value line's points: the pairs of numbers after M (and L).
            numbers = re.findall(r"-?\d+(?:\.\d+)?", attributes.get("d") or "")
            self.rows[-1]["value points"] = str(len(numbers) // 2)
        elif tag == "a" and self.rows and self._cell is not None:
            self.rows[-1].setdefault("links", "")
            self.rows[-1]["links"] += (attributes.get("href") or "") + " "

    def handle_data(self, data: str) -> None:
        if self._cell is not None and self.rows:
            self.rows[-1][self._cell] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


async def ask(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef, times: int
              ) -> list[float]:
    """GetMetricSpec, then GetMetrics `times` times, as KEDA and the HPA ask."""
    spec = await stub.GetMetricSpec(so_ref)
    name = spec.metricSpecs[0].metricName
    values = []
    for _ in range(times):
        reply = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=so_ref,
                                                           metricName=name))
        values.append(reply.metricValues[0].metricValueFloat)
        await asyncio.sleep(0.1)
    return values


async def settled(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef,
                  expected: float, timeout_s: float = 10.0) -> float:
    """GetMetrics until it answers `expected` or `timeout_s` passes; the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        [value] = await ask(stub, so_ref, 1)
        if value == expected or time.monotonic() > deadline:
            return value


def short_name(prefix: str) -> str:
    """A unique name short enough to read in the screenshot (conftest's unique_name adds the
    test's name, which wraps every cell)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_the_status_page_shows_each_trigger_its_chart_and_its_error_in_a_browser(
        scaler: app.App, stub: pb_grpc.ExternalScalerStub, chromium: Chromium,
        kafka_helper: KafkaHelper, kafka_bootstrap: str, rabbitmq_helper: RabbitMQHelper,
        tmp_path: Path) -> None:
    topic = kafka_helper.create_topic(short_name("orders"), partitions=3)
    kafka_helper.produce_round_robin(topic, [20, 15, 10])
    group, idle_group = short_name("orders-worker"), short_name("audit")
    kafka_helper.commit(group, topic, {0: 0, 1: 0, 2: 0})
    kafka_helper.commit(idle_group, topic, {0: 20, 1: 15, 2: 10})  # at the end: no lag
    orders = pb.ScaledObjectRef(namespace="shop", name="orders-worker", scalerMetadata={
        "source": "kafka", "bootstrapServers": kafka_bootstrap, "consumerGroup": group,
        "topic": topic, "lagThreshold": "20"})
    audit = pb.ScaledObjectRef(namespace="shop", name="audit-worker", scalerMetadata={
        "source": "kafka", "bootstrapServers": kafka_bootstrap, "consumerGroup": idle_group,
        "topic": topic, "lagThreshold": "20"})
    queue = rabbitmq_helper.declare(short_name("mail"))
    rabbitmq_helper.publish(queue, 12)
    mailer = pb.ScaledObjectRef(namespace="billing", name="mailer", scalerMetadata={
        "source": "rabbitmq", "hostFromEnv": rabbitmq_helper.amqp_url, "queueName": queue})
    missing_queue = short_name("invoices")
    invoices = pb.ScaledObjectRef(namespace="billing", name="invoices", scalerMetadata={
        "source": "rabbitmq", "hostFromEnv": rabbitmq_helper.amqp_url,
        "queueName": missing_queue})

    assert await ask(stub, orders, 2) == [45.0, 45.0]
    assert await ask(stub, audit, 2) == [0.0, 0.0]
    assert await ask(stub, mailer, 2) == [12.0, 12.0]
    # A bucket of the history later, more work: every chart with decisions gets a second point.
    await asyncio.sleep(HISTORY_STEP_S + 0.5)
    kafka_helper.produce_round_robin(topic, [10, 10, 10])
    rabbitmq_helper.publish(queue, 20)
    # A read begun before the messages were sent may still answer once with the old value.
    assert await settled(stub, orders, 60.0) == 60.0
    assert await settled(stub, audit, 30.0) == 30.0
    assert await settled(stub, mailer, 32.0) == 32.0
    assert await ask(stub, orders, 2) == [60.0, 60.0]  # capped: 3 partitions x 20
    assert await ask(stub, audit, 2) == [30.0, 30.0]
    assert await ask(stub, mailer, 2) == [32.0, 32.0]
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ask(stub, invoices, 1)
        assert failed.value.code() is grpc.StatusCode.NOT_FOUND
    typo = pb.ScaledObjectRef(namespace="shop", name="refunds-worker", scalerMetadata={
        "source": "kafka", "bootstrapServers": kafka_bootstrap, "consumerGroup": group,
        "topic": topic, "lagTreshold": "20"})
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ask(stub, typo, 1)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    base = f"http://127.0.0.1:{scaler.http.port}/"
    every = RenderedPage(await asyncio.to_thread(chromium.dump_dom, base))
    one_namespace = RenderedPage(await asyncio.to_thread(
        chromium.dump_dom, base + "?namespace=shop"))
    shot = tmp_path / "status-page.png"
    await asyncio.to_thread(chromium.screenshot, base, shot, 1280, 800)

    rows = {row["data-name"]: row for row in every.rows}
    assert [(row["data-namespace"], row["data-name"]) for row in every.rows] == [
        ("billing", "invoices"), ("billing", "mailer"), ("shop", "audit-worker"),
        ("shop", "orders-worker"), ("shop", "refunds-worker")]
    orders_row, audit_row = rows["orders-worker"], rows["audit-worker"]
    mailer_row, broken = rows["mailer"], rows["invoices"]
    assert orders_row["value"].split() == ["60", "/", "20"]
    assert orders_row["replicas"].strip() == "3"  # ceil(60 / 20)
    assert orders_row["active"].strip() == "active"
    assert orders_row["source"].strip() == "kafka"
    assert f"kafka-{topic}" in orders_row["scaledobject"]
    assert "/scaledobjects/shop/orders-worker" in orders_row["links"]
    assert audit_row["value"].split() == ["30", "/", "20"]
    assert audit_row["replicas"].strip() == "2"
    assert mailer_row["value"].split() == ["32", "/", "20"]
    assert mailer_row["replicas"].strip() == "2"
    assert mailer_row["source"].strip() == "rabbitmq"
    assert all(row["svg"] == "yes" for row in every.rows)
    # Two points a value line: from the first bucket to the second.
    assert [row["value points"] for row in (orders_row, audit_row, mailer_row)] == ["2"] * 3
    assert all(row["last-error"].strip() == "none"
               for row in (orders_row, audit_row, mailer_row))
    assert broken["failing"] == "yes"
    assert "NOT_FOUND" in broken["last-error"]
    assert missing_queue in broken["last-error"]
    assert broken["value"].strip() == "no value"
    # Metadata that does not parse has no metric name yet, and shows all the same.
    assert "INVALID_ARGUMENT" in rows["refunds-worker"]["last-error"]
    assert "lagTreshold" in rows["refunds-worker"]["last-error"]
    assert "(invalid metadata)" in rows["refunds-worker"]["scaledobject"]
    assert "/scaledobjects/" not in rows["refunds-worker"].get("links", "")  # nothing to explain
    assert not any("guest:guest" in str(row) for row in every.rows)
    assert [row["data-name"] for row in one_namespace.rows] == [
        "audit-worker", "orders-worker", "refunds-worker"]
    assert png_size(shot) == (1280, 800)
    if os.environ.get("QUEUE_SCALER_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, DOCS_SCREENSHOT)
