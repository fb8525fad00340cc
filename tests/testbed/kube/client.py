"""A small client for the test cluster's API server: JSON over HTTPS with the admin's client
certificate, verified against the test CA. Enough for the testbed's bootstrap objects and for
tests that create Deployments and ScaledObjects and read what KEDA and the HPA did to them."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

FIELD_MANAGER = "queue-scaler-testbed"


class KubeError(RuntimeError):
    """The API server answered with an error status, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeClient:
    def __init__(self, server: str, ca: Path, cert: Path | None = None, key: Path | None = None,
                 token: str | None = None, timeout_s: float = 10.0) -> None:
        self.server = server.rstrip("/")
        self.timeout_s = timeout_s
        self._context = ssl.create_default_context(cafile=str(ca))
        if cert is not None and key is not None:
            self._context.load_cert_chain(str(cert), str(key))
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeClient:
        """The current context of a kubeconfig whose CA, certificate and key are files (as the
        testbed writes them), or whose user has a token."""
        config = yaml.safe_load(path.read_text())
        context = next(c["context"] for c in config["contexts"]
                       if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])

        def file(value: str | None) -> Path | None:
            return None if value is None else (path.parent / value)

        ca = file(cluster.get("certificate-authority"))
        if ca is None:
            raise KubeError(f"{path}: the cluster has no certificate-authority file")
        return cls(cluster["server"], ca, cert=file(user.get("client-certificate")),
                   key=file(user.get("client-key")), token=user.get("token"))

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Content-Type": content_type, "Accept": "application/json",
                     **self._headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s,
                                        context=self._context) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise KubeError(f"{method} {path}: HTTP {error.code}: {detail[:2000]}",
                            status=error.code) from error
        except (urllib.error.URLError, OSError) as error:
            raise KubeError(f"{method} {path}: {error}") from error
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def apply(self, path: str, body: Any) -> Any:
        """Server-side apply of one object at its own path (.../<kind plural>/<name>)."""
        return self.request("PATCH", f"{path}?fieldManager={FIELD_MANAGER}&force=true", body,
                            content_type="application/apply-patch+yaml")

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str) -> Any:
        try:
            return self.request("DELETE", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def answers(self, path: str) -> bool:
        try:
            self.get(path)
        except KubeError:
            return False
        return True


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str,
             interval_s: float = 0.2, describe: Callable[[], str] | None = None) -> Any:
    """Polls `condition` until it returns something true, and returns that; raises
    TimeoutError naming `what` (and `describe()`, the state seen last) when it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            seen = f"; last seen: {describe()}" if describe is not None else ""
            raise TimeoutError(f"{what}: not within {timeout_s:g} s{seen}")
        time.sleep(interval_s)
