"""Sinks: where a pipeline's output batches go.

:class:`Sink` is the whole contract: ``write(batch)``; a sink may also have ``close()``.
Columns whose name starts with ``_`` (``_offset``, ``_partition``) are plait's bookkeeping:
the Parquet sink needs and keeps them; the topic sink leaves them out of the encoded records.
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

    At least once: a pipeline restarted after a crash sends again what it produced after
    its last committed input offset. For exactly-once topic-to-topic work use
    :class:`plait.functions.Step`, whose outputs carry the input offset they reflect.
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


_PART = re.compile(r"^part-(?:p(\d+)-)?(\d{20})-(\d{20})\.parquet$")
_COMMIT = re.compile(r"^(?:p(\d+)-)?(\d{20})-(\d{20})$")
COMMITS_DIR = "_plait_commits"

_Range = tuple[int | None, int, int]  # (input partition or None, first offset, last offset)


class ParquetSink:
    """The data-lake sync: Parquet files partitioned ``dt=YYYY-MM-DD/hour=HH`` by event time.

    Exactly once across restarts, given input offsets that increase across writes within
    each input partition (the ``_partition`` column a topic-fed pipeline adds; without it,
    all rows count as one partition):
    * a write names its files ``part-[p<partition>-]<first>-<last>.parquet`` after the
      partition and ``_offset`` range it covers, and they appear atomically (temp file,
      fsync, rename, fsync of the folder);
    * once every file of a write is in place, a commit marker
      ``_plait_commits/[p<partition>-]<first>-<last>`` is written the same way; only then
      does the write count;
    * on open, files without a marker (a crash mid-write) and stray temp files are removed,
      and rows at or below a partition's highest committed offset are skipped from then on,
      so a replay after a crash writes each row once, whatever its batch boundaries.
    Rows with a null event time go to ``dt=unknown/hour=unknown``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        time: str,
        offset: str = "_offset",
        partition: str = "_partition",
        time_unit_ms: int = 1,
    ) -> None:
        self.root = Path(root)
        self.time = time
        self.offset = offset
        self.partition = partition
        self.time_unit_ms = time_unit_ms
        # highest committed input offset per input partition (None: a batch without one)
        self.committed: dict[int | None, int] = {}
        self._recover()

    def last_committed(self, partition: int | None = None) -> int:
        """The highest input offset of ``partition`` written and committed (-1: none)."""
        return self.committed.get(partition, -1)

    def _recover(self) -> None:
        commits = self.root / COMMITS_DIR
        commits.mkdir(parents=True, exist_ok=True)
        ranges: set[_Range] = set()
        for p in commits.iterdir():
            m = _COMMIT.match(p.name)
            if m:
                ranges.add(_parse_range(m))
            elif p.name.startswith(".tmp-"):
                p.unlink()
        for part, _first, last in ranges:
            self.committed[part] = max(last, self.committed.get(part, -1))
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath) / name
                if name.startswith(".tmp-"):
                    path.unlink()
                    continue
                m = _PART.match(name)
                if m and _parse_range(m) not in ranges:
                    path.unlink()  # written by a write that never committed

    def write(self, batch: pa.RecordBatch) -> None:
        for col in (self.offset, self.time):
            if col not in batch.schema.names:
                raise SinkError(
                    f"parquet sink: expected column {col!r}, columns are {batch.schema.names}"
                )
        for col in (self.offset, self.partition):
            idx = batch.schema.get_field_index(col)
            if idx >= 0 and batch.column(idx).null_count:
                raise SinkError(
                    f"parquet sink: column {col!r} has {batch.column(idx).null_count} nulls"
                )
        if self.partition not in batch.schema.names:
            self._write_partition(batch, None)
            return
        parts = pc.cast(batch.column(self.partition), pa.int64()).to_numpy()
        for part in np.unique(parts).tolist():
            mine = parts == part
            self._write_partition(batch if mine.all() else batch.filter(pa.array(mine)), int(part))

    def _write_partition(self, batch: pa.RecordBatch, part: int | None) -> None:
        off = pc.cast(batch.column(self.offset), pa.int64()).to_numpy()
        keep = off > self.last_committed(part)
        if not keep.any():
            return
        if not keep.all():
            batch = batch.filter(pa.array(keep))
            off = off[keep]
        first, last = int(off.min()), int(off.max())
        stem = _range_name((part, first, last))
        name = f"part-{stem}.parquet"
        ts = pc.cast(batch.column(self.time), pa.int64())
        # floor division so times before 1970 land in the right hour
        raw = pc.fill_null(pc.multiply(ts, self.time_unit_ms), 0).to_numpy()
        hours = np.where(
            ts.is_valid().to_numpy(zero_copy_only=False),
            np.floor_divide(raw, 3_600_000),
            -(2**62),
        )
        for h in np.unique(hours).tolist():
            rows = batch.filter(pa.array(hours == h))
            folder = self.root / _hour_folder(int(h))
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_batches([rows])
            self._atomic(folder / name, lambda tmp, t=table: pq.write_table(t, tmp))
        self._commit(stem)
        self.committed[part] = last

    def _commit(self, stem: str) -> None:
        marker = self.root / COMMITS_DIR / stem
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


def _parse_range(m: re.Match[str]) -> _Range:
    part = None if m.group(1) is None else int(m.group(1))
    return part, int(m.group(2)), int(m.group(3))


def _range_name(r: _Range) -> str:
    part, first, last = r
    prefix = "" if part is None else f"p{part}-"
    return f"{prefix}{first:020d}-{last:020d}"


def _hour_folder(hour: int) -> str:
    if hour == -(2**62):
        return "dt=unknown/hour=unknown"
    day = np.datetime64(hour, "h").astype("datetime64[D]")
    return f"dt={day}/hour={hour % 24:02d}"
