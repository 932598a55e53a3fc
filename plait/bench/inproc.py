"""The in-process bench: produce → append → consume through the batch APIs.

A producer thread stamps each event's first 8 bytes with ``perf_counter_ns`` and
sends columnar batches; the consumer (this thread) polls columnar batches and
reads the stamps back, so latency is measured per event, end to end, on one clock.
With a rate, the producer sends what fell due every 1 ms; without one it
sends as fast as the log takes them.
"""

from __future__ import annotations

import gc
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from plait.bench.stats import percentiles_ms
from plait.client.connect import EmbeddedClient

STAMP = 8  # bytes of each event holding its send time


@dataclass(frozen=True)
class BenchConfig:
    events: int = 1_000_000
    size: int = 100
    partitions: int = 1
    rate: float | None = None
    fsync: str = "interval:50"
    chunk: int = 65_536


def stamps_of(values: pa.Array) -> np.ndarray:
    """The int64 send stamp at the start of every value, without a Python loop."""
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=values.offset + n + 1)
    starts = offsets[values.offset : values.offset + n].astype(np.int64)
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    idx = starts[:, None] + np.arange(STAMP)
    return data[idx].copy().view(np.int64).ravel()


def run(config: BenchConfig, on_progress: Callable[[int], None] | None = None) -> dict[str, float]:
    if config.size < STAMP:
        raise ValueError(f"--size must be at least {STAMP} bytes (the send stamp)")
    with (
        tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp,
        EmbeddedClient(tmp, fsync=config.fsync) as client,
    ):
        client.create_topic("bench", config.partitions)
        return _measure(client, config, on_progress)


def _warm_up(producer: Any, consumer: Any, template: np.ndarray) -> None:
    """Load compiled kernels and touch every code path once, outside the measurement."""
    for count in (1, 3, 1000):
        producer.send_batch("bench", template[:count])
        got = 0
        while got < count:
            got += sum(len(b) for b in consumer.poll_batch(timeout=5.0))


def _measure(
    client: EmbeddedClient, config: BenchConfig, on_progress: Callable[[int], None] | None
) -> dict[str, float]:
    rng = np.random.default_rng(7)
    template = rng.integers(0, 256, size=(config.chunk, config.size), dtype=np.uint8)
    producer = client.producer()
    consumer = client.consumer()
    consumer.assign([("bench", p) for p in range(config.partitions)])
    consumer.seek_to_beginning()
    errors: list[BaseException] = []
    _warm_up(producer, consumer, template)
    # Move everything allocated so far (numba, pyarrow, warm-up) out of the cyclic GC's
    # reach, so a full collection during the run does not walk it (a multi-ms pause).
    gc.collect()
    gc.freeze()

    def produce() -> None:
        try:
            sent = 0
            started = time.perf_counter()
            while sent < config.events:
                if config.rate:
                    # 1 ms ticks: each sends what fell due since the last one, so the
                    # producer costs one call per millisecond, not one per event.
                    tick = int((time.perf_counter() - started) * 1000) + 1
                    due = min(config.events, int(tick * config.rate / 1000))
                    count = min(due - sent, config.chunk)
                    if count <= 0:
                        time.sleep(max(0.0, started + tick / 1000 - time.perf_counter()))
                        continue
                else:
                    count = min(config.chunk, config.events - sent)
                rows = template[:count]
                rows[:, :STAMP] = np.frombuffer(
                    np.int64(time.perf_counter_ns()).tobytes(), dtype=np.uint8
                )
                producer.send_batch("bench", rows)
                sent += count
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, re-raised there
            errors.append(exc)

    thread = threading.Thread(target=produce, name="bench-producer", daemon=True)
    latencies: list[np.ndarray] = []
    received = 0
    started = time.perf_counter()
    thread.start()
    deadline_idle = 30.0
    last = time.monotonic()
    while received < config.events:
        batches = consumer.poll_batch(timeout=0.5, max_records=config.chunk)
        now = time.perf_counter_ns()
        if not batches:
            if errors:
                raise errors[0]
            if time.monotonic() - last > deadline_idle:
                raise TimeoutError(f"bench stalled after {received} of {config.events} events")
            continue
        last = time.monotonic()
        for batch in batches:
            latencies.append(now - stamps_of(batch.values))
            received += len(batch)
        if on_progress:
            on_progress(received)
    elapsed = time.perf_counter() - started
    thread.join()
    producer.close()
    consumer.close()
    if errors:
        raise errors[0]
    lat = np.concatenate(latencies) if latencies else np.zeros(0, dtype=np.int64)
    result: dict[str, float] = {
        "events": float(received),
        "events_per_s": round(received / elapsed, 1),
        "mb_per_s": round(received * config.size / elapsed / 1e6, 2),
        "elapsed_s": round(elapsed, 3),
    }
    result.update(percentiles_ms(lat))
    return result
