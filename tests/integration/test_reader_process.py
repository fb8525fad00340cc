"""`queue-scaler serve` reads brokers in a child process: the serving process holds no broker
connection, a dead or stuck child is replaced without an answer ever turning into 0, and the
child never outlives the scaler."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import grpc
import pytest

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.brokers import KafkaHelper, RabbitMQHelper, address_of, wait_until
from tests.integration.scaler_process import ScalerProcess

Names = Callable[[str], str]


def remote_ports(pid: int) -> set[int]:
    """Remote ports of the established TCP connections that process `pid` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                    ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def reader_pid(scaler: ScalerProcess) -> int:
    children = scaler.process_ids()[1:]
    assert len(children) == 1, children
    return children[0]


def has_exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def lag_trigger(kafka_helper: KafkaHelper, unique_name: Names, messages: int) -> dict[str, str]:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=1)
    kafka_helper.produce(topic, messages)
    return {"source": "kafka", "bootstrapServers": kafka_helper.bootstrap,
            "consumerGroup": unique_name("g"), "topic": topic,
            "offsetResetPolicy": "earliest", "lagThreshold": "100"}


def get_metric(stub: pb_grpc.ExternalScalerStub, metadata: dict[str, str]) -> float:
    ref = pb.ScaledObjectRef(name="so", namespace="reader", scalerMetadata=metadata)
    name = stub.GetMetricSpec(ref, timeout=10).metricSpecs[0].metricName
    reply = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=name),
                            timeout=20)
    return float(reply.metricValues[0].metricValueFloat)


def test_broker_connections_are_held_by_the_reader_process_only(
        kafka_helper: KafkaHelper, rabbitmq_helper: RabbitMQHelper, unique_name: Names,
        rabbitmq_amqp_url: str) -> None:
    kafka_port = int(kafka_helper.bootstrap.rsplit(":", 1)[1])
    queue = rabbitmq_helper.declare(unique_name("q"))
    rabbitmq_helper.publish(queue, 3)
    scaler = ScalerProcess()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            assert get_metric(stub, lag_trigger(kafka_helper, unique_name, 5)) == 5
            assert get_metric(stub, {"source": "rabbitmq", "hostFromEnv": rabbitmq_amqp_url,
                                     "queueName": queue}) == 3
        child = reader_pid(scaler)
        amqp_port = int(address_of(rabbitmq_amqp_url).rsplit(":", 1)[1])
        assert {kafka_port, amqp_port} <= remote_ports(child)
        assert not {kafka_port, amqp_port} & remote_ports(scaler.process.pid)
    finally:
        scaler.stop()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "stuck"])
def test_a_dead_or_stuck_reader_is_replaced_and_never_answers_zero(
        how: signal.Signals, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    metadata = lag_trigger(kafka_helper, unique_name, 7)
    # Every answer wants data under 0.2 s old, so every call waits on the reader.
    scaler = ScalerProcess("--poll-interval", "0.2", "--max-data-age", "0.2",
                           "--broker-timeout", "1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            assert get_metric(stub, metadata) == 7
            first = reader_pid(scaler)
            os.kill(first, how)
            answers: list[float | grpc.StatusCode] = []

            def replaced_and_answering() -> bool:
                try:
                    answers.append(get_metric(stub, metadata))
                except grpc.RpcError as error:
                    answers.append(error.code())  # type: ignore[attr-defined]
                children = scaler.process_ids()[1:]
                return bool(children) and children[0] != first and answers[-1] == 7

            # A stuck reader is given up on after twice the broker timeout plus 5 s.
            wait_until(replaced_and_answering, "a new reader answering", timeout_s=30)
        # The last good reading is served (marked) or the call is UNAVAILABLE; never 0.
        assert set(answers) <= {7.0, grpc.StatusCode.UNAVAILABLE}, answers
        if how == signal.SIGSTOP:
            wait_until(lambda: has_exited(first), "the stuck reader killed")
        assert "queue_scaler_reader_process_restarts_total 1.0" in scaler.http("/metrics")
    finally:
        scaler.stop()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_the_reader_process_ends_with_the_scaler(
        how: signal.Signals, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    scaler = ScalerProcess("--shutdown-grace", "1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            get_metric(pb_grpc.ExternalScalerStub(channel),
                       lag_trigger(kafka_helper, unique_name, 1))
        child = reader_pid(scaler)
        scaler.process.send_signal(how)
        scaler.process.wait(timeout=30)
        # Killed, the scaler cannot ask: the reader sees its pipe close and exits by itself.
        deadline = time.monotonic() + 15
        while not has_exited(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert has_exited(child)
    finally:
        scaler.stop()
