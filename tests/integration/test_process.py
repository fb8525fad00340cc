"""`queue-scaler serve` as a real process: it serves, and SIGTERM shuts it down cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def test_serve_answers_health_and_exits_0_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "scaler", "serve", "--grpc-address", "127.0.0.1:0",
         "--http-address", "127.0.0.1:0", "--shutdown-grace", "2"],
        stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        ports = None
        deadline = time.monotonic() + 30
        while ports is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            ports = re.search(r"serving gRPC on port (\d+) and HTTP on port (\d+)", line)
        assert ports, "the scaler never logged its ports"
        grpc_port, http_port = ports.groups()

        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5) as reply:
            assert reply.status == 200
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "shutting down" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
