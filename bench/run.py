"""Benchmarks of issue 5, against the real Kafka and RabbitMQ that the testbed starts.

    eval "$(python -m tests.testbed up)" && python bench/run.py [--sizes 1,100,1000] [--trials 50]

1. fan-in: N ScaledObjects (distinct groups over 10 topics of 300 partitions) polled the way
   KEDA does (GetMetricSpec + GetMetrics + IsActive, plus the HPA's GetMetrics), against the
   shared poller and against a per-call baseline (bench/baseline_server.py). Broker requests
   are counted at the wire by a proxy (tests/integration/kafka_proxy.py); CPU seconds and peak
   RSS are those of the scaler's processes, serving and reader, added up (/proc). With
   --seconds-sizes, the same ScaledObjects with `lagMetric: seconds` too (record timestamps
   read with Fetch; the groups' committed offsets do not move, so after the first cycle every
   timestamp comes from the cache).
2. activation: produce to an idle topic (publish to an idle queue) -> `true` on an open
   StreamIsActive.
3. lag math: one decision over 100,000 partitions, in memory.
4. status page: rendering `/` at 1,000 triggers with 30 minutes of history, in memory
   (bench/status_page.py).
Prints tables; writes nothing. Figures go to bench/README.md by hand, with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
import kafka  # noqa: E402
import pika  # noqa: E402
import status_page as page_bench  # noqa: E402 - bench/status_page.py, beside this file
from kafka.admin import NewTopic  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from scaler._proto import externalscaler_pb2 as pb  # noqa: E402
from scaler._proto import externalscaler_pb2_grpc as pb_grpc  # noqa: E402
from scaler.policy import ReplicaBounds, lag  # noqa: E402
from tests.integration.kafka_proxy import CountingKafkaProxy  # noqa: E402
from tests.integration.scaler_process import ScalerProcess  # noqa: E402

LAYOUTS = {"100x30": (100, 30), "10x300": (10, 300)}
"""topics x partitions: 3,000 partitions either way; group i reads topic i % topics."""
POLL_INTERVAL_S = 2.0
ROUNDS = 3
ROUND_S = 5.0  # KEDA's default polling interval is 30 s; 5 s makes the load 6x heavier


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f'{name} is not set: run eval "$(python -m tests.testbed up)" first')
    return value


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(scaler: ScalerProcess) -> float:
    """User and system CPU seconds of the scaler's process and its children."""
    total = 0
    for pid in scaler.process_ids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def counter(scaler: ScalerProcess, name: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(scaler.http("/metrics"))
               for sample in family.samples if sample.name == name)


def get_metrics_buckets(scaler: ScalerProcess) -> dict[float, float]:
    """The scaler's own GetMetrics duration histogram: upper bound (s) -> cumulative count."""
    return {float(sample.labels["le"]): sample.value
            for family in text_string_to_metric_families(scaler.http("/metrics"))
            for sample in family.samples
            if sample.name == "queue_scaler_grpc_request_duration_seconds_bucket"
            and sample.labels.get("method") == "GetMetrics"}


def server_percentile_bound(before: dict[float, float], after: dict[float, float],
                            fraction: float) -> float:
    """The histogram bucket bound that `fraction` of the calls in between stayed under."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1]
    return next(bound for bound, count in counts if count >= fraction * total)


def prepare_kafka(bootstrap: str, layout: str, groups: int) -> list[tuple[str, str, int]]:
    """The layout's topics with 10 messages each, and `groups` groups committed at offset 0 on
    every partition of their topic. Reused across runs. Returns (group, topic, partitions)."""
    topic_count, partitions = LAYOUTS[layout]
    admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench")
    topics = [f"bench-{layout}-{index}" for index in range(topic_count)]
    missing = [t for t in topics if t not in set(admin.list_topics())]
    if missing:
        admin.create_topics([NewTopic(t, partitions, 1) for t in missing])
        admin.wait_for_topics(missing, timeout_ms=60000)
        producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
        for topic in missing:
            for index in range(10):
                producer.send(topic, b"x", partition=index % partitions)
        producer.flush()
        producer.close()
    triples = [(f"bench-{layout}-g{index}", topics[index % topic_count], partitions)
               for index in range(groups)]
    existing = {group["group_id"] for group in admin.list_groups()}
    for group, topic, _ in triples:
        if group not in existing:
            admin.alter_group_offsets(group, {
                kafka.TopicPartition(topic, p): OffsetAndMetadata(0, "", -1)
                for p in range(partitions)})
    admin.close()
    return triples


async def keda_rounds(port: int, refs: list[pb.ScaledObjectRef], rounds: int
                      ) -> tuple[list[float], int]:
    """Polls every ScaledObject once per round as KEDA and the HPA do, each on its own timer
    spread evenly over the round (KEDA runs one polling loop per ScaledObject); returns the
    GetMetrics latencies (seconds) and the count of failed calls."""
    latencies: list[float] = []
    failures = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)

        async def timed_get_metrics(so_ref: pb.ScaledObjectRef, name: str) -> None:
            started = time.perf_counter()
            await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=so_ref, metricName=name),
                                  timeout=60)
            latencies.append(time.perf_counter() - started)

        async def poll(so_ref: pb.ScaledObjectRef, at: float) -> None:
            nonlocal failures
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            try:
                spec = await stub.GetMetricSpec(so_ref, timeout=60)
                name = spec.metricSpecs[0].metricName
                await timed_get_metrics(so_ref, name)       # KEDA's polling loop
                await stub.IsActive(so_ref, timeout=60)
                await timed_get_metrics(so_ref, name)       # the HPA's metrics query
            except grpc.aio.AioRpcError:
                failures += 1

        start = time.monotonic()
        await asyncio.gather(*(
            poll(so_ref, start + (r + index / len(refs)) * ROUND_S)
            for r in range(rounds) for index, so_ref in enumerate(refs)))
    return latencies, failures


def fan_in(size: int, layout: str, triples: list[tuple[str, str, int]],
           proxy: CountingKafkaProxy, *, baseline: bool, seconds: bool = False
           ) -> dict[str, object]:
    baseline_command = [sys.executable, str(REPO / "bench" / "baseline_server.py")]
    threshold = ({"lagMetric": "seconds", "lagSecondsThreshold": "100"} if seconds
                 else {"lagThreshold": "100"})
    refs = [pb.ScaledObjectRef(name=f"so-{i}", namespace="bench", scalerMetadata={
        "source": "kafka", "bootstrapServers": proxy.address, "consumerGroup": group,
        "topic": topic, **threshold})
        for i, (group, topic, _) in enumerate(triples[:size])]
    scaler = ScalerProcess("--poll-interval", str(POLL_INTERVAL_S), "--max-data-age", "5",
                           "--broker-timeout", "10",
                           command=baseline_command if baseline else None)
    try:
        asyncio.run(keda_rounds(scaler.grpc_port, refs, 1))  # registers every target
        proxy.reset()
        cycles_before = 0.0 if baseline else counter(scaler, "queue_scaler_poll_cycles_total")
        buckets_before = {} if baseline else get_metrics_buckets(scaler)
        cpu_before = cpu_seconds(scaler)
        started = time.monotonic()
        latencies, failures = asyncio.run(keda_rounds(scaler.grpc_port, refs, ROUNDS))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(scaler) - cpu_before
        counts = proxy.counts()
        cycles = 0.0 if baseline else (
            counter(scaler, "queue_scaler_poll_cycles_total") - cycles_before)
        rss = scaler.peak_rss_kib() / 1024
        server_p99 = "-" if baseline else round(server_percentile_bound(
            buckets_before, get_metrics_buckets(scaler), 0.99) * 1000, 2)
    finally:
        scaler.stop()
    total = sum(counts.values())
    return {
        "mode": "per-call baseline" if baseline else (
            "shared poller, lagMetric: seconds" if seconds else "shared poller"),
        "ScaledObjects": size,
        "topics x partitions": layout,
        "partitions read": sum(p for _, _, p in triples[:size]),
        "partitions": sum(p for _, p in {(t, p) for _, t, p in triples[:size]}),
        "GetMetrics p50 ms": round(statistics.median(latencies) * 1000, 2),
        "GetMetrics p99 ms": round(percentile(latencies, 0.99) * 1000, 2),
        "in-server p99 <= ms": server_p99,
        "failed calls": failures,
        "broker requests per KEDA round": round(total / ROUNDS, 1),
        "per poll cycle": round(total / cycles, 1) if cycles else "-",
        "by API per round": {k: round(v / ROUNDS, 1) for k, v in sorted(counts.items())},
        "by API per cycle": {k: round(v / cycles, 1) for k, v in sorted(counts.items())}
        if cycles else "-",
        "window s": round(elapsed, 1),
        "scaler CPU s": round(cpu, 2),
        "peak RSS MB": round(rss, 1),
    }


async def activation_trials(port: int, trials: int, metadata: dict[str, str],
                            make_work: object, clear_work: object) -> list[float]:
    """Seconds from the first message to `true` on an open StreamIsActive, per trial."""
    so_ref = pb.ScaledObjectRef(name="wake", namespace="bench", scalerMetadata=metadata)
    rng = random.Random(11)
    results = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        for _ in range(trials):
            clear_work()  # type: ignore[operator]
            while (await stub.IsActive(so_ref)).result:  # noqa: ASYNC110 - remote state
                await asyncio.sleep(0.2)
            stream = stub.StreamIsActive(so_ref)
            # Let the stream settle on "inactive", then produce at a random phase of the
            # scaler's 1 s read cycle, as real traffic would.
            await asyncio.sleep(1.0 + rng.random())
            started = time.perf_counter()
            make_work()  # type: ignore[operator]
            reply = await asyncio.wait_for(stream.read(), timeout=30)
            results.append(time.perf_counter() - started)
            assert reply.result is True
            stream.cancel()
    return results


def activation(trials: int) -> list[dict[str, object]]:
    bootstrap = env("QUEUE_SCALER_TEST_KAFKA")
    amqp_url = env("QUEUE_SCALER_TEST_RABBITMQ_AMQP")
    admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench")
    topic, group = f"bench-wake-{int(time.time())}", "bench-wake"
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.wait_for_topics([topic])
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    tp = kafka.TopicPartition(topic, 0)

    def commit_to_end() -> None:
        end = admin.list_partition_offsets({tp: kafka.OffsetSpec.LATEST})[tp].offset
        admin.alter_group_offsets(group, {tp: OffsetAndMetadata(end, "", -1)})

    def produce() -> None:
        producer.send(topic, b"wake", partition=0)
        producer.flush()

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    queue = "bench-wake"
    channel.queue_declare(queue)

    scaler = ScalerProcess("--stream-interval", "1", "--max-data-age", "1")
    try:
        # The two series at once, each on its own thread and event loop: their producers and
        # clients block, and each blocks only its own series.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            kafka_series = pool.submit(asyncio.run, activation_trials(
                scaler.grpc_port, trials, {"source": "kafka", "bootstrapServers": bootstrap,
                                           "consumerGroup": group, "topic": topic},
                produce, commit_to_end))
            rabbit_series = pool.submit(asyncio.run, activation_trials(
                scaler.grpc_port, trials, {"source": "rabbitmq", "hostFromEnv": amqp_url,
                                           "queueName": queue},
                lambda: channel.basic_publish("", queue, b"wake"),
                lambda: channel.queue_purge(queue)))
            kafka_latencies, rabbit_latencies = kafka_series.result(), rabbit_series.result()
    finally:
        scaler.stop()
        connection.close()
        producer.close()
        admin.delete_topics([topic])
        admin.close()
    return [{"source": name, "trials": len(values),
             "p50 s": round(statistics.median(values), 3),
             "p99 s": round(percentile(values, 0.99), 3), "max s": round(max(values), 3)}
            for name, values in (("kafka", kafka_latencies), ("rabbitmq (amqp)", rabbit_latencies))]


def lag_math(partitions: int = 100_000) -> dict[str, object]:
    rng = random.Random(7)
    offsets = [lag.PartitionOffsets(f"t{i // 1000}", i % 1000, 0, end := rng.randint(0, 10**6),
                                    rng.choice([None, rng.randint(0, end)]))
               for i in range(partitions)]
    options = lag.LagOptions(10, 0, lag.OffsetResetPolicy.EARLIEST,
                             exclude_persistent_lag=True)
    stalled = {(o.topic, o.partition) for o in offsets[::3]}
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        lag.decide(offsets, options, ReplicaBounds(), stalled)
        timings.append(time.perf_counter() - started)
    return {"partitions": partitions, "median ms": round(statistics.median(timings) * 1000, 1),
            "max ms": round(max(timings) * 1000, 1)}


def show(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n## {title}\n")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--baseline-sizes", default="1,100",
                        help="the per-call baseline opens a client per ScaledObject")
    parser.add_argument("--seconds-sizes", default="1000",
                        help="also run these sizes with lagMetric: seconds")
    parser.add_argument("--layouts", default="100x30,10x300",
                        help="topics x partitions; the baseline runs on the first only")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--only", choices=("fan-in", "activation", "lag-math", "status-page"))
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    started = time.monotonic()
    if args.only in (None, "lag-math"):
        show("lag math", [lag_math()])
    if args.only in (None, "status-page"):
        show("status page", [page_bench.measure()])
    if args.only in (None, "fan-in"):
        sizes = [int(s) for s in args.sizes.split(",")]
        baseline_sizes = [int(s) for s in args.baseline_sizes.split(",") if s]
        seconds_sizes = [int(s) for s in args.seconds_sizes.split(",") if s]
        rows = []
        with CountingKafkaProxy(env("QUEUE_SCALER_TEST_KAFKA_PROXY_ADDRESS"),
                                env("QUEUE_SCALER_TEST_KAFKA_PROXIED_LISTENER")) as proxy:
            for layout in args.layouts.split(","):
                triples = prepare_kafka(env("QUEUE_SCALER_TEST_KAFKA"), layout,
                                        max(sizes + baseline_sizes + seconds_sizes))
                for size in sizes:
                    rows.append(fan_in(size, layout, triples, proxy, baseline=False))
                    if size in seconds_sizes:
                        rows.append(fan_in(size, layout, triples, proxy, baseline=False,
                                           seconds=True))
                    if size in baseline_sizes and layout == args.layouts.split(",")[0]:
                        rows.append(fan_in(size, layout, triples, proxy, baseline=True))
        by_api = [{"mode": r["mode"], "ScaledObjects": r["ScaledObjects"],
                   "topics x partitions": r["topics x partitions"],
                   "requests by API per KEDA round": r.pop("by API per round"),
                   "per poll cycle": r.pop("by API per cycle")} for r in rows]
        show("fan-in", rows)
        show("fan-in: broker requests by API", by_api)
    if args.only in (None, "activation"):
        show("activation from zero (StreamIsActive)", activation(args.trials))
    print(f"\nran for {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
