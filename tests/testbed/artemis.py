"""ActiveMQ Artemis: the broker distribution from Maven Central, unpacked into the cache, and one
broker instance made with `artemis create` in the state folder. On 127.0.0.1: the core acceptor
and the embedded web server with Jolokia (`/console/jolokia`), which is what the scaler reads;
login required (one user, in the exports)."""

from __future__ import annotations

import base64
import json
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.testbed import install, progress
from tests.testbed.places import fill_cache_entry
from tests.testbed.service import HOST, Service

VERSION = "2.40.0"
ARTIFACT = f"org.apache.activemq:apache-artemis:{VERSION}:tar.gz:bin"
# Without --name, `artemis create` names the broker after --host; the name is part of every
# MBean the scaler reads.
BROKER_NAME = "queue-scaler-test"
USER = "admin"
PASSWORD = "artemis-secret-4Rt7"  # a test secret, printed in the exports


class Artemis(Service):
    name = "artemis"
    primary_variable = "QUEUE_SCALER_TEST_ARTEMIS_MANAGEMENT"
    port_names = ("core", "http")

    @property
    def version(self) -> str:
        return VERSION

    @property
    def home(self) -> Path:
        return self.places.cache_dir("artemis", VERSION) / f"apache-artemis-{VERSION}"

    @property
    def instance(self) -> Path:
        return self.state / "instance"

    def install(self) -> None:
        log = self.logs / "install.log"
        install.ensure_java(17, f"Artemis {VERSION}", log)

        def fetch(folder: Path) -> None:
            progress.say(f"fetching Artemis {VERSION} from Maven Central into {self.home.parent}")
            download = folder / "download"
            download.mkdir()
            archive = install.maven_copy_artifact(ARTIFACT, download, log)
            with tarfile.open(archive) as distribution:
                distribution.extractall(folder, filter="tar")
            shutil.rmtree(download)

        fill_cache_entry(self.home.parent, ARTIFACT, fetch)

    def _create_arguments(self) -> list[str]:
        return ["--silent", "--name", BROKER_NAME, "--host", HOST, "--http-host", HOST,
                "--http-port", str(self.ports["http"]), "--default-port",
                str(self.ports["core"]), "--user", USER, "--password", PASSWORD,
                "--require-login", "--no-amqp-acceptor", "--no-mqtt-acceptor",
                "--no-stomp-acceptor", "--no-hornetq-acceptor", "--no-autotune",
                "--java-memory", "512M"]

    def config_files(self) -> dict[Path, str]:
        # The instance's configuration is what `artemis create` makes of these arguments.
        return {self.state / "create-arguments": "\n".join(self._create_arguments()) + "\n"}

    def prepare(self) -> None:
        """Makes the instance, or makes it again when the arguments (say, a port) changed."""
        wanted = (self.state / "create-arguments").read_text()
        made_with = self.instance / ".created-with"
        if made_with.is_file() and made_with.read_text() == wanted:
            return
        shutil.rmtree(self.instance, ignore_errors=True)
        progress.say(f"creating the Artemis broker instance in {self.instance}")
        install.run_logged([str(self.home / "bin" / "artemis"), "create", str(self.instance),
                            *self._create_arguments()], self.logs / "create.log",
                           "artemis create")
        made_with.write_text(wanted)

    def command(self) -> list[str]:
        return [str(self.instance / "bin" / "artemis"), "run"]

    def log_files(self) -> list[Path]:
        return [self.instance / "log" / "artemis.log", self.logs / "console.log"]

    def is_ready(self) -> bool:
        answer = jolokia(self.exports()["QUEUE_SCALER_TEST_ARTEMIS_MANAGEMENT"], USER, PASSWORD,
                         {"type": "read", "mbean": f'org.apache.activemq.artemis:broker="'
                          f'{BROKER_NAME}"', "attribute": "Version"}, timeout_s=3.0)
        return isinstance(answer, dict) and answer.get("status") == 200

    def exports(self) -> dict[str, str]:
        return {
            "QUEUE_SCALER_TEST_ARTEMIS_MANAGEMENT": f"{HOST}:{self.ports['http']}",
            "QUEUE_SCALER_TEST_ARTEMIS_BROKER_NAME": BROKER_NAME,
            "QUEUE_SCALER_TEST_ARTEMIS_USER": USER,
            "QUEUE_SCALER_TEST_ARTEMIS_PASSWORD": PASSWORD,
        }


def jolokia(management: str, user: str, password: str, request: dict[str, Any] | list[Any],
            timeout_s: float = 10.0) -> Any:
    """POSTs a Jolokia request (one, or a list for a bulk request) to Artemis' web console and
    returns the decoded answer, or None when nothing answered in Jolokia's JSON. Artemis checks
    the Origin header strictly: without one matching the console's host, Jolokia answers HTTP
    200 with "status": 403 in the body."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    host = management.rpartition(":")[0]
    post = urllib.request.Request(
        f"http://{management}/console/jolokia", method="POST",
        data=json.dumps(request).encode(),
        headers={"Authorization": f"Basic {token}", "Origin": f"http://{host}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(post, timeout=timeout_s) as reply:
            return json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
