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
    """HOST:PORT for /metrics, /healthz and /readyz (port 0: any)."""
    broker_timeout_s: float = 2.5
    """Seconds one broker read may take. Below KEDA's ~3 s budget for an HPA-path call."""
    max_data_age_s: float = 5.0
    """Seconds a reading is reused; KEDA's back-to-back GetMetricSpec/GetMetrics/IsActive of one
    poll share one read."""
    stream_interval_s: float = 1.0
    """Seconds between reads for a target with an open StreamIsActive (push activation)."""
    shutdown_grace_s: float = 10.0
    """Seconds in-flight RPCs get to finish after SIGTERM."""
    log_level: str = "INFO"
    """Python logging level name."""
