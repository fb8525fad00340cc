"""Builds the gRPC server: ExternalScaler, grpc.health.v1 and reflection on one port, plain or
TLS (optionally requiring client certificates)."""

from __future__ import annotations

import dataclasses

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.service import ExternalScalerService

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["ExternalScaler"].full_name


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one client can make the server hold (Settings documents the defaults)."""

    max_streams_per_connection: int = 10_000
    max_request_bytes: int = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM contents for the gRPC port: certificate chain and key, and the CA that client
    certificates must chain to (mTLS) or None."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None


def create_server(address: str, service: ExternalScalerService, tls: TlsFiles | None = None,
                  limits: Limits = Limits(),
                  ) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """Returns the (not yet started) server, its health servicer and the bound port, so that
    tests can bind port 0."""
    server = grpc.aio.server(options=(
        ("grpc.max_receive_message_length", limits.max_request_bytes),
        ("grpc.max_concurrent_streams", limits.max_streams_per_connection),
        # Calls that arrived but that the server has not picked up yet. gRPC's default (1,000)
        # cancels part of a burst, and a KEDA restart opens one StreamIsActive per
        # external-push ScaledObject at once: 2,000 streams lost about 200 to CANCELLED.
        ("grpc.server.max_pending_requests", 10_000),
        ("grpc.server.max_pending_requests_hard_limit", 20_000),
    ))
    pb_grpc.add_ExternalScalerServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = grpc.ssl_server_credentials(
            [(tls.private_key, tls.certificate_chain)], root_certificates=tls.client_ca,
            require_client_auth=tls.client_ca is not None)
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"could not bind the gRPC address {address}")
    return server, health_servicer, port


async def mark_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)
