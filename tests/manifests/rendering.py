"""The real helm (built by tests/testbed/helm.py) run on the chart, and what it prints parsed
into Kubernetes objects."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "manifests" / "helm" / "queue-scaler"
EVERYTHING = Path(__file__).with_name("values-everything.yaml")
# The release and namespace of the plain manifests, which the examples' scalerAddress names.
RELEASE = NAMESPACE = "queue-scaler"


@dataclasses.dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binary), *args], capture_output=True, text=True,  # noqa: S603
                              timeout=120, check=False, cwd=REPO)

    def template(self, *args: str) -> list[dict[str, Any]]:
        """`helm template` of the chart as release queue-scaler in namespace queue-scaler."""
        done = self.run("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
        assert done.returncode == 0, f"helm template {' '.join(args)} failed:\n{done.stderr}"
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def template_error(self, *args: str) -> str:
        """What `helm template` says when it refuses; fails the test if it renders."""
        done = self.run("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
        assert done.returncode != 0, f"helm template {' '.join(args)} rendered:\n{done.stdout}"
        return done.stderr


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[o['kind'] for o in objects]}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(objects)["env"]}
