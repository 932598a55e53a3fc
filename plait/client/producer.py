"""The embedded producer: per-event ``send`` with linger, and a columnar ``send_batch``.

Contract:
- An event is acknowledged (its future resolves, its callback fires) only after the
  log appended it, and after fsync when the data dir's policy is ``always``.
- Events sent to one partition are stored in the order of the calls that sent them.
- The producer is idempotent: it holds a producer id from the log and numbers each
  partition's events, so a batch appended twice (a retry) is stored once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import numpy as np
import pyarrow as pa

from plait.client.batching import (
    BinaryLike,
    byte_lengths,
    chunk_bounds,
    plan_partitions,
    to_binary_array,
)
from plait.client.errors import ClientClosedError, DeliveryTimeoutError
from plait.client.messages import BatchAck, PartitionAck, RecordMetadata
from plait.client.partitioner import partition_for_key
from plait.log.errors import PartitionOutOfRangeError, RecordTooLargeError
from plait.protocol.records import encode_batch, encode_columns

if TYPE_CHECKING:
    from plait.client.connect import EmbeddedClient

DeliveryCallback = Callable[[BaseException | None, RecordMetadata | None], None]
Headers = Sequence[tuple[str, bytes | None]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Pending:
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Headers
    future: Future[RecordMetadata]
    callback: DeliveryCallback | None


@dataclass
class _Accumulator:
    records: list[_Pending] = field(default_factory=list)
    nbytes: int = 0
    since: float = 0.0


class Producer:
    """Send events to topics of an embedded client.

    ``linger_ms`` bounds how long ``send`` holds an event to fill a batch;
    ``batch_bytes`` caps one RecordBatch (never above the log's max batch size).
    """

    def __init__(
        self,
        client: EmbeddedClient,
        *,
        linger_ms: float = 2.0,
        batch_bytes: int = 1 << 20,
    ) -> None:
        self._client = client
        self._log = client.log
        self._linger = max(0.0, linger_ms) / 1000.0
        self._max_batch = min(batch_bytes, client.log_config.max_batch_bytes)
        self._producer_id = self._log.allocate_producer_id()
        self._epoch = 0
        self._sequences: dict[tuple[str, int], int] = {}
        self._partition_locks: dict[tuple[str, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._sticky: dict[str, int] = {}
        self._acc: dict[tuple[str, int], _Accumulator] = {}
        self._cond = threading.Condition()
        self._flush_requested = 0
        self._in_flight = 0
        self._closed = False
        self._sender = threading.Thread(target=self._run_sender, name="plait-producer", daemon=True)
        self._sender.start()

    @property
    def producer_id(self) -> int:
        return self._producer_id

    # Per-event path -------------------------------------------------------------------
    def send(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers = (),
        on_delivery: DeliveryCallback | None = None,
    ) -> Future[RecordMetadata]:
        """Queue one event; the future resolves once it is acknowledged.

        Raises at once (nothing queued) for an unknown topic, a partition out of
        range or an event larger than the log's maximum batch size.
        """
        self._check_open()
        value_b = value.encode() if isinstance(value, str) else value
        key_b = key.encode() if isinstance(key, str) else key
        num_partitions = self._log.describe(topic).partitions
        size = len(value_b or b"") + len(key_b or b"") + sum(
            len(h) + len(v or b"") for h, v in headers
        )
        if size + 32 + 61 > self._max_batch:
            raise RecordTooLargeError(f"{topic} (one event)", size + 32 + 61, self._max_batch)
        if partition is None:
            if key_b is not None:
                partition = partition_for_key(key_b, num_partitions)
            else:
                partition = self._sticky.setdefault(topic, 0) % num_partitions
        elif not 0 <= partition < num_partitions:
            raise PartitionOutOfRangeError(topic, partition, num_partitions)
        future: Future[RecordMetadata] = Future()
        pending = _Pending(key_b, value_b, timestamp_ms or _now_ms(), tuple(headers), future, on_delivery)
        with self._cond:
            acc = self._acc.setdefault((topic, partition), _Accumulator())
            if not acc.records:
                acc.since = time.monotonic()
            acc.records.append(pending)
            acc.nbytes += size + 32
            self._in_flight += 1
            if acc.nbytes >= self._max_batch - 61 or self._linger == 0 or len(acc.records) == 1:
                self._cond.notify_all()
        return future

    def _run_sender(self) -> None:
        while True:
            with self._cond:
                while True:
                    ready = self._take_ready()
                    if ready or (self._closed and not self._acc):
                        break
                    self._cond.wait(timeout=self._next_deadline())
            if not ready and self._closed:
                return
            for (topic, partition), acc in ready:
                self._deliver(topic, partition, acc.records)
                with self._cond:
                    self._in_flight -= len(acc.records)
                    self._cond.notify_all()

    def _next_deadline(self) -> float | None:
        if not self._acc:
            return None
        oldest = min(acc.since for acc in self._acc.values())
        return max(0.0, oldest + self._linger - time.monotonic())

    def _take_ready(self) -> list[tuple[tuple[str, int], _Accumulator]]:
        now = time.monotonic()
        urgent = self._flush_requested > 0 or self._closed
        ready = [
            (tp, acc)
            for tp, acc in self._acc.items()
            if urgent or acc.nbytes >= self._max_batch - 61 or now - acc.since >= self._linger
        ]
        for tp, _ in ready:
            del self._acc[tp]
            self._sticky[tp[0]] = self._sticky.get(tp[0], 0) + 1
        return ready

    def _deliver(self, topic: str, partition: int, records: list[_Pending]) -> None:
        # Cut into batches the log accepts, keeping call order.
        start = 0
        while start < len(records):
            size, stop = 61, start
            while stop < len(records):
                r = records[stop]
                rsize = 32 + len(r.key or b"") + len(r.value or b"") + sum(
                    len(h) + len(v or b"") for h, v in r.headers
                )
                if stop > start and size + rsize > self._max_batch:
                    break
                size += rsize
                stop += 1
            chunk = records[start:stop]
            start = stop
            try:
                with self._partition_lock(topic, partition):
                    seq = self._sequences.get((topic, partition), 0)
                    data = encode_batch(
                        [(r.key, r.value, r.timestamp, list(r.headers)) for r in chunk],
                        producer_id=self._producer_id,
                        producer_epoch=self._epoch,
                        base_sequence=seq,
                    )
                    result = self._log.partition(topic, partition).append(data)
                    self._sequences[(topic, partition)] = (seq + len(chunk)) % (2**31)
            except BaseException as exc:  # noqa: BLE001 - every failure reaches the caller
                for r in chunk:
                    r.future.set_exception(exc)
                    if r.callback:
                        r.callback(exc, None)
                continue
            for i, r in enumerate(chunk):
                meta = RecordMetadata(topic, partition, result.base_offset + i, r.timestamp)
                r.future.set_result(meta)
                if r.callback:
                    r.callback(None, meta)

    # Batch path -----------------------------------------------------------------------
    def send_batch(
        self,
        topic: str,
        values: BinaryLike,
        keys: BinaryLike | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> BatchAck:
        """Append many events at once and return when all are acknowledged.

        Values (and keys) may be an Arrow binary/string array, a 2-D uint8 NumPy
        array or a list. Keyed events go to their murmur2 partition; unkeyed ones
        are split into one contiguous run per partition. Either every event of a
        partition's run is stored or the call raises for it; a partial failure
        across partitions raises after the others were stored (their offsets are
        in the exception's ``acks``).
        """
        self._check_open()
        vals = to_binary_array(values)
        ks = to_binary_array(keys, what="keys") if keys is not None else None
        if ks is not None and len(ks) != len(vals):
            raise ValueError(f"send_batch got {len(vals)} values but {len(ks)} keys")
        num_partitions = self._log.describe(topic).partitions
        if partition is not None and not 0 <= partition < num_partitions:
            raise PartitionOutOfRangeError(topic, partition, num_partitions)
        ts = timestamp_ms or _now_ms()
        start_at = self._sticky.get(topic, 0)
        self._sticky[topic] = start_at + 1
        sizes = byte_lengths(vals) + (byte_lengths(ks) if ks is not None else 0)
        slices = plan_partitions(len(vals), num_partitions, ks, partition, start_at)
        acks: list[PartitionAck] = []
        for sl in slices:
            if sl.indices is None:
                part_vals = vals.slice(sl.start, sl.stop - sl.start)
                part_keys = ks.slice(sl.start, sl.stop - sl.start) if ks is not None else None
                part_sizes = sizes[sl.start : sl.stop]
            else:
                idx = pa.array(sl.indices)
                part_vals = vals.take(idx)
                part_keys = ks.take(idx) if ks is not None else None
                part_sizes = sizes[sl.indices]
            acks.append(self._append_run(topic, sl.partition, part_vals, part_keys, part_sizes, ts))
        return BatchAck(topic, tuple(acks))

    def _append_run(
        self,
        topic: str,
        partition: int,
        values: pa.Array,
        keys: pa.Array | None,
        sizes: np.ndarray,
        timestamp_ms: int,
    ) -> PartitionAck:
        bounds = chunk_bounds(np.asarray(sizes), self._max_batch, f"{topic}[{partition}]")
        with self._partition_lock(topic, partition):
            seq = self._sequences.get((topic, partition), 0)
            pieces = []
            for a, b in bounds:
                pieces.append(
                    encode_columns(
                        values.slice(a, b - a),
                        keys.slice(a, b - a) if keys is not None else None,
                        base_timestamp=timestamp_ms,
                        producer_id=self._producer_id,
                        producer_epoch=self._epoch,
                        base_sequence=(seq + a) % (2**31),
                    )
                )
            result = self._log.partition(topic, partition).append(b"".join(pieces))
            self._sequences[(topic, partition)] = (seq + len(values)) % (2**31)
        return PartitionAck(partition, result.base_offset, len(values))

    def _partition_lock(self, topic: str, partition: int) -> threading.Lock:
        with self._locks_guard:
            return self._partition_locks.setdefault((topic, partition), threading.Lock())

    # Lifecycle ------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Block until every event sent so far is acknowledged (or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_requested += 1
            self._cond.notify_all()
            try:
                while self._in_flight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise DeliveryTimeoutError(
                            f"{self._in_flight} events still unacknowledged after {timeout} s"
                        )
                    self._cond.wait(timeout=remaining)
            finally:
                self._flush_requested -= 1

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued, then stop; later sends raise ClientClosedError."""
        if self._closed:
            return
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._sender.join(timeout)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("producer is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
