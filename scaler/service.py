"""The KEDA ExternalScaler gRPC service: protobuf requests in, decisions out.

This is the one place that maps the scaler's errors to gRPC status codes (SPEC §2). Every
answer is built from a broker reading; an error is never answered as 0 or as inactive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from scaler import policy, sources
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.decisions import DecisionLog
from scaler.errors import (
    BrokerAuthError,
    BrokerUnavailableError,
    MetadataError,
    MetadataErrors,
    ScalerError,
    StaleDataError,
    TargetNotFoundError,
)
from scaler.history import INVALID_METADATA, Change, History
from scaler.metrics import ScalerMetrics
from scaler.policy import throughput
from scaler.poller import Poller, Snapshot

log = logging.getLogger(__name__)

_STATUS_BY_ERROR: tuple[tuple[type[ScalerError], grpc.StatusCode], ...] = (
    (MetadataErrors, grpc.StatusCode.INVALID_ARGUMENT),
    (MetadataError, grpc.StatusCode.INVALID_ARGUMENT),
    (TargetNotFoundError, grpc.StatusCode.NOT_FOUND),
    (BrokerAuthError, grpc.StatusCode.PERMISSION_DENIED),
    (BrokerUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: Exception) -> grpc.StatusCode:
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


@dataclasses.dataclass(frozen=True)
class Evaluation:
    trigger: sources.Trigger
    snapshot: Snapshot
    decision: policy.Decision

    @property
    def source_name(self) -> str:
        return self.trigger.common.source

    def describe(self, now: float) -> dict[str, Any]:
        """The decision and its inputs as JSON-ready data; secrets never appear."""
        decision = self.decision
        described: dict[str, Any] = {
            "source": self.source_name,
            "reading": self.snapshot.reading.describe(),
            "dataAgeSeconds": round(max(0.0, now - self.snapshot.read_at), 3),
            "metricValue": decision.metric_value,
            "targetPerReplica": decision.target,
            "isActive": decision.is_active,
            "desiredReplicas": decision.desired_replicas,
            "reasons": list(decision.reasons),
        }
        if self.snapshot.last_error is not None:
            described["lastError"] = str(self.snapshot.last_error)
            described["lastErrorCode"] = status_for(self.snapshot.last_error).name
        return described


@dataclasses.dataclass(frozen=True)
class Failure:
    """A trigger whose newest answer was an error."""

    source_name: str
    error: Exception

    def describe(self, now: float) -> dict[str, Any]:
        return {"source": self.source_name, "error": str(self.error),
                "code": status_for(self.error).name}


@functools.lru_cache(maxsize=4096)
def _parse_cached(items: tuple[tuple[str, str], ...], connections: sources.Connections,
                  ) -> sources.Trigger:
    return sources.parse_trigger(dict(items), connections)


_MAX_CACHED_METADATA_CHARS = 16 * 1024


def parse(metadata: Mapping[str, str],
          connections: sources.Connections = sources.NO_CONNECTIONS) -> sources.Trigger:
    """Parses a ScaledObject's metadata, cached by its content (KEDA resends it every call).
    Real metadata is a few hundred characters; anything huge is parsed but not kept, so 4,096
    cache entries cannot grow to gigabytes."""
    items = tuple(sorted(metadata.items()))
    if sum(len(key) + len(value) for key, value in items) > _MAX_CACHED_METADATA_CHARS:
        return sources.parse_trigger(metadata, connections)
    return _parse_cached(items, connections)


class ExternalScalerService(pb_grpc.ExternalScalerServicer):  # type: ignore[misc]
    def __init__(self, poller: Poller, metrics: ScalerMetrics, decisions: DecisionLog,
                 connections: sources.Connections = sources.NO_CONNECTIONS,
                 history: History | None = None) -> None:
        self._connections = connections
        self._poller = poller
        self._metrics = metrics
        self._decisions = decisions
        self._history = History(time.monotonic) if history is None else history

    async def evaluate(self, namespace: str, name: str, metadata: Mapping[str, str]
                       ) -> Evaluation:
        """The decision for one trigger from the newest broker reading."""
        trigger = self._parse(namespace, name, metadata)
        try:
            snapshot = await self._poller.read(trigger.source, _half_life(trigger))
        except ScalerError as exc:
            self._record_error(namespace, name, trigger, exc)
            raise
        return self._decide(namespace, name, trigger, snapshot)

    def _decide(self, namespace: str, name: str, trigger: sources.Trigger,
                snapshot: Snapshot) -> Evaluation:
        """Decides once per snapshot: KEDA's GetMetricSpec, GetMetrics and IsActive (and the
        HPA's GetMetrics) on one snapshot share the decision."""
        key = (namespace, name, trigger.source.metric_name())
        cached = self._decisions.latest(key)
        if (isinstance(cached, Evaluation) and cached.snapshot is snapshot
                and cached.trigger == trigger):
            evaluation = cached
        else:
            decision = trigger.source.decide(snapshot.reading, trigger.common.bounds(),
                                             snapshot.stalled)
            options = trigger.common.throughput_options()
            if options is not None:
                rate = snapshot.arrival_rates.get(options.half_life_s)
                decision = throughput.decide(decision, rate, options, trigger.common.bounds())
                if rate is not None:
                    self._metrics.record_arrival_rate(namespace, name, trigger.common.source,
                                                      rate)
            evaluation = Evaluation(trigger, snapshot, decision)
            self._metrics.record_decision(
                namespace, name, trigger.common.source,
                metric_value=decision.metric_value, backlog=decision.backlog,
                is_active=decision.is_active, desired_replicas=decision.desired_replicas,
                target=decision.target)
            error = snapshot.last_error
            change = self._history.record_decision(
                key, trigger.common.source, metric_value=decision.metric_value,
                target=decision.target, desired_replicas=decision.desired_replicas,
                is_active=decision.is_active, read_at=snapshot.read_at,
                error=None if error is None else str(error),
                error_code=None if error is None else status_for(error).name)
            if change is not None:
                _log_change(key, trigger.common.source, decision, change)
        self._metrics.record_data_age(namespace, name, trigger.common.source,
                                      self._poller.age_of(snapshot))
        self._decisions.record(key, evaluation)
        return evaluation

    def _parse(self, namespace: str, name: str, metadata: Mapping[str, str]
               ) -> sources.Trigger:
        """parse(), keeping bad metadata on the status page too (there is no metric name yet)."""
        try:
            return parse(metadata, self._connections)
        except MetadataErrors as exc:
            # Only a known source name: a metrics label must not carry a metadata value.
            source = metadata.get("source", "")
            self._history.record_error((namespace, name, INVALID_METADATA),
                                       source if source in sources.SOURCES else "unknown",
                                       str(exc), status_for(exc).name)
            raise

    def _record_error(self, namespace: str, name: str, trigger: sources.Trigger,
                      error: Exception) -> None:
        key = (namespace, name, trigger.source.metric_name())
        self._decisions.record(key, Failure(trigger.common.source, error))
        self._history.record_error(key, trigger.common.source, str(error),
                                   status_for(error).name, isinstance(error, StaleDataError))

    async def IsActive(self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
                       ) -> pb.IsActiveResponse:
        async with self._rpc("IsActive", context):
            evaluation = await self._evaluate(request)
            return pb.IsActiveResponse(result=evaluation.decision.is_active)

    async def GetMetricSpec(self, request: pb.ScaledObjectRef,
                            context: grpc.aio.ServicerContext) -> pb.GetMetricSpecResponse:
        async with self._rpc("GetMetricSpec", context):
            trigger = self._parse(request.namespace, request.name, request.scalerMetadata)
            # The throughput strategy reports replicas, one per replica (scaler.policy.throughput).
            target = (1.0 if trigger.common.throughput_options() is not None
                      else trigger.source.target_value())
            # KEDA >= 2.17 uses the float field when > 0, older KEDA the int64: fill both.
            return pb.GetMetricSpecResponse(metricSpecs=[pb.MetricSpec(
                metricName=trigger.source.metric_name(), targetSize=math.ceil(target),
                targetSizeFloat=target)])

    async def GetMetrics(self, request: pb.GetMetricsRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetMetricsResponse:
        async with self._rpc("GetMetrics", context):
            trigger = parse(request.scaledObjectRef.scalerMetadata, self._connections)
            expected = trigger.source.metric_name()
            # KEDA strips its sN- prefix but may change the case: compare case-insensitively.
            if request.metricName.lower() != expected.lower():
                raise MetadataErrors([MetadataError(
                    "metricName", repr(request.metricName),
                    f"must be {expected!r}, the name GetMetricSpec reports for this metadata")])
            evaluation = await self._evaluate(request.scaledObjectRef)
            value = evaluation.decision.metric_value
            return pb.GetMetricsResponse(metricValues=[pb.MetricValue(
                metricName=request.metricName, metricValue=math.ceil(value),
                metricValueFloat=value)])

    async def StreamIsActive(self, request: pb.ScaledObjectRef,
                             context: grpc.aio.ServicerContext
                             ) -> AsyncIterator[pb.IsActiveResponse]:
        """Sends `true` when the stream opens on an active target and on every inactive ->
        active transition, checking after every read (every stream interval). Never `false`:
        older KEDA deactivated on it, ignoring other triggers. Broker errors keep the stream
        open; IsActive reports them."""
        was_active = False
        async with self._rpc("StreamIsActive", context):
            # Bad metadata: INVALID_ARGUMENT before the stream starts.
            trigger = parse(request.scalerMetadata, self._connections)
            async for update in self._poller.watch(trigger.source, _half_life(trigger)):
                if isinstance(update, Exception):
                    log.warning("StreamIsActive %s/%s: %s", request.namespace, request.name,
                                update)
                    if isinstance(update, ScalerError):
                        self._record_error(request.namespace, request.name, trigger, update)
                    continue
                evaluation = self._decide(request.namespace, request.name, trigger, update)
                is_active = evaluation.decision.is_active
                if is_active and not was_active:
                    yield pb.IsActiveResponse(result=True)
                was_active = is_active

    async def _evaluate(self, ref: pb.ScaledObjectRef) -> Evaluation:
        return await self.evaluate(ref.namespace, ref.name, ref.scalerMetadata)

    def _rpc(self, method: str, context: grpc.aio.ServicerContext) -> _RpcScope:
        return _RpcScope(method, context, self._metrics)


def _log_change(key: tuple[str, str, str], source: str, decision: policy.Decision,
                change: Change) -> None:
    """One line when a decision flips activity or changes the replica count (a trigger's
    first decision only at DEBUG: after a restart every trigger has one). The reasons name
    only numbers, keys and target names, never a secret."""
    namespace, name, metric = key
    if change.is_first:
        activity = "active" if change.is_active else "inactive"
        replicas = f"{change.desired_replicas}"
    else:
        activity = (f"{'active' if change.was_active else 'inactive'} -> "
                    f"{'active' if change.is_active else 'inactive'}"
                    if change.was_active != change.is_active
                    else f"still {'active' if change.is_active else 'inactive'}")
        replicas = f"{change.previous_replicas} -> {change.desired_replicas}"
    reason = "; ".join(decision.reasons)
    log.log(logging.DEBUG if change.is_first else logging.INFO,
            "%s %s/%s (%s): %s, desired replicas %s: %s",
            "first decision for" if change.is_first else "decision changed for",
            namespace, name, metric, activity, replicas, reason,
            extra={"event": "decision_first" if change.is_first else "decision_changed",
                   "namespace": namespace, "scaledObject": name, "metricName": metric,
                   "source": source, "wasActive": change.was_active,
                   "isActive": change.is_active, "previousReplicas": change.previous_replicas,
                   "desiredReplicas": change.desired_replicas,
                   "metricValue": decision.metric_value, "targetPerReplica": decision.target,
                   "reason": reason})


def _half_life(trigger: sources.Trigger) -> float | None:
    """The half-life to smooth the arrival rate with, for the throughput strategy only."""
    options = trigger.common.throughput_options()
    return None if options is None else options.half_life_s


class _RpcScope:
    """Times one RPC, counts it by status code, and turns errors into gRPC statuses."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext,
                 metrics: ScalerMetrics) -> None:
        self._method = method
        self._context = context
        self._metrics = metrics
        self._started = 0.0

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> None:
        seconds = time.perf_counter() - self._started
        if exc is None:
            self._metrics.record_rpc(self._method, "OK", seconds)
            return
        if not isinstance(exc, Exception) or isinstance(exc, asyncio.CancelledError):
            self._metrics.record_rpc(self._method, "CANCELLED", seconds)
            return
        code = status_for(exc)
        self._metrics.record_rpc(self._method, code.name, seconds)
        if code is grpc.StatusCode.INTERNAL:
            log.error("%s failed unexpectedly", self._method, exc_info=exc)
            details = f"internal error ({type(exc).__name__}); see the scaler's log"
        else:
            details = str(exc)
        await self._context.abort(code, details)
