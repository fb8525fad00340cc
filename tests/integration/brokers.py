"""Test-side helpers that drive the real brokers (create topics and queues, produce, commit)."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import kafka
import kafka.errors
import pika
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from tests.testbed import activemq, artemis


def address_of(url: str) -> str:
    """'host:port' of a broker URL (the testbed gives each listener a free port)."""
    split = urllib.parse.urlsplit(url)
    return f"{split.hostname}:{split.port}"


def with_password(url: str, password: str) -> str:
    """The same broker URL with another password for its user."""
    split = urllib.parse.urlsplit(url)
    return split._replace(netloc=f"{split.username}:{password}@{address_of(url)}").geturl()


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float = 30.0,
               interval_s: float = 0.2) -> Any:
    """Polls `condition` until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class KafkaHelper:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests")
        self.producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)

    def create_topic(self, name: str, partitions: int = 3) -> str:
        wait_until(lambda: self.try_call(
            self.admin.create_topics, [NewTopic(name, partitions, 1)]) is not None,
            f"creating topic {name}")
        self.admin.wait_for_topics([name])
        return name

    def produce(self, topic: str, count: int, *, partition: int | None = None,
                key: bytes | None = None) -> None:
        for index in range(count):
            self.producer.send(topic, f"message {index}".encode(), key=key, partition=partition)
        self.producer.flush()

    def produce_round_robin(self, topic: str, per_partition: list[int]) -> None:
        for partition, count in enumerate(per_partition):
            self.produce(topic, count, partition=partition)

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Commits offsets for an empty group, as a consumer that processed them would."""
        request = {kafka.TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                   for partition, offset in offsets.items()}
        # On a just-started cluster the group coordinator (the __consumer_offsets topic) takes
        # a moment to exist; that is a retriable error (raised, or per partition), as a real
        # consumer would treat it.
        def attempt() -> Any:
            errors = self.try_call(self.admin.alter_group_offsets, group, request)
            if errors is None or any(error is not kafka.errors.NoError and error.retriable
                                     for error in errors.values()):
                return None
            return errors

        errors = wait_until(attempt, "the group coordinator to accept a commit")
        failed = {tp: error for tp, error in errors.items() if error is not kafka.errors.NoError}
        assert not failed, f"commit failed: {failed}"

    @staticmethod
    def try_call(call: Callable[..., Any], *args: Any) -> Any:
        """call(*args), or None when Kafka answers with a retriable error (try again)."""
        try:
            return call(*args)
        except kafka.errors.KafkaError as error:
            if not error.retriable:
                raise
            return None

    def create_topic_with_configs(self, name: str, partitions: int,
                                  configs: dict[str, str]) -> str:
        """A topic with topic-level configs, e.g. message.timestamp.type LogAppendTime."""
        wait_until(lambda: self.try_call(
            self.admin.create_topics, [NewTopic(name, partitions, 1, topic_configs=configs)])
            is not None, f"creating topic {name}")
        self.admin.wait_for_topics([name])
        return name

    def produce_at(self, topic: str, partition: int, timestamps_ms: list[int],
                   value: bytes = b"message") -> None:
        """One record per timestamp (the record's CreateTime, ms since the epoch), in order."""
        for timestamp in timestamps_ms:
            self.producer.send(topic, value, partition=partition, timestamp_ms=timestamp)
        self.producer.flush()

    def produce_one_batch(self, topic: str, partition: int, timestamps_ms: list[int],
                          value: bytes) -> None:
        """All the records in one record batch (a producer that lingers until flush)."""
        producer = kafka.KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=60_000,
                                       batch_size=16 * 1024 * 1024,
                                       max_request_size=16 * 1024 * 1024)
        try:
            for timestamp in timestamps_ms:
                producer.send(topic, value, partition=partition, timestamp_ms=timestamp)
            producer.flush()
        finally:
            producer.close()

    def produce_in_a_transaction(self, topic: str, partition: int, count: int) -> None:
        """`count` records and the transaction's commit marker after them."""
        producer = kafka.KafkaProducer(bootstrap_servers=self.bootstrap,
                                       transactional_id=f"tests-{topic}")
        try:
            producer.init_transactions()
            producer.begin_transaction()
            for index in range(count):
                producer.send(topic, f"message {index}".encode(), partition=partition)
            producer.commit_transaction()
        finally:
            producer.close()

    def log_end(self, topic: str, partition: int) -> int:
        tp = kafka.TopicPartition(topic, partition)
        return int(self.admin.list_partition_offsets({tp: kafka.OffsetSpec.LATEST})[tp].offset)

    def delete_records(self, topic: str, before: dict[int, int]) -> None:
        self.admin.delete_records(
            {kafka.TopicPartition(topic, partition): offset
             for partition, offset in before.items()})

    def close(self) -> None:
        self.producer.close()
        self.admin.close()


class RabbitMQHelper:
    def __init__(self, amqp_url: str, http_url: str) -> None:
        self.amqp_url = amqp_url
        self.http_url = http_url
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        # With confirms, basic_publish returns once the broker has the message, so a read
        # from another connection right after publishing sees it.
        self.channel.confirm_delivery()

    def declare(self, queue: str, *, durable: bool = False) -> str:
        self.channel.queue_declare(queue=queue, auto_delete=False, durable=durable)
        return queue

    def declare_quorum(self, queue: str) -> str:
        self.channel.queue_declare(queue=queue, durable=True,
                                   arguments={"x-queue-type": "quorum"})
        return queue

    def publish(self, queue: str, count: int, *, persistent: bool = False,
                timestamp: int | None = None) -> None:
        """`timestamp`: the AMQP timestamp property, whole seconds since the epoch."""
        properties = None
        if persistent or timestamp is not None:
            properties = pika.BasicProperties(delivery_mode=2 if persistent else None,
                                              timestamp=timestamp)
        for index in range(count):
            self.channel.basic_publish("", queue, f"message {index}".encode(), properties)

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Calls the management API with the URL's credentials."""
        url = urllib.parse.urlsplit(self.http_url)
        token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
        request = urllib.request.Request(
            f"{url.scheme}://{url.hostname}:{url.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            text = reply.read()
        return json.loads(text) if text else None

    def api_queue(self, queue: str, vhost: str = "/") -> dict[str, Any]:
        quoted = urllib.parse.quote(vhost, safe="")
        result: dict[str, Any] = self.api(
            f"/api/queues/{quoted}/{urllib.parse.quote(queue, safe='')}")
        return result

    def api_messages(self, queue: str) -> int:
        return int(self.api_queue(queue).get("messages", -1))

    def scaler_connections(self) -> int:
        """Open connections the scaler made (it names them 'queue-scaler')."""
        connections = self.api("/api/connections?columns=client_properties.connection_name")
        return sum(1 for c in connections
                   if (c.get("client_properties") or {}).get("connection_name") == "queue-scaler")

    def create_vhost(self, vhost: str, user: str = "guest") -> None:
        quoted = urllib.parse.quote(vhost, safe="")
        self.api(f"/api/vhosts/{quoted}", "PUT", {})
        self.api(f"/api/permissions/{quoted}/{user}", "PUT",
                 {"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self, vhost: str) -> None:
        self.api(f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}", "DELETE")

    def create_user(self, user: str, password: str) -> None:
        self.api(f"/api/users/{user}", "PUT", {"password": password, "tags": ""})

    def delete_user(self, user: str) -> None:
        self.api(f"/api/users/{user}", "DELETE")

    def delete(self, queue: str) -> None:
        self.channel.queue_delete(queue)

    def purge(self, queue: str) -> None:
        self.channel.queue_purge(queue)

    def close(self) -> None:
        self.connection.close()


class ArtemisHelper:
    """Creates, fills and removes anycast queues on the testbed's Artemis through Jolokia (one
    bulk request per call)."""

    def __init__(self, management: str, broker: str, user: str, password: str) -> None:
        self.management = management
        self.broker = broker
        self.user = user
        self.password = password

    def queue_mbean(self, queue: str) -> str:
        return (f'org.apache.activemq.artemis:broker="{self.broker}",component=addresses,'
                f'address="{queue}",subcomponent=queues,routing-type="anycast",queue="{queue}"')

    def call(self, requests: list[dict[str, Any]]) -> list[Any]:
        answers = artemis.jolokia(self.management, self.user, self.password, requests)
        assert isinstance(answers, list), answers
        assert all(answer.get("status") == 200 for answer in answers), answers
        return [answer.get("value") for answer in answers]

    def create(self, *queues: str, durable: bool = False) -> None:
        self.call([{"type": "exec", "mbean": f'org.apache.activemq.artemis:broker="{self.broker}"',
                    "operation": "createQueue(java.lang.String)",
                    "arguments": [json.dumps({"name": queue, "address": queue,
                                              "routing-type": "ANYCAST", "durable": durable})]}
                   for queue in queues])

    def send(self, queue: str, count: int, *, durable: bool = False) -> None:
        send = {"type": "exec", "mbean": self.queue_mbean(queue),
                "operation": "sendMessage(java.util.Map,int,java.lang.String,boolean,"
                             "java.lang.String,java.lang.String)",
                "arguments": [{}, 3, "message", durable, self.user, self.password]}
        self.call([send] * count)

    def count(self, queue: str) -> int:
        (value,) = self.call([{"type": "read", "mbean": self.queue_mbean(queue),
                               "attribute": "MessageCount"}])
        return int(value)

    def delete(self, *queues: str) -> None:
        self.call([{"type": "exec", "mbean": f'org.apache.activemq.artemis:broker="{self.broker}"',
                    "operation": "destroyQueue(java.lang.String,boolean,boolean)",
                    "arguments": [queue, True, True]} for queue in queues])


# Debian's ActiveMQ has no web console, so Jolokia is the JVM agent's, at /jolokia/ over https
# and not at the console's /api/jolokia that KEDA's default template reads: the user gives the
# template, with KEDA's placeholders.
AGENT_TEMPLATE = ("https://{{.ManagementEndpoint}}/jolokia/read/org.apache.activemq:type=Broker,"
                  "brokerName={{.BrokerName}},destinationType=Queue,"
                  "destinationName={{.DestinationName}}/QueueSize")


class ClassicHelper:
    """Adds, fills and removes queues on the testbed's ActiveMQ Classic through its Jolokia
    agent, over https (one bulk request per call)."""

    def __init__(self, jolokia_url: str, broker: str, user: str, password: str,
                 ca_file: str) -> None:
        self.jolokia_url = jolokia_url
        self.ca_file = ca_file
        self.broker = broker
        self.user = user
        self.password = password

    @property
    def endpoint(self) -> str:
        """host:port of the Jolokia agent."""
        return address_of(self.jolokia_url)

    def call(self, requests: list[dict[str, Any]]) -> list[Any]:
        answers = activemq.jolokia(self.jolokia_url, self.user, self.password, requests,
                                   self.ca_file)
        assert isinstance(answers, list), answers
        assert all(answer.get("status") == 200 for answer in answers), answers
        return [answer.get("value") for answer in answers]

    def create(self, *queues: str) -> None:
        self.call([activemq.add_queue_request(queue, self.broker) for queue in queues])

    def send(self, queue: str, count: int) -> None:
        self.call([activemq.send_text_request(queue, "message", self.broker, self.user,
                                              self.password)] * count)

    def count(self, queue: str) -> int:
        (value,) = self.call([activemq.queue_size_request(queue, self.broker)])
        return int(value)

    def delete(self, *queues: str) -> None:
        self.call([activemq.remove_queue_request(queue, self.broker) for queue in queues])
