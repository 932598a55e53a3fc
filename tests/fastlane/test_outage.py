"""The lane dies (nats-server SIGKILLed) mid-stream: no event lost, duplicated or reordered."""

from __future__ import annotations

import dataclasses
import threading
import time

from plait.client.connect import EmbeddedClient
from plait.fastlane.consumer import LowLatencyConsumer, LowLatencyStats
from plait.fastlane.publisher import attach
from plait.protocol.records import decode_columns, encode_batch

from .lanes import Backend, assert_exactly_once_in_order

EVENTS = 100_000
CHUNK = 500  # events per append
PARTITIONS = 2


def test_lane_outage_mid_stream_delivers_every_event_once_in_order(
    backend: Backend, client: EmbeddedClient
) -> None:
    # The columnar decoder compiles on first use (seconds): not part of the stream.
    decode_columns(encode_batch([(None, b"warm-up", 0, [])]))
    client.create_topic("stream", PARTITIONS)
    detach = attach(client.log, backend.open())
    consumer = LowLatencyConsumer(
        client, [("stream", p) for p in range(PARTITIONS)], backend.open(), start="latest"
    )
    produced: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    at: dict[str, LowLatencyStats] = {}
    errors: list[BaseException] = []
    chunks = EVENTS // CHUNK

    def produce() -> None:
        try:
            with client.producer() as producer:
                for c in range(chunks):
                    if c == chunks * 3 // 10:
                        at["down"] = dataclasses.replace(consumer.stats)
                        backend.down()  # SIGKILL for NATS
                    if c == chunks * 6 // 10:
                        backend.up()  # restarted on the same port
                        at["up"] = dataclasses.replace(consumer.stats)
                    p = c % PARTITIONS
                    ids = range(c * CHUNK, (c + 1) * CHUNK)
                    producer.send_batch("stream", [b"%d" % i for i in ids], partition=p)
                    produced[p].extend(ids)
                    time.sleep(0.005)  # a stream, not one burst
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    got: dict[int, list[int]] = {}
    deadline = time.monotonic() + 60
    total = 0
    while total < EVENTS and time.monotonic() < deadline:
        for batch in consumer.poll_batch(0.2):
            ids = [int(v) for v in batch.values.to_pylist()]
            got.setdefault(batch.partition, []).extend(ids)
            total += len(ids)
    thread.join(30)
    assert not errors, errors
    # Let anything left over arrive: a duplicate would show up now.
    for batch in consumer.poll_batch(0.3):
        got.setdefault(batch.partition, []).extend(int(v) for v in batch.values.to_pylist())
    report = assert_exactly_once_in_order(produced, got)
    assert report.delivered == EVENTS
    final = consumer.stats
    assert at["down"].lane_events > 0, "the lane carried nothing before the outage"
    assert at["up"].log_events > at["down"].log_events, "the log did not fill the outage"
    assert final.lane_events > at["up"].lane_events, "the consumer never returned to the lane"
    consumer.close()
    detach()
