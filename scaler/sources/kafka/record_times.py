"""The timestamp of the oldest unconsumed record on each partition with lag, for triggers with
`lagMetric: seconds`, and how fast each group's committed offsets advance.

Timestamps are read with one Fetch per partition leader per cycle, only for offsets not read
before: the record at an offset never changes, so answers are kept per (topic id, partition,
offset) and an unchanged committed offset costs nothing. kafka-python has no public call for a
raw request, so the Fetch goes through the admin client's connection manager, as its own
`list_partition_offsets` sends ListOffsets.

Fetch sizes: Kafka (checked against 4.1) returns the first partition of a Fetch whole however
big its first batch is, but answers any later partition whose first batch is bigger than its
`partition_max_bytes` with no records at all (not a partial batch). Such a partition is
"pending" for the cycle (its age is estimated, and the decision says so) and is asked for first,
with four times the size, in the next cycle. Each partition is otherwise asked for about the
size of the first batch it last returned, so that a read costs about one batch.
"""

from __future__ import annotations

import array
import dataclasses
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import kafka.errors
from kafka.protocol.consumer import FetchRequest
from kafka.record import MemoryRecords

from scaler.policy.age import TimestampKind

_FIRST_FETCH_BYTES = 16 * 1024  # the Java producer's default batch.size
_MIN_FETCH_BYTES = 1024
_MAX_FETCH_BYTES = 8 * 1024 * 1024
_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # below the broker's fetch.max.bytes (55 MiB)
_FETCH_VERSION = 12  # the last version that names topics (13 and later name them by id)
_FORGET_AFTER_S = 300.0
"""Cached timestamps, fetch sizes and consume rates not used for 300 to 600 s are dropped."""
RATE_WINDOW_S = 60.0
"""Consume rates are measured over the last 30 to 60 s of committed-offset movement."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclasses.dataclass(frozen=True)
class RecordTimes:
    """What `lagMetric: seconds` adds to a KafkaReading: per topic, aligned with its
    partitions, as compact columns."""

    read_at_ms: int
    """Wall-clock time (ms since the epoch) when the committed offsets were read."""
    timestamps: tuple[array.array[int], ...]
    """Timestamp (ms since the epoch) of the oldest unconsumed record, or -1."""
    kinds: tuple[array.array[int], ...]
    """A `policy.age.TimestampKind` per partition."""
    rates: tuple[array.array[float], ...]
    """Messages/s the group's committed offset advanced by, or -1 when none was observed."""


class _Generations(Generic[K, V]):
    """A dict that forgets entries not used for one to two periods, at O(1) per cycle."""

    def __init__(self) -> None:
        self._current: dict[K, V] = {}
        self._previous: dict[K, V] = {}
        self._rotated_at: float | None = None

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def get(self, key: K) -> V | None:
        value = self._current.get(key)
        if value is None and key in self._previous:
            value = self._current[key] = self._previous.pop(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._current[key] = value

    def items(self) -> Iterable[tuple[K, V]]:
        yield from self._previous.items()
        yield from self._current.items()

    def rotate(self, now: float) -> None:
        if self._rotated_at is None:
            self._rotated_at = now
        elif now - self._rotated_at >= _FORGET_AFTER_S:
            self._previous, self._current = self._current, {}
            self._rotated_at = now


@dataclasses.dataclass
class _Window:
    """Two samples of one group's committed offsets on one topic (indexed by partition)."""

    reference_at: float
    reference: array.array[int]
    candidate_at: float
    candidate: array.array[int]


class ConsumeRates:
    """Per group and topic, the rate each partition's committed offset advanced at, between a
    reference sample 30 to 60 s old (younger during the first 30 s) and now."""

    def __init__(self) -> None:
        self._windows: _Generations[tuple[str, str], _Window] = _Generations()
        self._none: dict[int, array.array[float]] = {}

    def observe(self, group: str, topic: str, committed: array.array[int] | None, now: float
                ) -> array.array[float]:
        """Rates indexed by partition (-1: none observed); `committed` indexed by partition.
        Do not modify the answer: "none observed" arrays are shared."""
        self._windows.rotate(now)
        if committed is None:
            return self._none_observed(0)
        window = self._windows.get((group, topic))
        if window is None:
            self._windows.put((group, topic), _Window(now, array.array("q", committed),
                                                      now, array.array("q", committed)))
            return self._none_observed(len(committed))
        for sample in (window.reference, window.candidate):
            if len(sample) < len(committed):  # the group committed on more partitions
                sample.extend([-1] * (len(committed) - len(sample)))
        if now - window.candidate_at >= RATE_WINDOW_S / 2:
            window.reference_at, window.reference = window.candidate_at, window.candidate
            window.candidate_at, window.candidate = now, array.array("q", committed)
        elapsed = now - window.reference_at
        if committed == window.reference:  # nothing moved: no need to look at each partition
            return self._none_observed(len(committed))
        # An offset that did not move, went back (a reset) or was not there before gives no
        # rate: "none observed", never 0 messages/s, which would make lag / rate infinite.
        return array.array("d", [
            (offset - before) / elapsed if elapsed > 0 and before >= 0 and offset > before
            else -1.0 for offset, before in zip(committed, window.reference, strict=False)])

    def _none_observed(self, count: int) -> array.array[float]:
        none = self._none.get(count)
        if none is None:
            none = self._none[count] = array.array("d", [-1.0]) * count
        return none


_Key = tuple[str, str, int, int]
"""(topic id, topic, partition, offset)."""
_Found = tuple[int, int, int]
"""(timestamp or -1, TimestampKind, the log end it holds up to; -1: for good)."""


@dataclasses.dataclass(frozen=True)
class Want:
    """One offset whose record's timestamp a cycle needs."""

    key: _Key
    log_end: int
    leader: int


class RecordTimeReader:
    """Lives as long as its KafkaSource: timestamps, fetch sizes and consume rates persist
    from cycle to cycle. Not thread-safe; the source's reads take turns."""

    def __init__(self) -> None:
        self._found: _Generations[_Key, _Found] = _Generations()
        # (topic id, partition) -> (bytes to ask for, whether to ask for it first)
        self._sizes: _Generations[tuple[str, int], tuple[int, bool]] = _Generations()
        self.rates = ConsumeRates()

    def timestamps(self, admin: Any, wants: Iterable[Want], now: float
                   ) -> tuple[dict[_Key, tuple[int, int]], dict[str, kafka.errors.KafkaError]]:
        """(timestamp, kind) for every wanted offset (kind PENDING where it could not be read
        in this cycle), and the topics whose records we may not read."""
        self._found.rotate(now)
        self._sizes.rotate(now)
        result: dict[_Key, tuple[int, int]] = {}
        by_leader: dict[int, list[Want]] = {}
        for want in wants:
            found = self._found.get(want.key)
            if found is not None and (found[2] < 0 or want.log_end <= found[2]):
                result[want.key] = found[:2]
            elif want.leader < 0:
                result[want.key] = (-1, TimestampKind.PENDING)  # no leader: read next cycle
            else:
                by_leader.setdefault(want.leader, []).append(want)
        denied: dict[str, kafka.errors.KafkaError] = {}
        if by_leader:
            answers = self._fetch(admin, by_leader)
            for wanted in by_leader.values():
                for want in wanted:
                    result[want.key] = self._take(want, answers.get(want.key[1:3]), denied)
        return result, denied

    def _size_of(self, want: Want) -> tuple[int, bool]:
        return self._sizes.get((want.key[0], want.key[2])) or (_FIRST_FETCH_BYTES, False)

    def _fetch(self, admin: Any, by_leader: Mapping[int, list[Want]]
               ) -> dict[tuple[str, int], Any]:
        """One Fetch per leader, sent together; answers per (topic, partition)."""
        requests = {}
        for leader, wanted in by_leader.items():
            # Partitions whose first batch did not fit last time go first: the broker returns
            # the first partition's first batch whatever its size.
            ordered = sorted(wanted, key=lambda w: (not self._size_of(w)[1], w.key[1:3]))
            topics: dict[str, list[Any]] = {}
            for want in ordered:
                topics.setdefault(want.key[1], []).append(FetchRequest.FetchTopic.FetchPartition(
                    partition=want.key[2], current_leader_epoch=-1, fetch_offset=want.key[3],
                    last_fetched_epoch=-1, log_start_offset=-1,
                    partition_max_bytes=self._size_of(want)[0]))
            requests[leader] = FetchRequest(
                max_wait_ms=0, min_bytes=0, isolation_level=0, session_id=0, session_epoch=-1,
                max_bytes=min(_MAX_REQUEST_BYTES, sum(self._size_of(w)[0] for w in wanted)),
                topics=[FetchRequest.FetchTopic(topic=topic, partitions=partitions)
                        for topic, partitions in topics.items()],
                forgotten_topics_data=[], rack_id="", max_version=_FETCH_VERSION)

        async def send_all() -> dict[int, Any]:
            sent = {leader: admin._manager.send(request, node_id=leader)
                    for leader, request in requests.items()}
            return {leader: await future for leader, future in sent.items()}

        responses = admin._manager.run(send_all)
        return {(topic.topic, partition.partition_index): partition
                for response in responses.values() for topic in response.responses
                for partition in topic.partitions}

    def _take(self, want: Want, answer: Any, denied: dict[str, kafka.errors.KafkaError]
              ) -> tuple[int, int]:
        topic_id, topic, partition, offset = want.key
        pending = (-1, TimestampKind.PENDING)
        if answer is None:
            return pending
        error = kafka.errors.for_code(answer.error_code)
        if error is kafka.errors.TopicAuthorizationFailedError:
            denied[topic] = error(f"fetching from topic {topic!r}")
            return pending
        if error is not kafka.errors.NoError:
            # Offset out of range: retention moved the log start after we listed it; a moved
            # leader; a topic deleted just now. The next cycle lists offsets again.
            return pending
        found, first_batch_bytes = oldest_record(answer.records or b"", offset,
                                                 answer.high_watermark)
        size, _ = self._size_of(want)
        if found is None:
            # The first batch did not fit (or the request's bytes ran out before it).
            self._sizes.put((topic_id, partition), (min(_MAX_FETCH_BYTES, size * 4), True))
            return pending
        if first_batch_bytes:
            fitting = _MIN_FETCH_BYTES
            while fitting < first_batch_bytes and fitting < _MAX_FETCH_BYTES:
                fitting *= 2
            self._sizes.put((topic_id, partition), (fitting, False))
        self._found.put(want.key, found)
        return found[:2]


def oldest_record(records: bytes, offset: int, high_watermark: int
                  ) -> tuple[_Found | None, int]:
    """The first data record at or after `offset` in a Fetch answer: (timestamp, kind, the log
    end the answer holds up to), and the size of the first batch. None when the answer does not
    hold it.

    The broker answers from the start of the batch that holds `offset`, so earlier records are
    skipped; transaction markers (control batches) are not messages. When only markers lie
    between `offset` and the high watermark, nothing is waiting, which holds until the log
    grows past that watermark."""
    memory = MemoryRecords(bytes(records))
    first_batch_bytes = 0
    reached = offset
    while memory.has_next():
        batch = memory.next_batch()
        if batch is None:  # a partial batch at the end of the answer
            break
        first_batch_bytes = first_batch_bytes or batch.size_in_bytes
        if getattr(batch, "is_control_batch", False):
            reached = max(reached, batch.next_offset)
            continue
        for record in batch:
            if record.offset >= offset:
                timestamp = record.timestamp
                kind = (TimestampKind.LOG_APPEND_TIME if record.timestamp_type == 1
                        else TimestampKind.CREATE_TIME)
                usable = timestamp if timestamp is not None and timestamp >= 0 else -1
                return (usable, kind, -1), first_batch_bytes
            reached = max(reached, record.offset + 1)
    if high_watermark >= 0 and reached >= high_watermark:
        return (-1, TimestampKind.NOTHING_WAITING, high_watermark), first_batch_bytes
    return None, first_batch_bytes
