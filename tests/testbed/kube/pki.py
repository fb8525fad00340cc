"""The cluster's certificates and keys, all signed by the testbed's own CA (tests/testbed/tls.py),
made once into the cluster's state folder and kept: the admin's and the front proxy's client
certificates, one certificate for KEDA (its operator and metrics server serve and call each other
with it: mutual TLS), and the key pair that signs service-account tokens."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.testbed import tls

# The admin is in system:masters: every component of the test cluster acts with full rights, so
# no RBAC object stands between a test and what KEDA or the HPA do.
ADMIN_NAME = "queue-scaler-admin"
ADMIN_GROUP = "system:masters"
# The name the API server's aggregation proxy presents to KEDA's metrics server
# (--requestheader-allowed-names).
FRONT_PROXY_NAME = "front-proxy-client"
KEDA_NAMESPACE = "keda"
KEDA_DNS_NAMES = ("localhost", f"keda-operator.{KEDA_NAMESPACE}.svc",
                  f"keda-metrics-apiserver.{KEDA_NAMESPACE}.svc")


@dataclasses.dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path

    def exists(self) -> bool:
        return all(path.is_file() and path.stat().st_size > 0 for path in (self.cert, self.key))


@dataclasses.dataclass(frozen=True)
class ClusterCertificates:
    ca: Path
    server: Pair  # the testbed's server certificate (127.0.0.1, localhost): the API server's
    admin: Pair
    front_proxy: Pair
    keda_dir: Path  # ca.crt, tls.crt, tls.key: the layout KEDA's --cert-dir expects
    service_account_key: Path
    service_account_public: Path

    @property
    def keda(self) -> Pair:
        return Pair(self.keda_dir / "tls.crt", self.keda_dir / "tls.key")


def _issue(pair: Pair, ca: tls.TestCertificates, subject: x509.Name,
           usages: list[x509.ObjectIdentifier], dns: tuple[str, ...] = ()) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = tls.leaf_certificate(subject, key.public_key(), ca_cert.subject, ca_key,
                                       usages, dns=dns)
    pair.cert.parent.mkdir(parents=True, exist_ok=True)
    # The key first: an interrupted run never leaves a certificate without its key.
    tls.write_key(pair.key, key)
    pair.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def ensure(folder: Path, ca: tls.TestCertificates) -> ClusterCertificates:
    """The cluster's certificates in `folder`, each made when it is missing."""
    certificates = ClusterCertificates(
        ca=ca.ca, server=Pair(ca.server_cert, ca.server_key),
        admin=Pair(folder / "admin.crt", folder / "admin.key"),
        front_proxy=Pair(folder / "front-proxy.crt", folder / "front-proxy.key"),
        keda_dir=folder / "keda",
        service_account_key=folder / "service-account.key",
        service_account_public=folder / "service-account.pub")
    folder.mkdir(parents=True, exist_ok=True)
    client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if not certificates.admin.exists():
        _issue(certificates.admin, ca, x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_NAME)]), client)
    if not certificates.front_proxy.exists():
        _issue(certificates.front_proxy, ca, x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, FRONT_PROXY_NAME)]), client)
    if not certificates.keda.exists():
        # Server and client both: each of KEDA's two programs verifies the other's certificate.
        _issue(certificates.keda, ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keda")]),
               [ExtendedKeyUsageOID.SERVER_AUTH, *client], dns=KEDA_DNS_NAMES)
    keda_ca = certificates.keda_dir / "ca.crt"
    if not keda_ca.is_file() or keda_ca.read_bytes() != ca.ca.read_bytes():
        keda_ca.write_bytes(ca.ca.read_bytes())
    if not (certificates.service_account_key.is_file()
            and certificates.service_account_public.is_file()):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tls.write_key(certificates.service_account_key, key)
        certificates.service_account_public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return certificates
