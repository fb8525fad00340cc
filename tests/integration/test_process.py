"""`queue-scaler serve` as a real process: it serves, and SIGTERM shuts it down cleanly."""

from __future__ import annotations

import signal
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.scaler_process import ScalerProcess


def test_serve_answers_health_and_exits_0_on_sigterm() -> None:
    scaler = ScalerProcess("--shutdown-grace", "2")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{scaler.http_port}/readyz",
                                    timeout=5) as reply:
            assert reply.status == 200
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        scaler.process.send_signal(signal.SIGTERM)
    finally:
        code = scaler.stop()
    assert code == 0
    assert "shutting down" in scaler.log()
