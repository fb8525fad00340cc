"""RabbitMQ: Debian's rabbitmq-server with the management plugin, as a node of our own whose
config, data, logs and Erlang cookie all live in the testbed's state folder (nothing in
/etc/rabbitmq, no clash with a system node). Listeners on 127.0.0.1: AMQP, AMQPS, the management
API over HTTP and over HTTPS, the TLS ones with the test CA's certificate; user guest/guest."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from tests.testbed import install
from tests.testbed.service import HOST, Service, ServiceError

SCRIPTS = Path("/usr/lib/rabbitmq/bin")
NODE = "queue-scaler-test@localhost"


class RabbitMQ(Service):
    name = "rabbitmq"
    primary_variable = "QUEUE_SCALER_TEST_RABBITMQ_AMQP"
    port_names = ("amqp", "amqps", "http", "https", "distribution", "epmd")

    @property
    def version(self) -> str:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],  # noqa: S607
                              capture_output=True, text=True, check=False, timeout=30)
        return done.stdout.strip() or "not installed"

    def install(self) -> None:
        if not (SCRIPTS / "rabbitmq-server").is_file():
            install.apt_install("rabbitmq-server", log=self.logs / "install.log")
        self.certificates()

    def config_files(self) -> dict[Path, str]:
        p, certificates = self.ports, self.certificates()
        tls_files = (f"cacertfile = {certificates.ca}\n"
                     f"certfile = {certificates.server_cert}\n"
                     f"keyfile = {certificates.server_key}\n")
        conf = "\n".join([
            "# Written by tests/testbed/rabbitmq.py before every start.",
            f"listeners.tcp.default = {HOST}:{p['amqp']}",
            f"listeners.ssl.default = {HOST}:{p['amqps']}",
            *(f"ssl_options.{line}" for line in tls_files.splitlines()),
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
            f"management.tcp.ip = {HOST}",
            f"management.tcp.port = {p['http']}",
            f"management.ssl.ip = {HOST}",
            f"management.ssl.port = {p['https']}",
            *(f"management.ssl.{line}" for line in tls_files.splitlines()),
            "management.ssl.verify = verify_none",
            "management.ssl.fail_if_no_peer_cert = false",
            # Statistics every second, kept at one-second granularity (the defaults, 5 s, make
            # the management API's depths and rates change only every 5 s).
            "collect_statistics_interval = 1000",
            "management.sample_retention_policies.global.minute = 1",
            "management.sample_retention_policies.global.hour = 60",
            "management.sample_retention_policies.global.day = 1200",
            "management.sample_retention_policies.basic.minute = 1",
            "management.sample_retention_policies.basic.hour = 60",
            "management.sample_retention_policies.detailed.10 = 1",
            "loopback_users.guest = true",
        ]) + "\n"
        return {self.state / "rabbitmq.conf": conf,
                self.state / "enabled_plugins": "[rabbitmq_management].\n",
                # Read by every RabbitMQ script instead of /etc/rabbitmq/rabbitmq-env.conf.
                self.state / "rabbitmq-env.conf": "# Everything is set in the environment.\n"}

    def prepare(self) -> None:
        """Nothing: the node makes its data and log folders itself."""

    def environment(self) -> dict[str, str]:
        """What the server and its command-line tools share: node, folders, cookie, ports."""
        p = self.ports
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        return {
            "HOME": str(self.state),  # where Erlang keeps the cookie both sides read
            "RABBITMQ_CONF_ENV_FILE": str(self.state / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.state / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.state / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.state / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.logs),
            "RABBITMQ_NODENAME": NODE,
            "RABBITMQ_DIST_PORT": str(p["distribution"]),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback,
            "RABBITMQ_CTL_ERL_ARGS": loopback,
            # Our own port mapper, on loopback: a system node's epmd is left alone.
            "ERL_EPMD_PORT": str(p["epmd"]),
            "ERL_EPMD_ADDRESS": HOST,
        }

    def command(self) -> list[str]:
        # The foreground script: on SIGTERM it stops the node properly and then exits.
        return [str(SCRIPTS / "rabbitmq-server")]

    def ctl(self, *arguments: str, timeout_s: float = 120.0) -> str:
        """rabbitmqctl against this node (the fault tests use stop_app and start_app)."""
        done = subprocess.run([str(SCRIPTS / "rabbitmqctl"), *arguments],  # noqa: S603
                              capture_output=True, text=True, timeout=timeout_s, check=False,
                              env=os.environ | self.environment())
        if done.returncode != 0:
            raise ServiceError(f"rabbitmqctl {' '.join(arguments)} failed "
                               f"(exit {done.returncode}): {done.stderr.strip()[-1000:]}")
        return done.stdout

    def log_files(self) -> list[Path]:
        return [self.logs / f"{NODE}.log", self.logs / "console.log"]

    def is_ready(self) -> bool:
        certificates = self.certificates()
        exports = self.exports()
        return (amqp_answers(exports["QUEUE_SCALER_TEST_RABBITMQ_AMQP"])
                and management_answers(exports["QUEUE_SCALER_TEST_RABBITMQ_HTTP"])
                and amqp_answers(exports["QUEUE_SCALER_TEST_RABBITMQ_AMQPS"], certificates.ca)
                and management_answers(exports["QUEUE_SCALER_TEST_RABBITMQ_HTTPS"],
                                       certificates.ca))

    def exports(self) -> dict[str, str]:
        p = self.ports
        return {
            "QUEUE_SCALER_TEST_RABBITMQ_AMQP": f"amqp://guest:guest@{HOST}:{p['amqp']}/",
            "QUEUE_SCALER_TEST_RABBITMQ_HTTP": f"http://guest:guest@{HOST}:{p['http']}/",
            "QUEUE_SCALER_TEST_RABBITMQ_AMQPS": f"amqps://guest:guest@{HOST}:{p['amqps']}/",
            "QUEUE_SCALER_TEST_RABBITMQ_HTTPS": f"https://guest:guest@{HOST}:{p['https']}/",
            "QUEUE_SCALER_TEST_TLS_CA": str(self.certificates().ca),
        }


def amqp_answers(url: str, ca_file: Path | None = None, timeout_s: float = 3.0) -> bool:
    """An AMQP connection opens (and a channel on it): the broker application is running."""
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = parameters.blocked_connection_timeout = timeout_s
    parameters.connection_attempts, parameters.retry_delay = 1, 0
    if ca_file is not None:
        parameters.ssl_options = pika.SSLOptions(ssl.create_default_context(cafile=ca_file),
                                                 "localhost")
    try:
        connection = pika.BlockingConnection(parameters)
    # A peer that never finishes the handshake ends in pika's stack timeout, which is not an
    # AMQPError.
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError):
        return False
    try:
        connection.channel()
    except pika.exceptions.AMQPError:
        return False
    finally:
        if connection.is_open:
            connection.close()
    return True


def management_answers(url: str, ca_file: Path | None = None, timeout_s: float = 3.0) -> bool:
    """GET /api/overview answers 200 with the URL's credentials: the management plugin is up."""
    split = urllib.parse.urlsplit(url)
    token = base64.b64encode(f"{split.username}:{split.password}".encode()).decode()
    request = urllib.request.Request(f"{split.scheme}://{split.hostname}:{split.port}/api/overview",
                                     headers={"Authorization": f"Basic {token}"})
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
