"""Kafka: a single-node KRaft cluster (one process is broker and controller) run from Maven
Central jars, with four listeners on 127.0.0.1: PLAINTEXT for the tests, CONTROLLER, a PROXIED
listener advertised at the address where a test's request-counting proxy listens, and SASL_SSL
(PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for one user) with the test CA's certificate."""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import struct
from pathlib import Path
from typing import Any

import kafka
import kafka.errors

from tests.testbed import install, progress
from tests.testbed.places import fill_cache_entry
from tests.testbed.service import HOST, Service, ServiceError

VERSION = "4.1.1"
ASSETS = Path(__file__).parent / "assets" / "kafka"
# A test secret, printed in the exports; only [A-Za-z0-9-], so it needs no quoting in JAAS,
# StorageTool's [name=...,password=...] syntax or a shell.
SASL_USER = "scaler"
SASL_PASSWORD = "scaler-secret-9fK2"
# A fixed, modest heap: the machine has 2 cores and also runs RabbitMQ and the tests.
HEAP = ["-Xms256m", "-Xmx768m"]
# Short-lived tool JVMs (StorageTool): start fast, stay small, log only problems.
TOOL_OPTIONS = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                f"-Dlog4j2.configurationFile={ASSETS / 'log4j2-tools.xml'}"]


class Kafka(Service):
    name = "kafka"
    primary_variable = "QUEUE_SCALER_TEST_KAFKA"
    port_names = ("plaintext", "controller", "proxied", "proxy", "sasl_ssl")

    @property
    def version(self) -> str:
        return VERSION

    @property
    def libs(self) -> Path:
        return self.places.cache_dir("kafka", VERSION) / "libs"

    @property
    def data(self) -> Path:
        return self.state / "data"

    def install(self) -> None:
        log = self.logs / "install.log"
        install.ensure_java(17, f"Kafka {VERSION}", log)
        self.certificates()
        pom = ASSETS / "pom.xml"

        def fetch(folder: Path) -> None:
            progress.say(f"fetching Kafka {VERSION} jars from Maven Central into {self.libs}")
            install.maven_copy_dependencies(pom, folder, log, {"kafka.version": VERSION})
            if not list(folder.glob("kafka_2.13-*.jar")):
                raise ServiceError(f"Maven ran but left no kafka_2.13 jar in {folder}")

        fill_cache_entry(self.libs, jar_set_stamp(pom.read_text(), VERSION), fetch)

    def config_files(self) -> dict[Path, str]:
        certificates = self.certificates()
        keystore = certificates.server_key.read_text() + certificates.server_cert.read_text()
        return {self.state / "server.properties": self._server_properties(),
                self.state / "keystore.pem": keystore}

    def _server_properties(self) -> str:
        p = self.ports
        listeners = {"PLAINTEXT": p["plaintext"], "CONTROLLER": p["controller"],
                     "PROXIED": p["proxied"], "SASL_SSL": p["sasl_ssl"]}
        advertised = {"PLAINTEXT": p["plaintext"], "PROXIED": p["proxy"],
                      "SASL_SSL": p["sasl_ssl"]}
        jaas = {
            "plain": "org.apache.kafka.common.security.plain.PlainLoginModule required "
                     f'user_{SASL_USER}="{SASL_PASSWORD}";',
            "scram-sha-256": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "scram-sha-512": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        }
        lines = [
            "# Written by tests/testbed/kafka.py before every start.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{p['controller']}",
            "controller.listener.names=CONTROLLER",
            # PROXIED advertises a port nobody listens on until a test starts its counting
            # proxy there: clients that bootstrap through the proxy keep talking through it.
            "listeners=" + ",".join(f"{n}://{HOST}:{port}" for n, port in listeners.items()),
            "advertised.listeners=" + ",".join(
                f"{n}://{HOST}:{port}" for n, port in advertised.items()),
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "PROXIED:PLAINTEXT,SASL_SSL:SASL_SSL",
            f"log.dirs={self.data}",
            # TLS with the test CA's certificate and no client certificates, then SASL. PLAIN's
            # users are in its JAAS line; SCRAM credentials are in the KRaft metadata (added
            # when the storage is formatted). No authorizer: authenticated means allowed.
            "listener.name.sasl_ssl.ssl.keystore.type=PEM",
            f"listener.name.sasl_ssl.ssl.keystore.location={self.state / 'keystore.pem'}",
            "listener.name.sasl_ssl.ssl.client.auth=none",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            *(f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config={line}"
              for mechanism, line in jaas.items()),
            # One broker: every internal topic has one replica.
            "num.partitions=1",
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "offsets.topic.replication.factor=1",
            # The offsets topic is made on the first group call and recovered on each start.
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Groups join at once, topics exist only when a test makes them, tests delete them.
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "delete.topic.enable=true",
            # After a SIGKILL the controller keeps the dead broker's registration until its
            # session expires; a short session lets the restarted broker in sooner.
            "broker.heartbeat.interval.ms=1000",
            "broker.session.timeout.ms=5000",
            "num.network.threads=2",
            "num.io.threads=4",
            "num.recovery.threads.per.data.dir=1",
        ]
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        (self.state / "keystore.pem").chmod(0o600)
        # KRaft refuses an unformatted log dir. Formatted once; afterwards topics and offsets
        # survive stops and kills. The SCRAM users go into the initial metadata.
        if (self.data / "meta.properties").is_file():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        progress.say(f"formatting Kafka storage in {self.data}")
        user = f"name={SASL_USER},password={SASL_PASSWORD}"
        install.run_logged(
            ["java", *TOOL_OPTIONS, "-cp", f"{self.libs}/*", "kafka.tools.StorageTool",
             "format", "--cluster-id", cluster_id, "--config",
             str(self.state / "server.properties"), "--ignore-formatted",
             "--add-scram", f"SCRAM-SHA-256=[{user}]", "--add-scram", f"SCRAM-SHA-512=[{user}]"],
            self.logs / "format.log", "formatting Kafka storage")

    def command(self) -> list[str]:
        return ["java", *HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={self.logs}",
                f"-Dlog4j2.configurationFile={ASSETS / 'log4j2-server.xml'}",
                "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.state / "server.properties")]

    def log_files(self) -> list[Path]:
        return [self.logs / "server.log", self.logs / "console.log"]

    def is_ready(self) -> bool:
        plaintext = f"{HOST}:{self.ports['plaintext']}"
        return (answers_api_versions(plaintext)
                and serves_metadata(plaintext)
                and serves_metadata(f"{HOST}:{self.ports['sasl_ssl']}", **self.sasl_config()))

    def sasl_config(self) -> dict[str, Any]:
        return {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": SASL_USER, "sasl_plain_password": SASL_PASSWORD,
                "ssl_cafile": str(self.certificates().ca)}

    def exports(self) -> dict[str, str]:
        p = self.ports
        return {
            "QUEUE_SCALER_TEST_KAFKA": f"{HOST}:{p['plaintext']}",
            "QUEUE_SCALER_TEST_KAFKA_PROXIED_LISTENER": f"{HOST}:{p['proxied']}",
            "QUEUE_SCALER_TEST_KAFKA_PROXY_ADDRESS": f"{HOST}:{p['proxy']}",
            "QUEUE_SCALER_TEST_KAFKA_SASL_SSL": f"{HOST}:{p['sasl_ssl']}",
            "QUEUE_SCALER_TEST_KAFKA_SASL_USER": SASL_USER,
            "QUEUE_SCALER_TEST_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
            "QUEUE_SCALER_TEST_TLS_CA": str(self.certificates().ca),
        }


def jar_set_stamp(pom: str, version: str) -> str:
    """What a cached jar set was fetched from: a changed pom refetches it."""
    return hashlib.sha256(f"{version}\0{pom}".encode()).hexdigest()


def answers_api_versions(address: str, timeout_s: float = 2.0) -> bool:
    """A raw ApiVersions (v0) round trip: cheap enough to ask every quarter second while the
    broker boots, and no client threads or sockets left behind by a failed attempt."""
    host, _, port = address.rpartition(":")
    client_id = b"testbed"
    request = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as connection:
            connection.sendall(struct.pack(">i", len(request)) + request)
            header = _receive(connection, 10)  # size, correlation id, error code
    except OSError:
        return False
    _, correlation_id, error_code = struct.unpack(">iih", header)
    return bool(correlation_id == 7 and error_code == 0)


def _receive(connection: socket.socket, size: int) -> bytes:
    received = b""
    while len(received) < size:
        chunk = connection.recv(size - len(received))
        if not chunk:
            raise ConnectionResetError("closed before the answer was complete")
        received += chunk
    return received


def serves_metadata(address: str, **security: Any) -> bool:
    """A real client's Metadata request lists a broker: the broker is registered and unfenced,
    so topics can be made on it (ApiVersions is answered a little before that)."""
    try:
        admin = kafka.KafkaAdminClient(bootstrap_servers=address, client_id="testbed",
                                       request_timeout_ms=5000, **security)
    except kafka.errors.KafkaError:
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except kafka.errors.KafkaError:
        return False
    finally:
        admin.close()
