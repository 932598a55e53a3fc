"""kafka-python and aiokafka against plait serve: compressed batches in, the same
records out through a consumer group, with offsets committed and read back."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from plait.broker.testing import ServeProcess

CODECS = ["gzip", "lz4", "zstd", "snappy"]
# kafka-python needs python-snappy for snappy, which is not a dependency here; snappy
# is covered by aiokafka (cramjam) and by librdkafka below.
KAFKA_PYTHON_CODECS = ["gzip", "lz4", "zstd"]
N = 300


def _expected(codec: str) -> list[tuple[bytes, bytes]]:
    return [(b"k%d" % (i % 7), f"{codec}-{i}".encode() * 5) for i in range(N)]


@pytest.mark.parametrize("codec", KAFKA_PYTHON_CODECS)
def test_kafka_python_compressed_group(serve: ServeProcess, codec: str) -> None:
    topic = f"kp-{codec}"
    producer = KafkaProducer(bootstrap_servers=serve.bootstrap, compression_type=codec,
                             linger_ms=20, acks="all")
    futures = [producer.send(topic, key=k, value=v) for k, v in _expected(codec)]
    producer.flush(15)
    meta = [f.get(10) for f in futures]
    producer.close()
    assert len({(m.partition, m.offset) for m in meta}) == N

    consumer = KafkaConsumer(
        topic, bootstrap_servers=serve.bootstrap, group_id=f"g-{codec}",
        auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=8000,
    )
    got = []
    for msg in consumer:
        got.append((msg.partition, msg.offset, msg.key, msg.value))
        if len(got) == N:
            break
    consumer.commit()
    parts = consumer.assignment()
    committed = {tp.partition: consumer.committed(tp) for tp in parts}
    consumer.close()

    assert sorted((k, v) for _p, _o, k, v in got) == sorted(_expected(codec))
    by_part: dict[int, list[int]] = {}
    for p, o, _k, _v in got:
        by_part.setdefault(p, []).append(o)
    for p, offsets in by_part.items():
        assert offsets == sorted(offsets), f"partition {p} out of order"
        assert committed[p] == offsets[-1] + 1


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_compressed_group(serve: ServeProcess, codec: str) -> None:
    topic = f"aio-{codec}"

    async def run() -> tuple[list[tuple[int, int, bytes, bytes]], dict[int, int | None]]:
        producer = AIOKafkaProducer(bootstrap_servers=serve.bootstrap, compression_type=codec,
                                    linger_ms=20, enable_idempotence=True)
        await producer.start()
        try:
            batch = [await producer.send(topic, key=k, value=v) for k, v in _expected(codec)]
            await asyncio.gather(*batch)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=serve.bootstrap,
                                    group_id=f"ag-{codec}", auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        got: list[tuple[int, int, bytes, bytes]] = []
        try:
            while len(got) < N:
                records = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 15)
                for recs in records.values():
                    got.extend((r.partition, r.offset, r.key, r.value) for r in recs)
            await consumer.commit()
            committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        finally:
            await consumer.stop()
        return got, committed

    got, committed = asyncio.run(run())
    assert sorted((k, v) for *_po, k, v in got) == sorted(_expected(codec))
    last: dict[int, int] = {}
    for p, o, _k, _v in got:
        assert o > last.get(p, -1), f"partition {p} out of order"
        last[p] = o
    assert committed == {p: o + 1 for p, o in last.items()}


def test_kafka_python_admin_and_offsets(serve: ServeProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=serve.bootstrap)
    from kafka.admin import NewTopic

    admin.create_topics([NewTopic("admin-t", num_partitions=4, replication_factor=1)])
    assert "admin-t" in admin.list_topics()
    producer = KafkaProducer(bootstrap_servers=serve.bootstrap)
    for i in range(10):
        producer.send("admin-t", value=b"%d" % i, partition=2)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=serve.bootstrap)
    tp = TopicPartition("admin-t", 2)
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: 10}
    consumer.close()
    admin.delete_topics(["admin-t"])
    assert "admin-t" not in admin.list_topics()
    admin.close()


@pytest.mark.parametrize("codec", CODECS)
def test_librdkafka_batches_read_by_aiokafka(serve: ServeProcess, codec: str) -> None:
    """Batches compressed by librdkafka are stored as sent and decoded by another client."""
    from confluent_kafka import Producer

    topic = f"rd-{codec}"
    p = Producer({"bootstrap.servers": serve.bootstrap, "compression.type": codec,
                  "linger.ms": 20})
    for k, v in _expected(codec):
        p.produce(topic, key=k, value=v)
    assert p.flush(15) == 0

    async def consume() -> list[tuple[bytes, bytes]]:
        c = AIOKafkaConsumer(topic, bootstrap_servers=serve.bootstrap,
                             auto_offset_reset="earliest", group_id=None)
        await c.start()
        out: list[tuple[bytes, bytes]] = []
        try:
            while len(out) < N:
                recs = await asyncio.wait_for(c.getmany(timeout_ms=1000), 15)
                out.extend((r.key, r.value) for rs in recs.values() for r in rs)
        finally:
            await c.stop()
        return out

    assert sorted(asyncio.run(consume())) == sorted(_expected(codec))


def test_acks_zero_and_offsets_for_times(serve: ServeProcess) -> None:
    producer = KafkaProducer(bootstrap_servers=serve.bootstrap, acks=0, linger_ms=0)
    base = 1_700_000_000_000
    for i in range(30):
        producer.send("times", value=b"%d" % i, partition=0, timestamp_ms=base + i * 1000)
        producer.flush()  # one batch per record, so the time index has a point for each
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=serve.bootstrap)
    tp = TopicPartition("times", 0)
    deadline = time.monotonic() + 10
    while consumer.end_offsets([tp])[tp] < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert consumer.end_offsets([tp]) == {tp: 30}  # acks=0 writes still all landed
    found = consumer.offsets_for_times({tp: base + 10_500})[tp]
    assert found is not None and (found.offset, found.timestamp) == (11, base + 11_000)
    assert consumer.offsets_for_times({tp: base + 10**9})[tp] is None
    consumer.close()
