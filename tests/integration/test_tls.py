"""TLS and mTLS on the gRPC port, with a CA made at test time (the `cryptography` package)."""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
from collections.abc import AsyncIterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scaler import app
from scaler.settings import Settings


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey,
                 issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
                 *, is_ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer[0].subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


class Pki:
    def __init__(self, directory: pathlib.Path) -> None:
        ca_key = _key()
        self.ca = _certificate("queue-scaler test CA", ca_key, None, is_ca=True)
        server_key, client_key = _key(), _key()
        server = _certificate("localhost", server_key, (self.ca, ca_key), server=True)
        client = _certificate("keda-operator", client_key, (self.ca, ca_key))
        self.ca_pem = self.ca.public_bytes(serialization.Encoding.PEM)
        self.client_cert_pem = client.public_bytes(serialization.Encoding.PEM)
        self.client_key_pem = _pem_key(client_key)
        self.files = {"ca": directory / "ca.pem", "cert": directory / "server.pem",
                      "key": directory / "server-key.pem"}
        self.files["ca"].write_bytes(self.ca_pem)
        self.files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
        self.files["key"].write_bytes(_pem_key(server_key))


@pytest.fixture
def pki(tmp_path: pathlib.Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
async def mtls_scaler(pki: Pki) -> AsyncIterator[app.App]:
    running = await app.start(Settings(
        grpc_address="127.0.0.1:0", http_address="127.0.0.1:0", shutdown_grace_s=1.0,
        tls_cert_file=str(pki.files["cert"]), tls_key_file=str(pki.files["key"]),
        tls_client_ca_file=str(pki.files["ca"])))
    yield running
    await running.stop()


async def health_status(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


async def test_client_with_a_certificate_from_the_ca_is_served(
        mtls_scaler: app.App, pki: Pki) -> None:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_pem, private_key=pki.client_key_pem,
        certificate_chain=pki.client_cert_pem)
    async with grpc.aio.secure_channel(f"localhost:{mtls_scaler.grpc_port}",
                                       credentials) as channel:
        assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_client_without_a_certificate_is_refused(mtls_scaler: app.App, pki: Pki) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
    async with grpc.aio.secure_channel(f"localhost:{mtls_scaler.grpc_port}",
                                       credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_status(channel)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_plaintext_client_is_refused(mtls_scaler: app.App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_scaler.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_status(channel)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
