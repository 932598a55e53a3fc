"""The embedded SDK: produce, consume, groups, fencing, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

import plait
from plait.client import ClientClosedError, NotAssignedError
from plait.client.partitioner import partition_for_key
from plait.groups import FencedCommitError
from plait.log.errors import (
    DataDirLockedError,
    PartitionOutOfRangeError,
    RecordTooLargeError,
    UnknownTopicError,
)


@pytest.fixture
def client(tmp_path):
    c = plait.connect(f"embedded:{tmp_path / 'data'}")
    yield c
    c.close()


def drain(consumer, expected: int, timeout: float = 5.0):
    out = []
    while len(out) < expected:
        got = consumer.poll(timeout=timeout)
        if not got:
            break
        out.extend(got)
    return out


def test_send_and_poll_round_trip_in_order(client):
    client.create_topic("t", 1)
    with client.producer(linger_ms=1) as producer:
        futures = [producer.send("t", f"v{i}".encode(), key=b"k") for i in range(100)]
        producer.flush()
    offsets = [f.result(timeout=5).offset for f in futures]
    assert offsets == list(range(100))
    consumer = client.consumer(["t"], from_beginning=True)
    got = drain(consumer, 100)
    assert [m.value for m in got] == [f"v{i}".encode() for i in range(100)]
    assert [m.offset for m in got] == list(range(100))
    assert all(m.key == b"k" for m in got)


def test_keyed_events_land_on_their_murmur2_partition(client):
    client.create_topic("k", 4)
    keys = [f"user-{i}".encode() for i in range(200)]
    with client.producer() as producer:
        ack = producer.send_batch("k", [b"x"] * len(keys), keys)
    assert ack.count == 200
    consumer = client.consumer(["k"], from_beginning=True)
    got = drain(consumer, 200)
    assert len(got) == 200
    for m in got:
        assert m.partition == partition_for_key(m.key, 4)


def test_send_batch_accepts_arrow_numpy_and_lists(client):
    client.create_topic("b", 2)
    rows = np.arange(30, dtype=np.uint8).reshape(10, 3)
    with client.producer() as producer:
        producer.send_batch("b", pa.array([b"a", b"b"]))
        producer.send_batch("b", rows)
        producer.send_batch("b", ["s1", "s2"])
    consumer = client.consumer(["b"], from_beginning=True)
    values = sorted(m.value for m in drain(consumer, 14))
    expected = sorted([b"a", b"b", b"s1", b"s2"] + [bytes(r) for r in rows.tolist()])
    assert values == expected


def test_unkeyed_batch_spreads_over_partitions(client):
    client.create_topic("u", 3)
    with client.producer() as producer:
        ack = producer.send_batch("u", [b"e%d" % i for i in range(300)])
    assert sorted(r.partition for r in ack.ranges) == [0, 1, 2]
    assert all(r.count == 100 for r in ack.ranges)


def test_bad_input_gets_typed_errors(client):
    client.create_topic("e", 2)
    with client.producer() as producer:
        with pytest.raises(UnknownTopicError):
            producer.send("nope", b"x")
        with pytest.raises(UnknownTopicError):
            producer.send_batch("nope", [b"x"])
        with pytest.raises(PartitionOutOfRangeError):
            producer.send("e", b"x", partition=2)
        with pytest.raises(RecordTooLargeError):
            producer.send("e", b"x" * (2 << 20))
        with pytest.raises(RecordTooLargeError):
            producer.send_batch("e", [b"ok", b"x" * (2 << 20)])
    with pytest.raises(UnknownTopicError):
        client.consumer(["nope"])
    with pytest.raises(ClientClosedError):
        producer.send("e", b"late")


def test_large_batch_is_cut_into_batches_the_log_accepts(client):
    client.create_topic("big", 1)
    values = [bytes([i % 251]) * 1000 for i in range(5000)]  # ~5 MB, limit is ~1 MB a batch
    with client.producer() as producer:
        ack = producer.send_batch("big", values)
    assert ack.ranges[0].base_offset == 0 and ack.ranges[0].count == 5000
    consumer = client.consumer(["big"], from_beginning=True)
    got = drain(consumer, 5000)
    assert [m.value for m in got] == values


def test_second_client_on_same_dir_is_refused(tmp_path):
    first = plait.connect(f"embedded:{tmp_path}")
    try:
        with pytest.raises(DataDirLockedError):
            plait.connect(f"embedded:{tmp_path}")
    finally:
        first.close()


def test_poll_waits_for_new_events(client):
    client.create_topic("w", 1)
    consumer = client.consumer(["w"])  # latest
    assert consumer.poll(timeout=0.05) == []
    producer = client.producer()
    timer = threading.Timer(0.1, lambda: producer.send("w", b"late"))
    timer.start()
    got = consumer.poll(timeout=5)
    timer.join()
    producer.close()
    assert [m.value for m in got] == [b"late"]


def test_seek_and_positions(client):
    client.create_topic("s", 1)
    with client.producer() as producer:
        producer.send_batch("s", [b"%d" % i for i in range(10)])
    consumer = client.consumer(["s"], from_beginning=True)
    consumer.seek("s", 0, 7)
    assert [m.value for m in drain(consumer, 3)] == [b"7", b"8", b"9"]
    assert consumer.position("s", 0) == 10
    consumer.seek_to_beginning()
    assert consumer.position("s", 0) == 0
    with pytest.raises(NotAssignedError):
        consumer.seek("s", 1, 0)


def test_group_members_split_partitions_and_resume_from_commits(client):
    client.create_topic("g", 4)
    with client.producer() as producer:
        producer.send_batch("g", [b"%d" % i for i in range(400)])
    a = client.consumer(["g"], group="grp", from_beginning=True)
    b = client.consumer(["g"], group="grp", from_beginning=True)
    assert sorted(a.assignment() + b.assignment()) == [("g", p) for p in range(4)]
    assert not set(a.assignment()) & set(b.assignment())
    first = drain(a, 200)
    a.commit()
    a.close()
    # b takes over a's partitions from a's committed offsets: nothing repeated.
    rest = drain(b, 200)
    seen = [(m.partition, m.offset) for m in first + rest]
    assert len(seen) == len(set(seen)) == 400


def test_zombie_member_cannot_commit(client):
    client.create_topic("z", 2)
    zombie = client.consumer(["z"], group="fence", from_beginning=True)
    zombie.poll(timeout=0.01)
    old_generation = zombie.generation
    newcomer = client.consumer(["z"], group="fence", from_beginning=True)
    assert newcomer.generation > old_generation
    # The zombie has not polled since the rebalance: its generation is stale.
    with pytest.raises(FencedCommitError):
        zombie.commit({("z", 0): 5})
    assert newcomer.committed("z", 0) is None
    newcomer.commit({("z", 0): 3})
    assert newcomer.committed("z", 0) == 3


def test_headers_reach_the_consumer(client):
    client.create_topic("h", 1)
    with client.producer() as producer:
        producer.send("h", b"plain")
        producer.send("h", b"traced", headers=[("traceparent", b"00-abc-def-01"), ("empty", None)])
        producer.flush()
    got = drain(client.consumer(["h"], from_beginning=True), 2)
    assert [m.headers for m in got] == [(), (("traceparent", b"00-abc-def-01"), ("empty", None))]


def test_consumer_steps_past_control_batches(client):
    from plait.protocol.records import encode_batch

    client.create_topic("ctl", 1)
    part = client.log.partition("ctl", 0)
    part.append(encode_batch([(None, b"data", 0, [])]))
    # A transaction marker as Kafka writes it: a control batch of one record.
    part.append(encode_batch([(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", 0, [])], is_control=True))
    consumer = client.consumer(["ctl"], from_beginning=True)
    assert [m.value for m in drain(consumer, 1)] == [b"data"]
    assert consumer.poll(timeout=0.1) == []
    assert consumer.position("ctl", 0) == 2
    part.append(encode_batch([(None, b"after", 0, [])]))
    assert [(m.offset, m.value) for m in drain(consumer, 1)] == [(2, b"after")]
