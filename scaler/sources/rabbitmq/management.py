"""Reads queue depth and rates from RabbitMQ's management HTTP API.

`messages_ready + messages_unacknowledged` per queue, publish and deliver/get rates from
`message_stats`, and for `useRegex` every page of `/api/queues/<vhost>?name=<regex>`. The
`columns=` filter keeps each answer small on a broker with thousands of queues; one keep-alive
connection per broker serves every trigger.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
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
_COLUMNS = ("name,messages_ready,messages_unacknowledged,consumers,"
            "message_stats.publish_details.rate,message_stats.deliver_get_details.rate")


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
            queues = [_queue_stats(item, self._where())
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
        return RabbitMQReading(vhost=target.vhost, queues=tuple(queues), via="http")

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
        results: dict[Hashable, RabbitMQReading | SourceError] = {}
        for target in targets:
            item = found.get(target.queue_name)
            if item is None:
                results[target.target_key()] = self._not_found(vhost, target.queue_name)
                continue
            try:
                stats = _queue_stats(item, self._where())
            except _NoStatisticsError as exc:
                results[target.target_key()] = exc
                continue
            results[target.target_key()] = RabbitMQReading(vhost=vhost, queues=(stats,),
                                                           via="http")
        return results

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


def _queue_stats(body: Any, where: str) -> QueueStats:
    if not isinstance(body, dict):
        raise BrokerUnavailableError(f"{where}: answered with something other than a queue")
    if "messages_ready" not in body or "messages_unacknowledged" not in body:
        # A queue the statistics database has not sampled yet (a few seconds after it was
        # declared): its depth is unknown, not 0.
        raise _NoStatisticsError(
            f"{where}: no statistics yet for queue {body.get('name')!r}; retry shortly")
    stats = body.get("message_stats") or {}
    return QueueStats(
        name=str(body.get("name", "")),
        ready=int(body["messages_ready"]),
        unacknowledged=int(body["messages_unacknowledged"]),
        # No message_stats at all means no traffic since the queue's stats began: rate 0.
        publish_rate=float((stats.get("publish_details") or {}).get("rate", 0.0)),
        deliver_get_rate=float((stats.get("deliver_get_details") or {}).get("rate", 0.0)),
        consumers=int(body.get("consumers", 0)),
    )
