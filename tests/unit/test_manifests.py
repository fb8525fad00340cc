"""Every ScaledObject we ship as an example (manifests/examples/, README) is accepted by our
parser."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml

from scaler import sources

REPO = pathlib.Path(__file__).resolve().parents[2]
# What KEDA would resolve `<key>FromEnv` to, from the workload's environment.
RESOLVED = {"hostFromEnv": "amqp://user:password@rabbitmq:5672/"}


def shipped_scaled_objects() -> list[Any]:
    documents: list[tuple[str, Any]] = []
    for path in sorted((REPO / "manifests" / "examples").glob("*.yaml")):
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text())]
    readme = (REPO / "README.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL):
        documents += [("README.md", doc) for doc in yaml.safe_load_all(block)]
    found = [pytest.param(doc, id=f"{where}:{doc['metadata']['name']}")
             for where, doc in documents if doc and doc.get("kind") == "ScaledObject"]
    assert len(found) >= 3, "expected ScaledObject examples in manifests/examples/ and the README"
    return found


@pytest.mark.parametrize("scaled_object", shipped_scaled_objects())
def test_example_trigger_metadata_parses(scaled_object: dict[str, Any]) -> None:
    triggers = [t for t in scaled_object["spec"]["triggers"]
                if t["type"] in ("external", "external-push")]
    assert triggers
    for trigger in triggers:
        metadata = {key: RESOLVED.get(key, value) for key, value in trigger["metadata"].items()}
        sources.parse_trigger(metadata)


def test_the_shipped_connections_file_loads(tmp_path: pathlib.Path) -> None:
    # The plain manifests (the chart's defaults) ship the file with no connections; the chart's
    # rendering of named connections is tested in tests/manifests/test_helm_chart.py.
    documents = yaml.safe_load_all((REPO / "manifests" / "queue-scaler.yaml").read_text())
    secret = next(doc for doc in documents if doc and doc["kind"] == "Secret")
    path = tmp_path / "connections.toml"
    path.write_text(secret["stringData"]["connections.toml"])
    assert sources.load_connections(str(path)).path == str(path)
