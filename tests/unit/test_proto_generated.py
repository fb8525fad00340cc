"""scaler/_proto is exactly what scripts/gen_protos.sh makes from protos/ (never hand-edited),
and the proto keeps KEDA's wire contract (SPEC §2)."""

from __future__ import annotations

import pathlib
import subprocess

from scaler._proto import externalscaler_pb2 as pb

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: pathlib.Path) -> None:
    subprocess.run([REPO / "scripts" / "gen_protos.sh", tmp_path], check=True)  # noqa: S603
    committed = REPO / "scaler" / "_proto"
    for fresh in sorted(tmp_path.iterdir()):
        assert fresh.read_text() == (committed / fresh.name).read_text(), (
            f"scaler/_proto/{fresh.name} is stale: run scripts/gen_protos.sh and commit")


def test_field_numbers_match_keda() -> None:
    expected = {
        "ScaledObjectRef": {"name": 1, "namespace": 2, "scalerMetadata": 3},
        "IsActiveResponse": {"result": 1},
        "GetMetricSpecResponse": {"metricSpecs": 1},
        "MetricSpec": {"metricName": 1, "targetSize": 2, "targetSizeFloat": 3},
        "GetMetricsRequest": {"scaledObjectRef": 1, "metricName": 2},
        "GetMetricsResponse": {"metricValues": 1},
        "MetricValue": {"metricName": 1, "metricValue": 2, "metricValueFloat": 3},
    }
    for message, fields in expected.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        assert {f.name: f.number for f in descriptor.fields} == fields
    service = pb.DESCRIPTOR.services_by_name["ExternalScaler"]
    assert service.full_name == "externalscaler.ExternalScaler"
    assert {m.name for m in service.methods} == {
        "IsActive", "StreamIsActive", "GetMetricSpec", "GetMetrics"}
