"""ActiveMQ queue size through Jolokia, against the real brokers (Artemis with its web
console's Jolokia, Classic with the Jolokia JVM agent), through the gRPC server (and its reader
process) the way KEDA calls it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from scaler import app, sources
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.settings import Settings
from tests.integration.brokers import AGENT_TEMPLATE, ArtemisHelper, ClassicHelper
from tests.integration.http_proxy import CountingHttpProxy

Names = Callable[[str], str]
POLL_INTERVAL_S = 0.5


@pytest.fixture
def queue(artemis_helper: ArtemisHelper, unique_name: Names) -> Iterator[str]:
    name = unique_name("q")
    artemis_helper.create(name)
    yield name
    artemis_helper.delete(name)


def artemis_trigger(helper: ArtemisHelper, queue: str, **extra: str) -> dict[str, str]:
    return {"source": "activemq", "flavor": "artemis",
            "managementEndpoint": helper.management, "brokerName": helper.broker,
            "brokerAddress": queue, "queueName": queue, "usernameFromEnv": helper.user,
            "passwordFromEnv": helper.password, **extra}


def ref(metadata: dict[str, str], name: str = "worker") -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace="default", scalerMetadata=metadata)


async def metric_value(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef) -> float:
    spec = await stub.GetMetricSpec(so_ref)
    metrics = await stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=so_ref, metricName=spec.metricSpecs[0].metricName))
    return float(metrics.metricValues[0].metricValueFloat)


async def value_after_change(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef,
                             expected: float) -> float:
    """The value once it reads `expected`, or the last one after 5 s. Right after a change, one
    read that began before it may still be answering (requests share the read in flight)."""
    deadline = time.monotonic() + 5
    value = await metric_value(stub, so_ref)
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = await metric_value(stub, so_ref)
    return value


async def test_messages_sent_to_an_artemis_queue_are_read_through_grpc(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str) -> None:
    so_ref = ref(artemis_trigger(artemis_helper, queue, queueLength="4"))
    assert await metric_value(stub, so_ref) == 0
    assert (await stub.IsActive(so_ref)).result is False

    artemis_helper.send(queue, 7)
    spec = await stub.GetMetricSpec(so_ref)
    assert spec.metricSpecs[0].metricName == f"artemis-{queue}"
    assert spec.metricSpecs[0].targetSizeFloat == 4
    assert await value_after_change(stub, so_ref, 7) == 7 == artemis_helper.count(queue)
    assert (await stub.IsActive(so_ref)).result is True


@pytest.mark.parametrize(("activation", "sent", "active"), [
    pytest.param("5", 5, False, id="at-activation-is-inactive"),
    pytest.param("5", 6, True, id="above-activation-is-active"),
    pytest.param("0", 1, True, id="default-activation-wakes-on-one-message"),
])
async def test_activation_queue_length_decides_activity(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str,
        activation: str, sent: int, active: bool) -> None:
    artemis_helper.send(queue, sent)
    so_ref = ref(artemis_trigger(artemis_helper, queue, activationQueueLength=activation))
    assert (await stub.IsActive(so_ref)).result is active
    assert await metric_value(stub, so_ref) == sent


async def test_a_rest_api_template_reads_the_same_queue(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str) -> None:
    artemis_helper.send(queue, 3)
    # KEDA's documented form: a literal Jolokia GET URL, quotes and all.
    template = (f"http://{artemis_helper.management}/console/jolokia/read/"
                f"{artemis_helper.queue_mbean(queue)}/MessageCount")
    so_ref = ref({"source": "activemq", "flavor": "artemis", "restApiTemplate": template,
                  "usernameFromEnv": artemis_helper.user,
                  "passwordFromEnv": artemis_helper.password})
    assert await metric_value(stub, so_ref) == 3


async def rpc_error(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef
                    ) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.IsActive(so_ref)
    return raised.value


async def test_a_missing_queue_is_not_found_and_names_the_queue(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, unique_name: Names
        ) -> None:
    missing = unique_name("missing")
    error = await rpc_error(stub, ref(artemis_trigger(artemis_helper, missing)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert f"queue {missing!r} at address {missing!r} does not exist on broker" in (
        error.details() or "")


async def test_a_missing_broker_is_not_found_and_lists_the_brokers_there(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str) -> None:
    error = await rpc_error(stub, ref(artemis_trigger(artemis_helper, queue,
                                                      brokerName="no-such-broker")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (f"broker 'no-such-broker' does not exist (brokerName; brokers there: "
            f"{artemis_helper.broker!r})") in (error.details() or "")


async def test_a_wrong_password_is_permission_denied_without_the_password(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str) -> None:
    wrong = "Wr0ng-Artemis-Pa55"
    error = await rpc_error(stub, ref(artemis_trigger(artemis_helper, queue,
                                                      passwordFromEnv=wrong)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"login refused for user {artemis_helper.user!r}" in (error.details() or "")
    assert wrong not in (error.details() or "")


async def test_an_origin_artemis_does_not_allow_is_refused_with_what_to_change(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str) -> None:
    error = await rpc_error(stub, ref(artemis_trigger(artemis_helper, queue,
                                                      corsHeader="http://elsewhere.example")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "set corsHeader to an origin" in (error.details() or "")


async def test_an_unreachable_endpoint_is_unavailable_never_zero(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str) -> None:
    error = await rpc_error(stub, ref(artemis_trigger(artemis_helper, queue,
                                                      managementEndpoint="127.0.0.1:1")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "Jolokia at http://127.0.0.1:1/console/jolokia" in (error.details() or "")


async def test_one_missing_queue_fails_only_its_own_scaled_object(
        stub: pb_grpc.ExternalScalerStub, artemis_helper: ArtemisHelper, queue: str,
        unique_name: Names) -> None:
    artemis_helper.send(queue, 2)
    good = ref(artemis_trigger(artemis_helper, queue), "good")
    bad = ref(artemis_trigger(artemis_helper, unique_name("missing")), "bad")
    outcomes = await asyncio.gather(metric_value(stub, good), rpc_error(stub, bad))
    assert outcomes[0] == 2
    assert isinstance(outcomes[1], grpc.aio.AioRpcError)
    assert outcomes[1].code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture
def classic_queue(classic_helper: ClassicHelper, unique_name: Names) -> Iterator[str]:
    name = unique_name("q")
    classic_helper.create(name)
    yield name
    classic_helper.delete(name)


WRONG_PASSWORD = "Wr0ng-Classic-Pa55"


class TestClassic:
    """Through named connections, as production would: the endpoint, the CA and the login
    live in the scaler's connections file, the ScaledObject names the broker and queue."""

    @pytest.fixture
    async def scaler(self, scaler_settings: Settings, classic_helper: ClassicHelper,
                     tmp_path: Path) -> AsyncIterator[app.App]:
        connections = tmp_path / "connections.toml"
        tables = {"classic": classic_helper.password, "classic-wrong-password": WRONG_PASSWORD}
        text = "".join(
            f'[connections.{name}]\nsource = "activemq"\nflavor = "classic"\n'
            f'managementEndpoint = "{classic_helper.endpoint}"\n'
            f'caFile = "{classic_helper.ca_file}"\nusername = "{classic_helper.user}"\n'
            f'password = "{password}"\n\n' for name, password in tables.items())
        text += (f'[connections.classic-unknown-ca]\nsource = "activemq"\n'
                 f'managementEndpoint = "{classic_helper.endpoint}"\nflavor = "classic"\n'
                 f'username = "{classic_helper.user}"\n'
                 f'password = "{classic_helper.password}"\n')
        connections.write_text(text)
        running = await app.start(scaler_settings, sources.load_connections(str(connections)))
        yield running
        await running.stop()

    @staticmethod
    def trigger(helper: ClassicHelper, queue: str, connection: str = "classic", **extra: str
                ) -> dict[str, str]:
        return {"source": "activemq", "connection": connection,
                "restAPITemplate": AGENT_TEMPLATE, "brokerName": helper.broker,
                "destinationName": queue, **extra}

    async def test_messages_sent_to_a_classic_queue_are_read_through_grpc(
            self, stub: pb_grpc.ExternalScalerStub, classic_helper: ClassicHelper,
            classic_queue: str) -> None:
        so_ref = ref(self.trigger(classic_helper, classic_queue, targetQueueSize="2",
                                  activationTargetQueueSize="3"))
        classic_helper.send(classic_queue, 3)
        spec = await stub.GetMetricSpec(so_ref)
        assert spec.metricSpecs[0].metricName == f"activemq-{classic_queue}"
        assert spec.metricSpecs[0].targetSizeFloat == 2
        assert await metric_value(stub, so_ref) == 3 == classic_helper.count(classic_queue)
        assert (await stub.IsActive(so_ref)).result is False  # 3 is not above 3

        classic_helper.send(classic_queue, 2)
        assert await value_after_change(stub, so_ref, 5) == 5
        assert (await stub.IsActive(so_ref)).result is True

    async def test_classic_answers_what_is_missing_refused_or_unverified(
            self, stub: pb_grpc.ExternalScalerStub, classic_helper: ClassicHelper,
            classic_queue: str, unique_name: Names) -> None:
        missing = unique_name("missing")
        cases = {
            "queue": self.trigger(classic_helper, missing),
            "broker": self.trigger(classic_helper, classic_queue, brokerName="nope"),
            "password": self.trigger(classic_helper, classic_queue, "classic-wrong-password"),
            "unknown-ca": self.trigger(classic_helper, classic_queue, "classic-unknown-ca"),
            # the web console's path (KEDA's default template), which the agent does not serve
            "console-path": self.trigger(
                classic_helper, classic_queue,
                restAPITemplate=AGENT_TEMPLATE.replace("/jolokia/", "/api/jolokia/")),
        }
        errors = {case: await rpc_error(stub, ref(metadata, case))
                  for case, metadata in cases.items()}
        details = {case: error.details() or "" for case, error in errors.items()}

        assert {case: error.code() for case, error in errors.items()} == {
            "queue": grpc.StatusCode.NOT_FOUND, "broker": grpc.StatusCode.NOT_FOUND,
            "password": grpc.StatusCode.PERMISSION_DENIED,
            "unknown-ca": grpc.StatusCode.UNAVAILABLE,
            "console-path": grpc.StatusCode.NOT_FOUND}, details
        assert f"queue {missing!r} does not exist on broker {classic_helper.broker!r}" in (
            details["queue"])
        assert (f"broker 'nope' does not exist (brokerName; brokers there: "
                f"{classic_helper.broker!r})") in details["broker"]
        assert "login refused" in details["password"]
        assert WRONG_PASSWORD not in details["password"]
        assert "certificate could not be verified" in details["unknown-ca"]
        assert "caFile" in details["unknown-ca"]
        assert "no Jolokia here (HTTP 404)" in details["console-path"]


class TestOneBulkRequestPerCycle:
    @pytest.fixture
    def scaler_settings(self) -> Settings:
        # Background reads every 0.5 s; answers may be 5 s old, so KEDA's calls never read.
        return Settings(grpc_address="127.0.0.1:0", http_address="127.0.0.1:0",
                        poll_interval_s=POLL_INTERVAL_S, max_data_age_s=5.0,
                        shutdown_grace_s=1.0)

    async def test_a_hundred_scaled_objects_on_one_broker_cost_one_request_per_cycle(
            self, scaler: app.App, stub: pb_grpc.ExternalScalerStub,
            artemis_helper: ArtemisHelper, unique_name: Names) -> None:
        queues = [unique_name(f"q{index}") for index in range(20)]
        artemis_helper.create(*queues)
        try:
            for index, name in enumerate(queues):
                artemis_helper.send(name, index)
            with CountingHttpProxy(artemis_helper.management) as proxy:
                # 100 ScaledObjects, five per queue (distinct names, as in a cluster).
                refs = [ref(artemis_trigger(artemis_helper, queues[index % 20],
                                            managementEndpoint=proxy.address,
                                            corsHeader=f"http://{artemis_helper.management}"),
                            f"so-{index}") for index in range(100)]
                values = await asyncio.gather(*(metric_value(stub, r) for r in refs))
                assert values == [float(index % 20) for index in range(100)]

                cycles_before = cycles(scaler)
                proxy.reset()
                started = time.monotonic()
                for _ in range(3):  # what KEDA does on each polling interval, three times
                    await asyncio.gather(*(keda_poll(stub, so_ref) for so_ref in refs))
                    await asyncio.sleep(1.0)
                requests = list(proxy.requests)
                cycles_run = cycles(scaler) - cycles_before
                elapsed = time.monotonic() - started
        finally:
            artemis_helper.delete(*queues)

        assert scaler.poller.stats() == {"connections": 1, "targets": 20}
        # Each background cycle reads the 20 queues of all 100 ScaledObjects with one bulk
        # POST; the 900 RPCs add none.
        assert 2 <= cycles_run <= elapsed / POLL_INTERVAL_S + 2, (cycles_run, elapsed)
        assert set(requests) == {("POST", "/console/jolokia/")}
        # A cycle counts once its answer is back, so one read may straddle either end of the
        # window.
        assert abs(len(requests) - cycles_run) <= 1, (len(requests), cycles_run)


async def keda_poll(stub: pb_grpc.ExternalScalerStub, so_ref: pb.ScaledObjectRef) -> None:
    spec = await stub.GetMetricSpec(so_ref)
    await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=so_ref,
                                               metricName=spec.metricSpecs[0].metricName))
    await stub.IsActive(so_ref)


def cycles(scaler: app.App) -> int:
    """Poll cycles of ActiveMQ connections so far, from the scaler's own metric."""
    return int(scaler.registry.get_sample_value("queue_scaler_poll_cycles_total",
                                                {"source": "activemq"}) or 0)
