"""Where an ActiveMQ trigger's value is read: a Jolokia endpoint, an MBean and one of its
attributes. Built from the MBean names KEDA's `artemis-queue` and `activemq` triggers read by
default, or from a user's Jolokia read URL (`restApiTemplate`, `restAPITemplate`). Pure: no I/O.

Jolokia's GET URLs escape `/` inside a path element as `!/` (and `!` as `!!`, `"` as `!"`); the
scaler sends reads as one bulk POST, so a template is decoded into its MBean and attribute here
and the URL itself is never requested.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import urllib.parse

ARTEMIS_DOMAIN = "org.apache.activemq.artemis"
CLASSIC_DOMAIN = "org.apache.activemq"
_READ = "/read/"
_KEY = re.compile(r"[^,=:*?\"]+")
# Characters JMX's ObjectName.quote escapes inside a quoted value (Artemis quotes every name).
_QUOTED_SPECIAL = {"\\": "\\\\", '"': '\\"', "*": "\\*", "?": "\\?", "\n": "\\n"}
_UNESCAPED = {escaped[-1]: char for char, escaped in _QUOTED_SPECIAL.items()}
# Characters an unquoted ObjectName value cannot hold (Classic names are not quoted).
_UNQUOTED_FORBIDDEN = frozenset(',=:"*?\n')


class TemplateError(ValueError):
    """A Jolokia read URL that cannot be used; the text says what is wrong."""


@dataclasses.dataclass(frozen=True)
class JolokiaRead:
    scheme: str
    host: str
    port: int | None
    path: str
    """Where Jolokia is served: /console/jolokia (Artemis), /api/jolokia (Classic's web
    console), /jolokia (the Jolokia JVM agent)."""
    mbean: str
    attribute: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"

    @functools.cached_property
    def properties(self) -> dict[str, str]:
        """The MBean name's key properties, unquoted (`queue`, `brokerName`, ...)."""
        return parse_object_name(self.mbean)[1]

    def property(self, key: str) -> str | None:
        return self.properties.get(key)


def quote_value(value: str) -> str:
    """A quoted ObjectName value, as JMX's ObjectName.quote makes it."""
    return '"' + "".join(_QUOTED_SPECIAL.get(c, c) for c in value) + '"'


def artemis_queue(broker: str, address: str, queue: str) -> str:
    """The MBean of an anycast queue, as KEDA's artemis-queue trigger names it."""
    return (f"{ARTEMIS_DOMAIN}:broker={quote_value(broker)},component=addresses,"
            f"address={quote_value(address)},subcomponent=queues,routing-type=\"anycast\","
            f"queue={quote_value(queue)}")


def classic_queue(broker: str, destination: str) -> str:
    """The MBean of a queue, as KEDA's activemq trigger names it."""
    return (f"{CLASSIC_DOMAIN}:type=Broker,brokerName={broker},destinationType=Queue,"
            f"destinationName={destination}")


def unquoted_value_problem(value: str) -> str | None:
    """Why `value` cannot stand unquoted in an ObjectName, or None."""
    bad = sorted(set(value) & _UNQUOTED_FORBIDDEN)
    if bad:
        return f"cannot hold {' '.join(repr(c) for c in bad)} in an MBean name"
    return None


def parse_object_name(name: str) -> tuple[str, dict[str, str]]:
    """`domain:key=value,...` -> (domain, {key: value}), quoted values unquoted.

    As strict as JMX, patterns refused: Jolokia answers a bulk request that holds one invalid
    name with a single error for the whole request, which would fail every trigger on the
    endpoint."""
    domain, colon, rest = name.partition(":")
    if not colon or not domain or not rest or set(domain) & set("*?\n"):
        raise TemplateError(f"{name!r} is not an MBean name (domain:key=value,...)")
    properties: dict[str, str] = {}
    position = 0
    while position < len(rest):
        equals = rest.find("=", position)
        key = rest[position:equals] if equals >= 0 else rest[position:]
        if equals < 0 or not _KEY.fullmatch(key) or key in properties:
            raise TemplateError(f"{name!r} is not an MBean name (domain:key=value,...)")
        position = equals + 1
        if rest.startswith('"', position):
            value, position = _quoted(rest, position, name)
        else:
            comma = rest.find(",", position)
            end = len(rest) if comma < 0 else comma
            value, position = rest[position:end], end
            problem = unquoted_value_problem(value)
            if problem:
                raise TemplateError(f"{name!r}: the value of {key} {problem} unless quoted")
        properties[key] = value
        if position < len(rest):
            if rest[position] != "," or position == len(rest) - 1:
                raise TemplateError(f"{name!r} is not an MBean name (domain:key=value,...)")
            position += 1
    return domain, properties


def _quoted(text: str, start: int, name: str) -> tuple[str, int]:
    """The value of the quoted string at `start`, and the index after its closing quote."""
    value: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\":
            escaped = text[position + 1:position + 2]
            if escaped not in _UNESCAPED:
                raise TemplateError(f"{name!r}: a quoted value may escape only \\ \" * ? n")
            value.append(_UNESCAPED[escaped])
            position += 2
        elif char == '"':
            return "".join(value), position + 1
        elif char in "*?\n":
            raise TemplateError(f"{name!r}: {char!r} inside quotes must be escaped with \\")
        else:
            value.append(char)
            position += 1
    raise TemplateError(f"{name!r} has a quoted value without its closing quote")


def from_url(url: str) -> JolokiaRead:
    """A Jolokia read URL, `<scheme>://<host:port><base>/read/<mbean>/<attribute>`."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise TemplateError("has a port that is not a number from 0 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TemplateError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise TemplateError("must not carry credentials: give username and password "
                            "(usernameFromEnv, passwordFromEnv or a named connection)")
    if parts.query or parts.fragment:
        raise TemplateError("must not have a query or fragment: the scaler reads the MBean "
                            "attribute alone")
    base, read, rest = parts.path.partition(_READ)
    if not read:
        raise TemplateError("must be a Jolokia read URL: <base>/read/<mbean>/<attribute>")
    elements = _path_elements(urllib.parse.unquote(rest))
    if len(elements) != 2 or not all(elements):
        raise TemplateError("must end in /read/<mbean>/<attribute>, with no path into the "
                            "attribute")
    mbean, attribute = elements
    parse_object_name(mbean)
    return JolokiaRead(parts.scheme, parts.hostname, port, base.rstrip("/"), mbean, attribute)


def _path_elements(path: str) -> list[str]:
    """Jolokia's GET path escaping: `!` escapes the next character; `/` separates."""
    elements, current = [], []
    position = 0
    while position < len(path):
        char = path[position]
        if char == "!" and position + 1 < len(path):
            current.append(path[position + 1])
            position += 2
            continue
        if char == "/":
            elements.append("".join(current))
            current = []
        else:
            current.append(char)
        position += 1
    elements.append("".join(current))
    if elements and not elements[-1]:
        elements.pop()  # a trailing slash
    return elements
