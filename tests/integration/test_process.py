"""`queue-scaler serve` as a real process: it serves, and SIGTERM shuts it down cleanly."""

from __future__ import annotations

import signal
import time
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


def test_sigterm_under_load_lets_in_flight_calls_finish_and_exits_0(
        kafka_bootstrap: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from scaler._proto import externalscaler_pb2 as pb
    from scaler._proto import externalscaler_pb2_grpc as pb_grpc

    scaler = ScalerProcess("--shutdown-grace", "5", "--broker-timeout", "2")
    refs = [pb.ScaledObjectRef(name=f"so-{index}", namespace="load", scalerMetadata={
        "source": "kafka", "bootstrapServers": kafka_bootstrap,
        "consumerGroup": f"load-{index}", "topic": "load-absent-topic"})
        for index in range(40)]

    def hammer(so_ref: pb.ScaledObjectRef) -> list[grpc.StatusCode]:
        codes = []
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            for _ in range(20):
                try:
                    stub.IsActive(so_ref, timeout=10)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())  # type: ignore[attr-defined]
        return codes

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            calls = [pool.submit(hammer, so_ref) for so_ref in refs]
            time.sleep(0.5)
            scaler.process.send_signal(signal.SIGTERM)
            codes = {code for call in calls for code in call.result(timeout=60)}
    finally:
        exit_code = scaler.stop()

    assert exit_code == 0
    # Before the signal: the topic is missing (NOT_FOUND). During shutdown gRPC refuses new
    # calls (UNAVAILABLE, or CANCELLED for one already on the wire); nothing fails in any other
    # way: no INTERNAL, no DEADLINE_EXCEEDED from a call left hanging.
    assert codes <= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE,
                     grpc.StatusCode.CANCELLED}, codes
    assert grpc.StatusCode.NOT_FOUND in codes
    assert "Traceback" not in scaler.log()
