"""The two-path consumer over each lane: offsets reconcile lane and log, exactly once."""

from __future__ import annotations

import threading
import time

import pytest

from plait.client.connect import EmbeddedClient
from plait.client.messages import Message
from plait.fastlane.consumer import LowLatencyConsumer
from plait.fastlane.inproc import InProcFastLane
from plait.fastlane.publisher import attach
from plait.protocol.batch_header import parse_header
from plait.protocol.records import encode_batch

from .lanes import Backend, Delivered, assert_exactly_once_in_order, collect, wait_until


def produce(client: EmbeddedClient, topic: str, partition: int, ids: range) -> None:
    """One append (one stored batch) holding the events ``ids``, value = id."""
    with client.producer() as producer:
        producer.send_batch(topic, [str(i).encode() for i in ids], partition=partition)


def stored_batch(client: EmbeddedClient, topic: str, partition: int, offset: int) -> tuple[int, int, bytes]:
    """The stored batch that holds ``offset``, as the log's listener would publish it."""
    data = client.log.partition(topic, partition).read(offset, 1)
    header = parse_header(data, 0)
    return header.base_offset, header.last_offset, data[: header.size]



def offsets_of(consumer: LowLatencyConsumer, n: int, timeout: float = 10.0) -> list[int]:
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for batch in consumer.poll_batch(0.2):
            got.extend(batch.offsets.tolist())
    return got


def test_events_flow_over_the_lane_in_order(backend: Backend, client: EmbeddedClient) -> None:
    client.create_topic("t", 2)
    detach = attach(client.log, backend.open())
    consumer = LowLatencyConsumer(client, [("t", 0), ("t", 1)], backend.open(),
                                  start="latest", fallback_after=2.0)
    produced: Delivered = {0: [], 1: []}
    for i in range(20):
        ids = range(i * 100, i * 100 + 100)
        produce(client, "t", i % 2, ids)
        produced[i % 2].extend(ids)
    got = collect(consumer, 2000)
    assert_exactly_once_in_order(produced, got)
    assert consumer.stats.lane_events == 2000 and consumer.stats.log_events == 0
    assert consumer.positions() == {("t", 0): 1000, ("t", 1): 1000}
    consumer.close()
    detach()


def test_a_gap_on_the_lane_is_filled_from_the_log(backend: Backend, client: EmbeddedClient) -> None:
    client.create_topic("t", 1)
    for k in range(3):
        produce(client, "t", 0, range(k * 10, k * 10 + 10))
    pub = backend.open()
    # A long fallback: only the lane message (which shows the gap) may trigger the read.
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), start="earliest",
                                  fallback_after=30.0)
    pub.publish("t", 0, *stored_batch(client, "t", 0, 20))
    assert offsets_of(consumer, 30) == list(range(30))
    assert consumer.stats.gap_fills == 1
    assert consumer.stats.log_events + consumer.stats.lane_events == 30


def test_lane_data_below_the_expected_offset_is_dropped(backend: Backend, client: EmbeddedClient) -> None:
    client.create_topic("t", 1)
    produce(client, "t", 0, range(10))
    produce(client, "t", 0, range(10, 20))
    pub = backend.open()
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), start={("t", 0): 10},
                                  fallback_after=30.0)
    pub.publish("t", 0, *stored_batch(client, "t", 0, 0))
    pub.publish("t", 0, *stored_batch(client, "t", 0, 10))
    assert offsets_of(consumer, 10) == list(range(10, 20))
    assert consumer.stats.below_expected_messages == 1
    assert consumer.stats.lane_events == 10 and consumer.stats.log_events == 0


def test_an_overlapping_lane_message_is_trimmed(backend: Backend, client: EmbeddedClient) -> None:
    client.create_topic("t", 1)
    produce(client, "t", 0, range(10))
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), start={("t", 0): 4},
                                  fallback_after=30.0)
    backend.open().publish("t", 0, *stored_batch(client, "t", 0, 0))
    got = collect(consumer, 6)
    assert got == {0: [4, 5, 6, 7, 8, 9]}
    assert consumer.stats.trimmed_messages == 1 and consumer.stats.lane_events == 6
    assert consumer.poll(timeout=0.1) == []  # nothing twice


def test_out_of_order_arrival_is_delivered_in_offset_order(
    backend: Backend, client: EmbeddedClient
) -> None:
    client.create_topic("t", 1)
    for k in range(3):
        produce(client, "t", 0, range(k * 10, k * 10 + 10))
    sub_lane = backend.open()
    consumer = LowLatencyConsumer(client, [("t", 0)], sub_lane, start="earliest",
                                  fallback_after=30.0)
    # A second subscription on the consumer's own connection tells when all arrived.
    seen: list[int] = []
    sub_lane.subscribe("t", 0, lambda base, last, data: seen.append(base))
    pub = backend.open()
    for offset in (10, 20, 0, 10):  # late, late, the expected one, a duplicate
        pub.publish("t", 0, *stored_batch(client, "t", 0, offset))
    wait_until(lambda: len(seen) == 4, what="four lane messages")
    time.sleep(0.05)  # the consumer's subscription runs beside the probe's
    assert offsets_of(consumer, 30) == list(range(30))
    assert consumer.stats.lane_events == 30 and consumer.stats.log_events == 0
    assert consumer.stats.below_expected_messages == 1


def test_poll_limit_splits_a_lane_message_without_losing_its_tail(
    backend: Backend, client: EmbeddedClient
) -> None:
    client.create_topic("t", 1)
    detach = attach(client.log, backend.open())
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), fallback_after=30.0)
    produce(client, "t", 0, range(10))
    sizes, offsets = [], []
    while sum(sizes) < 10:
        for batch in consumer.poll_batch(5.0, max_records=3):
            sizes.append(len(batch))
            offsets.extend(batch.offsets.tolist())
    assert sizes == [3, 3, 3, 1] and offsets == list(range(10))
    assert consumer.stats.lane_messages == 1 and consumer.stats.lane_events == 10
    detach()


def test_reads_the_log_while_the_lane_is_down_and_returns_to_it(
    backend: Backend, client: EmbeddedClient
) -> None:
    client.create_topic("t", 1)
    detach = attach(client.log, backend.open())
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), fallback_after=2.0)
    produce(client, "t", 0, range(100))
    got = collect(consumer, 100)
    assert consumer.stats.lane_events == 100
    backend.down()
    produce(client, "t", 0, range(100, 200))
    collect(consumer, 200, into=got)
    assert consumer.stats.log_events == 100, "the log did not fill in while the lane was down"
    backend.up()
    produce(client, "t", 0, range(200, 300))
    collect(consumer, 300, into=got)
    assert_exactly_once_in_order({0: list(range(300))}, got)
    assert consumer.stats.lane_events == 200, "the consumer did not return to the lane"
    detach()


def test_a_silent_lane_falls_back_to_the_log(backend: Backend, client: EmbeddedClient) -> None:
    client.create_topic("t", 1)
    # Connected, but nothing is published on it: the lane is silent.
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), fallback_after=0.05)
    produce(client, "t", 0, range(50))
    started = time.monotonic()
    got = collect(consumer, 50)
    assert time.monotonic() - started >= 0.05, "read the log before the lane's grace time"
    produce(client, "t", 0, range(50, 100))
    collect(consumer, 100, into=got)
    assert_exactly_once_in_order({0: list(range(100))}, got)
    assert consumer.stats.log_events == 100 and consumer.stats.fallback_reads >= 2


def test_lane_overflow_drops_lane_data_and_the_log_fills(
    backend: Backend, client: EmbeddedClient
) -> None:
    client.create_topic("t", 1)
    detach = attach(client.log, backend.open())
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), max_buffer_bytes=64,
                                  fallback_after=30.0)
    for k in range(10):
        produce(client, "t", 0, range(k * 100, k * 100 + 100))
    got = collect(consumer, 1000)
    assert_exactly_once_in_order({0: list(range(1000))}, got)
    assert consumer.stats.overflow_messages >= 1 and consumer.stats.lane_events == 0
    detach()


def test_corrupt_or_mislabelled_lane_messages_are_ignored(client: EmbeddedClient) -> None:
    client.create_topic("t", 1)
    produce(client, "t", 0, range(10))
    lane = InProcFastLane()
    consumer = LowLatencyConsumer(client, [("t", 0)], lane, start="earliest", fallback_after=30.0)
    base, last, data = stored_batch(client, "t", 0, 0)
    damaged = bytearray(data)
    damaged[-1] ^= 0xFF  # breaks the CRC
    lane.publish("t", 0, base, last, bytes(damaged))
    lane.publish("t", 0, base, last - 5, data)  # its events run past the announced range
    assert offsets_of(consumer, 10) == list(range(10))
    assert consumer.stats.corrupt_messages == 2 and consumer.stats.log_events == 10


def test_start_positions(client: EmbeddedClient) -> None:
    client.create_topic("t", 2)
    produce(client, "t", 0, range(10))
    produce(client, "t", 1, range(10))
    lane = InProcFastLane()
    assert LowLatencyConsumer(client, [("t", 0)], lane, start="earliest").positions() == {("t", 0): 0}
    assert LowLatencyConsumer(client, [("t", 0)], lane, start="latest").positions() == {("t", 0): 10}
    clamped = LowLatencyConsumer(client, [("t", 0), ("t", 1)], lane, start={("t", 0): 99})
    assert clamped.positions() == {("t", 0): 10, ("t", 1): 10}
    with pytest.raises(ValueError, match="start must be"):
        LowLatencyConsumer(client, [("t", 0)], lane, start="newest")  # type: ignore[arg-type]


def test_topics_created_later_are_published_from_their_first_append_until_detached(
    backend: Backend, client: EmbeddedClient
) -> None:
    detach = attach(client.log, backend.open())
    seen: list[int] = []
    listener = backend.open()
    listener.subscribe("late", 0, lambda base, last, data: seen.append(base))
    backend.sync(listener)
    client.create_topic("late", 1)
    produce(client, "late", 0, range(3))  # at once: the topic hook attached the publisher
    wait_until(lambda: seen == [0], 10, "the first append on the lane")
    detach()
    time.sleep(0.2)  # messages published before the detach may still be in flight
    count = len(seen)
    produce(client, "late", 0, range(5))
    time.sleep(0.2)
    assert len(seen) == count, "published after detach"


def test_control_batches_are_stepped_over_on_both_paths(
    backend: Backend, client: EmbeddedClient
) -> None:
    client.create_topic("t", 1)
    part = client.log.partition("t", 0)
    marker = encode_batch([(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", 0, [])],
                          is_transactional=True, is_control=True)
    detach = attach(client.log, backend.open())
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), fallback_after=2.0)
    got: Delivered = {}
    for phase in range(2):  # lane up, then lane down (log only)
        if phase == 1:
            backend.down()
        base = phase * 20
        produce(client, "t", 0, range(base, base + 10))
        part.append(marker)  # takes one offset, holds no event
        collect(consumer, base + 10, into=got)
        assert consumer.poll(timeout=0.3) == []
        assert consumer.positions() == {("t", 0): 21 * phase + 11}, "stuck at the marker"
        produce(client, "t", 0, range(base + 10, base + 20))
        collect(consumer, base + 20, into=got)
    assert_exactly_once_in_order({0: list(range(40))}, got)
    assert consumer.stats.lane_events == 20 and consumer.stats.log_events == 20
    detach()


def test_record_headers_arrive_on_both_paths(backend: Backend, client: EmbeddedClient) -> None:
    """A traceparent in the headers survives the lane and the log alike (the columnar
    decode skips headers; the consumer takes them from the records that carry some)."""
    client.create_topic("t", 1)
    detach = attach(client.log, backend.open())
    consumer = LowLatencyConsumer(client, [("t", 0)], backend.open(), start="latest",
                                  fallback_after=2.0)

    def send(values: range) -> None:
        with client.producer() as producer:
            for i in values:
                headers = [("traceparent", b"00-%032x-%016x-01" % (i, i))] if i % 2 else []
                producer.send("t", str(i).encode(), partition=0, headers=headers)

    def expected(i: int) -> tuple[tuple[str, bytes | None], ...]:
        return (("traceparent", b"00-%032x-%016x-01" % (i, i)),) if i % 2 else ()

    def poll_messages(n: int) -> list[Message]:
        got: list[Message] = []
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            got += consumer.poll(0.1)
        return got

    send(range(10))
    lane_msgs = poll_messages(10)
    assert consumer.stats.lane_events == 10 and consumer.stats.log_events == 0
    assert [(int(m.value), m.headers) for m in lane_msgs] == [(i, expected(i)) for i in range(10)]

    backend.down()  # the log serves the rest
    send(range(10, 20))
    log_msgs = poll_messages(10)
    assert consumer.stats.log_events == 10
    assert [(int(m.value), m.headers) for m in log_msgs] == [(i, expected(i)) for i in range(10, 20)]
    backend.up()
    consumer.close()
    detach()


def test_quiet_partitions_get_end_markers_that_follow_the_log(
    backend: Backend, client: EmbeddedClient
) -> None:
    client.create_topic("hb", 1)
    produce(client, "hb", 0, range(7))  # before the publisher: history below the end
    detach = attach(client.log, backend.open(), heartbeat_s=0.05)
    seen: list[tuple[int, int, bytes]] = []
    listener = backend.open()
    listener.subscribe("hb", 0, lambda base, last, data: seen.append((base, last, data)))
    backend.sync(listener)
    wait_until(lambda: (7, 6, b"") in seen, 10, "an end marker at the log end, 7")
    produce(client, "hb", 0, range(3))
    wait_until(lambda: (10, 9, b"") in seen, 10, "an end marker after the new append")
    batches = [(base, last) for base, last, data in seen if data]
    assert batches == [(7, 9)]  # the data itself, before its marker
    data_at = next(k for k, (_, _, data) in enumerate(seen) if data)
    assert seen.index((10, 9, b"")) > data_at
    client.log.delete_topic("hb")
    time.sleep(0.2)  # a marker of the deleted topic may be in flight
    count = len(seen)
    time.sleep(0.3)
    assert len(seen) == count, "end markers for a deleted topic"
    detach()
    assert not [t for t in threading.enumerate() if t.name == "plait-lane-heartbeat"]


def test_end_markers_per_beat_are_capped_and_reach_every_quiet_partition_in_turn(
    client: EmbeddedClient,
) -> None:
    lane = InProcFastLane()
    client.create_topic("many", 6)
    detach = attach(client.log, lane, heartbeat_s=0.05, max_markers_per_beat=2)
    marks: list[tuple[float, int]] = []
    for p in range(6):
        lane.subscribe("many", p, lambda base, last, data, p=p: marks.append((time.monotonic(), p)))
    wait_until(lambda: {p for _, p in marks} == set(range(6)), 10, "a marker for every partition")
    time.sleep(0.5)
    detach()
    times = sorted(t for t, _ in marks)
    # beats are 50 ms apart: no 40 ms window holds more than one beat's two markers
    assert all(sum(1 for u in times if t <= u < t + 0.04) <= 2 for t in times), times
