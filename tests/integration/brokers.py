"""Test-side helpers that drive the real brokers (create topics and queues, produce, commit)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import kafka
import pika
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata


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
        self.admin.create_topics([NewTopic(name, partitions, 1)])
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
        errors = self.admin.alter_group_offsets(group, {
            kafka.TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for partition, offset in offsets.items()})
        failed = {tp: error for tp, error in errors.items() if error is not kafka.errors.NoError}
        assert not failed, f"commit failed: {failed}"

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

    def declare(self, queue: str) -> str:
        self.channel.queue_declare(queue=queue, auto_delete=False)
        return queue

    def publish(self, queue: str, count: int) -> None:
        for index in range(count):
            self.channel.basic_publish("", queue, f"message {index}".encode())

    def api(self, path: str) -> Any:
        """GET from the management API with the URL's credentials."""
        url = urllib.parse.urlsplit(self.http_url)
        password_manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        root = f"{url.scheme}://{url.hostname}:{url.port}"
        password_manager.add_password(None, root, url.username, url.password)
        opener = urllib.request.build_opener(
            urllib.request.HTTPBasicAuthHandler(password_manager))
        with opener.open(root + path, timeout=10) as reply:
            return json.load(reply)

    def api_messages(self, queue: str) -> int:
        body = self.api(f"/api/queues/%2F/{urllib.parse.quote(queue, safe='')}")
        return int(body.get("messages", -1))

    def delete(self, queue: str) -> None:
        self.channel.queue_delete(queue)

    def close(self) -> None:
        self.connection.close()
