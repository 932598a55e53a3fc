"""``plait bench kafka``: plait serve driven by confluent-kafka, NATS JetStream as the peer.

Workload (both systems): 100-byte messages; durable acknowledged publishing
(Kafka: idempotent producer, acks=all; JetStream: a file-backed stream, every
publish acknowledged by the server); then reading everything back; then
publish → receive latency at a fixed rate, stamped with ``perf_counter_ns`` in the
payload and read in the same process. The broker and nats-server are separate
processes, so on a 2-core machine each system gets the same split of cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from plait.bench.cpus import split_cpus
from plait.bench.servers import start_nats
from plait.bench.stats import machine, percentiles_ms

STAMP = 8
LINGER = 0  # ms: send each message at once, the latency-first client setting


def _settle() -> None:
    """Before a latency phase: write back what the throughput phase left dirty in the page
    cache, so the kernel's writeback throttling of that phase's ~100 MB does not land in
    the next phase's latency tail (done for plait and the peer alike)."""
    os.sync()
    time.sleep(0.5)


def _payloads(count: int, size: int) -> list[bytes]:
    body = bytes(np.random.default_rng(3).integers(0, 256, size, dtype=np.uint8))
    return [body] * count


# -- plait serve through confluent-kafka ------------------------------------------------------


def kafka_throughput(bootstrap: str, topic: str, messages: int, size: int) -> dict[str, float]:
    import confluent_kafka as ck

    producer = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        }
    )
    body = _payloads(1, size)[0]
    chunk = [{"value": body}] * 50_000
    errors: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    start = time.perf_counter()
    sent = 0
    while sent < messages:
        part = chunk[: min(len(chunk), messages - sent)]
        try:
            queued = producer.produce_batch(topic, part, on_delivery=on_delivery)
        except BufferError:
            queued = 0
        sent += queued
        producer.poll(0 if queued else 0.01)
    producer.flush()
    produce_s = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} deliveries failed, first: {errors[0]}")

    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "plait-bench",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }
    )
    meta = consumer.list_topics(topic, timeout=10)
    consumer.assign(
        [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in meta.topics[topic].partitions]
    )
    got = 0
    start = time.perf_counter()
    while got < messages:
        batch = consumer.consume(num_messages=100_000, timeout=5)
        if not batch:
            raise RuntimeError(f"consumer stalled at {got} of {messages}")
        got += sum(1 for m in batch if m.error() is None)
    consume_s = time.perf_counter() - start
    consumer.close()
    return {
        "produce_msgs_per_s": round(messages / produce_s, 1),
        "produce_mb_per_s": round(messages * size / produce_s / 1e6, 2),
        "consume_msgs_per_s": round(messages / consume_s, 1),
        "consume_mb_per_s": round(messages * size / consume_s / 1e6, 2),
    }


def kcat_consume(bootstrap: str, topic: str, messages: int) -> dict[str, float] | None:
    """Read the topic with kcat (librdkafka from C), where installed.

    confluent-kafka's consumer makes a Python object per message, which caps it well
    below what the broker serves; kcat shows the broker's own consume rate.
    """
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        return None
    start = time.perf_counter()
    proc = subprocess.run(
        [kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "x"],
        check=False, capture_output=True, timeout=600,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or len(proc.stdout) != messages:
        raise RuntimeError(f"kcat read {len(proc.stdout)} of {messages}: {proc.stderr[-500:]!r}")
    return {"consume_kcat_msgs_per_s": round(messages / elapsed, 1)}


def kafka_latency(bootstrap: str, topic: str, rate: float, messages: int, size: int) -> dict[str, float]:
    import confluent_kafka as ck

    producer = ck.Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": LINGER}
    )
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "plait-bench-latency",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "fetch.min.bytes": 1,
        }
    )
    meta = consumer.list_topics(topic, timeout=10)
    consumer.assign(
        [ck.TopicPartition(topic, p, ck.OFFSET_END) for p in meta.topics[topic].partitions]
    )
    # Let the consumer reach the end before the clock starts.
    consumer.consume(num_messages=1, timeout=1.0)
    latencies: list[int] = []
    done = threading.Event()

    def receive() -> None:
        # poll() hands over each message as it arrives; consume(n) would wait to fill n.
        while len(latencies) < messages and not done.is_set():
            m = consumer.poll(0.2)
            if m is not None and m.error() is None:
                latencies.append(time.perf_counter_ns() - int.from_bytes(m.value()[:STAMP], "little"))

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    pad = b"\0" * (size - STAMP)
    start = time.perf_counter()
    for i in range(messages):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.0005, due - now))
        producer.produce(topic, time.perf_counter_ns().to_bytes(STAMP, "little") + pad)
        producer.poll(0)
    producer.flush()
    thread.join(timeout=30)
    done.set()
    consumer.close()
    out = percentiles_ms(np.array(latencies, dtype=np.int64))
    out["received"] = len(latencies)
    return {k: v for k, v in out.items() if k != "p999_ms"}


# -- NATS JetStream, the peer -----------------------------------------------------------------


async def _js_run(url: str, messages: int, size: int, rate: float, lat_messages: int) -> dict[str, float]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCH", subjects=["bench"], storage=StorageType.FILE))
    body = _payloads(1, size)[0]
    window = 2000  # publishes awaiting their ack at once, like a producer's in-flight window
    start = time.perf_counter()
    for first in range(0, messages, window):
        count = min(window, messages - first)
        await asyncio.gather(*(js.publish("bench", body) for _ in range(count)))
    produce_s = time.perf_counter() - start

    sub = await js.pull_subscribe(
        "bench", durable="reader", config=ConsumerConfig(ack_policy=AckPolicy.NONE)
    )
    got = 0
    start = time.perf_counter()
    while got < messages:
        batch = await sub.fetch(batch=5000, timeout=5)
        got += len(batch)
    consume_s = time.perf_counter() - start

    _settle()
    await js.add_stream(StreamConfig(name="LAT", subjects=["lat"], storage=StorageType.FILE))
    latencies: list[int] = []
    received = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        latencies.append(time.perf_counter_ns() - int.from_bytes(msg.data[:STAMP], "little"))
        if len(latencies) >= lat_messages:
            received.set()

    await js.subscribe("lat", cb=on_msg, config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    pad = b"\0" * (size - STAMP)
    pending: list[Any] = []
    start = time.perf_counter()
    for i in range(lat_messages):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = time.perf_counter_ns().to_bytes(STAMP, "little") + pad
        pending.append(asyncio.ensure_future(js.publish("lat", payload)))
        if len(pending) >= 512:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    try:
        await asyncio.wait_for(received.wait(), timeout=30)
    except TimeoutError:
        pass
    await nc.close()
    lat = percentiles_ms(np.array(latencies, dtype=np.int64))
    return {
        "produce_msgs_per_s": round(messages / produce_s, 1),
        "produce_mb_per_s": round(messages * size / produce_s / 1e6, 2),
        "consume_msgs_per_s": round(messages / consume_s, 1),
        "consume_mb_per_s": round(messages * size / consume_s / 1e6, 2),
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "received": len(latencies),
    }


# -- the command --------------------------------------------------------------------------------


@click.command("kafka")
@click.option("--bootstrap", default=None, help="Use this broker instead of starting plait serve.")
@click.option("--messages", type=click.IntRange(min=1000), default=1_000_000, show_default=True)
@click.option("--size", type=click.IntRange(min=STAMP), default=100, show_default=True)
@click.option("--partitions", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--rate", type=click.FloatRange(min=1), default=10_000, show_default=True,
              help="Messages/s of the latency phase.")
@click.option("--latency-messages", type=click.IntRange(min=100), default=30_000, show_default=True)
@click.option("--peer-messages", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Messages for the JetStream throughput phase (it is slower; fewer keeps runs short).")
@click.option("--peer/--no-peer", default=True, help="Measure NATS JetStream in the same run.")
@click.option("--cpus", type=click.Choice(["split", "shared"]), default="split", show_default=True,
              help="split: the server (plait serve, nats-server) on one CPU, the client on the "
                   "others, as on separate machines; shared: wherever the OS puts them.")
@click.option("--json", "as_json", is_flag=True)
def bench_kafka(
    bootstrap: str | None, messages: int, size: int, partitions: int, rate: float,
    latency_messages: int, peer_messages: int, peer: bool, cpus: str, as_json: bool,
) -> None:
    """Drive plait serve with confluent-kafka (idempotent, acks=all); JetStream as the peer."""
    from confluent_kafka.admin import AdminClient, NewTopic

    result: dict[str, Any] = {"machine": machine(), "messages": messages, "size": size}
    with tempfile.TemporaryDirectory(prefix="plait-bench-kafka-") as tmp:
        broker = None
        if bootstrap is None:
            from plait.broker.testing import ServeProcess

            broker = ServeProcess(Path(tmp) / "data", "--no-auto-create").start()
            bootstrap = broker.bootstrap
        try:
            with split_cpus(broker.proc.pid if broker and broker.proc else None, cpus) as placed:
                result["cpus"] = placed
                admin = AdminClient({"bootstrap.servers": bootstrap})
                for name in ("bench", "bench-latency"):
                    admin.create_topics([NewTopic(name, partitions if name == "bench" else 1, 1)])[name].result(30)
                result["plait"] = kafka_throughput(bootstrap, "bench", messages, size)
                result["plait"].update(kcat_consume(bootstrap, "bench", messages) or {})
                _settle()
                result["plait"].update(kafka_latency(bootstrap, "bench-latency", rate, latency_messages, size))
                del admin  # closes its connections before the broker goes away
        finally:
            if broker is not None:
                broker.stop()
        if peer:
            with start_nats(Path(tmp), jetstream=True) as nats, split_cpus(nats.pid, cpus):
                result["jetstream"] = asyncio.run(
                    _js_run(nats.url, peer_messages, size, rate, latency_messages)
                )
            for key in ("produce_msgs_per_s", "consume_msgs_per_s"):
                result[f"ratio_{key}"] = round(result["plait"][key] / result["jetstream"][key], 2)
    if as_json:
        click.echo(json.dumps(result))
        return
    for system in ("plait", "jetstream"):
        if system not in result:
            continue
        r = result[system]
        click.echo(
            f"{system:10} produce {r['produce_msgs_per_s']:>12,.0f} msg/s {r['produce_mb_per_s']:>7.1f} MB/s"
            f"   consume {r['consume_msgs_per_s']:>12,.0f} msg/s {r['consume_mb_per_s']:>7.1f} MB/s"
            f"   latency@{rate:g}/s p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms"
        )
        if "consume_kcat_msgs_per_s" in r:
            click.echo(f"{'':10} consume with kcat (C client) {r['consume_kcat_msgs_per_s']:>12,.0f} msg/s")
    if "jetstream" in result:
        click.echo(
            f"ratio plait/jetstream: produce {result['ratio_produce_msgs_per_s']}x, "
            f"consume {result['ratio_consume_msgs_per_s']}x"
        )
