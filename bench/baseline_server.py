"""The per-call baseline for bench/run.py: the same gRPC service, but every call makes its own
broker read with a client per ScaledObject, as KEDA's built-in Kafka scaler does. Not part of
the product; it exists to put a number next to the shared poller's.

Usage: python bench/baseline_server.py   (logs "serving gRPC on port N and HTTP on port M")
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import prometheus_client

from scaler import server
from scaler.decisions import DecisionLog
from scaler.metrics import ScalerMetrics
from scaler.poller import Snapshot
from scaler.service import ExternalScalerService
from scaler.web import HttpEndpoints

TIMEOUT_S = 10.0


class PerCallReader:
    """Stands in for the Poller: one source per ScaledObject target, one read per call."""

    def __init__(self) -> None:
        self._sources: dict[Hashable, Any] = {}

    async def read(self, trigger: Any) -> Snapshot:
        key = trigger.target_key()
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = trigger.open_source(TIMEOUT_S)
        result = (await asyncio.to_thread(source.read_many, [trigger]))[key]
        if isinstance(result, Exception):
            raise result
        return Snapshot(result, time.monotonic(), frozenset())

    def age_of(self, snapshot: Snapshot) -> float:
        return 0.0

    def close(self) -> None:
        for source in self._sources.values():
            source.close()


async def main() -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = ScalerMetrics(registry)
    reader = PerCallReader()
    service = ExternalScalerService(reader, metrics,  # type: ignore[arg-type]
                                    DecisionLog(300.0, time.monotonic))
    grpc_server, _, port = server.create_server("127.0.0.1:0", service)
    http = HttpEndpoints("127.0.0.1:0", render_metrics=lambda: (
        prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST),
        is_ready=lambda: True, explain_all=list, explain_one=lambda ns, name: [])
    await grpc_server.start()
    http.start()
    logging.info("serving gRPC on port %d and HTTP on port %d", port, http.port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await grpc_server.stop(1)
    reader.close()
    http.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    asyncio.run(main())
