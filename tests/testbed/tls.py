"""The private test CA and the one server certificate (127.0.0.1 and localhost) that every TLS
listener of the testbed presents. Made once and kept: a new CA would invalidate what running
services serve and what tests already trust. The extensions are what strict verifiers insist on
(Python's X509_STRICT, Java, Erlang): a CA with keyUsage, a leaf with SAN, authority key id and
serverAuth. Keys are unencrypted PKCS#8 PEM, which Kafka's PEM keystore, Erlang and Python read."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=3650)


@dataclasses.dataclass(frozen=True)
class TestCertificates:
    __test__ = False  # a name pytest would otherwise try to collect as a test class

    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_folder(cls, folder: Path) -> TestCertificates:
        return cls(folder / "ca.pem", folder / "ca.key", folder / "server.pem",
                   folder / "server.key")

    def exist(self) -> bool:
        return all(path.is_file() and path.stat().st_size > 0 for path in
                   (self.ca, self.ca_key, self.server_cert, self.server_key))


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Unencrypted PKCS#8 PEM, readable by the owner only."""
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def ensure(folder: Path) -> TestCertificates:
    """The CA and server certificate in `folder`, made when missing."""
    certificates = TestCertificates.in_folder(folder)
    if certificates.exist():
        return certificates
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "queue-scaler test CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + VALID_FOR)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=False, content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
              encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = leaf_certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        server_key.public_key(), ca_name, ca_key, [ExtendedKeyUsageOID.SERVER_AUTH],
        dns=("localhost",))
    # Keys before certificates: an interrupted run never leaves a certificate without its key,
    # and exist() is false until the last file is written.
    write_key(certificates.ca_key, ca_key)
    write_key(certificates.server_key, server_key)
    certificates.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    certificates.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return certificates


def leaf_certificate(subject: x509.Name, public_key: rsa.RSAPublicKey, ca_name: x509.Name,
                     ca_key: rsa.RSAPrivateKey, usages: list[x509.ObjectIdentifier], *,
                     dns: tuple[str, ...] = ()) -> x509.Certificate:
    """A certificate the CA signs for `subject`, with the extensions strict verifiers want;
    with `dns`, valid for 127.0.0.1 and those names."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca_name)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + VALID_FOR)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False, key_encipherment=True,
                   data_encipherment=False, key_agreement=False, key_cert_sign=False,
                   crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            *(x509.DNSName(name) for name in dns)]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())
