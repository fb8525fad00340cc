"""Builds the gRPC server: ExternalScaler, grpc.health.v1 and reflection on one port."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.service import ExternalScalerService

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["ExternalScaler"].full_name


def create_server(address: str, service: ExternalScalerService
                  ) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """Returns the (not yet started) server, its health servicer and the bound port, so that
    tests can bind port 0."""
    server = grpc.aio.server()
    pb_grpc.add_ExternalScalerServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind the gRPC address {address}")
    return server, health_servicer, port


async def mark_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)
