"""`queue-scaler serve --log-format json` as a process against the real RabbitMQ: one JSON line
when a trigger's activity flips, with its namespace, ScaledObject and reason, and none while
the decision stays; every line of both processes (serving and reader) is JSON, and the
password in the trigger's connection URL is in none of them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.brokers import RabbitMQHelper, wait_until, with_password
from tests.integration.scaler_process import ScalerProcess

SECRET = f"Log-Secret-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def scaler_process() -> Iterator[ScalerProcess]:
    running = ScalerProcess("--log-format", "json", "--poll-interval", "0.5",
                            "--max-data-age", "0.05")
    yield running
    running.stop()


@pytest.fixture
def user_url(rabbitmq_helper: RabbitMQHelper) -> Iterator[str]:
    """An AMQP URL of a user of our own, whose password is SECRET."""
    user = f"log-test-{uuid.uuid4().hex[:8]}"
    rabbitmq_helper.create_user(user, SECRET)
    rabbitmq_helper.api(f"/api/permissions/%2F/{user}", "PUT",
                        {"configure": ".*", "write": ".*", "read": ".*"})
    url = with_password(rabbitmq_helper.amqp_url, SECRET).replace("guest:", f"{user}:", 1)
    yield url
    rabbitmq_helper.delete_user(user)


def json_lines(scaler: ScalerProcess) -> list[dict[str, Any]]:
    lines = [line for line in scaler.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"a log line that is not JSON: {line!r}") from None
    return parsed


def changes(scaler: ScalerProcess) -> list[dict[str, Any]]:
    return [line for line in json_lines(scaler) if line.get("event") == "decision_changed"]


async def test_an_activity_flip_logs_one_json_line_with_its_reason_and_no_secret(
        scaler_process: ScalerProcess, rabbitmq_helper: RabbitMQHelper, user_url: str,
        ) -> None:
    queue = rabbitmq_helper.declare(f"log-jobs-{uuid.uuid4().hex[:8]}")
    so_ref = pb.ScaledObjectRef(namespace="shop", name="mailer", scalerMetadata={
        "source": "rabbitmq", "hostFromEnv": user_url, "queueName": queue})
    assert SECRET in user_url
    async with grpc.aio.insecure_channel(f"127.0.0.1:{scaler_process.grpc_port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        assert (await stub.IsActive(so_ref)).result is False  # a first decision: no line
        rabbitmq_helper.publish(queue, 30)
        # A read in flight while the messages went in could see part of them (one more
        # change: 1 replica, then 2); the next read starts after they are all in.
        await asyncio.sleep(1.0)
        deadline = time.monotonic() + 30
        while not (await stub.IsActive(so_ref)).result:
            assert time.monotonic() < deadline, "the trigger never became active"
            await asyncio.sleep(0.1)
        wait_until(lambda: changes(scaler_process), "the decision_changed line")
        for _ in range(3):  # the same decision again: nothing more to say
            assert (await stub.IsActive(so_ref)).result is True

    [change] = changes(scaler_process)
    assert change["level"] == "INFO"
    assert change["namespace"] == "shop"
    assert change["scaledObject"] == "mailer"
    assert change["metricName"] == f"rabbitmq-{queue}"
    assert change["source"] == "rabbitmq"
    assert (change["wasActive"], change["isActive"]) == (False, True)
    assert (change["previousReplicas"], change["desiredReplicas"]) == (0, 2)  # ceil(30 / 20)
    assert change["metricValue"] == 30
    assert "active: messages 30 > activationValue 0" in change["reason"]
    assert "shop/mailer" in change["message"]
    assert "inactive -> active" in change["message"]
    assert change["time"].endswith("Z")
    log = scaler_process.log()
    assert SECRET not in log
    assert any("serving gRPC on port" in line["message"] for line in json_lines(scaler_process))
    rabbitmq_helper.delete(queue)
