"""KafkaReading keeps offsets as arrays and yields rows in `PartitionOffsets` order on demand;
for lagMetric: seconds, record timestamps decoded from Fetch answers and consume rates."""

from __future__ import annotations

import array
import pickle

import pytest
from kafka.record import MemoryRecordsBuilder

from scaler.policy import age
from scaler.policy.lag import PartitionOffsets
from scaler.sources.kafka import record_times
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


def test_a_seconds_reading_adds_record_times_per_partition() -> None:
    times = record_times.RecordTimes(
        read_at_ms=1_800_000_000_000,
        timestamps=(array.array("q", [1_799_999_990_000, -1]), array.array("q", [-1])),
        kinds=(array.array("b", [age.TimestampKind.CREATE_TIME, age.TimestampKind.NOT_READ]),
               array.array("b", [age.TimestampKind.PENDING])),
        rates=(array.array("d", [2.5, -1.0]), array.array("d", [-1.0])))
    reading = KafkaReading((topic("a", [5, 6]), topic("b", [7])),
                           (array.array("q", [1, 6]), array.array("q", [0])), times)

    assert list(reading.age_rows()) == [
        ("a", 0, 0, 5, 1, 1_799_999_990_000, age.TimestampKind.CREATE_TIME, 2.5),
        ("a", 1, 0, 6, 6, -1, age.TimestampKind.NOT_READ, None),
        ("b", 0, 0, 7, 0, -1, age.TimestampKind.PENDING, None)]
    described = reading.describe()
    assert described["readAtMs"] == 1_800_000_000_000
    assert described["partitions"][0] == {
        "topic": "a", "partition": 0, "log_start": 0, "log_end": 5, "committed": 1,
        "oldest_unconsumed_timestamp_ms": 1_799_999_990_000, "timestamp": "create_time",
        "consume_rate_per_s": 2.5}
    assert described["partitions"][2]["timestamp"] == "pending"
    assert list(reading) == list(KafkaReading(reading.topics, reading.committed))


def test_a_messages_reading_has_no_age_rows() -> None:
    with pytest.raises(ValueError, match="not made for lagMetric: seconds"):
        list(KafkaReading((), ()).age_rows())


def batch(base_offset: int, timestamps: list[int | None], magic: int = 2) -> bytes:
    """A record batch as the broker stores and returns it, built by kafka-python itself."""
    builder = MemoryRecordsBuilder(magic, 0, 1 << 20, offset=base_offset)
    for timestamp in timestamps:
        builder.append(timestamp, None, b"value")
    builder.close()
    return bytes(builder.buffer())


@pytest.mark.parametrize(("records", "offset", "high_watermark", "expected"), [
    # The broker answers from the start of the batch that holds the offset: skip earlier ones.
    pytest.param(batch(10, [1000, 2000, 3000, 4000]), 12, 14,
                 (3000, age.TimestampKind.CREATE_TIME, -1), id="record-inside-a-batch"),
    pytest.param(batch(10, [1000, 2000]) + batch(12, [5000, 6000]), 13, 14,
                 (6000, age.TimestampKind.CREATE_TIME, -1), id="record-in-a-later-batch"),
    # Message format v0 has no timestamps: -1, and the policy estimates.
    pytest.param(batch(0, [None, None], magic=0), 1, 2,
                 (-1, age.TimestampKind.CREATE_TIME, -1), id="record-without-timestamp"),
    # Only a part of the first batch: not read (it is asked for again, bigger and first).
    pytest.param(batch(10, [1000, 2000, 3000])[:40], 11, 13, None, id="partial-first-batch"),
    # The broker answered no records although some lie past the offset: the first batch did
    # not fit the partition's fetch size.
    pytest.param(b"", 11, 13, None, id="first-batch-did-not-fit"),
    # Nothing at or past the offset up to the high watermark: nothing waits, until the log
    # grows past 13.
    pytest.param(b"", 13, 13, (-1, age.TimestampKind.NOTHING_WAITING, 13),
                 id="nothing-past-the-offset"),
])
def test_oldest_record_is_the_first_at_or_after_the_offset(
        records: bytes, offset: int, high_watermark: int,
        expected: tuple[int, int, int] | None) -> None:
    found, _ = record_times.oldest_record(records, offset, high_watermark)
    assert found == expected


def test_consume_rate_is_measured_over_a_window_and_never_zero() -> None:
    rates = record_times.ConsumeRates()
    # First sample: nothing observed yet.
    assert list(rates.observe("g", "t", array.array("q", [100, 50, -1]), now=0.0)) == [
        -1.0, -1.0, -1.0]
    # 10 s later: partition 0 advanced 40 (4/s); partition 1 stood still (no rate, not 0).
    assert list(rates.observe("g", "t", array.array("q", [140, 50, -1]), now=10.0)) == [
        4.0, -1.0, -1.0]
    # The group commits on a new partition: no rate there yet.
    assert list(rates.observe("g", "t", array.array("q", [160, 60, -1, 7]), now=20.0)) == [
        3.0, 0.5, -1.0, -1.0]
    # Half a window on, the reference moves to the sample taken at 0 s... then at 30 s.
    rates.observe("g", "t", array.array("q", [190, 60, -1, 7]), now=30.0)
    assert list(rates.observe("g", "t", array.array("q", [250, 60, -1, 17]), now=60.0)) == [
        2.0, -1.0, -1.0, 10 / 30]
    # A reset to an earlier offset is not consumption.
    assert rates.observe("g", "t", array.array("q", [0, 60, -1, 17]), now=61.0)[0] == -1.0
