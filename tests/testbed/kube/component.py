"""One program of the test cluster as the supervisor runs it: its command line, environment
and log, how to tell it answers, and what to do once it does (the API server's bootstrap)."""

from __future__ import annotations

import dataclasses
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.testbed.kube import pki

HOST = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where everything of one cluster is: the built programs, the ports, files and certificates."""

    state: Path
    etcd: Path  # the binary
    kube_apiserver: Path
    kube_controller_manager: Path
    keda_operator: Path
    keda_adapter: Path
    keda_crds: Path  # the folder of KEDA's CRD manifests
    ports: dict[str, int]
    certificates: pki.ClusterCertificates
    kubeconfig: Path
    token_file: Path
    hpa_sync_period_s: int

    @property
    def api_server(self) -> str:
        return f"https://{HOST}:{self.ports['apiserver']}"


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    command: list[str]
    is_ready: Callable[[], bool]
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    # Run once after the program first answers, before the next one starts.
    after_ready: Callable[[], None] | None = None

    def log(self, logs: Path) -> Path:
        return logs / f"{self.name}.log"


def answers_200(url: str, ca: Path | None = None, client: pki.Pair | None = None,
                timeout_s: float = 3.0) -> bool:
    """GET `url` answers 200 (https verified against `ca`, with `client`'s certificate)."""
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
    try:
        with urllib.request.urlopen(url, timeout=timeout_s,
                                    context=context) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
