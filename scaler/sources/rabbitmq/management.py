"""Reads queue depth and rates from RabbitMQ's management HTTP API.

`messages_ready + messages_unacknowledged` per queue, publish and deliver/get rates from
`message_stats`, the head message's timestamp (`head_message_timestamp`, for MessageAge), and
for `useRegex` every page of `/api/queues/<vhost>?name=<regex>`. The
`columns=` filter keeps each answer small on a broker with thousands of queues; one keep-alive
connection per broker serves every trigger.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from scaler import redaction
from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    SourceError,
    TargetNotFoundError,
)
from scaler.sources.http_connection import HttpConnection
from scaler.sources.rabbitmq.reading import QueueStats, RabbitMQReading

if TYPE_CHECKING:
    from scaler.sources.rabbitmq.metadata import RabbitMQMetadata

_MAX_PAGE_SIZE = 500
_COLUMNS = ("name,type,messages_ready,messages_unacknowledged,consumers,head_message_timestamp,"
            "message_stats.publish_details.rate,message_stats.deliver_get_details.rate")
_NAMED_IN_ERRORS = 5
_PUBLISH_WITH_TIMESTAMPS = (
    "MessageAge needs publishers to set the AMQP timestamp property (whole seconds since the "
    "epoch) on every message")


class _NotFoundError(Exception):
    """HTTP 404 from the management API."""


class _NoStatisticsError(BrokerUnavailableError):
    """A queue the statistics database has not sampled yet."""


def _chunks(names: list[str], budget: int = 4000) -> list[list[str]]:
    """Splits queue names so that each request's regex stays well inside URL limits."""
    chunks: list[list[str]] = [[]]
    size = 0
    for name in names:
        if chunks[-1] and size + len(name) > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(name)
        size += len(name) + 3
    return chunks


class ManagementSource:
    def __init__(self, connection: RabbitMQMetadata, timeout_s: float) -> None:
        self._connection = connection
        url = connection.host
        self._http = HttpConnection(
            url.scheme, url.hostname or "", url.port or (15671 if url.scheme == "https" else 15672),
            timeout_s, connection.ca_file, connection.unsafe_ssl)
        user, password = connection.credentials
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        # http.client connections are not thread-safe; reads take turns.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ManagementSource(host={self._connection.display_host()!r})"

    def read_many(self, targets: Sequence[RabbitMQMetadata]
                  ) -> dict[Hashable, RabbitMQReading | SourceError]:
        """Queues named exactly are read with one listing per vhost (their names joined into
        one anchored regex); each regex trigger gets its own listing. A vhost that is gone, a
        missing queue or a queue without statistics is that trigger's error only."""
        results: dict[Hashable, RabbitMQReading | SourceError] = {}
        by_vhost: dict[str, list[RabbitMQMetadata]] = {}
        with self._lock:
            for target in targets:
                if target.use_regex:
                    results[target.target_key()] = self._read_regex(target)
                else:
                    by_vhost.setdefault(target.vhost, []).append(target)
            for vhost, named in by_vhost.items():
                results.update(self._read_named(vhost, named))
        return results

    def close(self) -> None:
        with self._lock:
            self._http.close()

    def _read_regex(self, target: RabbitMQMetadata) -> RabbitMQReading | SourceError:
        try:
            queues = [queue_stats(item, self._where())
                      for item in self._list(target.vhost, target.queue_name,
                                             target.effective_page_size)]
        except _NotFoundError:
            return self._not_found(target.vhost, None)
        except _NoStatisticsError as exc:
            return exc
        if not queues:
            return TargetNotFoundError(
                f"{self._where()}: no queue in vhost {target.vhost!r} matches the regex "
                f"{target.queue_name!r}")
        return self._checked(target, RabbitMQReading(
            vhost=target.vhost, queues=tuple(queues), via="http", read_at=time.time()))

    def _read_named(self, vhost: str, targets: list[RabbitMQMetadata]
                    ) -> dict[Hashable, RabbitMQReading | SourceError]:
        names = sorted({target.queue_name for target in targets})
        found: dict[str, dict[str, Any]] = {}
        try:
            for chunk in _chunks(names):
                pattern = "^(?:" + "|".join(re.escape(name) for name in chunk) + ")$"
                for item in self._list(vhost, pattern, _MAX_PAGE_SIZE):
                    if isinstance(item, dict) and item.get("name") in chunk:
                        found[item["name"]] = item
        except _NotFoundError:
            error = self._not_found(vhost, None)
            return {target.target_key(): error for target in targets}
        read_at = time.time()
        results: dict[Hashable, RabbitMQReading | SourceError] = {}
        for target in targets:
            item = found.get(target.queue_name)
            if item is None:
                results[target.target_key()] = self._not_found(vhost, target.queue_name)
                continue
            try:
                stats = queue_stats(item, self._where())
            except _NoStatisticsError as exc:
                results[target.target_key()] = exc
                continue
            results[target.target_key()] = self._checked(target, RabbitMQReading(
                vhost=vhost, queues=(stats,), via="http", read_at=read_at))
        return results

    def _checked(self, target: RabbitMQMetadata, reading: RabbitMQReading
                 ) -> RabbitMQReading | SourceError:
        """The reading, or for MessageAge the error that says why it gives no age."""
        if not target.needs_head_timestamp:
            return reading
        return head_timestamp_error(reading, self._where(), target.use_regex) or reading

    def _list(self, vhost: str, name_regex: str, page_size: int) -> list[Any]:
        """Every page of /api/queues/<vhost> whose names match (KEDA reads only the first)."""
        items: list[Any] = []
        page, page_count = 1, 1
        while page <= page_count:
            query = urllib.parse.urlencode({
                "page": page, "page_size": page_size, "name": name_regex,
                "use_regex": "true", "columns": _COLUMNS})
            body = self._get(f"/api/queues/{urllib.parse.quote(vhost, safe='')}?{query}")
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise BrokerUnavailableError(f"{self._where()}: unexpected queue listing")
            items += body["items"]
            page_count = int(body.get("page_count", 0))
            page += 1
        return items

    def _not_found(self, vhost: str, queue: str | None) -> TargetNotFoundError:
        """Whether the vhost or only the queue is missing (one extra request, on errors only)."""
        try:
            self._get(f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}?columns=name")
        except _NotFoundError:
            return TargetNotFoundError(f"{self._where()}: vhost {vhost!r} does not exist")
        return TargetNotFoundError(
            f"{self._where()}: queue {queue!r} does not exist in vhost {vhost!r}")

    def _where(self) -> str:
        return f"RabbitMQ management API at {self._connection.display_host()}"

    def _get(self, path: str) -> Any:
        try:
            reply = self._http.request(
                "GET", self._connection.http_sub_path + path,
                {"Authorization": self._authorization, "Accept": "application/json"})
        except (http.client.HTTPException, OSError) as exc:
            raise self._unavailable(exc) from exc
        if reply.status == 404:
            raise _NotFoundError
        if reply.status in (401, 403):
            raise BrokerAuthError(f"{self._where()}: HTTP {reply.status}: access refused for "
                                  f"user {self._connection.credentials[0]!r}")
        if reply.status != 200:
            raise BrokerUnavailableError(f"{self._where()}: HTTP {reply.status} {reply.reason}")
        try:
            return json.loads(reply.body)
        except ValueError as exc:
            raise BrokerUnavailableError(f"{self._where()}: answered with invalid JSON") from exc

    def _unavailable(self, exc: BaseException) -> BrokerUnavailableError:
        detail = redaction.redact_text(str(exc), (self._connection.credentials[1],))
        return BrokerUnavailableError(f"{self._where()}: {type(exc).__name__}: {detail}")


def queue_stats(body: Any, where: str) -> QueueStats:
    """One queue of a listing; raises for a queue the statistics have not sampled yet."""
    if not isinstance(body, dict):
        raise BrokerUnavailableError(f"{where}: answered with something other than a queue")
    if "messages_ready" not in body or "messages_unacknowledged" not in body:
        # A queue the statistics database has not sampled yet (a few seconds after it was
        # declared): its depth is unknown, not 0.
        raise _NoStatisticsError(
            f"{where}: no statistics yet for queue {body.get('name')!r}; retry shortly")
    stats = body.get("message_stats") or {}
    head = body.get("head_message_timestamp")
    if head is not None and (isinstance(head, bool) or not isinstance(head, int)):
        # The AMQP timestamp property is whole seconds since the epoch.
        raise BrokerUnavailableError(f"{where}: head_message_timestamp of queue "
                                     f"{body.get('name')!r} is not a whole number")
    return QueueStats(
        name=str(body.get("name", "")),
        ready=int(body["messages_ready"]),
        unacknowledged=int(body["messages_unacknowledged"]),
        # No message_stats at all means no traffic since the queue's stats began: rate 0.
        publish_rate=float((stats.get("publish_details") or {}).get("rate", 0.0)),
        deliver_get_rate=float((stats.get("deliver_get_details") or {}).get("rate", 0.0)),
        consumers=int(body.get("consumers", 0)),
        # null: an empty queue, a head message without a timestamp or kept on disk only;
        # absent: a queue type that does not report it (RabbitMQ 3.10: quorum), or a classic
        # queue not sampled yet.
        head_message_timestamp=head,
        reports_head_timestamp="head_message_timestamp" in body,
        queue_type=str(body["type"]) if "type" in body else None,
    )


def head_timestamp_error(reading: RabbitMQReading, where: str, is_regex: bool
                         ) -> SourceError | None:
    """For MessageAge: why `reading` gives no age, or None when it does. A queue that holds
    messages without a head timestamp is an error, never age 0: an old message without one
    would otherwise read as fresh and let the workload scale down.

    RabbitMQ 3.10's management API samples a queue's message counts and its
    head_message_timestamp separately (about half a statistics interval apart, measured): after
    a purge, or when a drained queue refills, a sample can show messages with a null head for
    up to one interval. Hence retriable (UNAVAILABLE; the poller serves the last good age until
    --stale-after meanwhile), not NOT_FOUND, which is answered at once and would fail each such
    instant. A queue type that never reports the field (quorum, stream) is NOT_FOUND."""
    unsupported = [q for q in reading.queues
                   if not q.reports_head_timestamp and q.queue_type not in (None, "classic")]
    if unsupported:
        kinds = ", ".join(sorted({str(q.queue_type) for q in unsupported}))
        narrow = "; narrow queueName to classic queues" if is_regex else ""
        return TargetNotFoundError(
            f"{where}: {_named(unsupported)} in vhost {reading.vhost!r} "
            f"report{'s' if len(unsupported) == 1 else ''} no "
            f"head_message_timestamp ({kinds}; RabbitMQ 3.10 reports it for classic queues "
            f"only), so MessageAge cannot be measured there{narrow}; "
            "ExpectedQueueConsumptionTime (DrainTime) works on every queue type")
    untimed = [q for q in reading.queues if q.messages and q.head_message_timestamp is None]
    if untimed:
        return BrokerUnavailableError(
            f"{where}: {_named(untimed)} in vhost {reading.vhost!r} "
            f"hold{'s' if len(untimed) == 1 else ''} messages but the statistics report no "
            "timestamp for the head message (head_message_timestamp null). "
            f"{_PUBLISH_WITH_TIMESTAMPS}. RabbitMQ 3.10 also reports null for a head message "
            "kept on disk only (a lazy classic queue, or messages paged out under memory "
            "pressure), and for up to one statistics interval after a queue is purged or a "
            "drained queue refills, so this read is retried")
    return None


def _named(queues: list[QueueStats]) -> str:
    """'queue 'a'' or 'queues 'a', 'b' and 3 more', for error messages."""
    names = ", ".join(repr(q.name) for q in queues[:_NAMED_IN_ERRORS])
    more = len(queues) - _NAMED_IN_ERRORS
    if len(queues) == 1:
        return f"queue {names}"
    return f"queues {names}" + (f" and {more} more" if more > 0 else "")
