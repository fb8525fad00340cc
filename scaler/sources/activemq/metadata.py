"""`source: activemq` metadata: KEDA's `artemis-queue` keys with `flavor: artemis` and its
`activemq` keys with `flavor: classic`, each flavor refusing the other's keys; the Jolokia read
(endpoint, MBean, attribute) each trigger resolves to; the metric name KEDA would give it."""

from __future__ import annotations

import dataclasses
import functools
import urllib.parse
from collections.abc import Hashable, Mapping
from typing import ClassVar

from scaler import metadata, policy, redaction
from scaler.errors import MetadataError
from scaler.policy import depth
from scaler.sources import base
from scaler.sources.activemq import mbeans
from scaler.sources.activemq.jolokia import JolokiaSource
from scaler.sources.activemq.reading import ActiveMQReading

_DEFAULT_TARGET = 10.0


@dataclasses.dataclass(frozen=True)
class Flavor:
    """What differs between Artemis and Classic: KEDA's key names and MBean layout."""

    name: str
    keda_trigger: str
    template_key: str
    target_key: str
    activation_key: str
    placeholders: Mapping[str, str]
    """Name key -> how KEDA's template spells it."""
    jolokia_path: str
    attribute: str
    added_attribute: str
    """The queue's counter of messages ever added, for scalingStrategy: throughput."""
    queue_property: str
    broker_property: str
    broker_search: str
    """A Jolokia search pattern that lists the broker MBeans (to tell a missing broker from a
    missing queue)."""
    metric_prefix: str
    counted: str


ARTEMIS = Flavor(
    name="artemis", keda_trigger="artemis-queue", template_key="restApiTemplate",
    target_key="queueLength", activation_key="activationQueueLength",
    placeholders={"managementEndpoint": "<<managementEndpoint>>", "brokerName": "<<brokerName>>",
                  "brokerAddress": "<<brokerAddress>>", "queueName": "<<queueName>>"},
    jolokia_path="/console/jolokia", attribute="MessageCount", added_attribute="MessagesAdded",
    queue_property="queue",
    broker_property="broker", broker_search=f"{mbeans.ARTEMIS_DOMAIN}:broker=*",
    metric_prefix="artemis",
    counted="messages in the queue, including delivered and not yet acknowledged ones")
CLASSIC = Flavor(
    name="classic", keda_trigger="activemq", template_key="restAPITemplate",
    target_key="targetQueueSize", activation_key="activationTargetQueueSize",
    placeholders={"managementEndpoint": "{{.ManagementEndpoint}}",
                  "brokerName": "{{.BrokerName}}", "destinationName": "{{.DestinationName}}"},
    jolokia_path="/api/jolokia", attribute="QueueSize", added_attribute="EnqueueCount",
    queue_property="destinationName",
    broker_property="brokerName", broker_search=f"{mbeans.CLASSIC_DOMAIN}:type=Broker,brokerName=*",
    metric_prefix="activemq",
    counted="messages not yet acknowledged, including dispatched ones")
FLAVORS = {flavor.name: flavor for flavor in (ARTEMIS, CLASSIC)}
_NAME_KEYS = ("managementEndpoint", "brokerName", "brokerAddress", "queueName", "destinationName")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """`host:port`, as KEDA takes it, or with a scheme: `https://host:port`."""

    scheme: str | None
    host: str
    port: int | None

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _endpoint(value: str) -> Endpoint:
    has_scheme = "://" in value
    try:
        url = urllib.parse.urlsplit(value if has_scheme else "//" + value)
        port = url.port
    except ValueError:
        raise metadata.InvalidValueError(
            "must be host:port, or http:// or https:// with host:port") from None
    if (has_scheme and url.scheme not in ("http", "https")) or not url.hostname or (
            url.path not in ("", "/")) or url.query or url.fragment or url.username is not None:
        raise metadata.InvalidValueError(
            "must be host:port, or http:// or https:// with host:port, with no path or "
            "credentials (those go in username and password)")
    return Endpoint(url.scheme if has_scheme else None, url.hostname, port)


@dataclasses.dataclass(frozen=True)
class ActiveMQMetadata:
    source_name: ClassVar[str] = "activemq"
    # The keys a named connection may set (scaler.sources.connections): one broker's Jolokia.
    connection_keys: ClassVar[frozenset[str]] = frozenset(
        {"flavor", "managementEndpoint", "corsHeader", "unsafeSsl", "caFile", "username",
         "password"})

    flavor: str = metadata.declare("flavor", metadata.choice(*FLAVORS))
    management_endpoint: Endpoint | None = metadata.declare(
        "managementEndpoint", _endpoint, None, may_hold_credentials=True)
    broker_name: str = metadata.declare("brokerName", metadata.text, "")
    broker_address: str = metadata.declare("brokerAddress", metadata.text, "")
    queue_name: str = metadata.declare("queueName", metadata.text, "")
    destination_name: str = metadata.declare("destinationName", metadata.text, "")
    queue_length: float | None = metadata.declare(
        "queueLength", metadata.number(exclusive_minimum=0), None)
    activation_queue_length: float | None = metadata.declare(
        "activationQueueLength", metadata.number(minimum=0), None)
    target_queue_size: float | None = metadata.declare(
        "targetQueueSize", metadata.number(exclusive_minimum=0), None)
    activation_target_queue_size: float | None = metadata.declare(
        "activationTargetQueueSize", metadata.number(minimum=0), None)
    rest_api_template: str = metadata.declare(
        "restApiTemplate", metadata.text, "", may_hold_credentials=True)
    rest_api_template_classic: str = metadata.declare(
        "restAPITemplate", metadata.text, "", may_hold_credentials=True)
    cors_header: str = metadata.declare("corsHeader", metadata.text, "")
    unsafe_ssl: bool = metadata.declare("unsafeSsl", metadata.boolean, False)
    ca_file: str = metadata.declare("caFile", metadata.text, "", connection_only=True)
    username: str = metadata.declare("username", metadata.text, "")
    password: str = metadata.declare("password", metadata.text, "", secret=True)

    @property
    def kind(self) -> Flavor:
        return FLAVORS[self.flavor]

    def validate(self) -> list[MetadataError]:
        problems = self._other_flavor_keys()
        for key, value in (("username", self.username), ("password", self.password)):
            if not value:
                problems.append(MetadataError(
                    key, None, f"is required: give {key}{metadata.FROM_ENV_SUFFIX} or a named "
                    "connection (Jolokia needs a login, as in KEDA)"))
        read, read_problems = self._resolve()
        problems += read_problems
        if read is not None and read.scheme != "https":
            problems.extend(
                MetadataError(key, repr(value), "needs an https:// endpoint")
                for key, value in (("unsafeSsl", self.unsafe_ssl), ("caFile", self.ca_file))
                if value)
        return problems

    def _values(self) -> dict[str, str]:
        return {"managementEndpoint": (self.management_endpoint.netloc
                                       if self.management_endpoint else ""),
                "brokerName": self.broker_name, "brokerAddress": self.broker_address,
                "queueName": self.queue_name, "destinationName": self.destination_name}

    def _other_flavor_keys(self) -> list[MetadataError]:
        other = CLASSIC if self.kind is ARTEMIS else ARTEMIS
        given = {other.template_key: self._template_of(other),
                 other.target_key: self._target_of(other),
                 other.activation_key: self._activation_of(other)}
        given |= {key: value for key, value in self._values().items()
                  if key not in self.kind.placeholders}
        mine = {other.template_key: self.kind.template_key,
                other.target_key: self.kind.target_key,
                other.activation_key: self.kind.activation_key,
                "destinationName": "queueName", "queueName": "destinationName"}
        problems = []
        for key, value in given.items():
            if value not in (None, ""):
                instead = f"; use {mine[key]}" if key in mine else ""
                problems.append(MetadataError(
                    key, f"flavor {self.flavor}",
                    f"is a key of flavor {other.name} (KEDA's {other.keda_trigger} trigger)"
                    f"{instead}"))
        return problems

    def _resolve(self) -> tuple[mbeans.JolokiaRead | None, list[MetadataError]]:
        template = self._template_of(self.kind)
        if template:
            return self._from_template(template)
        values = self._values()
        problems = [MetadataError(key, None, f"is required without {self.kind.template_key}")
                    for key in self.kind.placeholders if not values[key]]
        if self.kind is CLASSIC:
            for key in ("brokerName", "destinationName"):
                problem = mbeans.unquoted_value_problem(values[key])
                if problem:
                    problems.append(MetadataError(
                        key, repr(metadata.shorten(values[key])),
                        f"{problem}; give the MBean's real name in {self.kind.template_key}"))
        if problems or self.management_endpoint is None:
            return None, problems
        if self.kind is ARTEMIS:
            mbean = mbeans.artemis_queue(self.broker_name, self.broker_address, self.queue_name)
        else:
            mbean = mbeans.classic_queue(self.broker_name, self.destination_name)
        endpoint = self.management_endpoint
        return mbeans.JolokiaRead(endpoint.scheme or "http", endpoint.host, endpoint.port,
                                  self.kind.jolokia_path, mbean, self.kind.attribute), []

    def _from_template(self, template: str
                       ) -> tuple[mbeans.JolokiaRead | None, list[MetadataError]]:
        key = self.kind.template_key
        values = self._values()
        problems = []
        for name, placeholder in self.kind.placeholders.items():
            if placeholder in template and not values[name]:
                problems.append(MetadataError(name, None, f"is required: {key} uses {placeholder}"))
            elif placeholder not in template and values[name]:
                problems.append(MetadataError(
                    name, "a value", f"has no effect: {key} has no {placeholder} (remove it, or "
                    "use the placeholder)"))
            template = template.replace(placeholder, values[name])
        if self.management_endpoint is not None and self.management_endpoint.scheme:
            problems.append(MetadataError(
                "managementEndpoint", "a URL with a scheme",
                f"must be host:port with {key}: the template's URL gives the scheme"))
        if problems:
            return None, problems
        try:
            return mbeans.from_url(template), []
        except mbeans.TemplateError as exc:
            shown = repr(metadata.shorten(redaction.redact_text(template), 160))
            return None, [MetadataError(key, shown, str(exc))]

    @functools.cached_property
    def jolokia_read(self) -> mbeans.JolokiaRead:
        read, _ = self._resolve()
        assert read is not None  # noqa: S101 - parse_trigger validated the metadata
        return read

    def _template_of(self, flavor: Flavor) -> str:
        return self.rest_api_template if flavor is ARTEMIS else self.rest_api_template_classic

    def _target_of(self, flavor: Flavor) -> float | None:
        return self.queue_length if flavor is ARTEMIS else self.target_queue_size

    def _activation_of(self, flavor: Flavor) -> float | None:
        return (self.activation_queue_length if flavor is ARTEMIS
                else self.activation_target_queue_size)

    @property
    def origin(self) -> str:
        """The Origin header: Artemis's Jolokia refuses a request whose Origin its
        jolokia-access.xml does not allow. KEDA's default: the management endpoint."""
        read = self.jolokia_read
        return self.cors_header or f"{read.scheme}://{read.netloc}"

    def display_endpoint(self) -> str:
        return redaction.redact_url(self.jolokia_read.url)

    def queue_label(self) -> str:
        """The queue the trigger scales on, for names and messages."""
        read = self.jolokia_read
        return (read.property(self.kind.queue_property) or read.property("address")
                or read.attribute)

    def connection_key(self) -> Hashable:
        read = self.jolokia_read
        # One bulk request per Jolokia endpoint and login serves every broker and queue on it.
        return ("activemq", read.scheme, read.host, read.port, read.path, self.username,
                self.password, self.origin, self.unsafe_ssl, self.ca_file)

    def target_key(self) -> Hashable:
        read = self.jolokia_read
        return (self.connection_key(), read.mbean, read.attribute)

    def metric_name(self) -> str:
        # KEDA's names: artemis-<queueName> and activemq-<destinationName>, then normalised.
        return metadata.metric_name(f"{self.kind.metric_prefix}-{self.queue_label()}")

    def target_value(self) -> float:
        return self._target_of(self.kind) or _DEFAULT_TARGET

    def measures_arrivals(self) -> bool:
        return True

    def needs_progress(self) -> bool:
        return False

    def open_source(self, timeout_s: float) -> JolokiaSource:
        return JolokiaSource(self, timeout_s)

    def decide(self, reading: base.Reading, bounds: policy.ReplicaBounds,
               stalled: frozenset[Hashable]) -> policy.Decision:
        assert isinstance(reading, ActiveMQReading)  # noqa: S101 - the poller pairs them
        counted = (f"{reading.attribute}: {self.kind.counted}"
                   if reading.attribute == self.kind.attribute
                   else f"attribute {reading.attribute} of the MBean")
        facts = depth.QueueFacts(float(reading.messages), None, None, counted)
        options = depth.DepthOptions(depth.Mode.QUEUE_LENGTH, self.target_value(),
                                     self._activation_of(self.kind) or 0.0)
        return depth.decide(facts, options, bounds)
