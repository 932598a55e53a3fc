"""The FastLane contract, run against the in-process lane and a real nats-server."""

from __future__ import annotations

import threading
from itertools import pairwise

import pytest

from plait.fastlane.errors import FastLaneClosedError, InvalidSubjectError
from plait.fastlane.interface import FastLane, subject_for
from plait.protocol.batch_header import iter_batches, set_base_offset
from plait.protocol.records import encode_batch

from .lanes import Backend, wait_until


class Inbox:
    """Collects ``(base, last, bytes)`` from a lane callback thread."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, base: int, last: int, data: bytes) -> None:
        with self.lock:
            self.items.append((base, last, bytes(data)))

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


def batch_at(base: int, count: int, size: int = 10) -> bytes:
    buf = bytearray(encode_batch([(None, bytes([i % 256]) * size, 0, []) for i in range(count)]))
    set_base_offset(buf, 0, base)
    return bytes(buf)


def test_lanes_satisfy_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.open(), FastLane)


def test_subscriber_gets_batches_with_offsets_in_publish_order(backend: Backend) -> None:
    pub, sub_lane = backend.open(), backend.open()
    inbox, other = Inbox(), Inbox()
    sub_lane.subscribe("orders", 1, inbox)
    sub_lane.subscribe("orders", 0, other)
    sent = [(i * 5, i * 5 + 4, batch_at(i * 5, 5)) for i in range(50)]
    for base, last, data in sent:
        pub.publish("orders", 1, base, last, data)
    wait_until(lambda: len(inbox) == 50, what="50 messages")
    assert inbox.items == sent
    assert len(other) == 0, "a subscriber of partition 0 heard partition 1"


def test_unsubscribe_stops_delivery(backend: Backend) -> None:
    pub, sub_lane = backend.open(), backend.open()
    kept, dropped = Inbox(), Inbox()
    sub_lane.subscribe("t", 0, kept)
    gone = sub_lane.subscribe("t", 0, dropped)
    pub.publish("t", 0, 0, 0, batch_at(0, 1))
    wait_until(lambda: len(kept) == 1 and len(dropped) == 1, what="first message")
    gone.unsubscribe()
    gone.unsubscribe()  # idempotent
    pub.publish("t", 0, 1, 1, batch_at(1, 1))
    wait_until(lambda: len(kept) == 2, what="second message")
    assert [b for b, _, _ in dropped.items] == [0]


def test_publish_while_down_is_dropped_and_delivery_resumes(backend: Backend) -> None:
    pub, sub_lane = backend.open(), backend.open()
    inbox = Inbox()
    sub_lane.subscribe("t", 0, inbox)
    pub.publish("t", 0, 0, 0, batch_at(0, 1))
    wait_until(lambda: len(inbox) == 1, what="message before the outage")
    backend.down()
    assert not pub.connected and not sub_lane.connected
    pub.publish("t", 0, 1, 1, batch_at(1, 1))  # returns at once, dropped
    backend.up()
    assert pub.connected and sub_lane.connected
    pub.publish("t", 0, 2, 2, batch_at(2, 1))
    wait_until(lambda: len(inbox) == 2, what="message after the outage")
    assert [b for b, _, _ in inbox.items] == [0, 2]


def test_a_large_append_arrives_whole_and_in_order(backend: Backend) -> None:
    # 3 MiB of batches: over NATS's default 1 MiB max_payload, so that lane splits it
    # at batch boundaries; either way the pieces must rebuild the append exactly.
    pub, sub_lane = backend.open(), backend.open()
    inbox = Inbox()
    sub_lane.subscribe("big", 0, inbox)
    pieces, base = [], 100
    for _ in range(12):
        pieces.append(batch_at(base, 256, size=1000))
        base += 256
    append = b"".join(pieces)
    pub.publish("big", 0, 100, base - 1, append)
    wait_until(lambda: b"".join(d for _, _, d in list(inbox.items)) == append, what="the append")
    ranges = [(b, last) for b, last, _ in inbox.items]
    assert ranges[0][0] == 100 and ranges[-1][1] == base - 1
    assert all(a[1] + 1 == b[0] for a, b in pairwise(ranges)), ranges
    for b, last, data in inbox.items:
        headers = [h for _, h in iter_batches(data)]
        assert headers[0].base_offset == b and headers[-1].last_offset == last


def test_closed_lane_refuses_publish_and_subscribe(backend: Backend) -> None:
    lane = backend.open()
    lane.close()
    lane.close()  # idempotent
    assert not lane.connected
    with pytest.raises(FastLaneClosedError):
        lane.publish("t", 0, 0, 0, batch_at(0, 1))
    with pytest.raises(FastLaneClosedError):
        lane.subscribe("t", 0, Inbox())


def test_a_raising_callback_does_not_stop_the_subscription(backend: Backend) -> None:
    pub, sub_lane = backend.open(), backend.open()
    inbox = Inbox()

    def flaky(base: int, last: int, data: bytes) -> None:
        inbox(base, last, data)
        if base == 0:
            raise RuntimeError("subscriber bug")

    sub_lane.subscribe("t", 0, flaky)
    pub.publish("t", 0, 0, 0, batch_at(0, 1))
    pub.publish("t", 0, 1, 1, batch_at(1, 1))
    wait_until(lambda: len(inbox) == 2, what="both messages")


def test_subject_names() -> None:
    assert subject_for("orders", 3) == "plait.orders.3"
    assert subject_for("eu.orders", 0) == "plait.eu.orders.0"
    for bad in ("", "a b", "a*", "a>", ".a", "a.", "a..b"):
        with pytest.raises(InvalidSubjectError):
            subject_for(bad, 0)
    with pytest.raises(InvalidSubjectError, match="partition"):
        subject_for("t", -1)
