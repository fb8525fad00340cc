"""Random and adversarial metadata at every RPC of a real `queue-scaler serve` process.

Every answer must be OK or one of the statuses the SPEC gives for bad input or absent targets;
never INTERNAL, never a hang. Hosts are drawn only from loopback addresses (and malformed
text), so no example makes the scaler resolve or reach anything else.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.metadata import keys_of
from scaler.sources import CommonMetadata
from scaler.sources.activemq import ActiveMQMetadata
from scaler.sources.kafka import KafkaMetadata
from scaler.sources.rabbitmq import RabbitMQMetadata
from tests.integration.brokers import ArtemisHelper, address_of
from tests.integration.scaler_process import ScalerProcess

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED}
KNOWN_KEYS = sorted(keys_of(CommonMetadata) | keys_of(KafkaMetadata) | keys_of(RabbitMQMetadata)
                    | keys_of(ActiveMQMetadata))
HOST_KEYS = {"bootstrapServers", "bootstrapServersFromEnv", "host", "hostFromEnv",
             "managementEndpoint", "managementEndpointFromEnv", "restApiTemplate",
             "restAPITemplate"}
flavors = st.sampled_from(["artemis", "classic", "Artemis", ""])

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "-1", "0", "1", "1.5", "nan", "inf", "-inf", "1e309", "true",
                     "TRUE", "yes", "9" * 40, "-9" * 20, "\x00", "ü" * 10, "(a+)+$", "[",
                     "^(a|a)*$", "%2F", "/", "a,,b", "1-", "5-1", "0-99999999"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.just("x" * 100_000),
)


def loopback_hosts(kafka: str, amqp_url: str, http_url: str, artemis: str
                   ) -> st.SearchStrategy[str]:
    """Hosts on loopback only: the real test brokers, malformed ones and closed ports."""
    amqp, http = address_of(amqp_url), address_of(http_url)
    jolokia = "/console/jolokia/read/org.apache.activemq.artemis:broker=%22b%22/Version"
    return st.sampled_from([
        "127.0.0.1:1", "localhost:1", kafka, "127.0.0.1", "127.0.0.1:0",
        "127.0.0.1:99999", f"{kafka},127.0.0.1:1", f":{kafka.rsplit(':', 1)[1]}",
        "127.0.0.1:abc", amqp_url, f"amqp://guest:bad@{amqp}/nope", http_url,
        "https://127.0.0.1:1/", "amqp://127.0.0.1:1/%zz", "ftp://127.0.0.1/", "amqp://[::1",
        f"http://user@{http}/a/b/c", "amqp://", artemis, f"http://{artemis}{jolokia}",
        f"http://127.0.0.1:1{jolokia}", f"http://{artemis}/console/jolokia/read/x/", "http://[",
    ])


@st.composite
def metadata_maps(draw: st.DrawFn, hosts: st.SearchStrategy[str]) -> dict[str, str]:
    source = draw(st.sampled_from(["kafka", "rabbitmq", "kafka", "rabbitmq", "activemq", ""]))
    keys = draw(st.lists(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=20)),
                         max_size=12))
    metadata = {"source": source}
    for key in keys:
        metadata[key] = draw(hosts if key in HOST_KEYS else flavors if key == "flavor"
                             else nasty_text)
    return metadata


@pytest.fixture(scope="module")
def scaler() -> Iterator[ScalerProcess]:
    process = ScalerProcess("--broker-timeout", "1.5")
    yield process
    assert process.stop() == 0
    assert "Traceback" not in process.log(), process.log()


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # the 100 kB values
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), metric_name=st.one_of(st.none(), st.text(max_size=30)))
def test_every_rpc_answers_with_an_expected_status_and_never_hangs(
        scaler: ScalerProcess, kafka_bootstrap: str, rabbitmq_amqp_url: str,
        rabbitmq_http_url: str, artemis_helper: ArtemisHelper, data: st.DataObject,
        metric_name: str | None) -> None:
    metadata = data.draw(metadata_maps(loopback_hosts(
        kafka_bootstrap, rabbitmq_amqp_url, rabbitmq_http_url, artemis_helper.management)),
        label="metadata")
    with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        so_ref = pb.ScaledObjectRef(name="fuzz", namespace="fuzz", scalerMetadata=metadata)
        codes = []
        for call in (
            lambda: stub.GetMetricSpec(so_ref, timeout=5),
            lambda: stub.IsActive(so_ref, timeout=5),
            lambda: stub.GetMetrics(pb.GetMetricsRequest(
                scaledObjectRef=so_ref, metricName=metric_name or ""), timeout=5),
        ):
            try:
                call()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())  # type: ignore[attr-defined]
        assert set(codes) <= ALLOWED, (metadata, codes)


def test_an_oversized_request_is_refused_and_the_server_goes_on(scaler: ScalerProcess) -> None:
    huge = pb.ScaledObjectRef(name="huge", namespace="fuzz",
                              scalerMetadata={"source": "kafka", "topic": "t" * 2_000_000})
    small = pb.ScaledObjectRef(name="small", namespace="fuzz", scalerMetadata={"source": "x"})
    with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.IsActive(huge, timeout=5)
        with pytest.raises(grpc.RpcError) as still_serving:
            stub.IsActive(small, timeout=5)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert still_serving.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
