"""ActiveMQ Classic: Debian's activemq package (5.17.2), run in the foreground from its files in
/usr/share/activemq (`java -jar bin/activemq.jar start xbean:file:...`, with the options Debian's
/usr/bin/activemq passes) and with a configuration, KahaDB data and logs of our own in the state
folder; the package's init script, /etc/activemq and /var/lib/activemq are left alone. One
OpenWire connector on 127.0.0.1, login required (one user, in the exports); JMX on the platform
MBean server with no JMX connector; no web console (Debian ships none, so there is no
/api/jolokia). Debian's broker logs with log4j 1.2 (log4j.properties), not log4j2.

JMX is read over HTTPS through the Jolokia JVM agent 2.2.9 (`-javaagent:`, from Maven Central,
in the cache), on its own port on 127.0.0.1, presenting the testbed's server certificate (PEM
files, the agent's serverCert and serverKey options; protocol=https). What it does, checked
against this broker:

- Path: the agent's context is `/jolokia/`, and the trailing slash matters: a POST to `/jolokia`
  is HTTP 404 with a text/html "No context found for request" (the JDK's HTTP server).
- Login: Basic auth (realm "jolokia") for `user`/`password` given to the agent. A wrong password,
  a wrong user or no Authorization header is HTTP 401 with an empty body and
  `WWW-Authenticate: Basic realm="jolokia", charset="UTF-8"`; so is a CORS preflight (OPTIONS).
- Origin: no check (no jolokia-access.xml, "No access restrictor found, access to any MBean is
  allowed"). A request without Origin is answered; so is one with any Origin, which comes back
  in `Access-Control-Allow-Origin` with `Access-Control-Allow-Credentials: true`.
- Discovery: off by default in 2.x (the agent's default-jolokia-agent.properties says
  discoveryEnabled=false); we pass discoveryEnabled=false anyway, so nothing multicasts.
- Errors are HTTP 200 with the status in the JSON body. A missing MBean:
  `{"request": {...}, "error_type": "javax.management.InstanceNotFoundException",
  "error": "javax.management.InstanceNotFoundException : <mbean>", "status": 404}`; a missing
  attribute: error_type "javax.management.AttributeNotFoundException", status 404.
- Bulk: a JSON list POSTed to the URL is answered by a list, one entry per request, in order;
  a missing queue is its own 404 entry and the others still answer `{"request": {...},
  "value": 2, "status": 200, "timestamp": ...}`. But one entry whose MBean name does not parse
  (a "," or "=" in a queue name, an entry without "mbean") fails the whole bulk: the answer is
  then one object, not a list, `{"error_type": "java.lang.IllegalArgumentException",
  "error": "... Invalid object name. ...", "status": 400}`. The broker itself encodes names in
  MBeans (":" becomes "_", "=" "&amp;", "*" "&ast;"; a "?" starts destination options).

The request forms (the `*_request` functions below), all answered with status 200:
  addQueue:  {"type": "exec", "mbean": "org.apache.activemq:type=Broker,brokerName=<b>",
              "operation": "addQueue(java.lang.String)", "arguments": ["<q>"]}
  send:      {"type": "exec", "mbean": "<broker mbean>,destinationType=Queue,destinationName=<q>",
              "operation": "sendTextMessage(java.util.Map,java.lang.String,java.lang.String,
              java.lang.String)", "arguments": [{"JMSDeliveryMode": "PERSISTENT"}, "<body>",
              "<user>", "<password>"]}
  purge:     {"type": "exec", "mbean": "<queue mbean>", "operation": "purge()", "arguments": []}
  size:      {"type": "read", "mbean": "<queue mbean>", "attribute": "QueueSize"}
The send goes through the broker's vm:// connector, so it needs the broker login: the
one-argument sendTextMessage(java.lang.String) fails with status 500, JMSSecurityException
"User name [null] or password is invalid.". And without the JMSDeliveryMode header the message
is NON-PERSISTENT (gone after a kill); a JSON number there (2) is a status 500
MessageFormatException (Jolokia makes it a Long), while "PERSISTENT", "2" and true work.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.testbed import install, progress
from tests.testbed.places import fill_cache_entry
from tests.testbed.service import HOST, Service, ServiceError

VERSION = "5.17.2"  # what Debian 12's activemq package holds
HOME = Path("/usr/share/activemq")
JOLOKIA_VERSION = "2.2.9"
JOLOKIA_ARTIFACT = f"org.jolokia:jolokia-agent-jvm:{JOLOKIA_VERSION}:jar:javaagent"
# The name is part of every MBean the scaler reads.
BROKER_NAME = "queue-scaler-test"
USER = "admin"
PASSWORD = "activemq-secret-7Qm3"  # a test secret, printed in the exports; only [A-Za-z0-9-]
HEAP = ["-Xms128m", "-Xmx512m"]
# What Debian's /usr/bin/activemq passes to a Java newer than 8.
JAVA_MODULE_OPTIONS = [
    "--add-reads=java.xml=java.logging",
    *(f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in (
        "java.security", "java.net", "java.lang", "java.util", "java.util.concurrent",
        "java.util.concurrent.atomic")),
    "--add-opens=java.naming/javax.naming.spi=ALL-UNNAMED",
    "--add-opens=java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED",
    *(f"--add-exports=java.base/sun.net.www.protocol.{protocol}=ALL-UNNAMED"
      for protocol in ("http", "https", "jar")),
    "--add-exports=jdk.xml.dom/org.w3c.dom.html=ALL-UNNAMED",
    "--add-exports=jdk.naming.rmi/com.sun.jndi.url.rmi=ALL-UNNAMED",
]


class ActiveMQ(Service):
    name = "activemq"
    primary_variable = "QUEUE_SCALER_TEST_ACTIVEMQ_JOLOKIA"
    port_names = ("openwire", "jolokia")

    @property
    def version(self) -> str:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "activemq"],  # noqa: S607
                              capture_output=True, text=True, check=False, timeout=30)
        return done.stdout.strip() or "not installed"

    @property
    def agent(self) -> Path:
        return (self.places.cache_dir("activemq", VERSION)
                / f"jolokia-agent-jvm-{JOLOKIA_VERSION}-javaagent.jar")

    @property
    def conf(self) -> Path:
        return self.state / "conf"

    @property
    def data(self) -> Path:
        return self.state / "data"

    def install(self) -> None:
        log = self.logs / "install.log"
        if not (HOME / "bin" / "activemq.jar").is_file():
            install.apt_install("activemq", log=log)
        install.ensure_java(11, f"ActiveMQ {VERSION}", log)

        def fetch(folder: Path) -> None:
            progress.say(f"fetching the Jolokia agent {JOLOKIA_VERSION} from Maven Central "
                         f"into {self.agent.parent}")
            download = folder / "download"
            download.mkdir()
            jar = install.maven_copy_artifact(JOLOKIA_ARTIFACT, download, log)
            jar.rename(folder / self.agent.name)
            download.rmdir()

        fill_cache_entry(self.agent.parent, JOLOKIA_ARTIFACT, fetch)

    def config_files(self) -> dict[Path, str]:
        return {self.conf / "activemq.xml": self._broker_xml(),
                self.conf / "log4j.properties": LOG4J.format(logs=self.logs)}

    def _broker_xml(self) -> str:
        return BROKER_XML.format(broker=BROKER_NAME, data=self.data, user=USER,
                                 password=PASSWORD, host=HOST, port=self.ports["openwire"])

    def prepare(self) -> None:
        (self.state / "tmp").mkdir(exist_ok=True)

    def command(self) -> list[str]:
        certificates = self.certificates()
        agent_options = ",".join([
            f"host={HOST}", f"port={self.ports['jolokia']}", f"user={USER}",
            f"password={PASSWORD}", "discoveryEnabled=false", "protocol=https",
            f"serverCert={certificates.server_cert}", f"serverKey={certificates.server_key}"])
        return ["java", *HEAP, f"-javaagent:{self.agent}={agent_options}",
                *JAVA_MODULE_OPTIONS, "-Djava.awt.headless=true",
                f"-Djava.io.tmpdir={self.state / 'tmp'}",
                f"-Dlog4j.configuration=file:{self.conf / 'log4j.properties'}",
                f"-Dactivemq.classpath={self.conf}", f"-Dactivemq.home={HOME}",
                f"-Dactivemq.base={self.state}", f"-Dactivemq.conf={self.conf}",
                f"-Dactivemq.data={self.data}",
                "-jar", str(HOME / "bin" / "activemq.jar"),
                "start", f"xbean:file:{self.conf / 'activemq.xml'}"]

    def log_files(self) -> list[Path]:
        return [self.logs / "activemq.log", self.logs / "console.log"]

    def is_ready(self) -> bool:
        # The broker's MBean (and its BrokerVersion) is there before the broker has started
        # (its operations then fail with "Broker is not yet started."); the connectors start
        # last, so OpenWire answering is what says the broker is up.
        answer = jolokia(self.url, USER, PASSWORD, {
            "type": "read", "mbean": broker_mbean(), "attribute": "BrokerVersion"},
            self.certificates().ca, timeout_s=3.0)
        return (isinstance(answer, dict) and answer.get("status") == 200
                and openwire_answers(self.exports()["QUEUE_SCALER_TEST_ACTIVEMQ_OPENWIRE"]))

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.ports['jolokia']}/jolokia/"

    def exports(self) -> dict[str, str]:
        return {
            "QUEUE_SCALER_TEST_ACTIVEMQ_JOLOKIA": self.url,
            "QUEUE_SCALER_TEST_ACTIVEMQ_BROKER_NAME": BROKER_NAME,
            "QUEUE_SCALER_TEST_ACTIVEMQ_USER": USER,
            "QUEUE_SCALER_TEST_ACTIVEMQ_PASSWORD": PASSWORD,
            "QUEUE_SCALER_TEST_ACTIVEMQ_OPENWIRE": f"{HOST}:{self.ports['openwire']}",
            "QUEUE_SCALER_TEST_TLS_CA": str(self.certificates().ca),
        }

    # ---- what tests do to queues, through Jolokia -------------------------------------------

    def call(self, request: dict[str, Any]) -> Any:
        """One Jolokia request; its value, or ServiceError when the answer is not status 200."""
        answer = jolokia(self.url, USER, PASSWORD, request, self.certificates().ca)
        if not isinstance(answer, dict) or answer.get("status") != 200:
            raise ServiceError(f"Jolokia {request} answered {answer}")
        return answer.get("value")

    def add_queue(self, queue: str) -> None:
        self.call(add_queue_request(queue))

    def send(self, queue: str, count: int, body: str = "message") -> None:
        """`count` persistent text messages, each one Jolokia request."""
        for _ in range(count):
            self.call(send_text_request(queue, body))

    def purge(self, queue: str) -> None:
        self.call(purge_request(queue))

    def remove_queue(self, queue: str) -> None:
        self.call(remove_queue_request(queue))

    def queue_size(self, queue: str) -> int:
        return int(self.call(queue_size_request(queue)))


def openwire_answers(address: str, timeout_s: float = 3.0) -> bool:
    """The broker's first OpenWire frame arrives: a WireFormatInfo, which a broker sends as soon
    as a connection opens (4 bytes of size, type 1, the magic "ActiveMQ"). Closing the socket
    right after is no error to the broker (nothing is logged)."""
    host, _, port = address.rpartition(":")
    wanted = b"\x01ActiveMQ"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as connection:
            data = b""
            while len(data) < 4 + len(wanted):
                chunk = connection.recv(64)
                if not chunk:
                    return False
                data += chunk
    except (OSError, ValueError):
        return False
    return data[4:4 + len(wanted)] == wanted


def broker_mbean(broker: str = BROKER_NAME) -> str:
    return f"org.apache.activemq:type=Broker,brokerName={broker}"


def queue_mbean(queue: str, broker: str = BROKER_NAME) -> str:
    return f"{broker_mbean(broker)},destinationType=Queue,destinationName={queue}"


def add_queue_request(queue: str, broker: str = BROKER_NAME) -> dict[str, Any]:
    return {"type": "exec", "mbean": broker_mbean(broker),
            "operation": "addQueue(java.lang.String)", "arguments": [queue]}


def remove_queue_request(queue: str, broker: str = BROKER_NAME) -> dict[str, Any]:
    return {"type": "exec", "mbean": broker_mbean(broker),
            "operation": "removeQueue(java.lang.String)", "arguments": [queue]}


def send_text_request(queue: str, body: str, broker: str = BROKER_NAME, user: str = USER,
                      password: str = PASSWORD) -> dict[str, Any]:
    return {"type": "exec", "mbean": queue_mbean(queue, broker),
            "operation": "sendTextMessage(java.util.Map,java.lang.String,java.lang.String,"
                         "java.lang.String)",
            "arguments": [{"JMSDeliveryMode": "PERSISTENT"}, body, user, password]}


def purge_request(queue: str, broker: str = BROKER_NAME) -> dict[str, Any]:
    return {"type": "exec", "mbean": queue_mbean(queue, broker), "operation": "purge()",
            "arguments": []}


def queue_size_request(queue: str, broker: str = BROKER_NAME) -> dict[str, Any]:
    return {"type": "read", "mbean": queue_mbean(queue, broker), "attribute": "QueueSize"}


def jolokia(url: str, user: str, password: str, request: dict[str, Any] | list[Any],
            ca_file: Path | str, timeout_s: float = 10.0) -> Any:
    """POSTs a Jolokia request (one, or a list for a bulk request) to the agent at `url`
    (https, with the test CA's certificate) and returns the decoded answer, or None when
    nothing answered in Jolokia's JSON (a wrong password is HTTP 401)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    post = urllib.request.Request(
        url, method="POST", data=json.dumps(request).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(post, timeout=timeout_s,
                                    context=ssl.create_default_context(cafile=ca_file)) as reply:
            return json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


BROKER_XML = """\
<!-- Written by tests/testbed/activemq.py before every start. -->
<beans
  xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="{broker}"
          persistent="true" useJmx="true" dataDirectory="{data}">
    <managementContext>
      <managementContext createConnector="false"/>
    </managementContext>
    <persistenceAdapter>
      <kahaDB directory="{data}/kahadb"/>
    </persistenceAdapter>
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
          <authenticationUser username="{user}" password="{password}" groups="admins"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>
        <storeUsage><storeUsage limit="1 gb"/></storeUsage>
        <tempUsage><tempUsage limit="1 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://{host}:{port}"/>
    </transportConnectors>
  </broker>
</beans>
"""

# Debian's broker logs through slf4j-log4j12 to log4j 1.2 (not log4j2, as upstream 5.17 does).
LOG4J = """\
# Written by tests/testbed/activemq.py before every start.
log4j.rootLogger = INFO, logfile
log4j.logger.org.springframework = WARN
log4j.logger.org.apache.xbean = WARN
log4j.appender.logfile = org.apache.log4j.FileAppender
log4j.appender.logfile.file = {logs}/activemq.log
log4j.appender.logfile.append = true
log4j.appender.logfile.layout = org.apache.log4j.PatternLayout
log4j.appender.logfile.layout.ConversionPattern = %d | %-5p | %m | %c | %t%n
"""
