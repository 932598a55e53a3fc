"""consumer(group=..., low_latency=True): members read their partitions through the two-path
consumer (lane first, log for gaps); rebalancing and fenced commits as for any member."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import plait
from plait.client.connect import EmbeddedClient
from plait.client.consumer import Consumer
from plait.client.errors import ClientError

from .lanes import Backend, Delivered, assert_exactly_once_in_order, wait_until

PARTITIONS = 4


def produce(client: EmbeddedClient, produced: Delivered, ids: range) -> None:
    """Events ``ids`` (value = id) in batches of 50, round robin over the partitions."""
    with client.producer() as producer:
        for n, start in enumerate(range(ids.start, ids.stop, 50)):
            part = n % PARTITIONS
            batch = range(start, min(start + 50, ids.stop))
            producer.send_batch("g", [str(i).encode() for i in batch], partition=part)
            produced.setdefault(part, []).extend(batch)


def drain(members: list[Consumer], got: Delivered, total: int, timeout: float = 15.0) -> None:
    """Poll every member, committing after each poll, until ``total`` events arrived."""
    deadline = time.monotonic() + timeout
    while sum(map(len, got.values())) < total and time.monotonic() < deadline:
        for member in members:
            for batch in member.poll_batch(0.05):
                got.setdefault(batch.partition, []).extend(int(v) for v in batch.values.to_pylist())
            member.commit()


def test_members_share_the_partitions_and_a_survivor_resumes_from_commits(
    backend: Backend, tmp_path: Path
) -> None:
    with plait.connect(f"embedded:{tmp_path / 'data'}", fsync="never",
                       fastlane=backend.open()) as client:
        client.create_topic("g", PARTITIONS)
        a = client.consumer(["g"], group="readers", low_latency=True, auto_offset_reset="earliest")
        b = client.consumer(["g"], group="readers", low_latency=True, auto_offset_reset="earliest")
        wait_until(lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2,
                   what="two partitions each")
        assert set(a.assignment()).isdisjoint(b.assignment())
        produced: Delivered = {}
        produce(client, produced, range(2000))
        got: Delivered = {}
        drain([a, b], got, 2000)
        assert_exactly_once_in_order(produced, got)
        for member in (a, b):
            stats = member.lane_stats
            assert stats is not None and stats.lane_events > 0  # the lane did the work

        a.close()  # leaves: b owns all four, from what a committed
        wait_until(lambda: len(b.assignment()) == PARTITIONS, what="b to own every partition")
        produce(client, produced, range(2000, 3000))
        drain([b], got, 3000)
        assert_exactly_once_in_order(produced, got)  # nothing a read comes again, nothing lost
        assert {tp[1]: b.committed(*tp) for tp in b.assignment()} == {
            p: len(produced[p]) for p in range(PARTITIONS)
        }
        b.close()


def test_seek_reads_again_from_the_offset(backend: Backend, tmp_path: Path) -> None:
    with plait.connect(f"embedded:{tmp_path / 'data'}", fsync="never",
                       fastlane=backend.open()) as client:
        client.create_topic("g", PARTITIONS)
        consumer = client.consumer(low_latency=True, auto_offset_reset="earliest")
        consumer.assign([("g", 0)])
        produced: Delivered = {}
        produce(client, produced, range(50))
        got: Delivered = {}
        deadline = time.monotonic() + 10
        while len(got.get(0, [])) < 50 and time.monotonic() < deadline:
            for batch in consumer.poll_batch(0.1):
                got.setdefault(0, []).extend(int(v) for v in batch.values.to_pylist())
        assert got[0] == list(range(50)) and consumer.position("g", 0) == 50
        consumer.seek("g", 0, 45)
        again = [int(v) for b in consumer.poll_batch(5) for v in b.values.to_pylist()]
        assert again == list(range(45, 50))
        consumer.seek_to_beginning()
        replay: list[int] = []
        while len(replay) < 50 and time.monotonic() < deadline:
            replay += [int(v) for b in consumer.poll_batch(0.1) for v in b.values.to_pylist()]
        assert replay == list(range(50))
        consumer.close()


def test_low_latency_needs_a_lane(tmp_path: Path) -> None:
    with plait.connect(f"embedded:{tmp_path / 'data'}") as client:
        client.create_topic("g", 1)
        with pytest.raises(ClientError, match="fastlane"):
            client.consumer(["g"], group="readers", low_latency=True)
