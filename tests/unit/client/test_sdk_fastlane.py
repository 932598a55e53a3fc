"""plait.connect(..., fastlane=...) wires the lane: appends are pushed, the consumer reconciles."""

from __future__ import annotations

import pytest

import plait
from plait.client import ClientError


def test_low_latency_consumer_over_inproc_lane(tmp_path):
    with plait.connect(f"embedded:{tmp_path}", fastlane="inproc") as client:
        client.create_topic("fast", 2)
        consumer = client.low_latency_consumer(["fast"], start="earliest")
        with client.producer() as producer:
            producer.send_batch("fast", [b"%d" % i for i in range(1000)], [b"k%d" % (i % 9) for i in range(1000)])
        got: dict[int, list[int]] = {}
        seen = 0
        while seen < 1000:
            batches = consumer.poll_batch(timeout=5)
            assert batches, f"stalled after {seen} events"
            for b in batches:
                got.setdefault(b.partition, []).extend(b.offsets.tolist())
                seen += len(b)
        consumer.close()
    assert sum(len(v) for v in got.values()) == 1000
    for offsets in got.values():
        assert offsets == list(range(len(offsets)))


def test_low_latency_consumer_needs_a_lane(tmp_path):
    with plait.connect(f"embedded:{tmp_path}") as client:
        client.create_topic("t", 1)
        with pytest.raises(ClientError, match="fastlane"):
            client.low_latency_consumer(["t"])
