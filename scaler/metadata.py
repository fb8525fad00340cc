"""Typed, validated parsing of a ScaledObject trigger's metadata map, all in one place.

Each metadata dataclass declares its fields once with `declare(...)`: the KEDA key, how the text
is converted and checked, the default (or required) and whether the value is secret. `parse`
turns a `Mapping[str, str]` into frozen dataclasses or raises `MetadataErrors` with every problem:
unknown keys (with a "did you mean"), bad values and the cross-field rules of each class's
`validate()`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from scaler import redaction
from scaler.errors import MetadataError, MetadataErrors

FROM_ENV_SUFFIX = "FromEnv"
_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Keys that KEDA itself reads for its connection to this scaler; accepted and ignored.
KEDA_CONNECTION_KEYS = frozenset(
    {"scalerAddress", "enableTLS", "caCert", "tlsClientCert", "tlsClientKey"}
)

T = TypeVar("T")


class InvalidValueError(ValueError):
    """Raised by a converter; its text says what is accepted."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What KEDA's struct tags say about a key, in Python form."""

    key: str
    convert: Callable[[str], Any]
    secret: bool
    connection_only: bool = False
    may_hold_credentials: bool = False


def declare(
    key: str,
    convert: Callable[[str], T],
    default: T = REQUIRED,
    *,
    secret: bool = False,
    may_hold_credentials: bool = False,
    connection_only: bool = False,
) -> T:
    """Declares one metadata field on a frozen dataclass (as a `dataclasses.field`).

    `secret` values are never shown; `may_hold_credentials` values (URLs) are left out of repr
    and shown in errors only with their userinfo masked. `connection_only` keys name files on
    the scaler's own filesystem, so only its operator may set them, in a named connection."""
    spec = FieldSpec(key=key, convert=convert, secret=secret, connection_only=connection_only,
                     may_hold_credentials=may_hold_credentials)
    show = not (secret or may_hold_credentials)
    if default is REQUIRED:
        field: Any = dataclasses.field(metadata={"spec": spec}, repr=show)
    else:
        field = dataclasses.field(default=default, metadata={"spec": spec}, repr=show)
    return field  # type: ignore[no-any-return]


class Declared(Protocol):
    """A metadata dataclass: declared fields plus cross-field rules."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def validate(self) -> list[MetadataError]: ...


D = TypeVar("D", bound=Declared)


def keys_of(cls: type[Declared]) -> frozenset[str]:
    """Every key `cls` accepts, including the `<key>FromEnv` twins KEDA resolves for us."""
    keys = {_spec(field).key for field in dataclasses.fields(cls)}
    return frozenset(keys | {key + FROM_ENV_SUFFIX for key in keys})


def connection_only_keys(cls: type[Declared]) -> frozenset[str]:
    return frozenset(_spec(field).key for field in dataclasses.fields(cls)
                     if _spec(field).connection_only)


def secret_keys(cls: type[Declared]) -> frozenset[str]:
    return frozenset(_spec(field).key for field in dataclasses.fields(cls) if _spec(field).secret)


def credential_url_keys(cls: type[Declared]) -> frozenset[str]:
    """Keys whose value is a URL that may carry a username and password."""
    return frozenset(_spec(field).key for field in dataclasses.fields(cls)
                     if _spec(field).may_hold_credentials)


def spec_of(cls: type[Declared], key: str) -> FieldSpec | None:
    """The declaration of `key` on `cls`, or None."""
    for field in dataclasses.fields(cls):
        if _spec(field).key == key:
            return _spec(field)
    return None


def parse_fields(cls: type[D], raw: Mapping[str, str], problems: list[MetadataError]) -> D | None:
    """Builds `cls` from `raw`, appending problems instead of raising; None if any field failed."""
    values: dict[str, Any] = {}
    failed = False
    for field in dataclasses.fields(cls):
        spec = _spec(field)
        text = _lookup(spec, raw, problems)
        if text is None:
            if field.default is dataclasses.MISSING:
                problems.append(required_error(spec.key))
                failed = True
            continue
        try:
            values[field.name] = spec.convert(text)
        except InvalidValueError as exc:
            received = "a value that is not shown because it is secret" if spec.secret else (
                repr(shorten(redaction.redact_text(text))))
            problems.append(MetadataError(spec.key, received, str(exc)))
            failed = True
    if failed:
        return None
    instance = cls(**values)
    problems.extend(instance.validate())
    return instance


def required_error(key: str) -> MetadataError:
    """`key` is missing. Every key has a `<key>FromEnv` twin, and KEDA drops that twin without a
    word when the workload's container does not define its variable, so that is the likely
    cause of a required key the user believes they gave: the message names it."""
    return MetadataError(
        key, None, f"is required (if the ScaledObject sets {key}{FROM_ENV_SUFFIX}, the "
        "workload's container must define that variable: KEDA drops the key when it does not)")


def check_unknown_keys(raw: Mapping[str, str], known: Iterable[str]) -> list[MetadataError]:
    """One problem per key nobody declared, with the closest known key as a suggestion."""
    known = frozenset(known) | KEDA_CONNECTION_KEYS
    problems = []
    for key in sorted(set(raw) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(
            MetadataError(shorten(key) or "''", None, f"is not a known key{hint}")
        )
    return problems


def raise_if_any(problems: Sequence[MetadataError]) -> None:
    if problems:
        raise MetadataErrors(problems)


def metric_name(raw: str) -> str:
    """`raw` (source prefix and the trigger's topic or queue) as a metric name KEDA accepts:
    every character other than a letter, digit, '-' or '_' becomes '-'."""
    return _METRIC_NAME_UNSAFE.sub("-", raw)


def shorten(value: str, limit: int = 80) -> str:
    """Keeps error messages readable when a value is huge."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


def _spec(field: dataclasses.Field[Any]) -> FieldSpec:
    spec = field.metadata["spec"]
    assert isinstance(spec, FieldSpec)  # noqa: S101 - every field is made by declare()
    return spec


def _lookup(spec: FieldSpec, raw: Mapping[str, str], problems: list[MetadataError]) -> str | None:
    """The value of `key` or of `keyFromEnv` (already resolved by KEDA); empty counts as absent."""
    direct = raw.get(spec.key, "")
    from_env = raw.get(spec.key + FROM_ENV_SUFFIX, "")
    if direct and from_env:
        problems.append(MetadataError(
            spec.key, f"both {spec.key} and {spec.key}{FROM_ENV_SUFFIX}", "give only one of them"))
    text = (direct or from_env).strip()
    return text or None


# --- converters: each returns the typed value or raises InvalidValueError saying what is accepted


def text(value: str) -> str:
    return value


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    bounds = _describe_bounds(minimum, maximum)

    def convert(value: str) -> int:
        try:
            number = int(value, 10)
        except ValueError:
            raise InvalidValueError(f"must be a whole number{bounds}") from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise InvalidValueError(f"must be a whole number{bounds}")
        return number

    return convert


def number(*, minimum: float | None = None, exclusive_minimum: float | None = None,
           ) -> Callable[[str], float]:
    if exclusive_minimum is not None:
        bounds = f" greater than {exclusive_minimum:g}"
    elif minimum is not None:
        bounds = f" of at least {minimum:g}"
    else:
        bounds = ""

    def convert(value: str) -> float:
        try:
            parsed = float(value)
        except ValueError:
            raise InvalidValueError(f"must be a finite number{bounds}") from None
        if not math.isfinite(parsed) or (minimum is not None and parsed < minimum) or (
                exclusive_minimum is not None and parsed <= exclusive_minimum):
            raise InvalidValueError(f"must be a finite number{bounds}")
        return parsed

    return convert


_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})


def boolean(value: str) -> bool:
    """The spellings Go's strconv.ParseBool accepts, which is what KEDA users write."""
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidValueError("must be true or false")


def choice(*choices: str) -> Callable[[str], str]:
    accepted = ", ".join(choices)

    def convert(value: str) -> str:
        if value in choices:
            return value
        same_but_case = [c for c in choices if c.lower() == value.lower()]
        hint = f" (did you mean {same_but_case[0]!r}?)" if same_but_case else ""
        raise InvalidValueError(f"must be one of {accepted}{hint}")

    return convert


def comma_list(value: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in value.split(","))
    if any(not item for item in items):
        raise InvalidValueError("must be a comma-separated list without empty items")
    return items


def _describe_bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" of at least {minimum}"
    if maximum is not None:
        return f" of at most {maximum}"
    return ""
