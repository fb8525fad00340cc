"""Named connections: broker addresses, credentials and CA files kept in the scaler's own
configuration (a mounted Secret), so that a ScaledObject names a connection instead of carrying
credentials.

The file is TOML, one table per connection:

    [connections.kafka-prod]
    source = "kafka"
    bootstrapServers = "kafka-0.kafka:9093,kafka-1.kafka:9093"
    tls = "enable"
    caFile = "/etc/queue-scaler/kafka-ca.pem"
    sasl = "scram_sha512"
    username = "scaler"
    password = "..."

A trigger with `connection: kafka-prod` gets these keys as if it had set them itself; setting
one of them in the trigger too is an error, so a reader of the ScaledObject knows where each
value comes from. The file is read once at start and checked completely; a bad file stops the
process with every problem listed.
"""

from __future__ import annotations

import dataclasses
import difflib
import ssl
import tomllib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from scaler import metadata
from scaler.errors import MetadataError

CONNECTION_KEY = "connection"


class ConnectionsFileError(ValueError):
    """The connections file cannot be used; the text lists every problem."""


class SourceType(metadata.Declared, Protocol):
    """What a source's metadata class tells about connections (see `scaler.sources`)."""

    connection_keys: ClassVar[frozenset[str]]


@dataclasses.dataclass(frozen=True)
class NamedConnection:
    name: str
    source: str
    values: Mapping[str, str] = dataclasses.field(repr=False)
    """Metadata key -> text, exactly as a trigger would give it."""

    def __repr__(self) -> str:
        # Values hold passwords and credential-bearing URLs: show which keys, never what.
        return f"NamedConnection({self.name!r}, source={self.source!r}, keys={sorted(self.values)})"


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a parse-cache key
class Connections:
    by_name: Mapping[str, NamedConnection] = dataclasses.field(default_factory=dict)
    path: str | None = None

    def apply(self, raw: Mapping[str, str], source: str, name: str,
              problems: list[MetadataError]) -> dict[str, str]:
        """`raw` with connection `name`'s keys filled in (and the `connection` key removed)."""
        merged = {key: value for key, value in raw.items()
                  if key not in (CONNECTION_KEY, CONNECTION_KEY + metadata.FROM_ENV_SUFFIX)}
        if not name:
            return merged
        connection = self.by_name.get(name)
        if connection is None:
            problems.append(MetadataError(CONNECTION_KEY, repr(metadata.shorten(name)),
                                          self._known_names()))
            return merged
        if connection.source != source:
            problems.append(MetadataError(
                CONNECTION_KEY, repr(name),
                f"is a {connection.source} connection; this trigger's source is {source}"))
            return merged
        problems.extend(
            MetadataError(key, "a value in the trigger",
                          f"is set by connection {name!r} in the scaler's connections file; "
                          "remove it from the trigger")
            for key in sorted(connection.values)
            if key in raw or key + metadata.FROM_ENV_SUFFIX in raw)
        merged.update(connection.values)
        return merged

    def _known_names(self) -> str:
        if not self.by_name:
            return ("must name a connection in the scaler's connections file, and the scaler "
                    "has none (--connections-file)")
        return "must be one of the scaler's connections: " + ", ".join(sorted(self.by_name))


NO_CONNECTIONS = Connections()


def load(path: str, sources: Mapping[str, type[SourceType]]) -> Connections:
    """Reads and checks the connections file; raises ConnectionsFileError listing every
    problem."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConnectionsFileError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message names a line and column, never the content.
        raise ConnectionsFileError(f"{path}: is not valid TOML ({exc})") from None
    problems: list[str] = []
    unknown = sorted(set(document) - {"connections"})
    if unknown:
        problems.append(f"unknown top-level keys {unknown}: only [connections.<name>] tables")
    tables = document.get("connections", {})
    by_name: dict[str, NamedConnection] = {}
    if not isinstance(tables, dict):
        problems.append("'connections' must be a table of tables, [connections.<name>]")
        tables = {}
    for name, table in tables.items():
        connection = _connection(name, table, sources, problems)
        if connection is not None:
            by_name[name] = connection
    if problems:
        raise ConnectionsFileError(f"{path}: " + "; ".join(problems))
    return Connections(by_name, path)


def _connection(name: str, table: Any, sources: Mapping[str, type[SourceType]],
                problems: list[str]) -> NamedConnection | None:
    where = f"connection {name!r}"
    if not isinstance(table, dict):
        problems.append(f"{where} must be a table")
        return None
    source_name = table.get("source")
    source = sources.get(source_name) if isinstance(source_name, str) else None
    if source is None or not isinstance(source_name, str):
        problems.append(f"{where}: source must be one of {', '.join(sources)}")
        return None
    values: dict[str, str] = {}
    for key, value in table.items():
        if key == "source":
            continue
        if key not in source.connection_keys:
            close = difflib.get_close_matches(key, sorted(source.connection_keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: {key!r} is not a {source_name} connection key{hint}; "
                            f"accepted: {', '.join(sorted(source.connection_keys))}")
            continue
        text = _as_text(value)
        spec = metadata.spec_of(source, key)
        if text is None or spec is None:
            problems.append(f"{where}: {key} must be a string, a boolean or a whole number")
            continue
        try:
            spec.convert(text)
        except metadata.InvalidValueError as exc:
            problems.append(f"{where}: {key} {exc}")
            continue
        values[key] = text
    if "caFile" in values:
        problems.extend(f"{where}: caFile {problem}" for problem in _ca_problems(values["caFile"]))
    return NamedConnection(name, source_name, values)


def _as_text(value: Any) -> str | None:
    """TOML values as the text a trigger would carry: booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return None


def _ca_problems(path: str) -> list[str]:
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:  # before OSError, its base class
        return [f"{path!r} holds no PEM certificate"]
    except OSError as exc:
        return [f"{path!r} cannot be read ({exc.strerror})"]
    return []
