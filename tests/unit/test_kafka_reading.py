"""KafkaReading keeps offsets as arrays and yields rows in `PartitionOffsets` order on demand."""

from __future__ import annotations

import array
import pickle

from scaler.policy.lag import PartitionOffsets
from scaler.sources.kafka.source import KafkaReading, TopicOffsets


def topic(name: str, ends: list[int]) -> TopicOffsets:
    return TopicOffsets(name, array.array("i", range(len(ends))),
                        array.array("q", [0] * len(ends)), array.array("q", ends))


def test_partitions_are_yielded_per_topic_with_missing_commits_as_none() -> None:
    reading = KafkaReading((topic("a", [5, 6]), topic("b", [7])),
                           (array.array("q", [1, -1]), array.array("q", [0])))

    assert list(reading) == [PartitionOffsets("a", 0, 0, 5, 1),
                             PartitionOffsets("a", 1, 0, 6, None),
                             PartitionOffsets("b", 0, 0, 7, 0)]
    assert len(reading) == 3
    assert PartitionOffsets("a", 1, 0, 6, None) in reading
    assert reading.progress() == {("a", 0): 1, ("a", 1): None, ("b", 0): 0}
    assert reading.describe()["partitions"][1] == {
        "topic": "a", "partition": 1, "log_start": 0, "log_end": 6, "committed": None}


def test_a_reading_of_no_partitions_is_empty() -> None:
    assert list(KafkaReading((), ())) == []
    assert len(KafkaReading((), ())) == 0


def test_topic_offsets_shared_by_readings_are_sent_once() -> None:
    shared = topic("a", list(range(1000)))
    readings = [KafkaReading((shared,), (array.array("q", [0] * 1000),)) for _ in range(10)]

    alone = len(pickle.dumps(readings[0]))
    together = pickle.loads(pickle.dumps(readings))  # noqa: S301 - made just above

    assert len(pickle.dumps(readings)) < 10 * alone * 0.7
    assert together[0].topics[0] is together[9].topics[0]
    assert list(together[3]) == list(readings[3])
