"""Process settings: read once from flags and their environment twins, then frozen.

Per-trigger options live in ScaledObject metadata (see `scaler.sources`), never here.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Settings:
    grpc_address: str = "0.0.0.0:6000"
    """HOST:PORT for the gRPC ExternalScaler, health and reflection services (port 0: any)."""
    http_address: str = "0.0.0.0:8080"
    """HOST:PORT for the status page (/), /metrics, /healthz, /readyz and /scaledobjects
    (port 0: any)."""
    broker_timeout_s: float = 2.5
    """Seconds one broker read may take. Below KEDA's ~3 s budget for an HPA-path call."""
    poll_interval_s: float = 2.0
    """Seconds between background reads of a target KEDA asks about (one batched read per
    broker or cluster serves all its targets)."""
    max_data_age_s: float = 5.0
    """Oldest reading an answer is built from while reads succeed; older means read first."""
    stale_after_s: float = 60.0
    """While reads fail, the last good reading is served until it is this old; after that,
    UNAVAILABLE."""
    idle_after_s: float = 300.0
    """Seconds after KEDA's last question about a target before it stops being polled."""
    stream_interval_s: float = 1.0
    """Seconds between reads for a target with an open StreamIsActive (push activation)."""
    persistent_lag_after_s: float = 30.0
    """Seconds a Kafka partition's committed offset must stand still (with lag) before
    excludePersistentLag treats its lag as persistent; KEDA's default polling interval."""
    tls_cert_file: str | None = None
    """PEM certificate (chain) the gRPC port serves TLS with; needs tls_key_file."""
    tls_key_file: str | None = None
    """PEM private key of tls_cert_file."""
    tls_client_ca_file: str | None = None
    """PEM CA bundle: when set, clients must present a certificate it signed (mTLS), as KEDA
    does with a TriggerAuthentication's tlsClientCert/tlsClientKey."""
    connections_file: str | None = None
    """TOML file of named broker connections (addresses, credentials, CA files) that triggers
    refer to with `connection: <name>`; see scaler.sources.connections."""
    max_streams_per_connection: int = 10_000
    """Concurrent RPCs (StreamIsActive streams included) one client connection may have open;
    KEDA keeps one stream per external-push ScaledObject on one connection."""
    max_request_bytes: int = 1024 * 1024
    """Largest gRPC request accepted; a ScaledObject's metadata is a few kilobytes."""
    shutdown_grace_s: float = 10.0
    """Seconds in-flight RPCs get to finish after SIGTERM."""
    log_level: str = "INFO"
    """Python logging level name."""
    log_format: str = "text"
    """`text` (one human-readable line per record) or `json` (one JSON object per line, with
    a decision change's namespace, ScaledObject and reason as fields of their own)."""
