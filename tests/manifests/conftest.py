"""Fixtures of the chart tests: helm itself, a CA file to put in the connections Secret, and the
chart rendered with its defaults and with every option on (rendered once per session)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.manifests.rendering import EVERYTHING, Helm
from tests.testbed import helm as testbed_helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(testbed_helm.ensure_helm())


@pytest.fixture(scope="session")
def broker_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate in PEM, as a caFile of a named connection names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chart test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    path = tmp_path_factory.mktemp("ca") / "broker-ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="session")
def everything_args(broker_ca: Path) -> tuple[str, ...]:
    """helm arguments that turn every option of the chart on."""
    return ("-f", str(EVERYTHING), "--set-file", f"connections.files.broker-ca\\.pem={broker_ca}")


@pytest.fixture(scope="session")
def defaults(helm: Helm) -> list[dict[str, Any]]:
    return helm.template()


@pytest.fixture(scope="session")
def everything(helm: Helm, everything_args: tuple[str, ...]) -> list[dict[str, Any]]:
    return helm.template(*everything_args)
