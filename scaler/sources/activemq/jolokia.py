"""Reads MBean attributes through Jolokia with one bulk POST per endpoint per poll cycle.

Every trigger on one Jolokia endpoint (and login) shares this source; a cycle sends all their
reads as one JSON list and Jolokia answers each entry on its own, so a missing queue fails only
its own triggers. KEDA sends one GET per trigger per call. An answer is a value only when its
entry says `status: 200`: Jolokia reports refusals (a wrong Origin, an access policy) inside an
HTTP 200 answer.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from scaler import redaction
from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    SourceError,
    TargetNotFoundError,
)
from scaler.sources.activemq import mbeans
from scaler.sources.activemq.reading import ActiveMQReading
from scaler.sources.http_connection import HttpConnection

if TYPE_CHECKING:
    from scaler.sources.activemq.metadata import ActiveMQMetadata, Flavor

_Read = tuple[str, str]  # (MBean, attribute)


class JolokiaSource:
    def __init__(self, connection: ActiveMQMetadata, timeout_s: float) -> None:
        self._connection = connection
        read = connection.jolokia_read
        # The Jolokia JVM agent answers 404 without the slash; the web consoles take either.
        self._path = read.path + "/"
        self._http = HttpConnection(read.scheme, read.host, read.port, timeout_s,
                                    connection.ca_file, connection.unsafe_ssl)
        login = f"{connection.username}:{connection.password}".encode()
        self._headers = {"Authorization": "Basic " + base64.b64encode(login).decode(),
                         "Origin": connection.origin, "Content-Type": "application/json",
                         "Accept": "application/json"}
        # http.client connections are not thread-safe; reads take turns.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JolokiaSource(endpoint={self._connection.display_endpoint()!r})"

    def read_many(self, targets: Sequence[ActiveMQMetadata]
                  ) -> dict[Hashable, ActiveMQReading | SourceError]:
        """One bulk request for every distinct MBean attribute, and each queue's counter of
        added messages (for the throughput strategy; an MBean without one is no error); a
        second request, listing the brokers, only in a cycle where a read answered 404 (to say
        what is missing)."""
        reads = list(dict.fromkeys(read for target in targets
                                   for read in (_read_of(target), _added_of(target))))
        if not reads:
            return {}
        with self._lock:
            answers = self._bulk([{"type": "read", "mbean": mbean, "attribute": attribute}
                                  for mbean, attribute in reads])
            outcomes = dict(zip(reads, answers, strict=True))
            missing = {target.kind.name: target.kind for target in targets
                       if outcomes[_read_of(target)].get("status") == 404}
            brokers = {name: self._brokers(kind) for name, kind in missing.items()}
        return {target.target_key(): self._outcome(target, outcomes[_read_of(target)],
                                                   outcomes[_added_of(target)],
                                                   brokers.get(target.kind.name))
                for target in targets}

    def close(self) -> None:
        with self._lock:
            self._http.close()

    def _outcome(self, target: ActiveMQMetadata, answer: dict[str, Any],
                 added: dict[str, Any], brokers: list[str] | None
                 ) -> ActiveMQReading | SourceError:
        mbean, attribute = _read_of(target)
        status = answer.get("status")
        value = answer.get("value")
        if status == 200:
            if _is_count(value):
                count = added.get("value") if added.get("status") == 200 else None
                return ActiveMQReading(mbean, attribute, value,
                                       count if _is_count(count) else None)
            return BrokerUnavailableError(
                f"{self._where()}: attribute {attribute} of {mbean} is not a message count "
                f"(got {type(value).__name__}); read a count such as "
                f"{target.kind.attribute}")
        if status == 404:
            return self._not_found(target, answer, brokers)
        detail = self._detail(answer)
        if status in (401, 403):
            return BrokerAuthError(
                f"{self._where()}: Jolokia refused reading {attribute} of {mbean} for user "
                f"{self._connection.username!r} (status {status}: {detail}); the broker's "
                "Jolokia access policy (jolokia-access.xml) must allow it")
        return BrokerUnavailableError(
            f"{self._where()}: Jolokia answered status {status} reading {attribute} of "
            f"{mbean}: {detail}")

    def _not_found(self, target: ActiveMQMetadata, answer: dict[str, Any],
                   brokers: list[str] | None) -> TargetNotFoundError:
        """Says what is missing: the attribute, the broker (when the list of brokers could be
        read) or the queue."""
        read = target.jolokia_read
        kind = target.kind
        broker = read.property(kind.broker_property)
        if "AttributeNotFound" in str(answer.get("error_type", "")):
            return TargetNotFoundError(
                f"{self._where()}: {read.mbean} has no attribute {read.attribute}")
        if broker is not None and brokers is not None and broker not in brokers:
            there = ", ".join(repr(name) for name in brokers) or "none"
            return TargetNotFoundError(
                f"{self._where()}: broker {broker!r} does not exist (brokerName; brokers "
                f"there: {there})")
        queue = read.property(kind.queue_property)
        if queue is not None and broker is not None and brokers is not None:
            address = read.property("address")
            at = "" if address is None else f" at address {address!r}"
            return TargetNotFoundError(
                f"{self._where()}: queue {queue!r}{at} does not exist on broker {broker!r}")
        return TargetNotFoundError(f"{self._where()}: MBean {read.mbean} does not exist")

    def _brokers(self, kind: Flavor) -> list[str] | None:
        """The broker names on this endpoint, for the not-found message; None if the search
        failed (the message then does not guess)."""
        try:
            (answer,) = self._bulk([{"type": "search", "mbean": kind.broker_search}])
        except SourceError:
            return None
        names = answer.get("value") if answer.get("status") == 200 else None
        if not isinstance(names, list):
            return None
        found = []
        for name in names:
            try:
                found.append(mbeans.parse_object_name(str(name))[1].get(kind.broker_property))
            except mbeans.TemplateError:
                continue
        return sorted(name for name in found if name is not None)

    def _bulk(self, requests: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Jolokia's answers, one per request, in order; raises for the whole request."""
        try:
            reply = self._http.request("POST", self._path, self._headers,
                                       json.dumps(requests).encode())
        except ssl.SSLCertVerificationError as exc:
            raise BrokerUnavailableError(
                f"{self._where()}: the endpoint's TLS certificate could not be verified "
                f"({exc.verify_message}); give the connection a caFile with the CA that signed "
                "it (or unsafeSsl: true)") from exc
        except (http.client.HTTPException, OSError) as exc:
            detail = redaction.redact_text(str(exc), (self._connection.password,))
            raise BrokerUnavailableError(
                f"{self._where()}: {type(exc).__name__}: {detail}") from exc
        if reply.status in (401, 403):
            raise BrokerAuthError(f"{self._where()}: HTTP {reply.status}: login refused for "
                                  f"user {self._connection.username!r}")
        if reply.status == 404:
            raise TargetNotFoundError(
                f"{self._where()}: no Jolokia here (HTTP 404); Artemis serves it at "
                "/console/jolokia, Classic's web console at /api/jolokia, the Jolokia JVM "
                "agent at /jolokia (set the path in the flavor's rest API template)")
        if reply.status != 200:
            raise BrokerUnavailableError(f"{self._where()}: HTTP {reply.status} {reply.reason}")
        try:
            body = json.loads(reply.body)
        except ValueError as exc:
            raise BrokerUnavailableError(
                f"{self._where()}: answered with something other than JSON") from exc
        if isinstance(body, dict):
            raise self._refusal(body)
        if not isinstance(body, list) or len(body) != len(requests) or not all(
                isinstance(answer, dict) for answer in body):
            raise BrokerUnavailableError(
                f"{self._where()}: answered a bulk request with something other than one "
                "answer per request")
        return body

    def _refusal(self, body: dict[str, Any]) -> SourceError:
        """A bulk request answered as a whole: Jolokia refused it before reading anything."""
        status = body.get("status")
        detail = self._detail(body)
        if status == 403 and "origin" in detail.lower():
            return BrokerAuthError(
                f"{self._where()}: Jolokia refused the Origin {self._connection.origin!r} "
                f"({detail}); set corsHeader to an origin the broker's jolokia-access.xml "
                "<cors> section allows")
        if status in (401, 403):
            return BrokerAuthError(f"{self._where()}: Jolokia refused the request (status "
                                   f"{status}: {detail})")
        return BrokerUnavailableError(
            f"{self._where()}: Jolokia refused the bulk request (status {status}: {detail})")

    def _detail(self, answer: dict[str, Any]) -> str:
        text = str(answer.get("error") or answer.get("error_type") or "no detail")
        return redaction.redact_text(text[:300], (self._connection.password,))

    def _where(self) -> str:
        return f"Jolokia at {self._connection.display_endpoint()}"


def _read_of(target: ActiveMQMetadata) -> _Read:
    read = target.jolokia_read
    return read.mbean, read.attribute


def _added_of(target: ActiveMQMetadata) -> _Read:
    return target.jolokia_read.mbean, target.kind.added_attribute


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
