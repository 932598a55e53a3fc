"""plait serve --fastlane: what Kafka clients produce through the broker is pushed on
NATS, batch by batch, with the offsets the log gave it, in order."""

from __future__ import annotations

import threading
from pathlib import Path

import confluent_kafka as ck
import numpy as np
import pytest

from plait.broker.testing import ServeProcess, ServeStartError
from plait.fastlane.nats import NatsFastLane
from plait.protocol.records import decode_columns

from .lanes import NatsServer, wait_until


def test_produced_events_arrive_on_the_lane_with_their_offsets(
    tmp_path: Path, nats: NatsServer
) -> None:
    broker = ServeProcess(tmp_path / "data", "--fastlane", nats.url).start()
    lane = NatsFastLane([nats.url])
    try:
        assert lane.wait_connected(10)
        got: list[tuple[int, int, bytes]] = []
        lock = threading.Lock()

        def on_batch(base: int, last: int, data: bytes) -> None:
            with lock:
                got.append((base, last, data))

        lane.subscribe("orders", 0, on_batch)
        producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                                "enable.idempotence": True, "linger.ms": 1})
        delivered: dict[bytes, int] = {}

        def done(err: object, msg: ck.Message) -> None:
            assert err is None, err
            delivered[msg.value()] = msg.offset()

        values = [f"event-{i}".encode() for i in range(2000)]
        for v in values:
            producer.produce("orders", v, partition=0, on_delivery=done)
            producer.poll(0)
        assert producer.flush(30) == 0
        wait_until(lambda: sum(last - base + 1 for base, last, _ in list(got)) >= 2000,
                   what="2000 events on the lane")
        # the partition goes quiet: the broker's heartbeat says where the log ends
        wait_until(lambda: (2000, 1999, b"") in list(got), what="an end marker at 2000")
        with lock:
            markers = [(base, last) for base, last, data in got if not data]
            batches = [(base, last, data) for base, last, data in got if data]
        assert all(last == base - 1 for base, last in markers)
        assert markers[-1] == (2000, 1999)
        offsets: list[int] = []
        seen: list[bytes] = []
        for base, last, data in batches:
            cols = decode_columns(data)
            offs = np.asarray(cols.offsets).tolist()
            assert offs[0] == base and offs[-1] == last  # headers say what the batch holds
            offsets += offs
            seen += cols.values.to_pylist()
        assert offsets == list(range(2000))  # every append once, in offset order
        assert seen == values
        assert all(delivered[v] == o for v, o in zip(seen, offsets))  # the log's offsets
    finally:
        lane.close()
        broker.stop()


def test_a_bad_fastlane_url_is_one_clear_line(tmp_path: Path) -> None:
    broker = ServeProcess(tmp_path / "data", "--fastlane", "kafka://nope:1", timeout=10)
    with pytest.raises(ServeStartError):
        broker.start()
    said = broker.output().strip().splitlines()
    assert said == [("Error: bad fast-lane URL 'kafka://nope:1': unknown scheme 'kafka'; "
                     "expected inproc, nats://host:port or tls://host:port")]
    assert broker.proc is not None and broker.proc.returncode == 1
