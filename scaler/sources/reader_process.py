"""Every broker read in one child process, so that decoding broker answers never holds the
serving process's GIL.

At 1,000 ScaledObjects over 300,000 group-partitions, kafka-python decodes each committed
offset in Python: about 1.6 s of every 2 s poll cycle. In the serving process that time was
taken from RPCs (GetMetrics p99 of 24 to 600 ms; bench/README.md). Here the sources live in a
child process: the serving process sends it the targets of a cycle and gets readings back, and
sources keep readings compact (arrays, shared between targets) so that receiving them is cheap.

Failure rules: a child that dies or hangs fails the reads in flight with a retriable
BrokerUnavailableError (never a value), and the next read starts a new child. The child exits
when the serving process asks it to, or when the serving process dies (its pipe closes).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from scaler import logs
from scaler.errors import BrokerUnavailableError, SourceError
from scaler.sources import base

log = logging.getLogger(__name__)

_NICENESS = 10
_READY_TIMEOUT_S = 30.0
_READY = 0  # the request id of the child's first message: it is reading requests
_TARGETS_PER_MESSAGE = 100
_Results = Mapping[Hashable, base.Reading | SourceError]


class ReaderProcess:
    """The child process and the pipe to it. Thread-safe: the poller reads from worker
    threads, one read in flight per connection."""

    def __init__(self, log_level: str, on_restart: Callable[[], None] = lambda: None) -> None:
        self._log_level = log_level
        self._on_restart = on_restart
        self._guard = threading.Lock()
        self._child: _Child | None = None
        self._source_ids = itertools.count(1)
        self._closed = False

    def start(self) -> None:
        """Starts the child now and waits until it reads requests, so that the first read
        does not spend its deadline on the child's imports (about 1 s here, more on a busy
        machine)."""
        with self._guard:
            child = self._running_child()
        if not child.ready.wait(_READY_TIMEOUT_S):
            log.warning("the reader process did not start within %g s", _READY_TIMEOUT_S)

    def open_source(self, trigger: base.TriggerMetadata, timeout_s: float) -> base.Source:
        """A `base.Source` for `trigger`'s connection whose reads run in the child."""
        return _RemoteSource(self, trigger, timeout_s, next(self._source_ids))

    def read_many(self, source: _RemoteSource, targets: Sequence[Any]) -> _Results:
        with self._guard:
            if self._closed:
                raise BrokerUnavailableError("the scaler is shutting down")
            child = self._running_child()
            future = child.send_read(source, targets)
        # The source's own reads end within its timeout; a child that has not answered well
        # after that is stuck, and a new one is better than waiting on it forever.
        try:
            outcome = future.result(timeout=source.timeout_s * 2 + 5)
        except concurrent.futures.TimeoutError:
            log.warning("the reader process has not answered a read for %.0f s; restarting it",
                        source.timeout_s * 2 + 5)
            child.kill()
            raise BrokerUnavailableError(
                f"{source.trigger.source_name}: the reader process did not answer") from None
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, list)  # noqa: S101 - the child answers a list or an error
        return {target.target_key(): result for target, result in zip(targets, outcome,
                                                                        strict=True)
                if result is not None}

    def close_source(self, source: _RemoteSource) -> None:
        with self._guard:
            child = self._child
            if child is not None and child.alive:
                child.send_quietly(("close", source.source_id))

    def close(self) -> None:
        """Ends the child: it closes every broker connection and exits."""
        with self._guard:
            self._closed = True
            child, self._child = self._child, None
        if child is not None:
            child.stop()

    def _running_child(self) -> _Child:
        if self._child is None or not self._child.alive:
            if self._child is not None:
                log.warning("the reader process exited with status %s; starting a new one",
                            self._child.process.returncode)
                self._on_restart()
            self._child = _Child(self._log_level)
        return self._child


class _RemoteSource:
    """What the poller holds for one connection: reads forwarded to the child, where the real
    source is opened on the first read (and again in a new child after a restart)."""

    def __init__(self, process: ReaderProcess, trigger: base.TriggerMetadata,
                 timeout_s: float, source_id: int) -> None:
        self.process = process
        self.trigger = trigger
        self.timeout_s = timeout_s
        self.source_id = source_id
        # Each target pickled once, not every cycle: pickling 1,000 triggers is one C call
        # of a few milliseconds that holds the GIL.
        self._pickled: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"_RemoteSource({self.trigger.source_name}, id={self.source_id})"

    def pickled(self, targets: Sequence[Any]) -> list[bytes]:
        blobs = []
        for target in targets:
            blob = self._pickled.get(target)
            if blob is None:
                blob = self._pickled[target] = pickle.dumps(target)
            blobs.append(blob)
        return blobs

    def read_many(self, targets: Sequence[Any]) -> _Results:
        return self.process.read_many(self, targets)

    def close(self) -> None:
        self.process.close_source(self)


class _Child:
    """One child process, its pipe, and the reads waiting for its answers."""

    def __init__(self, log_level: str) -> None:
        here, there = socket.socketpair()
        # A new interpreter, not a fork: the serving process has gRPC's threads.
        self.process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            # -P and PYTHONPATH: the modules this process imports, found where this process
            # found them (not in the working directory, which -c would put first).
            [sys.executable, "-P", "-c",
             "from scaler.sources.reader_process import main; main()",
             str(there.fileno()), log_level],
            pass_fds=(there.fileno(),),
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)})
        there.close()
        self._pipe = Connection(here.detach())
        self._pending: dict[int, concurrent.futures.Future[object]] = {}
        self._request_ids = itertools.count(1)
        self._guard = threading.Lock()
        self.alive = True
        self.ready = threading.Event()
        """Set when the child reads requests, or has exited."""
        threading.Thread(target=self._receive, name="reader-process-answers",
                         daemon=True).start()

    def send_read(self, source: _RemoteSource, targets: Sequence[Any]
                  ) -> concurrent.futures.Future[object]:
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        with self._guard:
            if not self.alive:
                future.set_result(BrokerUnavailableError("the reader process exited"))
                return future
            request_id = next(self._request_ids)
            self._pending[request_id] = future
            try:
                self._pipe.send(("read", request_id, source.source_id, source.trigger,
                                 source.timeout_s, source.pickled(targets)))
            except (OSError, ValueError):
                self._pending.pop(request_id)
                future.set_result(BrokerUnavailableError("the reader process exited"))
        return future

    def send_quietly(self, message: tuple[Any, ...]) -> None:
        # A dead child has nothing left to close.
        with self._guard, contextlib.suppress(OSError, ValueError):
            self._pipe.send(message)

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        # Asked, not hung up on: closing our end while the answer thread is blocked reading
        # it would not reach the child as end-of-file.
        self.send_quietly(("exit",))
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(1)

    def _receive(self) -> None:
        parts: dict[int, list[object]] = {}
        while True:
            try:
                request_id, part, done = self._pipe.recv()
            except (EOFError, OSError, ValueError):
                break
            if request_id == _READY:
                self.ready.set()
                continue
            if isinstance(part, list) and request_id in self._pending:
                parts.setdefault(request_id, []).extend(part)
            if not done:
                continue
            outcome = part if isinstance(part, Exception) else parts.get(request_id, [])
            parts.pop(request_id, None)
            with self._guard:
                future = self._pending.pop(request_id, None)
            if future is not None:
                future.set_result(outcome)
        with self._guard:
            self.alive = False
            pending, self._pending = self._pending, {}
            self._pipe.close()
        self.ready.set()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1)
        for future in pending.values():
            future.set_result(BrokerUnavailableError(
                f"the reader process exited (status {self.process.returncode}) during the "
                "read"))


def main() -> None:
    """The child's entry point: `<pipe's file descriptor> <log level>` as arguments. The
    terminal's Ctrl-C is for the serving process, which then ends this one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Reads are throughput work and RPCs are latency work: when both want the CPU, the
    # serving process goes first.
    os.nice(_NICENESS)
    serve_reads(Connection(int(sys.argv[1])), sys.argv[2])


def serve_reads(pipe: Connection, log_level: str) -> None:
    """Opens sources as reads name them, runs reads concurrently (one per
    connection at a time, as the poller sends them) and answers each on the pipe."""
    logs.configure(log_level)
    # Decoding a big cycle allocates hundreds of thousands of short-lived objects; rarer
    # young collections keep full collections rare (bench/README.md).
    gc.set_threshold(50_000, 20, 100)
    sources: dict[int, base.Source] = {}
    guard = threading.Lock()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=32,
                                                     thread_name_prefix="broker-read")

    def send(message: tuple[int, object, bool]) -> bool:
        """False when the message could not be sent (the rest of its answer is not sent)."""
        with guard:
            try:
                pipe.send(message)
            except (OSError, ValueError):
                return False  # the serving process is gone
            except Exception as exc:  # noqa: BLE001 - an outcome that does not pickle
                with contextlib.suppress(OSError, ValueError):
                    pipe.send((message[0], BrokerUnavailableError(
                        f"the reader process could not send a reading back "
                        f"({type(exc).__name__})"), True))
                return False
            return True

    def read(request_id: int, source_id: int, trigger: base.TriggerMetadata,
             timeout_s: float, pickled_targets: list[bytes]) -> None:
        with guard:
            source = sources.get(source_id)
            if source is None:
                source = sources[source_id] = trigger.open_source(timeout_s)
        targets = [pickle.loads(blob) for blob in pickled_targets]  # noqa: S301 - our parent
        try:
            results = source.read_many(targets)
        except SourceError as exc:
            # Without its cause: a client library's exception may hold sockets.
            send((request_id, type(exc)(str(exc)), True))
            return
        except Exception as exc:
            log.exception("reading %s failed unexpectedly", trigger.source_name)
            send((request_id, RuntimeError(
                f"reading {trigger.source_name} failed unexpectedly: {type(exc).__name__}; "
                "see the scaler's log"), True))
            return
        # In the targets' order, in parts: unpickling the answer holds the serving process's
        # GIL, and parts let its RPCs run in between.
        outcomes = [results.get(target.target_key()) for target in targets]
        for first in range(0, max(1, len(outcomes)), _TARGETS_PER_MESSAGE):
            if not send((request_id, outcomes[first:first + _TARGETS_PER_MESSAGE],
                         first + _TARGETS_PER_MESSAGE >= len(outcomes))):
                return

    def close(source_id: int) -> None:
        with guard:
            source = sources.pop(source_id, None)
        if source is not None:
            source.close()

    send((_READY, None, True))
    while True:
        try:
            message = pipe.recv()
        except (EOFError, OSError):
            break
        if message[0] == "read":
            executor.submit(read, *message[1:])
        elif message[0] == "close":
            executor.submit(close, message[1])
        else:
            break  # "exit"
    executor.shutdown(wait=False, cancel_futures=True)
    with guard:
        for source in sources.values():
            source.close()
