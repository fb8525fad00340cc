"""A TCP proxy in front of Kafka's PROXIED listener that counts requests by API, so tests and
benchmarks measure broker requests at the wire, not inside our own client.

The testbed's Kafka (tests/testbed/kafka.py) advertises the proxy's address for that listener,
so a client that bootstraps through the proxy sends every later request through it too.
"""

from __future__ import annotations

import asyncio
import collections
import threading

# Kafka protocol API keys (from the protocol specification) for the requests we expect.
API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 32: "DescribeConfigs", 36: "SaslAuthenticate",
    60: "DescribeCluster", 75: "DescribeTopicPartitions",
}


class CountingKafkaProxy:
    def __init__(self, listen: str, upstream: str) -> None:
        self.address = listen
        """Give this as bootstrapServers."""
        self._listen_host, listen_port = listen.rsplit(":", 1)
        self._listen_port = int(listen_port)
        self._upstream_host, upstream_port = upstream.rsplit(":", 1)
        self._upstream_port = int(upstream_port)
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kafka-proxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> CountingKafkaProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def stop(self) -> None:
        """Closes the listener and every proxied connection: the broker looks gone."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._listen_host, self._listen_port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self._upstream_host, self._upstream_port)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, upstream_writer))
        for pump in (self._pump(client_reader, upstream_writer, count=True),
                     self._pump(upstream_reader, client_writer, count=False)):
            task = asyncio.ensure_future(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    *, count: bool) -> None:
        pending = b""
        try:
            while data := await reader.read(65536):
                if count:
                    pending = self._count_frames(pending + data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    def _count_frames(self, buffer: bytes) -> bytes:
        """Counts each complete request (4-byte size, then a 2-byte API key); returns the rest."""
        while len(buffer) >= 6:
            size = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + size:
                break
            api_key = int.from_bytes(buffer[4:6], "big", signed=True)
            with self._lock:
                self._counts[API_NAMES.get(api_key, f"api-{api_key}")] += 1
            buffer = buffer[4 + size:]
        return buffer
