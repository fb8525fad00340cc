"""Command line: flags (and their QUEUE_SCALER_* environment twins) -> Settings -> app."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from scaler import app, logs
from scaler.errors import MetadataErrors, ScalerError
from scaler.settings import Settings
from scaler.sources import ConnectionsFileError, load_connections

_DEFAULTS = Settings()


def _address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"must be HOST:PORT with a port from 0 to 65535, got {value!r}")
    return value


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value!r}")
    return seconds


def _readable_file(value: str) -> str:
    try:
        with open(value, "rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"must be a readable file, got {value!r} ({exc.strerror})"
                                         ) from None
    return value


def _whole_number(minimum: int) -> Callable[[str], int]:
    def convert(value: str) -> int:
        if not value.isdigit() or int(value) < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a whole number of at least {minimum}, got {value!r}")
        return int(value)

    return convert


def _log_format(value: str) -> str:
    if value.lower() not in logs.FORMATS:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(logs.FORMATS)}, got {value!r}")
    return value.lower()


def _log_level(value: str) -> str:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    if value.upper() not in levels:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(levels)}, got {value!r}")
    return value.upper()


_SETTING_FLAGS: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    ("grpc_address", "--grpc-address", _address, "HOST:PORT of the gRPC ExternalScaler"),
    ("http_address", "--http-address", _address,
     "HOST:PORT of the status page, /metrics, /healthz, /readyz"),
    ("broker_timeout_s", "--broker-timeout", _positive_seconds, "seconds one broker read may take"),
    ("poll_interval_s", "--poll-interval", _positive_seconds,
     "seconds between background reads of each watched target"),
    ("max_data_age_s", "--max-data-age", _positive_seconds,
     "oldest reading an answer is built from while reads succeed"),
    ("stale_after_s", "--stale-after", _positive_seconds,
     "while reads fail, serve the last good reading until it is this old"),
    ("idle_after_s", "--idle-after", _positive_seconds,
     "stop polling a target KEDA has not asked about for this long"),
    ("stream_interval_s", "--stream-interval", _positive_seconds,
     "seconds between reads for an open StreamIsActive"),
    ("persistent_lag_after_s", "--persistent-lag-after", _positive_seconds,
     "seconds a committed offset must stand still to count as persistent lag"),
    ("shutdown_grace_s", "--shutdown-grace", _positive_seconds,
     "seconds in-flight RPCs get after SIGTERM"),
    ("log_level", "--log-level", _log_level, "DEBUG, INFO, WARNING or ERROR"),
    ("log_format", "--log-format", _log_format,
     "text, or json: one JSON object per line"),
    ("connections_file", "--connections-file", _readable_file,
     "TOML file of named broker connections that triggers use with connection: <name>"),
    ("max_streams_per_connection", "--max-streams-per-connection", _whole_number(1),
     "concurrent RPCs and StreamIsActive streams one client connection may hold"),
    ("max_request_bytes", "--max-request-bytes", _whole_number(1024),
     "largest gRPC request accepted, in bytes"),
    ("tls_cert_file", "--tls-cert", _readable_file,
     "PEM certificate for TLS on the gRPC port (with --tls-key)"),
    ("tls_key_file", "--tls-key", _readable_file, "PEM private key of --tls-cert"),
    ("tls_client_ca_file", "--tls-client-ca", _readable_file,
     "PEM CA that client certificates must chain to: requires them (mTLS)"),
)


def _env_name(flag: str) -> str:
    return "QUEUE_SCALER_" + flag.removeprefix("--").replace("-", "_").upper()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queue-scaler",
        description="KEDA external scaler for Kafka consumer lag, RabbitMQ queue depth and "
                    "ActiveMQ queue size.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC scaler and the HTTP endpoints",
                                description="Run the gRPC scaler and the HTTP endpoints. Every "
                                "flag can also be set by the environment variable shown.")
    check = commands.add_parser(
        "check", help="read one trigger once and print the decision as JSON",
        description="Read one trigger's broker once and print the reading, metric value, "
        "activity and desired replicas as JSON. Exit 2 on bad metadata, 1 on a broker error.")
    check.add_argument("--metadata", metavar="KEY=VALUE", nargs="+", action="extend",
                       required=True, type=_key_value,
                       help="trigger metadata, as in the ScaledObject (repeatable)")
    for sub in (serve, check):
        for attribute, flag, convert, text in _SETTING_FLAGS:
            env = _env_name(flag)
            sub.add_argument(flag, dest=attribute, type=convert, metavar=flag[2:].upper(),
                             help=f"{text} (env {env}, default {getattr(_DEFAULTS, attribute)})")
    return parser


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, got {item!r}")
    return key, value


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """Flags win over environment variables, which win over defaults; a bad one exits 2."""
    values: dict[str, Any] = {}
    for attribute, flag, convert, _ in _SETTING_FLAGS:
        if getattr(args, attribute) is not None:
            values[attribute] = getattr(args, attribute)
            continue
        env = _env_name(flag)
        if env in os.environ:
            try:
                values[attribute] = convert(os.environ[env])
            except argparse.ArgumentTypeError as exc:
                parser.error(f"{env} (the environment twin of {flag}): {exc}")
    tls = [values.get(key) for key in ("tls_cert_file", "tls_key_file")]
    if any(tls) and not all(tls):
        parser.error("--tls-cert and --tls-key (QUEUE_SCALER_TLS_CERT, QUEUE_SCALER_TLS_KEY) "
                     "go together")
    if values.get("tls_client_ca_file") and not all(tls):
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    return Settings(**values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = _settings(parser, args)
    try:
        connections = load_connections(settings.connections_file)
    except ConnectionsFileError as exc:
        parser.error(f"--connections-file (QUEUE_SCALER_CONNECTIONS_FILE): {exc}")
    if args.command == "serve":
        app.run(settings, connections)
        return 0
    try:
        evaluation = asyncio.run(app.check(settings, connections, dict(args.metadata)))
    except MetadataErrors as exc:
        print(f"invalid metadata: {exc}", file=sys.stderr)
        return 2
    except ScalerError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"metricName": evaluation.trigger.source.metric_name(),
                      **evaluation.describe(time.monotonic())}, indent=2))
    return 0
