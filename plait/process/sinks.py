"""Sinks: where a pipeline's output batches go.

:class:`Sink` is the whole contract: ``write(batch)``; a sink may also have ``close()``.
Columns whose name starts with ``_`` (``_offset``) are plait's bookkeeping: the Parquet sink
needs and keeps ``_offset``; the topic sink leaves them out of the encoded records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plait.process.errors import SinkError


@runtime_checkable
class Sink(Protocol):
    def write(self, batch: pa.RecordBatch) -> None:
        """Take one output batch. When this returns, the sink owns the rows (a durable sink
        has made them durable)."""
        ...


@runtime_checkable
class BatchProducer(Protocol):
    """What the SDK's producer offers; TopicSink needs nothing more."""

    def send_batch(
        self, values: list[bytes], keys: list[bytes] | None = None
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
    """Encodes rows (JSON or msgpack) and hands them to ``producer.send_batch`` in order.

    ``key``: a column whose values become the record keys (str as UTF-8, bytes as is, other
    values via ``str``); a null key is sent as an empty key.
    """

    def __init__(
        self, producer: BatchProducer, *, key: str | None = None, format: str = "json"
    ) -> None:
        if format not in ("json", "msgpack"):
            raise SinkError(
                f"topic sink: expected format 'json' or 'msgpack', got {format!r}"
            )
        self.producer = producer
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
        self.producer.send_batch(values, keys)


def _key_bytes(k: Any) -> bytes:
    if k is None:
        return b""
    if isinstance(k, bytes):
        return k
    return str(k).encode("utf-8")


_PART = re.compile(r"^part-(\d{20})-(\d{20})\.parquet$")
_COMMIT = re.compile(r"^(\d{20})-(\d{20})$")
COMMITS_DIR = "_plait_commits"


class ParquetSink:
    """The data-lake sync: Parquet files partitioned ``dt=YYYY-MM-DD/hour=HH`` by event time.

    Exactly once across restarts, given input offsets that increase across writes:
    * a write names its files ``part-<first>-<last>.parquet`` after the ``_offset`` range it
      covers, and appears atomically (temp file, fsync, rename, fsync of the folder);
    * once every file of a write is in place, a commit marker ``_plait_commits/<first>-<last>``
      is written the same way; only then does the write count;
    * on open, files without a marker (a crash mid-write) and stray temp files are removed,
      and rows at or below the highest committed offset are skipped from then on, so a
      replay after a crash writes each row once, whatever its batch boundaries.
    Rows with a null event time go to ``dt=unknown/hour=unknown``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        time: str,
        offset: str = "_offset",
        time_unit_ms: int = 1,
    ) -> None:
        self.root = Path(root)
        self.time = time
        self.offset = offset
        self.time_unit_ms = time_unit_ms
        self.committed: int = -1
        self._recover()

    def _recover(self) -> None:
        commits = self.root / COMMITS_DIR
        commits.mkdir(parents=True, exist_ok=True)
        ranges: set[tuple[int, int]] = set()
        for p in commits.iterdir():
            m = _COMMIT.match(p.name)
            if m:
                ranges.add((int(m.group(1)), int(m.group(2))))
            elif p.name.startswith(".tmp-"):
                p.unlink()
        self.committed = max((last for _, last in ranges), default=-1)
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath) / name
                if name.startswith(".tmp-"):
                    path.unlink()
                    continue
                m = _PART.match(name)
                if m and (int(m.group(1)), int(m.group(2))) not in ranges:
                    path.unlink()  # written by a write that never committed

    def write(self, batch: pa.RecordBatch) -> None:
        for col in (self.offset, self.time):
            if col not in batch.schema.names:
                raise SinkError(
                    f"parquet sink: expected column {col!r}, columns are {batch.schema.names}"
                )
        offsets = batch.column(self.offset)
        if offsets.null_count:
            raise SinkError(
                f"parquet sink: column {self.offset!r} has {offsets.null_count} null offsets"
            )
        off = pc.cast(offsets, pa.int64()).to_numpy()
        keep = off > self.committed
        if not keep.any():
            return
        if not keep.all():
            batch = batch.filter(pa.array(keep))
            off = off[keep]
        first, last = int(off.min()), int(off.max())
        name = f"part-{first:020d}-{last:020d}.parquet"
        ts = pc.cast(batch.column(self.time), pa.int64())
        # floor division so times before 1970 land in the right hour
        raw = pc.fill_null(pc.multiply(ts, self.time_unit_ms), 0).to_numpy()
        hours = np.where(
            ts.is_valid().to_numpy(zero_copy_only=False),
            np.floor_divide(raw, 3_600_000),
            -(2**62),
        )
        for h in np.unique(hours).tolist():
            part = batch.filter(pa.array(hours == h))
            folder = self.root / _partition(int(h))
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_batches([part])
            self._atomic(folder / name, lambda tmp, t=table: pq.write_table(t, tmp))
        self._commit(first, last)
        self.committed = last

    def _commit(self, first: int, last: int) -> None:
        marker = self.root / COMMITS_DIR / f"{first:020d}-{last:020d}"
        self._atomic(marker, lambda tmp: Path(tmp).write_bytes(b""))

    @staticmethod
    def _atomic(path: Path, writer: Callable[..., Any]) -> None:
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        writer(str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _partition(hour: int) -> str:
    if hour == -(2**62):
        return "dt=unknown/hour=unknown"
    day = np.datetime64(hour, "h").astype("datetime64[D]")
    return f"dt={day}/hour={hour % 24:02d}"
