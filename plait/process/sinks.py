"""Sinks: where a pipeline's output batches go.

:class:`Sink` is the whole contract: ``write(batch)``; a sink may also have ``close()``,
and ``pending_offsets()`` when it holds rows in memory past ``write`` (the Parquet sink
rolling larger files: ``parquet_sink.py``).
Columns whose name starts with ``_`` (``_offset``, ``_partition``) are plait's bookkeeping:
the Parquet sink needs and keeps them; the topic sink leaves them out of the encoded records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import msgspec
import pyarrow as pa

from plait.process.errors import SinkError
from plait.process.parquet_sink import ParquetSink


@runtime_checkable
class Sink(Protocol):
    def write(self, batch: pa.RecordBatch) -> None:
        """Take one output batch. When this returns, the sink owns the rows: a durable sink
        has made them durable, or names them in ``pending_offsets()`` until it has."""
        ...


@runtime_checkable
class BatchProducer(Protocol):
    """What the SDK's producers (embedded and ``kafka://``) offer; TopicSink needs no more."""

    def send_batch(
        self, topic: str, values: list[bytes], keys: list[bytes | None] | None = None
    ) -> Any: ...


class CallbackSink:
    """Calls ``fn(batch)`` for every output batch."""

    def __init__(self, fn: Callable[[pa.RecordBatch], Any]) -> None:
        self.fn = fn

    def write(self, batch: pa.RecordBatch) -> None:
        self.fn(batch)


def encode_rows(batch: pa.RecordBatch, fmt: str = "json") -> list[bytes]:
    """Each row as one JSON document (or msgpack map), ``_``-columns left out."""
    names = [n for n in batch.schema.names if not n.startswith("_")]
    rows = batch.select(names).to_pylist()
    enc = msgspec.json.encode if fmt == "json" else msgspec.msgpack.encode
    return [enc(r) for r in rows]


class TopicSink:
    """Encodes rows (JSON or msgpack) and produces them to ``topic`` in order, each batch
    acknowledged before :meth:`write` returns.

    ``producer``: an SDK producer (``client.producer()``, embedded or ``kafka://``).
    ``key``: a column whose values become the record keys (str as UTF-8, bytes as is,
    other values via ``str``), so one key's rows land in one partition, in order; a null
    key is sent as no key.

    At least once: a pipeline restarted after a crash sends again what it produced after
    its last committed input offset. For exactly-once topic-to-topic work use
    :class:`plait.functions.Step`, whose outputs carry the input offset they reflect.
    """

    def __init__(
        self, producer: BatchProducer, topic: str, *, key: str | None = None, format: str = "json"
    ) -> None:
        if format not in ("json", "msgpack"):
            raise SinkError(
                f"topic sink: expected format 'json' or 'msgpack', got {format!r}"
            )
        self.producer = producer
        self.topic = topic
        self.key = key
        self.format = format

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        values = encode_rows(batch, self.format)
        keys = None
        if self.key is not None:
            if self.key not in batch.schema.names:
                raise SinkError(
                    f"topic sink: expected key column {self.key!r}, columns are {batch.schema.names}"
                )
            keys = [_key_bytes(k) for k in batch.column(self.key).to_pylist()]
        self.producer.send_batch(self.topic, values, keys)


def _key_bytes(k: Any) -> bytes | None:
    if k is None:
        return None
    if isinstance(k, bytes):
        return k
    return str(k).encode("utf-8")


__all__ = ["BatchProducer", "CallbackSink", "ParquetSink", "Sink", "TopicSink", "encode_rows"]
