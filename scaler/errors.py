"""The scaler's own error hierarchy.

Sources wrap their client library's exceptions in these (chaining the cause), and the gRPC
service maps them to status codes in one table. Nothing here imports grpc or a broker client.
"""

from __future__ import annotations

from collections.abc import Sequence


class ScalerError(Exception):
    """Base of every error the scaler raises on purpose."""


class MetadataError(ScalerError):
    """One problem with one ScaledObject metadata key."""

    def __init__(self, parameter: str, received: str | None, accepted: str) -> None:
        self.parameter = parameter
        self.received = received
        self.accepted = accepted
        got = "" if received is None else f", got {received}"
        super().__init__(f"{parameter}: {accepted}{got}")


class MetadataErrors(ScalerError):
    """Every problem found in one metadata map, reported together (KEDA reports one at a time)."""

    def __init__(self, problems: Sequence[MetadataError]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(problem) for problem in self.problems))


class SourceError(ScalerError):
    """A broker could not give a reading. Never to be turned into 0 or "inactive"."""

    retriable: bool = True


class BrokerUnavailableError(SourceError):
    """The broker is unreachable, timed out, or answered with a transient error."""


class BrokerAuthError(SourceError):
    """The broker refused our credentials or denied the operation."""

    retriable = False


class TargetNotFoundError(SourceError):
    """The topic, queue or vhost named in the metadata does not exist."""

    retriable = False


class StaleDataError(BrokerUnavailableError):
    """The newest good reading is older than the staleness bound."""
