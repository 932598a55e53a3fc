"""The kafka:// client's consumer against plait serve: a poll hands over what is there as
soon as it is there, whatever ``max_records`` asks for."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import plait
from plait.broker.testing import ServeProcess
from plait.client.kafka import KafkaClient
from plait.log.errors import UnknownTopicError


@pytest.fixture
def client(tmp_path: Path) -> Iterator[KafkaClient]:
    broker = ServeProcess(tmp_path / "broker-data", "--no-auto-create").start()
    try:
        c = plait.connect(f"kafka://{broker.bootstrap}")
        assert isinstance(c, KafkaClient)
        with c:
            yield c
    finally:
        assert broker.stop() == 0, broker.output()[-4000:]


@pytest.mark.parametrize("how", ["poll", "poll_batch"])
def test_a_poll_returns_when_events_arrive_not_when_max_records_fill(
    client: KafkaClient, how: str
) -> None:
    client.create_topic("quiet", 1)
    producer = client.producer()
    consumer = client.consumer(auto_offset_reset="earliest")
    consumer.assign([("quiet", 0)])
    producer.send_batch("quiet", [b"early"], partition=0)
    got: list[int] = []
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:  # catch up (the first fetch starts lazily)
        got = [m.offset for m in consumer.poll(timeout=1.0)]
    assert got == [0]

    def send_later() -> None:
        time.sleep(0.2)
        producer.send_batch("quiet", [b"a", b"b", b"c"], partition=0)

    sender = threading.Thread(target=send_later)
    sender.start()
    start = time.monotonic()
    if how == "poll":
        offsets = [m.offset for m in consumer.poll(timeout=10.0, max_records=1000)]
    else:
        offsets = [o for b in consumer.poll_batch(timeout=10.0, max_records=1000) for o in b.offsets.tolist()]
    waited = time.monotonic() - start
    sender.join()
    more: list[int] = []
    while len(offsets) + len(more) < 3:  # the three may come in more than one fetch
        more += [m.offset for m in consumer.poll(timeout=5.0)]
    assert offsets + more == [1, 2, 3]
    # Before the fix a poll sat out its whole timeout (10 s) waiting for 1000 events.
    assert 0.15 < waited < 3.0, waited
    consumer.close()
    producer.close()


def test_send_batch_to_an_unknown_topic_fails_before_queuing(client: KafkaClient) -> None:
    producer = client.producer()
    with pytest.raises(UnknownTopicError):
        producer.send_batch("nowhere", [b"x"])
    client.create_topic("somewhere", 1)
    for _ in range(3):  # the topic is looked up once, then remembered
        ack = producer.send_batch("somewhere", [b"x", b"y"], partition=0)
        assert sum(r.count for r in ack.ranges) == 2
    with pytest.raises(UnknownTopicError):
        producer.send_batch("nowhere", [b"x"])
    producer.close()


def test_poll_batch_carries_record_headers(client: KafkaClient) -> None:
    client.create_topic("traced", 1)
    producer = client.producer()
    for i in range(4):
        headers = [("traceparent", b"t-%d" % i)] if i % 2 else []
        producer.send("traced", b"v%d" % i, partition=0, headers=headers)
    producer.flush(10)
    consumer = client.consumer(auto_offset_reset="earliest")
    consumer.assign([("traced", 0)])
    batches = []
    deadline = time.monotonic() + 20
    while sum(len(b) for b in batches) < 4 and time.monotonic() < deadline:
        batches += consumer.poll_batch(timeout=1.0)
    rows = [(m.value, m.headers) for b in batches for m in b.messages()]
    assert rows == [(b"v0", ()), (b"v1", (("traceparent", b"t-1"),)),
                    (b"v2", ()), (b"v3", (("traceparent", b"t-3"),))]
    consumer.close()
    producer.close()
