"""Composition root: the only place that builds concrete objects and wires them together."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import prometheus_client

from scaler import logs, server
from scaler.decisions import DecisionLog
from scaler.history import History
from scaler.metrics import ScalerMetrics
from scaler.poller import Poller, PollerSettings
from scaler.service import Evaluation, ExternalScalerService
from scaler.settings import Settings
from scaler.sources import NO_CONNECTIONS, Connections
from scaler.sources.reader_process import ReaderProcess
from scaler.web import HttpEndpoints

if TYPE_CHECKING:
    import grpc
    from grpc_health.v1 import health

log = logging.getLogger(__name__)


@dataclasses.dataclass
class App:
    """A wired, running scaler; `stop()` shuts it down gracefully."""

    settings: Settings
    registry: prometheus_client.CollectorRegistry
    reader: ReaderProcess
    poller: Poller
    grpc_server: grpc.aio.Server
    health: health.aio.HealthServicer
    grpc_port: int
    http: HttpEndpoints
    ready: threading.Event

    async def begin_shutdown(self) -> None:
        """Health NOT_SERVING and /readyz 503, so KEDA and the Service stop sending; open
        StreamIsActive streams end, and KEDA reopens them on another replica."""
        self.ready.clear()
        await server.mark_serving(self.health, False)
        self.poller.end_watches()

    async def stop(self) -> None:
        """Stops serving, lets in-flight RPCs finish within the grace period, then closes
        broker connections and the HTTP port."""
        await self.begin_shutdown()
        await self.grpc_server.stop(self.settings.shutdown_grace_s)
        self.poller.close()
        self.reader.close()
        self.http.stop()


def _tls_files(settings: Settings) -> server.TlsFiles | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = None
    if settings.tls_client_ca_file is not None:
        client_ca = Path(settings.tls_client_ca_file).read_bytes()
    return server.TlsFiles(Path(settings.tls_cert_file).read_bytes(),
                           Path(settings.tls_key_file).read_bytes(), client_ca)


def poller_settings(settings: Settings) -> PollerSettings:
    return PollerSettings(
        broker_timeout_s=settings.broker_timeout_s, poll_interval_s=settings.poll_interval_s,
        max_age_s=settings.max_data_age_s, stale_after_s=settings.stale_after_s,
        idle_after_s=settings.idle_after_s, stream_interval_s=settings.stream_interval_s,
        persistent_after_s=settings.persistent_lag_after_s)


async def start(settings: Settings, connections: Connections = NO_CONNECTIONS) -> App:
    registry = prometheus_client.CollectorRegistry()
    # The serving process's CPU, memory, open files and start time (the reader process's are
    # not in it).
    prometheus_client.ProcessCollector(registry=registry)
    metrics = ScalerMetrics(registry)
    reader = ReaderProcess(settings.log_level, on_restart=metrics.record_reader_restart)
    reader.start()
    poller = Poller(poller_settings(settings), on_read=metrics.record_read,
                    on_cycle=metrics.record_cycle, open_source=reader.open_source)
    decisions = DecisionLog(
        settings.idle_after_s, time.monotonic,
        on_forget=lambda key, old: metrics.forget(key[0], key[1], old.source_name))
    history = History(time.monotonic)
    metrics.watch_answers(history, within_s=settings.idle_after_s)
    service = ExternalScalerService(poller, metrics, decisions, connections, history)
    grpc_server, health_servicer, grpc_port = server.create_server(
        settings.grpc_address, service, _tls_files(settings),
        server.Limits(settings.max_streams_per_connection, settings.max_request_bytes))
    ready = threading.Event()
    http = HttpEndpoints(
        settings.http_address,
        render_metrics=lambda: (prometheus_client.generate_latest(registry),
                                prometheus_client.CONTENT_TYPE_LATEST),
        is_ready=ready.is_set, explain_all=decisions.all, explain_one=decisions.of,
        status=history.view)
    app = App(settings, registry, reader, poller, grpc_server, health_servicer, grpc_port,
              http, ready)
    await grpc_server.start()
    http.start()
    await server.mark_serving(health_servicer, True)
    ready.set()
    log.info("queue-scaler serving gRPC on port %d and HTTP on port %d", grpc_port, http.port)
    return app


async def serve(settings: Settings, connections: Connections) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    app = await start(settings, connections)
    # What exists now (modules, classes, the wiring) lives as long as the process: keep it out
    # of every later full collection.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: health NOT_SERVING, draining RPCs for up to %g s",
             settings.shutdown_grace_s)
    await app.stop()


def run(settings: Settings, connections: Connections = NO_CONNECTIONS) -> None:
    # Broker answers are decoded in the reader process, but each poll cycle's readings are
    # still unpickled here, on a thread other than the event loop's; a short GIL switch
    # interval (the default is 5 ms) lets RPCs run in between.
    sys.setswitchinterval(0.001)
    # Deciding over many partitions makes hundreds of thousands of short-lived objects per
    # cycle. With the default thresholds (700, 10, 10), a benchmark run at 1,000 ScaledObjects
    # had 3 full collections of up to 61 ms in this process (190 ms when it also decoded the
    # reads), each one stopping every thread. With rarer young collections, short-lived garbage
    # dies young and there were none (bench/README.md).
    gc.set_threshold(50_000, 20, 100)
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, connections))


async def check(settings: Settings, connections: Connections, metadata: dict[str, str],
                ) -> Evaluation:
    """One read and one decision for one trigger, exactly as the gRPC service makes them."""
    poller = Poller(poller_settings(settings))
    service = ExternalScalerService(
        poller, ScalerMetrics(prometheus_client.CollectorRegistry()),
        DecisionLog(settings.idle_after_s, time.monotonic), connections)
    try:
        return await service.evaluate("cli", "check", metadata)
    finally:
        poller.close()
