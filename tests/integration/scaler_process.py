"""`queue-scaler serve` as a child process, with its log captured (for tests that need the real
process: signals, fuzzing, and grepping every output channel for secrets)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


class ScalerProcess:
    def __init__(self, *flags: str, command: list[str] | None = None) -> None:
        """`queue-scaler serve` with `flags`, or `command` (anything that logs the same
        "serving gRPC on port N and HTTP on port M" line, such as bench's baseline)."""
        command = command or [sys.executable, "-m", "scaler", "serve", "--grpc-address",
                              "127.0.0.1:0", "--http-address", "127.0.0.1:0", *flags]
        self.process = subprocess.Popen(  # noqa: S603 - our own entry points
            command, stderr=subprocess.PIPE, text=True)
        self._log: list[str] = []
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            self._log.append(line)
            found = re.search(r"serving gRPC on port (\d+) and HTTP on port (\d+)", line)
        if found is None:
            self.stop()
            raise AssertionError(f"the scaler did not start: {''.join(self._log)}")
        self.grpc_port, self.http_port = map(int, found.groups())
        # Keep reading: a full pipe would block the scaler's logging, and so the scaler.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._log.append(line)

    def log(self) -> str:
        return "".join(self._log)

    def http(self, path: str) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=10) as reply:
                return str(reply.read().decode())
        except urllib.error.HTTPError as error:
            return str(error.read().decode())

    def process_ids(self) -> list[int]:
        """The scaler's process and its children (the reader process)."""
        pid = self.process.pid
        children: list[int] = []
        # Per thread: a child started from a worker thread is listed under that thread.
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError), \
                    open(f"/proc/{pid}/task/{task}/children") as listed:
                children.extend(map(int, listed.read().split()))
        return [pid, *children]

    def peak_rss_kib(self) -> int:
        """Peak resident memory (VmHWM) so far, in KiB: the scaler's process and its children
        added up (the sum of peaks, which is at least the peak of the sum)."""
        total = 0
        for pid in self.process_ids():
            with open(f"/proc/{pid}/status") as status:
                found = re.search(r"^VmHWM:\s+(\d+) kB", status.read(), re.MULTILINE)
            assert found is not None
            total += int(found.group(1))
        return total

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=30)
        if hasattr(self, "_reader"):
            self._reader.join(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code
