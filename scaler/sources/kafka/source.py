"""Reads Kafka offsets for a trigger with kafka-python: one admin client per cluster.

For a trigger it reads the group's committed offsets (OffsetFetch to the group coordinator) and
log-end offsets (ListOffsets, one request per partition leader; log-start offsets too where
`earliest` or `lagMetric: seconds` needs them) and returns them as facts; for `lagMetric:
seconds` also the timestamps of the oldest unconsumed records (`record_times`). What they mean
is `policy.lag`'s and `policy.age`'s job.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import itertools
import logging
import ssl
import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import kafka
import kafka.errors
import kafka.net.transport

from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    SourceError,
    TargetNotFoundError,
)
from scaler.policy import age, lag
from scaler.sources import base
from scaler.sources.kafka import record_times
from scaler.sources.tls import client_context

if TYPE_CHECKING:
    from scaler.sources.kafka.metadata import KafkaMetadata

_RETRY_BACKOFF_S = 0.2
_GROUPS_PER_OFFSET_FETCH = 200
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class TopicOffsets:
    """Log offsets of one topic's partitions (all of them, or those of a partitionLimitation),
    as columns: compact to keep and to send between processes, and shared by every group
    that reads the same partitions."""

    topic: str
    partitions: array.array[int]
    log_start: array.array[int]
    log_end: array.array[int]


@dataclasses.dataclass(frozen=True)
class KafkaReading(Collection[lag.PartitionRow]):
    """One group's offsets on the partitions of its trigger. A poll cycle makes one per
    ScaledObject, hundreds of thousands of partitions in all, so offsets are kept as arrays
    and rows (`lag.PartitionOffsets` fields, in order) are made only while a decision iterates
    over them."""

    topics: tuple[TopicOffsets, ...]
    committed: tuple[array.array[int], ...]
    """Per topic, aligned with its partitions: the group's committed offset, or -1 when the
    group never committed on the partition."""
    record_times: record_times.RecordTimes | None = None
    """Only for `lagMetric: seconds`: the oldest unconsumed records' timestamps."""

    def __iter__(self) -> Iterator[lag.PartitionRow]:
        for topic, committed in zip(self.topics, self.committed, strict=True):
            yield from zip(itertools.repeat(topic.topic), topic.partitions, topic.log_start,
                           topic.log_end, [None if offset < 0 else offset for offset in committed],
                           strict=False)

    def __len__(self) -> int:
        return sum(len(topic.partitions) for topic in self.topics)

    def __contains__(self, item: object) -> bool:
        return any(item == row for row in self)

    def age_rows(self) -> Iterator[age.AgeRow]:
        """Rows for `policy.age` (a reading made for `lagMetric: seconds`)."""
        times = self.record_times
        if times is None:
            raise ValueError("this reading was not made for lagMetric: seconds")
        for topic, committed, stamps, kinds, rates in zip(
                self.topics, self.committed, times.timestamps, times.kinds, times.rates,
                strict=True):
            yield from zip(itertools.repeat(topic.topic), topic.partitions, topic.log_start,
                           topic.log_end, [None if offset < 0 else offset for offset in committed],
                           stamps, kinds, [None if rate < 0 else rate for rate in rates],
                           strict=False)

    def progress(self) -> Mapping[Hashable, object]:
        return {(topic, partition): committed
                for topic, partition, _, _, committed in self}

    def arrivals(self) -> base.Arrivals:
        """Every record ever appended to the trigger's partitions: their log-end offsets."""
        return base.Arrivals(total=float(sum(sum(topic.log_end) for topic in self.topics)))

    def describe(self) -> dict[str, Any]:
        if self.record_times is None:
            return {"partitions": [lag.PartitionOffsets(*row)._asdict() for row in self]}
        return {"readAtMs": self.record_times.read_at_ms, "partitions": [
            {**lag.PartitionOffsets(*row[:5])._asdict(),
             "oldest_unconsumed_timestamp_ms": None if row[5] < 0 else row[5],
             "timestamp": age.TimestampKind(row[6]).name.lower(),
             "consume_rate_per_s": row[7]}
            for row in self.age_rows()]}


Result = KafkaReading | SourceError


class KafkaSource:
    """One kafka-python admin client for one cluster, created on first read.

    A poll cycle costs, whatever the number of triggers: one OffsetFetch per group coordinator
    and 200 groups (KIP-709), one Metadata request for every topic, and one or two ListOffsets
    per partition leader. When a batched request fails for a reason that belongs to
    one group or topic, the cycle falls back to one request per group or topic, so that only
    the triggers that use it get the error.
    """

    def __init__(self, connection: KafkaMetadata, timeout_s: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        """`wall_clock` (seconds since the epoch) is what record timestamps are compared with;
        `clock` times consume rates and forgetting."""
        self._connection = connection
        self._timeout_ms = int(timeout_s * 1000)
        self._admin: kafka.KafkaAdminClient | None = None
        self._clock = clock
        self._wall_clock = wall_clock
        # Outlives clients and cycles: cached record timestamps and consume rates.
        self._record_times = record_times.RecordTimeReader()
        # kafka-python's admin client is not documented as thread-safe; reads take turns.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KafkaSource(bootstrap_servers={','.join(self._connection.bootstrap_servers)!r})"

    def read_many(self, targets: Sequence[KafkaMetadata]) -> dict[Hashable, Result]:
        deadline = time.monotonic() + self._timeout_ms / 1000
        with self._lock:
            while True:
                try:
                    return _Cycle(self._connect(), self._servers(), self._record_times,
                                  self._clock, self._wall_clock).read(targets)
                except kafka.errors.KafkaError as exc:
                    # Retriable errors (a coordinator still loading, a leader moving) usually
                    # clear within a few hundred milliseconds: retry inside our time budget.
                    if exc.retriable and time.monotonic() + _RETRY_BACKOFF_S < deadline:
                        time.sleep(_RETRY_BACKOFF_S)
                        continue
                    if not isinstance(exc, kafka.errors.BrokerResponseError):
                        self._drop_client()  # a connection-level failure: bootstrap afresh
                    raise _wrap(exc, self._servers()) from exc
                except OSError as exc:
                    self._drop_client()
                    raise BrokerUnavailableError(
                        f"Kafka at {self._servers()}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop_client()

    def _drop_client(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()

    def _servers(self) -> str:
        return ",".join(self._connection.bootstrap_servers)

    def _connect(self) -> kafka.KafkaAdminClient:
        if self._admin is None:
            client_id = f"queue-scaler-{next(_CLIENT_NUMBERS)}"
            _BOOTSTRAP_FAILURES.expect(client_id, self._servers())
            try:
                self._admin = _open_admin_client(self._client_config(client_id))
            except kafka.errors.KafkaError as exc:
                reason = _BOOTSTRAP_FAILURES.pop(client_id)
                if reason is None:
                    raise
                raise reason from exc
            finally:
                _BOOTSTRAP_FAILURES.pop(client_id)
        return self._admin

    def _client_config(self, client_id: str) -> dict[str, Any]:
        connection = self._connection
        config: dict[str, Any] = {
            "bootstrap_servers": list(connection.bootstrap_servers),
            "client_id": client_id,
            "request_timeout_ms": self._timeout_ms,
            # Shorter than a read's budget, so that a failed bootstrap is reported with its
            # reason before the poller gives up on the read.
            "bootstrap_timeout_ms": int(self._timeout_ms * 0.8),
            # A dead broker is retried soon, but not in a tight loop.
            "reconnect_backoff_max_ms": 1000,
        }
        tls = connection.tls == "enable"
        if connection.sasl == "none":
            config["security_protocol"] = "SSL" if tls else "PLAINTEXT"
        else:
            config["security_protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
            config["sasl_mechanism"] = {
                "plaintext": "PLAIN",
                "scram_sha256": "SCRAM-SHA-256",
                "scram_sha512": "SCRAM-SHA-512",
            }[connection.sasl]
            config["sasl_plain_username"] = connection.username
            config["sasl_plain_password"] = connection.password
        if tls:
            config["ssl_context"] = client_context(connection.ca_file, connection.unsafe_ssl)
        return config



class _Cycle:
    """One batched read of many targets on one admin client. Errors that belong to a group or
    a topic are collected per group or topic and handed to exactly the targets that use it."""

    def __init__(self, admin: kafka.KafkaAdminClient, servers: str,
                 times: record_times.RecordTimeReader, clock: Callable[[], float],
                 wall_clock: Callable[[], float]) -> None:
        self._admin = admin
        self._where = f"Kafka at {servers}"
        self._errors: dict[str, SourceError] = {}
        """Keyed 'group:<name>', 'topic:<name>' or 'fetch:<topic>' (lagMetric: seconds only)."""
        self._times = times
        self._clock = clock
        self._wall_clock = wall_clock
        self._leaders: dict[tuple[str, int], int] = {}
        self._topic_ids: dict[str, str] = {}

    def read(self, targets: Sequence[KafkaMetadata]) -> dict[Hashable, Result]:
        commits = self._committed_offsets(sorted({t.consumer_group for t in targets}))
        # Ages are as of this moment: the records at the committed offsets were unconsumed then.
        read_at_ms = int(self._wall_clock() * 1000)
        topics_of = {t.target_key(): self._topics_of(t, commits) for t in targets}
        partitions_by_topic = self._partitions(
            {topic for names in topics_of.values() for topic in names})
        # Each topic's partitions under each partitionLimitation, selected once: 1,000 groups
        # on the same topics share a handful of selections.
        selections: dict[tuple[str, Hashable], list[kafka.TopicPartition]] = {}
        partitions_of = {
            target.target_key(): [_selection(selections, partitions_by_topic, topic, target)
                                  for topic in topics_of[target.target_key()]
                                  if topic in partitions_by_topic]
            for target in targets}
        ends = self._offsets({tp for selected in selections.values() for tp in selected},
                             kafka.OffsetSpec.LATEST)
        # Log-start offsets matter for uncommitted partitions under `earliest`, and, for
        # lagMetric: seconds, where lag is: a commit below the log start is aged from the first
        # retained record.
        need_start: set[kafka.TopicPartition] = set()
        ends_of: dict[int, list[int]] = {}  # per selection (by id): its log ends, in order
        for target in targets:
            earliest = target.offset_reset_policy is lag.OffsetResetPolicy.EARLIEST
            aged = target.measures_age()
            if not (earliest or aged):
                continue
            group = commits.get(target.consumer_group, {})
            for selected in partitions_of[target.target_key()]:
                if not aged:
                    need_start.update(tp for tp in selected
                                      if _committed(group, tp.topic, tp.partition) < 0)
                    continue
                # 1,000 groups x 300 partitions: one pass without a call per partition.
                topic_ends = ends_of.get(id(selected))
                if topic_ends is None:
                    topic_ends = ends_of[id(selected)] = [ends.get(tp, -1) for tp in selected]
                offsets = group.get(selected[0].topic, _NO_COMMITS) if selected else _NO_COMMITS
                for tp, end in zip(selected, topic_ends, strict=True):
                    committed = offsets[tp.partition] if tp.partition < len(offsets) else -1
                    if 0 <= committed < end or (committed < 0 and earliest):
                        need_start.add(tp)
        starts = self._offsets(need_start, kafka.OffsetSpec.EARLIEST)

        columns = _Columns(selections, starts, ends)
        results: dict[Hashable, Result] = {}
        readings: dict[Hashable, tuple[tuple[TopicOffsets, ...], tuple[array.array[int], ...]]]
        readings = {}
        for target in targets:
            key = target.target_key()
            error = self._first_error(
                [f"group:{target.consumer_group}"]
                + [f"topic:{topic}" for topic in topics_of[key]])
            if error is not None:
                results[key] = error
                continue
            group = commits[target.consumer_group]
            topics = tuple(columns.of(topic, target) for topic in topics_of[key]
                           if topic in partitions_by_topic)
            readings[key] = (topics, tuple(_aligned(group.get(t.topic), t.partitions)
                                           for t in topics))
        times = self._record_times([t for t in targets if t.measures_age()], readings,
                                   commits, read_at_ms)
        for target in targets:
            key = target.target_key()
            if key in results:
                continue
            error = self._first_error([f"fetch:{topic}" for topic in topics_of[key]]
                                      if target.measures_age() else [])
            results[key] = error if error is not None else KafkaReading(
                *readings[key], times.get(key))
        return results

    def _record_times(self, targets: Sequence[KafkaMetadata], readings: Mapping[
            Hashable, tuple[tuple[TopicOffsets, ...], tuple[array.array[int], ...]]],
                      commits: dict[str, _GroupCommits], read_at_ms: int,
                      ) -> dict[Hashable, record_times.RecordTimes]:
        """The oldest unconsumed record's timestamp on each partition with lag of `targets`
        (lagMetric: seconds), with one Fetch per leader for the offsets not read before, and
        the consume rates of their groups."""
        now = self._clock()
        # Per target and topic: (index, what it needs) of each partition with lag; the others
        # (most of them, usually) cost one comparison.
        plans: dict[Hashable, list[list[tuple[int, record_times.Want]]]] = {}
        wants: dict[tuple[str, str, int, int], record_times.Want] = {}
        for target in targets:
            key = target.target_key()
            if key not in readings:
                continue
            options = target.age_options()
            plan = plans[key] = []
            for offsets, committed in zip(*readings[key], strict=True):
                topic_id = self._topic_ids.get(offsets.topic, "")
                waiting = []
                for index, (partition, start, end, commit) in enumerate(zip(
                        offsets.partitions, offsets.log_start, offsets.log_end, committed,
                        strict=True)):
                    if (commit >= 0 and commit >= end) or not age.waiting(
                            start, end, None if commit < 0 else commit, options):
                        continue
                    # A commit below the log start (retention, DeleteRecords): the oldest
                    # unconsumed record is the first retained one.
                    at = max(commit, start)
                    want = wants.get((topic_id, offsets.topic, partition, at))
                    if want is None:
                        want = wants[topic_id, offsets.topic, partition, at] = record_times.Want(
                            (topic_id, offsets.topic, partition, at), end,
                            self._leaders.get((offsets.topic, partition), -1))
                    waiting.append((index, want))
                plan.append(waiting)
        if not plans:
            return {}
        try:
            found, denied = self._times.timestamps(self._admin, wants.values(), now)
        except kafka.errors.KafkaError as exc:
            # Only the triggers that need the records get the error (their last good reading is
            # served meanwhile); lagMetric: messages triggers still get their offsets.
            error = _wrap(exc, self._where, "reading the oldest unconsumed records")
            for topic in {want.key[1] for want in wants.values()}:
                self._errors[f"fetch:{topic}"] = error
            found = {key: (-1, age.TimestampKind.PENDING) for key in wants}
            denied = {}
        for topic, denial in denied.items():
            self._errors[f"fetch:{topic}"] = BrokerAuthError(
                f"{self._where}: lagMetric: seconds reads the oldest unconsumed record, and "
                f"reading topic {topic!r} was refused ({type(denial).__name__}); grant the "
                "scaler's user Read on the topic, or use lagMetric: messages")

        # Columns without lag are the same for every target: made once per length and shared
        # (and pickled once).
        blanks: dict[int, tuple[array.array[int], array.array[int]]] = {}
        rates: dict[tuple[str, str], array.array[float]] = {}
        result = {}
        for target in targets:
            key = target.target_key()
            if key not in plans:
                continue
            stamps, kinds, topic_rates = [], [], []
            for offsets, waiting in zip(readings[key][0], plans[key], strict=True):
                count = len(offsets.partitions)
                if not waiting:
                    blank = blanks.get(count)
                    if blank is None:
                        blank = blanks[count] = (array.array("q", [-1]) * count,
                                                 array.array("b", bytes(count)))
                    stamps.append(blank[0])
                    kinds.append(blank[1])
                else:
                    topic_stamps = array.array("q", [-1]) * count
                    topic_kinds = array.array("b", bytes(count))  # NOT_READ
                    for index, want in waiting:
                        topic_stamps[index], topic_kinds[index] = found[want.key]
                    stamps.append(topic_stamps)
                    kinds.append(topic_kinds)
                by_partition = rates.get((target.consumer_group, offsets.topic))
                if by_partition is None:
                    by_partition = rates[target.consumer_group, offsets.topic] = (
                        self._times.rates.observe(
                            target.consumer_group, offsets.topic,
                            commits[target.consumer_group].get(offsets.topic), now))
                topic_rates.append(_aligned_rates(by_partition, offsets.partitions))
            result[key] = record_times.RecordTimes(read_at_ms, tuple(stamps), tuple(kinds),
                                                   tuple(topic_rates))
        return result

    def _topics_of(self, target: KafkaMetadata,
                   commits: dict[str, _GroupCommits]) -> tuple[str, ...]:
        if target.topics:
            return target.topics
        # Differs from KEDA: without a topic we read only the topics the group committed on,
        # never every topic in the cluster; a group without commits reads nothing.
        return tuple(sorted(commits.get(target.consumer_group, {})))

    def _first_error(self, subjects: list[str]) -> SourceError | None:
        return next((self._errors[s] for s in subjects if s in self._errors), None)

    def _committed_offsets(self, groups: list[str]) -> dict[str, _GroupCommits]:
        """Committed offsets of every group, for every topic it committed on.

        Batched across groups (KIP-709), in batches: the answer for 1,000 groups over 300
        partitions each is 300,000 decoded objects at once, and converting each batch to
        arrays before asking for the next keeps the reader's peak memory to one batch."""
        def fetch(batch: list[str]) -> dict[str, _GroupCommits]:
            answer = self._admin.list_group_offsets(dict.fromkeys(batch))
            return {group: _by_topic(answer.get(group, {})) for group in batch}
        result: dict[str, _GroupCommits] = {}
        for first in range(0, len(groups), _GROUPS_PER_OFFSET_FETCH):
            result.update(self._isolated(groups[first:first + _GROUPS_PER_OFFSET_FETCH],
                                         fetch, "group", "consumer group"))
        return result

    def _partitions(self, topics: set[str]) -> dict[str, list[kafka.TopicPartition]]:
        if not topics:
            return {}
        result: dict[str, list[kafka.TopicPartition]] = {}
        for topic in self._admin.describe_topics(sorted(topics)):
            name = topic["name"]
            error = kafka.errors.for_code(topic["error_code"])
            if error is kafka.errors.UnknownTopicOrPartitionError:
                self._errors[f"topic:{name}"] = TargetNotFoundError(
                    f"{self._where}: topic {name!r} does not exist")
            elif error is not kafka.errors.NoError:
                self._errors[f"topic:{name}"] = _wrap(
                    error(f"describing topic {name!r}"), self._where, f"topic {name!r}")
            else:
                result[name] = [kafka.TopicPartition(name, index) for index in
                                sorted(p["partition_index"] for p in topic["partitions"])]
                # For lagMetric: seconds: where to send Fetch, and which incarnation of the
                # topic an offset belongs to (a recreated topic starts its offsets again).
                self._topic_ids[name] = str(topic.get("topic_id", ""))
                for p in topic["partitions"]:
                    self._leaders[name, p["partition_index"]] = p.get("leader_id", -1)
        return result

    def _offsets(self, partitions: set[kafka.TopicPartition], spec: kafka.OffsetSpec
                 ) -> dict[kafka.TopicPartition, int]:
        """One ListOffsets per partition leader for all `partitions`."""
        by_topic: dict[str, list[kafka.TopicPartition]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp)

        def fetch(topic_batch: list[str]) -> dict[str, dict[kafka.TopicPartition, int]]:
            answer = self._admin.list_partition_offsets(
                {tp: spec for topic in topic_batch for tp in by_topic[topic]})
            return {topic: {tp: int(answer[tp].offset) for tp in by_topic[topic]}
                    for topic in topic_batch}

        per_topic = self._isolated(sorted(by_topic), fetch, "topic", "topic")
        return {tp: offset for offsets in per_topic.values() for tp, offset in offsets.items()}

    def _isolated(self, items: list[str], fetch: Callable[[list[str]], dict[str, _T]],
                  kind: str, what: str) -> dict[str, _T]:
        """fetch(items) in one request; if the broker refuses it for a reason that may belong
        to one item, one request per item, so that the error is recorded for that item only.
        Retriable and connection-level errors propagate: the whole cycle is retried or fails."""
        if not items:
            return {}
        try:
            return fetch(items)
        except kafka.errors.BrokerResponseError as error:
            if error.retriable:
                raise
            if len(items) == 1:
                self._errors[f"{kind}:{items[0]}"] = _wrap(error, self._where,
                                                           f"{what} {items[0]!r}")
                return {}
        result: dict[str, _T] = {}
        for item in items:
            result.update(self._isolated([item], fetch, kind, what))
        return result


_GroupCommits = dict[str, "array.array[int]"]
"""One group's committed offsets: per topic, indexed by partition, -1 where it has none."""
_NO_COMMITS: array.array[int] = array.array("q")


def _by_topic(answer: Mapping[kafka.TopicPartition, Any]) -> _GroupCommits:
    """A group's OffsetFetch answer as arrays; uncommitted (-1) partitions are left out, and
    a topic without any commit too."""
    commits: _GroupCommits = {}
    for tp, meta in answer.items():
        if meta.offset < 0:
            continue
        offsets = commits.get(tp.topic)
        if offsets is None:
            offsets = commits[tp.topic] = array.array("q")
        if len(offsets) <= tp.partition:
            offsets.extend([-1] * (tp.partition + 1 - len(offsets)))
        offsets[tp.partition] = int(meta.offset)
    return commits


def _committed(group: _GroupCommits, topic: str, partition: int) -> int:
    offsets = group.get(topic)
    return offsets[partition] if offsets is not None and partition < len(offsets) else -1


def _aligned(offsets: array.array[int] | None, partitions: array.array[int]
             ) -> array.array[int]:
    """`offsets` (indexed by partition) for `partitions`, -1 where there is no commit. The
    common case, every partition 0..n-1 committed, shares the array as it is."""
    if offsets is not None and len(offsets) == len(partitions) and all(
            index == partition for index, partition in enumerate(partitions)):
        return offsets
    return array.array("q", [
        offsets[p] if offsets is not None and p < len(offsets) else -1 for p in partitions])


def _aligned_rates(by_partition: array.array[float], partitions: array.array[int]
                   ) -> array.array[float]:
    """`by_partition` (indexed by partition) for `partitions`; shared when they are all the
    partitions 0..n-1 (sorted and unique, so the ends tell)."""
    count = len(partitions)
    if count == len(by_partition) and (not count or (
            partitions[0] == 0 and partitions[-1] == count - 1)):
        return by_partition
    return array.array("d", [by_partition[p] if p < len(by_partition) else -1.0
                             for p in partitions])


def _selection(selections: dict[tuple[str, Hashable], list[kafka.TopicPartition]],
               partitions_by_topic: dict[str, list[kafka.TopicPartition]], topic: str,
               target: KafkaMetadata) -> list[kafka.TopicPartition]:
    """`topic`'s partitions that `target` reads, made once per partitionLimitation."""
    key = (topic, target.partition_limitation)
    selected = selections.get(key)
    if selected is None:
        selected = selections[key] = [tp for tp in partitions_by_topic[topic]
                                      if target.is_limited_to(tp.partition)]
    return selected


class _Columns:
    """The log offsets of one cycle as `TopicOffsets`, made once per topic and partition
    selection and shared by every target that reads it."""

    def __init__(self, selections: dict[tuple[str, Hashable], list[kafka.TopicPartition]],
                 starts: dict[kafka.TopicPartition, int],
                 ends: dict[kafka.TopicPartition, int]) -> None:
        self._selections = selections
        self._starts = starts
        self._ends = ends
        self._made: dict[tuple[str, Hashable], TopicOffsets] = {}

    def of(self, topic: str, target: KafkaMetadata) -> TopicOffsets:
        key = (topic, target.partition_limitation)
        made = self._made.get(key)
        if made is None:
            selected = self._selections[key]
            made = self._made[key] = TopicOffsets(
                topic, array.array("i", [tp.partition for tp in selected]),
                array.array("q", [self._starts.get(tp, 0) for tp in selected]),
                array.array("q", [self._ends[tp] for tp in selected]))
        return made


def _open_admin_client(config: dict[str, Any]) -> kafka.KafkaAdminClient:
    """A connected admin client. kafka-python's constructor starts the client's IO thread,
    selector and sockets before it bootstraps, and when bootstrapping fails it raises without
    releasing them (and close() thinks the half-built client was never opened): four file
    descriptors per failed attempt, every poll cycle while a broker is down. So the client is
    built in two steps, and closed when the second fails."""
    admin = kafka.KafkaAdminClient.__new__(kafka.KafkaAdminClient)
    try:
        admin.__init__(**config)
    except BaseException:
        admin._closed = False
        with contextlib.suppress(Exception):
            admin.close()
        raise
    return admin


class _BootstrapFailureLog(logging.Handler):
    """Why each bootstrap attempt of the admin clients being created failed.

    kafka-python retries a failed bootstrap until its timeout and then raises only "Unable to
    bootstrap"; the reason of each attempt (credentials refused, a certificate that does not
    verify) is only logged, from the client's IO thread, which is named after its client id.
    Keeping the reason while a client is being created lets a wrong password be
    PERMISSION_DENIED and an unverifiable certificate say so, instead of a bare timeout. Only
    the error made from it is kept, never the exception: its traceback holds sockets."""

    _THREAD_PREFIX = "kafka-io-"

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        # client id -> (its bootstrap servers, the reason of its last failed attempt)
        self._pending: dict[str, tuple[str, SourceError | None]] = {}
        self._guard = threading.Lock()
        manager_log = logging.getLogger("kafka.net.manager")
        # Our own level and no propagation: the app silences kafka-python's logging, and the
        # reasons reach users through our errors instead.
        manager_log.setLevel(logging.WARNING)
        manager_log.propagate = False
        manager_log.addHandler(self)

    def expect(self, client_id: str, servers: str) -> None:
        with self._guard:
            self._pending[client_id] = (servers, None)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not (isinstance(record.msg, str) and record.msg.startswith("Bootstrap connection to")
                and isinstance(args, tuple) and len(args) > 1
                and isinstance(args[1], BaseException) and record.threadName):
            return
        client_id = record.threadName.removeprefix(self._THREAD_PREFIX)
        with self._guard:
            if client_id not in self._pending:
                return  # a client that is already running: its own errors reach us
            servers, reason = self._pending[client_id]
            # A broker that refused credentials may simply drop the next attempt: a refusal
            # or a certificate failure is the reason, whatever follows it.
            if not isinstance(reason, _DECISIVE):
                self._pending[client_id] = (servers, _bootstrap_error(args[1], servers))

    def pop(self, client_id: str) -> SourceError | None:
        with self._guard:
            return self._pending.pop(client_id, ("", None))[1]


class _CertificateError(BrokerUnavailableError):
    """The broker's TLS certificate does not verify."""


_DECISIVE = (BrokerAuthError, _CertificateError)


def _deliver_bytes_before_eof() -> None:
    """Works around kafka-python 3.0.x dropping the bytes it read when the same read also
    hits end-of-file: a broker that refuses SASL credentials answers and closes at once, and
    the refusal was lost as "socket disconnected" on about half of the attempts. Returning the
    bytes first lets the refusal through; the next read sees end-of-file and reports it."""
    for transport in (kafka.net.transport.KafkaTCPTransport,
                      kafka.net.transport.KafkaSSLTransport):
        original = transport.__dict__["_sock_recv"]

        def sock_recv(self: Any, _original: Callable[[Any], tuple[bytes, Any]] = original,
                      ) -> tuple[bytes, Any]:
            data, error = _original(self)
            return (data, None) if data and error is not None else (data, error)

        transport._sock_recv = sock_recv


_deliver_bytes_before_eof()
_BOOTSTRAP_FAILURES = _BootstrapFailureLog()
_CLIENT_NUMBERS = itertools.count(1)


def _bootstrap_error(cause: BaseException, servers: str) -> SourceError:
    where = f"Kafka at {servers}"
    if isinstance(cause, (kafka.errors.SaslAuthenticationFailedError,
                          kafka.errors.UnsupportedSaslMechanismError)):
        return BrokerAuthError(f"{where}: SASL authentication refused "
                               f"({type(cause).__name__}); check username and password")
    verify = _certificate_error(cause)
    if verify is not None:
        return _CertificateError(
            f"{where}: the broker's TLS certificate could not be verified ({verify}); give "
            "the connection a caFile with the CA that signed it (or unsafeSsl: true)")
    return BrokerUnavailableError(f"{where}: cannot connect: {type(cause).__name__}: {cause}")


def _certificate_error(exc: BaseException) -> str | None:
    """The verification failure in `exc` or its causes, if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason)
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return "certificate verify failed"
        seen = seen.__cause__ or seen.__context__
    return None


def _wrap(exc: kafka.errors.KafkaError, where: str, subject: str = "") -> SourceError:
    """Our error for a kafka-python error; `where` and `subject` say what it was about."""
    where = where if where.startswith("Kafka at") else f"Kafka at {where}"
    about = f" ({subject})" if subject else ""
    name = type(exc).__name__
    if isinstance(exc, kafka.errors.UnknownTopicOrPartitionError):
        return TargetNotFoundError(f"{where}: {subject or 'a topic'} does not exist ({name})")
    if isinstance(exc, (kafka.errors.AuthorizationError,
                        kafka.errors.SaslAuthenticationFailedError)):
        return BrokerAuthError(f"{where}: {name}: access refused{about}")
    return BrokerUnavailableError(f"{where}: {name}{about}: {exc}")
