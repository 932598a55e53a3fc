"""The two-path consumer against a real broker: ``plait serve --fastlane`` publishes on
a real nats-server, a real confluent-kafka producer writes, and the consumer from
``plait.connect("kafka://...", fastlane="nats://...")`` reconciles lane and broker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plait
from plait.broker.testing import ServeProcess
from plait.client.errors import ClientError
from plait.client.kafka import KafkaClient, KafkaProducer
from plait.client.messages import ColumnBatch
from plait.fastlane.consumer import LowLatencyConsumer, LowLatencyStats
from plait.fastlane.errors import FastLaneUrlError
from plait.fastlane.kafka_log import KafkaLogSource
from plait.fastlane.nats import NatsFastLane

from .lanes import (
    Backend,
    Delivered,
    NatsServer,
    assert_exactly_once_in_order,
    collect,
    free_port,
    nats_server,
    wait_until,
)


@pytest.fixture
def remote(broker: ServeProcess, nats: NatsServer) -> Iterator[KafkaClient]:
    client = _connect(broker, NatsFastLane([nats.url], reconnect_wait=0.05))
    yield client
    client.close()


def _connect(broker: ServeProcess, lane: NatsFastLane) -> KafkaClient:
    assert lane.wait_connected(10), f"no NATS connection to {lane.servers}"
    client = plait.connect(f"kafka://{broker.bootstrap}", fastlane=lane)
    assert isinstance(client, KafkaClient)
    return client


def new_topic(client: KafkaClient, name: str, partitions: int) -> None:
    # The broker's publisher attaches to a topic as it is created: its first append is
    # on the lane (plait.fastlane.publisher).
    client.create_topic(name, partitions)


def produce(client: KafkaClient | KafkaProducer, topic: str, partition: int, ids: range,
            size: int = 0) -> None:
    """Events ``ids`` (value = id, padded to ``size`` bytes) through the broker, acked."""
    values = [b"%d" % i for i in ids]
    values = [v + b" " * (size - len(v)) for v in values]
    if isinstance(client, KafkaProducer):
        client.send_batch(topic, values, partition=partition)
        return
    with client.producer(linger_ms=1) as producer:
        producer.send_batch(topic, values, partition=partition)



def fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plait-lowlatency-fetch"]


def test_events_through_the_broker_arrive_by_the_lane_once_in_order(remote: KafkaClient) -> None:
    new_topic(remote, "orders", 2)
    # Half a second before a quiet lane counts as silent: room for a loaded CI machine.
    consumer = remote.low_latency_consumer(["orders"], start="latest", fallback_after=0.5)
    assert consumer.positions() == {("orders", 0): 0, ("orders", 1): 0}
    produced: Delivered = {0: [], 1: []}
    with remote.producer(linger_ms=1) as producer:
        for i in range(40):
            ids = range(i * 250, i * 250 + 250)
            produce(producer, "orders", i % 2, ids)
            produced[i % 2].extend(ids)
    got = collect(consumer, 10_000)
    report = assert_exactly_once_in_order(produced, got)
    assert report.delivered == 10_000
    assert consumer.poll(timeout=0.2) == []  # nothing twice
    stats = consumer.stats
    assert stats.lane_events > 0 and stats.lane_events >= 10_000 // 2, stats
    # While the lane serves, the partitions are paused: little data flows twice.
    log_side = consumer.log_source.stats  # type: ignore[attr-defined]
    assert log_side.fetched_events < 10_000 // 2, log_side
    assert consumer.positions() == {("orders", 0): 5000, ("orders", 1): 5000}
    assert fetch_threads()
    consumer.close()
    assert not fetch_threads(), "close() left the fetcher running"


def test_history_is_read_from_the_broker_then_the_lane_takes_over(remote: KafkaClient) -> None:
    new_topic(remote, "history", 1)
    produce(remote, "history", 0, range(3000))
    consumer = remote.low_latency_consumer(["history"], start="earliest", fallback_after=0.2)
    got = collect(consumer, 3000)
    assert consumer.stats.log_events == 3000 and consumer.stats.lane_events == 0
    with remote.producer(linger_ms=1) as producer:
        for k in range(5):
            produce(producer, "history", 0, range(3000 + k * 100, 3100 + k * 100))
            time.sleep(0.005)
    collect(consumer, 3500, into=got)
    assert_exactly_once_in_order({0: list(range(3500))}, got)
    # The broker is still being fetched when the first batch comes (the lane was
    # silent), so log and lane race for it; from the next one on the lane serves.
    assert consumer.stats.lane_events >= 400, consumer.stats
    consumer.close()


def test_both_paths_give_the_same_columns_as_a_plain_consumer(remote: KafkaClient) -> None:
    new_topic(remote, "same", 1)
    with remote.producer(linger_ms=1) as producer:
        producer.send_batch("same", [b"a", b"b", b"c"], keys=[b"k1", None, b"k3"], partition=0,
                            timestamp_ms=1_700_000_000_000)
    # Produced before the consumer subscribed: the history can only come from the broker.
    consumer = remote.low_latency_consumer(["same"], start="earliest", fallback_after=0.05)
    mine = [b for b in consumer.poll_batch(2.0)]
    with remote.producer(linger_ms=1) as producer:
        for i in range(10):  # after the first (log and lane race), the lane serves
            producer.send_batch("same", [b"v%d" % i, b"w%d" % i], keys=[None, b"k%d" % i],
                                partition=0, timestamp_ms=1_700_000_000_001 + i)
            time.sleep(0.005)
    deadline = time.monotonic() + 10
    while sum(map(len, mine)) < 23 and time.monotonic() < deadline:
        mine += consumer.poll_batch(0.2)
    assert consumer.stats.log_events >= 3 and consumer.stats.lane_events > 0, consumer.stats
    plain = remote.consumer(from_beginning=True)
    plain.assign([("same", 0)])
    theirs: list[ColumnBatch] = []
    while sum(map(len, theirs)) < 23 and time.monotonic() < deadline:
        theirs += plain.poll_batch(0.5)
    plain.close()
    assert {(b.topic, b.partition) for b in mine + theirs} == {("same", 0)}
    for name in ("offsets", "timestamps"):
        assert np.concatenate([getattr(b, name) for b in mine]).tolist() == \
            np.concatenate([getattr(b, name) for b in theirs]).tolist(), name
    for name in ("keys", "values"):
        assert [v for b in mine for v in getattr(b, name).to_pylist()] == \
            [v for b in theirs for v in getattr(b, name).to_pylist()], name
    consumer.close()


@contextlib.contextmanager
def small_payload_lane(tmp_path: Path) -> Iterator[KafkaClient]:
    """plait serve on a nats-server whose max_payload is below one ~100 KB stored batch:
    the broker's lane drops such a batch (a single batch is never split), a real loss
    with nothing faked. Yields a client connected to both."""
    conf = tmp_path / "small.conf"
    conf.write_text("max_payload: 16384\n")
    with nats_server(tmp_path / "nats", extra_args=("-c", str(conf))) as small_nats, \
            ServeProcess(tmp_path / "data", "--fastlane", small_nats.url) as serve:
        client = _connect(serve, NatsFastLane([small_nats.url], reconnect_wait=0.05))
        try:
            yield client
        finally:
            client.close()


@pytest.mark.parametrize("then", [10, 0], ids=["more-after-it", "last-of-burst"])
def test_a_batch_the_lane_dropped_is_filled_from_the_broker_at_once(
    tmp_path: Path, then: int
) -> None:
    # With more events after it, the consumer sees the next lane message above its
    # expected offset: a gap. As the last of a burst, no lane message follows, and the
    # quiet partition's end marker shows the gap. A long fallback (30 s) makes sure the
    # silence timer is not what fills it.
    with small_payload_lane(tmp_path) as client:
        new_topic(client, "gappy", 1)
        consumer = client.low_latency_consumer(["gappy"], fallback_after=30.0)
        produce(client, "gappy", 0, range(10))
        got = collect(consumer, 10)
        produce(client, "gappy", 0, range(10, 1010), size=100)  # ~100 KB: one batch
        if then:
            produce(client, "gappy", 0, range(1010, 1010 + then))
        started = time.monotonic()
        collect(consumer, 1010 + then, into=got)
        assert time.monotonic() - started < 5, "the gap waited for the fallback timer"
        assert_exactly_once_in_order({0: list(range(1010 + then))}, got)
        stats = consumer.stats
        # The fill may also bring the batch after the gap before the lane's copy
        # of it is used; that copy is then dropped as below the expected offset.
        assert stats.gap_fills >= 1 and stats.log_events >= 1000, stats
        assert stats.lane_events >= 10 and stats.fallback_reads == 0, stats
        consumer.close()


def test_with_no_lane_reachable_the_broker_serves_everything(broker: ServeProcess) -> None:
    nobody = free_port()  # nothing listens there: the lane never connects
    client = plait.connect(f"kafka://{broker.bootstrap}", fastlane=f"nats://127.0.0.1:{nobody}")
    try:
        assert isinstance(client, KafkaClient)
        new_topic(client, "nolane", 1)
        consumer = client.low_latency_consumer(["nolane"], start="earliest")
        produce(client, "nolane", 0, range(2000))
        got = collect(consumer, 2000)
        assert_exactly_once_in_order({0: list(range(2000))}, got)
        assert consumer.stats.log_events == 2000 and consumer.stats.lane_events == 0
        consumer.close()
    finally:
        client.close()


EVENTS = 40_000
CHUNK = 500  # events per produce call
PARTITIONS = 2


def test_nats_killed_and_restarted_mid_stream(broker: ServeProcess, nats: NatsServer) -> None:
    """SIGKILL the nats-server under a stream produced through the broker: every event
    once and in order, the log fills the outage, and the consumer returns to the lane."""
    backend = Backend("nats", nats)
    lane = backend.open()
    assert isinstance(lane, NatsFastLane)
    client = _connect(broker, lane)
    probe = backend.open()  # tells when the broker publishes again after the restart
    try:
        new_topic(client, "stream", PARTITIONS)
        probe_seen: list[int] = []
        for p in range(PARTITIONS):
            probe.subscribe("stream", p, lambda base, last, data: probe_seen.append(base))
        consumer = client.low_latency_consumer(["stream"], start="latest")
        produced: Delivered = {p: [] for p in range(PARTITIONS)}
        at: dict[str, LowLatencyStats] = {}
        heard_at_restart = [0]
        errors: list[BaseException] = []
        chunks = EVENTS // CHUNK

        def more(c: int) -> bool:
            # Past the planned chunks, go on (within reason) until the broker is heard
            # on the lane again, so that the return to the lane is there to observe.
            return c < chunks or (len(probe_seen) < heard_at_restart[0] + 5 and c < 4 * chunks)

        def produce_stream() -> None:
            try:
                with client.producer(linger_ms=1) as producer:
                    c = 0
                    while more(c):
                        if c == chunks * 3 // 10:
                            at["down"] = dataclasses.replace(consumer.stats)
                            backend.down()  # SIGKILL
                        if c == chunks * 6 // 10:
                            backend.up()  # restarted on the same port
                            heard_at_restart[0] = len(probe_seen)
                            at["up"] = dataclasses.replace(consumer.stats)
                        p = c % PARTITIONS
                        ids = range(c * CHUNK, (c + 1) * CHUNK)
                        producer.send_batch("stream", [b"%d" % i for i in ids], partition=p)
                        produced[p].extend(ids)
                        c += 1
                        time.sleep(0.002)  # a stream, not one burst
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                errors.append(exc)

        thread = threading.Thread(target=produce_stream)
        thread.start()
        got: Delivered = {}
        deadline = time.monotonic() + 60
        while (thread.is_alive() or sum(map(len, got.values())) < sum(map(len, produced.values()))) \
                and time.monotonic() < deadline:
            for batch in consumer.poll_batch(0.2):
                got.setdefault(batch.partition, []).extend(int(v) for v in batch.values.to_pylist())
        thread.join(30)
        assert not errors, errors
        # Let anything left over arrive: a duplicate would show up now.
        collect(consumer, 1 << 30, timeout=0.3, into=got)
        report = assert_exactly_once_in_order(produced, got)
        assert report.delivered >= EVENTS
        final = consumer.stats
        assert at["down"].lane_events > 0, "the lane carried nothing before the outage"
        assert at["up"].log_events > at["down"].log_events, "the log did not fill the outage"
        assert final.lane_events > at["up"].lane_events, "the consumer never returned to the lane"
        consumer.close()
    finally:
        if not nats.alive:
            nats.start()
        client.close()
        backend.close()


def test_without_a_lane_there_is_no_low_latency_consumer(broker: ServeProcess) -> None:
    with plait.connect(f"kafka://{broker.bootstrap}") as client, \
            pytest.raises(ClientError, match="needs plait.connect"):
        client.low_latency_consumer(["anything"])
    with pytest.raises(FastLaneUrlError):
        plait.connect(f"kafka://{broker.bootstrap}", fastlane="kafka://nope:1")


def test_the_log_source_is_closed_with_a_consumer_that_fails_to_start(remote: KafkaClient) -> None:
    new_topic(remote, "fails", 1)
    before = len(fetch_threads())
    with pytest.raises(ValueError, match="start must be"):
        remote.low_latency_consumer(["fails"], start="newest")  # type: ignore[arg-type]
    assert len(fetch_threads()) == before
    source = KafkaLogSource(remote)
    consumer = LowLatencyConsumer(source, [("fails", 0)], remote.fastlane,  # type: ignore[arg-type]
                                  start={("fails", 0): 99})
    assert consumer.positions() == {("fails", 0): 0}  # clamped into the (empty) log
    consumer.close()
    wait_until(lambda: len(fetch_threads()) == before, 5, "the fetcher to stop")


def test_the_readme_example_runs_as_written(broker: ServeProcess, nats: NatsServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
                 if "low_latency_consumer" in b)
    block = block.replace("kafka://localhost:9092", f"kafka://{broker.bootstrap}")
    block = block.replace("nats://localhost:4222", nats.url)
    with plait.connect(f"kafka://{broker.bootstrap}") as client:
        if "orders" not in client.list_topics():
            new_topic(client, "orders", 2)  # type: ignore[arg-type]
        produce(client, "orders", 0, range(5))  # type: ignore[arg-type]
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "LowLatencyStats(" in out and out.count("\n") >= 2, out


FIRST_DECODE = """
import sys, time
import plait
from plait.protocol.records import decode_columns, encode_batch
client = plait.connect("kafka://" + sys.argv[1], fastlane=sys.argv[2])
consumer = client.low_latency_consumer(partitions=[("first", 0)], start="latest")
batch = encode_batch([(None, b"x", 0, [])])
start = time.perf_counter()
decode_columns(batch)
print(time.perf_counter() - start)
consumer.close()
client.close()
"""


def test_a_new_consumer_decodes_its_first_lane_message_without_a_stall(
    broker: ServeProcess, nats: NatsServer, tmp_path: Path
) -> None:
    """A fresh process: loading the decoder's compiled code takes a few hundred ms; the
    consumer pays that when it is built, not on its first lane message (which would hold
    up every event behind it)."""
    with plait.connect(f"kafka://{broker.bootstrap}") as admin:
        admin.create_topic("first", 1)
    script = tmp_path / "first_decode.py"
    script.write_text(FIRST_DECODE)
    done = subprocess.run([sys.executable, str(script), broker.bootstrap, nats.url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 0.05


def test_group_members_take_the_lane_and_a_survivor_resumes_from_commits(
    broker: ServeProcess, nats: NatsServer, tmp_path: Path
) -> None:
    """kafka:// with plait's groups (meta=) and low_latency=True: the members split the
    partitions, read them through the lane, commit fenced offsets; when one leaves the
    other resumes its partitions from what it committed, nothing lost or repeated."""
    meta = f"sqlite:{tmp_path / 'meta.sqlite'}"
    lanes = [NatsFastLane([nats.url], reconnect_wait=0.05) for _ in range(2)]
    for lane in lanes:
        assert lane.wait_connected(10)
    c1 = plait.connect(f"kafka://{broker.bootstrap}", meta=meta, fastlane=lanes[0])
    c2 = plait.connect(f"kafka://{broker.bootstrap}", meta=meta, fastlane=lanes[1])
    assert isinstance(c1, KafkaClient) and isinstance(c2, KafkaClient)
    try:
        new_topic(c1, "shared", 4)
        a = c1.consumer(["shared"], group="g", low_latency=True, auto_offset_reset="earliest")
        b = c2.consumer(["shared"], group="g", low_latency=True, auto_offset_reset="earliest")
        wait_until(lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2,
                   what="two partitions each")
        produced: Delivered = {p: [] for p in range(4)}
        with c1.producer(linger_ms=1) as producer:
            for i in range(40):
                ids = range(i * 50, i * 50 + 50)
                produce(producer, "shared", i % 4, ids)
                produced[i % 4].extend(ids)
        got: Delivered = {}

        def drain(members: list[Any], total: int) -> None:
            deadline = time.monotonic() + 20
            while sum(map(len, got.values())) < total and time.monotonic() < deadline:
                for member in members:
                    for batch in member.poll_batch(0.05):
                        got.setdefault(batch.partition, []).extend(
                            int(v) for v in batch.values.to_pylist())
                    member.commit()

        drain([a, b], 2000)
        assert_exactly_once_in_order(produced, got)
        lane_events = [m.lane_stats.lane_events for m in (a, b)]
        assert sum(lane_events) > 0, lane_events  # the lane did (most of) the work
        a.close()
        wait_until(lambda: len(b.assignment()) == 4, what="b to own every partition")
        with c1.producer(linger_ms=1) as producer:
            for i in range(40, 60):
                ids = range(i * 50, i * 50 + 50)
                produce(producer, "shared", i % 4, ids)
                produced[i % 4].extend(ids)
        drain([b], 3000)
        assert_exactly_once_in_order(produced, got)
        assert {p: b.committed("shared", p) for p in range(4)} == {
            p: len(produced[p]) for p in range(4)}
        b.close()
    finally:
        c1.close()
        c2.close()


def test_low_latency_on_kafka_needs_plait_groups(broker: ServeProcess, nats: NatsServer) -> None:
    lane = NatsFastLane([nats.url])
    with plait.connect(f"kafka://{broker.bootstrap}", fastlane=lane) as client, \
            pytest.raises(ClientError, match="low_latency_consumer"):
        client.consumer(["anything"], group="g", low_latency=True)


def test_record_headers_arrive_through_the_lane(remote: KafkaClient) -> None:
    new_topic(remote, "traced", 1)
    consumer = remote.low_latency_consumer(["traced"], start="earliest", fallback_after=5.0)
    lane = remote.fastlane
    assert isinstance(lane, NatsFastLane) and lane._nc is not None
    lane._call(lane._nc.flush(timeout=5), timeout=6)  # the server has the subscription
    with remote.producer(linger_ms=1) as producer:
        for i in range(6):
            headers = [("traceparent", b"t-%d" % i)] if i % 2 else []
            producer.send("traced", b"%d" % i, partition=0, headers=headers)
        producer.flush(10)
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < 6 and time.monotonic() < deadline:
        got += consumer.poll(0.1)
    assert [(m.value, m.headers) for m in got] == [
        (b"%d" % i, (("traceparent", b"t-%d" % i),) if i % 2 else ()) for i in range(6)]
    assert consumer.stats.lane_events == 6
    consumer.close()


def test_fetched_data_waiting_for_the_reader_stays_under_its_cap(remote: KafkaClient) -> None:
    """A 2 MB history read through a 64 KiB buffer: the fetcher stops polling while the
    buffer is full, and every event still arrives once, in order."""
    new_topic(remote, "backlog", 1)
    produce(remote, "backlog", 0, range(20_000), size=100)
    cap = 64 << 10
    consumer = remote.low_latency_consumer(["backlog"], start="earliest", fallback_after=0.05,
                                           max_buffer_bytes=cap, max_poll_records=500)
    source = consumer.log_source
    assert isinstance(source, KafkaLogSource)
    got: Delivered = {}
    peak = 0
    deadline = time.monotonic() + 30
    while sum(map(len, got.values())) < 20_000 and time.monotonic() < deadline:
        peak = max(peak, source._buffered)
        for batch in consumer.poll_batch(0.2, max_records=500):
            got.setdefault(batch.partition, []).extend(
                int(v) for v in batch.values.to_pylist())
        time.sleep(0.001)  # a slow reader: the fetcher has to wait for room
    assert_exactly_once_in_order({0: list(range(20_000))}, got)
    # Past the cap the fetcher stops; one poll's worth may land on top: 500 events of
    # 100 bytes, 16 bytes of bookkeeping each, and the key and value offsets (8 each).
    assert 0 < peak <= cap + 500 * (100 + 16 + 8) + 1024, peak
    consumer.close()


def test_an_idle_consumer_stops_fetching_once_the_lane_says_where_the_log_ends(
    tmp_path: Path, nats: NatsServer
) -> None:
    # Without the broker's end markers a silent lane looks like a lane that dropped the
    # last message, and the consumer fetched to be sure: ~95 empty fetches a second.
    with ServeProcess(tmp_path / "data", "--fastlane", nats.url) as serve:
        client = _connect(serve, NatsFastLane([nats.url], reconnect_wait=0.05))
        try:
            new_topic(client, "quiet", 2)
            produce(client, "quiet", 0, range(100))
            with client.low_latency_consumer(["quiet"], start="earliest") as consumer:
                got = collect(consumer, 100)
                wait_until(lambda: consumer.poll(0.1) == [] and consumer.stats.end_markers >= 4,
                           what="end markers for both partitions")
                before = serve.requests_answered("Fetch")
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    assert consumer.poll(0.2) == []
                idle = serve.requests_answered("Fetch") - before
                assert idle <= 4, f"{idle} fetches in 2 s of idling"
                produce(client, "quiet", 1, range(100, 150))  # and the lane still serves
                collect(consumer, 150, into=got)
                assert_exactly_once_in_order({0: list(range(100)), 1: list(range(100, 150))}, got)
        finally:
            client.close()

