"""What one client can make the scaler hold: concurrent streams per connection and request size
are bounded by flags, and thousands of StreamIsActive streams are served in bounded memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import grpc
import pytest

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from tests.integration.brokers import RabbitMQHelper
from tests.integration.scaler_process import ScalerProcess

Names = Callable[[str], str]


@pytest.fixture
def busy_queue(rabbitmq_helper: RabbitMQHelper, unique_name: Names) -> Iterator[str]:
    queue = rabbitmq_helper.declare(unique_name("streams"))
    rabbitmq_helper.publish(queue, 3)
    yield queue
    rabbitmq_helper.delete(queue)


def stream_ref(name: str, amqp_url: str, queue: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace="limits", scalerMetadata={
        "source": "rabbitmq", "hostFromEnv": amqp_url, "queueName": queue})


class Served:
    """Names of the streams that got their first answer, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self.names)

    def add(self, name: str) -> None:
        self.names.append(name)
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 30) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def first_answer(stub: pb_grpc.ExternalScalerStub, ref: pb.ScaledObjectRef,
                       served: Served, refused: list[grpc.StatusCode] | None = None) -> None:
    """Holds a StreamIsActive open after its first answer, as KEDA does, until the server ends
    it; a refused stream's status goes to `refused`."""
    call = stub.StreamIsActive(ref)
    try:
        async for reply in call:
            assert reply.result
            served.add(ref.name)
    except grpc.aio.AioRpcError as error:
        if refused is None:
            raise
        refused.append(error.code())
    finally:
        call.cancel()  # the stream is closed when the task is, not when it is collected


async def test_streams_beyond_the_per_connection_limit_are_not_served_while_it_is_full(
        rabbitmq_amqp_url: str, busy_queue: str) -> None:
    scaler = ScalerProcess("--max-streams-per-connection", "20")
    served = Served()
    refused: list[grpc.StatusCode] = []
    address = f"127.0.0.1:{scaler.grpc_port}"
    try:
        # A local subchannel pool: channels in one process otherwise share one connection.
        async with grpc.aio.insecure_channel(address) as full, grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]) as other:
            stub = pb_grpc.ExternalScalerStub(full)
            first = [asyncio.create_task(first_answer(
                stub, stream_ref(f"first-{i}", rabbitmq_amqp_url, busy_queue), served))
                for i in range(20)]
            await served.wait_for(lambda: len(served) == 20)
            over = [asyncio.create_task(first_answer(
                stub, stream_ref(f"over-{i}", rabbitmq_amqp_url, busy_queue), served, refused))
                for i in range(10)]
            await asyncio.sleep(3)  # many poll intervals: they would have been answered by now
            served_while_full = len(served) - 20
            # The limit is per connection: another client is not starved by this one.
            elsewhere = asyncio.create_task(first_answer(
                pb_grpc.ExternalScalerStub(other),
                stream_ref("elsewhere", rabbitmq_amqp_url, busy_queue), served))
            await served.wait_for(lambda: "elsewhere" in served.names)
            for task in [*first, *over, elsewhere]:
                task.cancel()
            await asyncio.gather(*first, *over, elsewhere, return_exceptions=True)
    finally:
        assert scaler.stop() == 0

    assert served_while_full == 0
    # HTTP/2's limit: the client queues streams beyond it, or the server refuses them
    # (REFUSED_STREAM, which KEDA retries like any broken stream).
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE}, refused


async def test_two_thousand_streams_are_served_in_bounded_memory_and_end_on_sigterm(
        rabbitmq_amqp_url: str, busy_queue: str) -> None:
    scaler = ScalerProcess()
    served = Served()
    streams = 2_000
    try:
        before_kib = scaler.peak_rss_kib()
        # All at once on one connection, as KEDA opens them when its operator starts.
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{scaler.grpc_port}")
        stub = pb_grpc.ExternalScalerStub(channel)
        tasks = [asyncio.create_task(first_answer(
            stub, stream_ref(f"so-{i}", rabbitmq_amqp_url, busy_queue), served))
            for i in range(streams)]
        await served.wait_for(lambda: len(served) == streams, timeout_s=120)
        after_kib = scaler.peak_rss_kib()
        scaler.process.terminate()
        # Every stream ends normally (KEDA reopens it elsewhere), none is cut off.
        async with asyncio.timeout(60):
            ended = await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()
    finally:
        assert scaler.stop() == 0
    assert ended == [None] * streams, {repr(outcome) for outcome in ended}
    assert " ERROR " not in scaler.log(), scaler.log()[-3000:]

    growth_mib = (after_kib - before_kib) / 1024
    print(f"{streams} open streams: peak RSS {before_kib / 1024:.0f} -> "
          f"{after_kib / 1024:.0f} MiB (+{growth_mib:.0f} MiB)")
    assert len(set(served.names)) == streams
    # Tens of kilobytes per stream at most: 2,000 streams must not cost hundreds of megabytes.
    assert growth_mib < 100


def test_the_request_size_limit_is_configurable(rabbitmq_amqp_url: str) -> None:
    scaler = ScalerProcess("--max-request-bytes", "8192")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scaler.grpc_port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            big = stream_ref("big", rabbitmq_amqp_url, "q" * 10_000)
            small = stream_ref("small", rabbitmq_amqp_url, "q" * 300)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetMetricSpec(big, timeout=5)
            with pytest.raises(grpc.RpcError) as served:
                stub.GetMetricSpec(small, timeout=5)
    finally:
        assert scaler.stop() == 0
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    # The small one got through to metadata parsing: a 300-byte queue name is too long for AMQP.
    assert served.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "queueName" in served.value.details()  # type: ignore[attr-defined]
