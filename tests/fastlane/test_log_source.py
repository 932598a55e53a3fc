"""One conformance suite for every log source of the two-path consumer: the embedded
segment log and a Kafka-protocol broker (``plait serve``) through confluent-kafka."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import plait
from plait.broker.testing import ServeProcess
from plait.client.kafka import KafkaClient
from plait.fastlane.kafka_log import KafkaLogSource
from plait.fastlane.logsource import EmbeddedLogSource, LogSource, PartitionLog


@dataclass
class Source:
    name: str
    topic: str
    source: LogSource
    produce: Callable[[range], None]  # events ``ids`` into partition 0, value = id, acked
    close: Callable[[], None]


@pytest.fixture(params=["embedded", "kafka"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    topic = f"ls-{request.node.name.split('[')[0][-40:]}"
    if request.param == "embedded":
        client = plait.connect(f"embedded:{tmp_path / 'data'}", fsync="never")
        client.create_topic(topic, 1)

        def produce_embedded(ids: range) -> None:
            with client.producer() as producer:
                producer.send_batch(topic, [b"%d" % i for i in ids], partition=0)

        src = EmbeddedLogSource(client.log, fetch_max_bytes=4096)  # small reads: many rounds
        made = Source("embedded", topic, src, produce_embedded, client.close)
    else:
        broker: ServeProcess = request.getfixturevalue("broker")
        remote = plait.connect(f"kafka://{broker.bootstrap}")
        assert isinstance(remote, KafkaClient)
        remote.create_topic(topic, 1)

        def produce_remote(ids: range) -> None:
            with remote.producer(linger_ms=1) as producer:
                producer.send_batch(topic, [b"%d" % i for i in ids], partition=0)

        src = KafkaLogSource(remote, max_poll_records=700)  # chunks smaller than a produce
        made = Source("kafka", topic, src, produce_remote, remote.close)
    try:
        yield made
    finally:
        made.source.close()
        made.close()


def _open(s: Source) -> tuple[PartitionLog, threading.Event]:
    woken = threading.Event()
    return s.source.open(s.topic, 0, woken.set), woken


def read_from(part: PartitionLog, woken: threading.Event, offset: int, upto: int,
              timeout: float = 10.0) -> list[int]:
    """Read values from ``offset`` until ``upto`` the way the reconciler does: every
    LogRead must cover the offset asked for, and the offset only moves forward."""
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while offset < upto:
        assert time.monotonic() < deadline, f"stuck at offset {offset}"
        woken.clear()
        read = part.read(offset)
        if read is None:
            woken.wait(0.5)
            continue
        assert read.end > offset
        if read.columns is not None:
            offs = np.asarray(read.columns.offsets)
            keep = offs >= offset
            assert offs[keep].tolist() == sorted(set(offs[keep].tolist()))
            assert not len(offs) or int(offs[-1]) < read.end
            got += [int(v) for v in np.asarray(read.columns.values.to_pylist(), dtype=object)[keep]]
        offset = read.end
    return got


def test_bounds_and_the_known_end(source: Source) -> None:
    part, _ = _open(source)
    assert part.bounds() == (0, 0)
    source.produce(range(1000))
    assert part.bounds() == (0, 1000)
    # The embedded log knows its end for free; a broker's costs a round trip.
    assert part.known_end() == (1000 if source.name == "embedded" else None)
    part.close()


def test_reads_cover_every_event_once_from_any_offset(source: Source) -> None:
    source.produce(range(1500))
    source.produce(range(1500, 3000))
    part, woken = _open(source)
    assert read_from(part, woken, 0, 3000) == list(range(3000))
    part.rest()
    # After rest, reading may start anywhere again (here: inside a stored batch).
    assert read_from(part, woken, 1234, 3000) == list(range(1234, 3000))
    part.close()


def test_wake_is_called_when_appended_data_is_ready(source: Source) -> None:
    part, woken = _open(source)
    assert part.read(0) is None  # nothing yet (a remote source starts fetching here)
    woken.clear()
    source.produce(range(10))
    assert woken.wait(10), "no wake after an append"
    assert read_from(part, woken, 0, 10) == list(range(10))
    part.close()
