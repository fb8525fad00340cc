"""The testbed against its real services: the readiness checks say yes to them, a killed broker
comes back with its data, and the command line prints what the tests use."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kafka as kafka_client
import pytest

from tests.integration.brokers import KafkaHelper, RabbitMQHelper, wait_until
from tests.testbed import activemq, artemis, kafka, rabbitmq
from tests.testbed.activemq import ActiveMQ
from tests.testbed.artemis import Artemis
from tests.testbed.kafka import Kafka
from tests.testbed.pytest_plugin import Testbed
from tests.testbed.rabbitmq import RabbitMQ

REPO = Path(__file__).resolve().parents[2]
Names = Callable[[str], str]


def test_readiness_checks_accept_the_real_services(kafka_service: Kafka,
                                                   rabbitmq_service: RabbitMQ) -> None:
    exports = kafka_service.exports() | rabbitmq_service.exports()
    ca = Path(exports["QUEUE_SCALER_TEST_TLS_CA"])
    assert kafka.answers_api_versions(exports["QUEUE_SCALER_TEST_KAFKA"])
    assert kafka.serves_metadata(exports["QUEUE_SCALER_TEST_KAFKA_SASL_SSL"],
                                 **kafka_service.sasl_config())
    assert rabbitmq.amqp_answers(exports["QUEUE_SCALER_TEST_RABBITMQ_AMQPS"], ca)
    assert rabbitmq.management_answers(exports["QUEUE_SCALER_TEST_RABBITMQ_HTTPS"], ca)
    # The same checks against the wrong protocol's port say no.
    assert not kafka.answers_api_versions(
        exports["QUEUE_SCALER_TEST_RABBITMQ_AMQP"].split("@")[1].rstrip("/"), timeout_s=1)
    assert not rabbitmq.amqp_answers(f"amqp://guest:guest@{exports['QUEUE_SCALER_TEST_KAFKA']}/",
                                     timeout_s=1)


def end_offsets(bootstrap: str, topic: str) -> list[int]:
    consumer = kafka_client.KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [kafka_client.TopicPartition(topic, p) for p in range(2)]
        ends = consumer.end_offsets(partitions)
        return [ends[p] for p in partitions]
    finally:
        consumer.close()


def test_a_killed_kafka_comes_back_with_its_topics_and_records(
        kafka_service: Kafka, kafka_helper: KafkaHelper, unique_name: Names) -> None:
    topic = kafka_helper.create_topic(unique_name("t"), partitions=2)
    kafka_helper.produce_round_robin(topic, [3, 4])
    pid = kafka_service.record().pid  # type: ignore[union-attr]

    kafka_service.kill()
    assert kafka_service.process() is None
    assert kafka_service.up() is True  # started again, from the same data

    assert kafka_service.record().pid != pid  # type: ignore[union-attr]
    assert end_offsets(kafka_helper.bootstrap, topic) == [3, 4]


def test_a_killed_rabbitmq_comes_back_with_its_durable_queue_and_messages(
        rabbitmq_service: RabbitMQ, rabbitmq_amqp_url: str, rabbitmq_http_url: str,
        unique_name: Names) -> None:
    before = RabbitMQHelper(rabbitmq_amqp_url, rabbitmq_http_url)
    queue = before.declare(unique_name("durable"), durable=True)
    before.publish(queue, 4, persistent=True)
    before.close()
    # A node killed within seconds of a queue's declaration can lose it (its schema database is
    # written behind; seen twice in five runs, once after waiting for the management API to
    # count the messages). A clean stop writes it out: what this test checks is that the data
    # on disk survives a kill and comes back with `up`.
    owner = rabbitmq_service.record().owner  # type: ignore[union-attr]
    rabbitmq_service.down()
    rabbitmq_service.up(owner)

    rabbitmq_service.kill()
    assert rabbitmq_service.process() is None
    assert rabbitmq_service.up() is True

    after = RabbitMQHelper(rabbitmq_amqp_url, rabbitmq_http_url)
    try:
        declared = after.channel.queue_declare(queue=queue, passive=True)
        assert declared.method.message_count == 4
    finally:
        after.delete(queue)
        after.close()


def artemis_queue(name: str) -> str:
    return (f'org.apache.activemq.artemis:broker="{artemis.BROKER_NAME}",component=addresses,'
            f'address="{name}",subcomponent=queues,routing-type="anycast",queue="{name}"')


def artemis_call(service: Artemis, request: dict[str, object]) -> object:
    answer = artemis.jolokia(service.exports()["QUEUE_SCALER_TEST_ARTEMIS_MANAGEMENT"],
                             artemis.USER, artemis.PASSWORD, request)
    assert isinstance(answer, dict), answer
    assert answer["status"] == 200, answer
    return answer["value"]


def test_artemis_answers_jolokia_only_with_an_origin_it_allows(artemis_service: Artemis) -> None:
    management = artemis_service.exports()["QUEUE_SCALER_TEST_ARTEMIS_MANAGEMENT"]
    version = {"type": "read", "mbean": f'org.apache.activemq.artemis:broker="'
               f'{artemis.BROKER_NAME}"', "attribute": "Version"}
    assert artemis_call(artemis_service, version) == artemis.VERSION
    # Without a matching Origin, Jolokia answers HTTP 200 with a refusal in the body: the
    # readiness check (and, later, the scaler) must read the body's status.
    token = base64.b64encode(f"{artemis.USER}:{artemis.PASSWORD}".encode()).decode()
    bare = urllib.request.Request(f"http://{management}/console/jolokia", method="POST",
                                  data=json.dumps(version).encode(),
                                  headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(bare, timeout=10) as reply:
        assert reply.status == 200
        assert json.loads(reply.read())["status"] == 403


def test_a_killed_artemis_comes_back_with_its_durable_queue_and_messages(
        artemis_service: Artemis, unique_name: Names) -> None:
    queue = unique_name("q")
    broker = f'org.apache.activemq.artemis:broker="{artemis.BROKER_NAME}"'
    artemis_call(artemis_service, {
        "type": "exec", "mbean": broker, "operation": "createQueue(java.lang.String)",
        "arguments": [json.dumps({"name": queue, "address": queue, "routing-type": "ANYCAST",
                                  "durable": True})]})
    send = {"type": "exec", "mbean": artemis_queue(queue),
            "operation": "sendMessage(java.util.Map,int,java.lang.String,boolean,"
                         "java.lang.String,java.lang.String)",
            "arguments": [{}, 3, "message", True, artemis.USER, artemis.PASSWORD]}
    for _ in range(3):
        artemis_call(artemis_service, send)
    count = {"type": "read", "mbean": artemis_queue(queue), "attribute": "MessageCount"}
    # A durable message joins the queue once the journal has it, after sendMessage returned
    # (one CI run read 2 right away): kill only when all three are stored.
    wait_until(lambda: artemis_call(artemis_service, count) == 3, "3 messages in the queue",
               timeout_s=10)

    artemis_service.kill()
    assert artemis_service.process() is None
    assert artemis_service.up() is True

    assert artemis_call(artemis_service, count) == 3


def run_testbed(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.testbed", *arguments],  # noqa: S603
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env=os.environ.copy())


@pytest.mark.parametrize("command", ["up", "env"])
def test_the_command_line_prints_only_the_exports_the_tests_read(
        command: str, testbed: Testbed) -> None:
    # Up already (and the testbed's own), so `up` only checks it.
    kafka_address = testbed.service("kafka").exports()["QUEUE_SCALER_TEST_KAFKA"]
    done = run_testbed(command, "kafka")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines, done.stderr
    assert all(line.startswith("export QUEUE_SCALER_TEST_") for line in lines), done.stdout
    assert f"export QUEUE_SCALER_TEST_KAFKA={kafka_address}" in lines
    assert not any("RABBITMQ" in line for line in lines)  # only what was asked for


def test_status_says_which_services_answer(testbed: Testbed) -> None:
    testbed.service("kafka")
    done = run_testbed("status", "kafka")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("kafka: up (4.1.1, pid ")


def activemq_post(url: str, password: str, request: object) -> urllib.request.Request:
    token = base64.b64encode(f"{activemq.USER}:{password}".encode()).decode()
    return urllib.request.Request(url, method="POST", data=json.dumps(request).encode(),
                                  headers={"Authorization": f"Basic {token}"})


def activemq_open(service: ActiveMQ, request: urllib.request.Request) -> Any:
    """Opens `request` over https, trusting the test CA."""
    context = ssl.create_default_context(cafile=service.certificates().ca)
    return urllib.request.urlopen(request, timeout=10, context=context)


def test_activemq_answers_jolokia_at_the_agents_path_and_only_with_its_password(
        activemq_service: ActiveMQ) -> None:
    exports = activemq_service.exports()
    url = exports["QUEUE_SCALER_TEST_ACTIVEMQ_JOLOKIA"]
    assert url.endswith("/jolokia/")
    assert activemq.openwire_answers(exports["QUEUE_SCALER_TEST_ACTIVEMQ_OPENWIRE"])
    assert not activemq.openwire_answers(url.split("/")[2], timeout_s=1)  # Jolokia's port
    version = {"type": "read", "mbean": activemq.broker_mbean(), "attribute": "BrokerVersion"}
    assert activemq_service.call(version) == activemq.VERSION
    # A wrong password is refused by HTTP itself (401, empty body), not in Jolokia's JSON.
    with pytest.raises(urllib.error.HTTPError) as refused:
        activemq_open(activemq_service, activemq_post(url, "wrong-password", version))
    assert refused.value.code == 401
    # The agent's context is "/jolokia/": without the slash, the JDK's HTTP server has none.
    with pytest.raises(urllib.error.HTTPError) as missing:
        activemq_open(activemq_service, activemq_post(url.rstrip("/"), activemq.PASSWORD,
                                                      version))
    assert missing.value.code == 404
    # No Origin check: a foreign Origin is answered, and echoed as allowed.
    foreign = activemq_post(url, activemq.PASSWORD, version)
    foreign.add_header("Origin", "http://elsewhere.example")
    with activemq_open(activemq_service, foreign) as reply:
        assert json.loads(reply.read())["status"] == 200
        assert reply.headers["Access-Control-Allow-Origin"] == "http://elsewhere.example"


def test_activemq_answers_a_bulk_read_entry_by_entry(activemq_service: ActiveMQ,
                                                      unique_name: Names) -> None:
    queue, missing = unique_name("q"), unique_name("missing")
    activemq_service.add_queue(queue)
    try:
        activemq_service.send(queue, 2)
        answers = activemq.jolokia(activemq_service.url, activemq.USER, activemq.PASSWORD,
                                   [activemq.queue_size_request(queue),
                                    activemq.queue_size_request(missing)],
                                   activemq_service.certificates().ca)
        assert isinstance(answers, list), answers
        assert [answer["status"] for answer in answers] == [200, 404]
        assert answers[0]["value"] == 2
        assert answers[1]["error_type"] == "javax.management.InstanceNotFoundException"
        activemq_service.purge(queue)
        assert activemq_service.queue_size(queue) == 0
    finally:
        activemq_service.remove_queue(queue)


def test_a_killed_activemq_comes_back_with_its_persistent_queue_and_messages(
        activemq_service: ActiveMQ, unique_name: Names) -> None:
    queue = unique_name("q")
    activemq_service.add_queue(queue)
    activemq_service.send(queue, 3)  # persistent: a plain sendTextMessage would not be
    assert activemq_service.queue_size(queue) == 3

    activemq_service.kill()
    assert activemq_service.process() is None
    assert activemq_service.up() is True

    try:
        assert activemq_service.queue_size(queue) == 3
    finally:
        activemq_service.remove_queue(queue)
