"""The data-lake sync: Parquet files, partitioned by event time, each row exactly once.

Why buffering is in here and not in the runner: a file per pipeline batch is what a
low-rate stream turns into thousands of tiny files, the classic data-lake problem; rolling
files by size or age fixes it, and the sink then tells the runner which input offsets it
still holds only in memory (:meth:`ParquetSink.pending_offsets`), so the runner commits
no input offset past a row that is not yet on disk.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plait.process.errors import SinkError

_PART = re.compile(r"^part-(?:p(\d+)-)?(\d{20})-(\d{20})\.parquet$")
_COMMIT = re.compile(r"^(?:p(\d+)-)?(\d{20})-(\d{20})$")
COMMITS_DIR = "_plait_commits"

_Range = tuple[int | None, int, int]  # (input partition or None, first offset, last offset)


class ParquetSink:
    """Parquet files partitioned ``dt=YYYY-MM-DD/hour=HH`` by event time.

    Exactly once across restarts, given input offsets that increase across writes within
    each input partition (the ``_partition`` column a topic-fed pipeline adds; without it,
    all rows count as one partition):
    * a flush names its files ``part-[p<partition>-]<first>-<last>.parquet`` after the
      partition and ``_offset`` range it covers, and writes them hidden (``.tmp-`` names,
      fsynced);
    * then a commit marker ``_plait_commits/[p<partition>-]<first>-<last>`` listing them
      is written atomically: the flush counts from here;
    * then the files get their names. A reader of the folder never sees a row that is not
      committed, and no row twice;
    * on open, a committed flush's files still hidden are named (roll forward), hidden
      files of a flush without a marker are removed, and rows at or below a partition's
      highest committed offset are skipped from then on, so a replay after a crash writes
      each row once, whatever its batch boundaries.
    Rows with a null event time go to ``dt=unknown/hour=unknown``.

    By default every :meth:`write` is flushed before it returns. With ``flush_rows`` (and
    ``flush_interval_s``) rows are held until that many are waiting (or the oldest has
    waited that long; a background timer flushes an idle stream too): fewer, larger files.
    Held rows are not durable: :meth:`pending_offsets` names the first of them per
    partition, and :meth:`close` flushes them.

    One writer per folder: the committed offsets are read from disk when the sink opens,
    so two processes writing one folder (two workers sharing it, or a zombie) can each
    write a row the other has.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        time: str,
        offset: str = "_offset",
        partition: str = "_partition",
        time_unit_ms: int = 1,
        flush_rows: int = 0,
        flush_interval_s: float | None = None,
    ) -> None:
        if flush_rows < 0 or (flush_interval_s is not None and not flush_interval_s > 0):
            raise SinkError(
                f"parquet sink: expected flush_rows >= 0 and flush_interval_s > 0, got "
                f"{flush_rows} and {flush_interval_s}"
            )
        self.root = Path(root)
        self.time = time
        self.offset = offset
        self.partition = partition
        self.time_unit_ms = time_unit_ms
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        # highest committed input offset per input partition (None: a batch without one)
        self.committed: dict[int | None, int] = {}
        self._lock = threading.RLock()  # the buffer and commits: the timer flushes too
        self._held: dict[int | None, list[pa.RecordBatch]] = {}
        self._held_span: dict[int | None, tuple[int, int]] = {}  # first, last offset held
        self._held_rows = 0
        self._held_since: float | None = None
        self._timer_error: Exception | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._recover()

    @property
    def buffering(self) -> bool:
        return self.flush_rows > 0 or self.flush_interval_s is not None

    def last_committed(self, partition: int | None = None) -> int:
        """The highest input offset of ``partition`` written and committed (-1: none)."""
        return self.committed.get(partition, -1)

    def pending_offsets(self) -> dict[int | None, int]:
        """Per input partition, the first offset held in memory, not yet on disk: a
        runner commits no input offset at or past it."""
        with self._lock:
            return {part: first for part, (first, _) in self._held_span.items()}

    # -- writing -----------------------------------------------------------------------
    def write(self, batch: pa.RecordBatch) -> None:
        self._check_timer()
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
        with self._lock:
            for part, rows in self._by_partition(batch):
                rows = self._new_rows(rows, part)
                if rows is None:
                    continue
                if self.buffering:
                    self._hold(part, rows)
                else:
                    self._flush_rows(rows, part)
            if self._held and self._due():
                self.flush()

    def flush(self) -> None:
        """Write every held row now (one file set and commit per input partition). Rows
        leave the buffer only once their commit is on disk: a failed flush keeps them held
        (and pending) for the next one."""
        with self._lock:
            for part in sorted(self._held, key=lambda p: -1 if p is None else p):
                batches = self._held[part]
                try:
                    rows = pa.concat_batches(batches)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise SinkError(f"parquet sink: held batches differ in their columns: {exc}") from exc
                self._flush_rows(rows, part)
                del self._held[part]
                self._held_span.pop(part, None)
                self._held_rows -= rows.num_rows
            self._held_since = None

    def close(self) -> None:
        """Flush what is held and stop the timer."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
            self._timer = None
        self.flush()
        self._check_timer()

    def _by_partition(self, batch: pa.RecordBatch) -> list[tuple[int | None, pa.RecordBatch]]:
        if self.partition not in batch.schema.names:
            return [(None, batch)]
        parts = pc.cast(batch.column(self.partition), pa.int64()).to_numpy()
        out: list[tuple[int | None, pa.RecordBatch]] = []
        for part in np.unique(parts).tolist():
            mine = parts == part
            out.append((int(part), batch if mine.all() else batch.filter(pa.array(mine))))
        return out

    def _new_rows(self, batch: pa.RecordBatch, part: int | None) -> pa.RecordBatch | None:
        """The rows past what is committed or held for ``part`` (a replay skips the rest)."""
        seen = max(self.last_committed(part), self._held_span.get(part, (-1, -1))[1])
        off = pc.cast(batch.column(self.offset), pa.int64()).to_numpy()
        keep = off > seen
        if not keep.any():
            return None
        return batch if keep.all() else batch.filter(pa.array(keep))

    def _hold(self, part: int | None, rows: pa.RecordBatch) -> None:
        self._held.setdefault(part, []).append(rows)
        bounds = pc.min_max(rows.column(self.offset))
        low, top = int(bounds["min"].as_py()), int(bounds["max"].as_py())
        first, last = self._held_span.get(part, (low, top))
        self._held_span[part] = (min(first, low), max(last, top))
        self._held_rows += rows.num_rows
        if self._held_since is None:
            self._held_since = time.monotonic()
        if self.flush_interval_s is not None and self._timer is None:
            self._timer = threading.Thread(target=self._tick, name="parquet-sink-flush", daemon=True)
            self._timer.start()

    def _due(self) -> bool:
        if self.flush_rows and self._held_rows >= self.flush_rows:
            return True
        since = self._held_since
        return self.flush_interval_s is not None and since is not None and (
            time.monotonic() - since >= self.flush_interval_s
        )

    def _tick(self) -> None:
        """Flush held rows once the oldest is ``flush_interval_s`` old, input or not."""
        assert self.flush_interval_s is not None
        while not self._stop.wait(self.flush_interval_s / 4):
            try:
                with self._lock:
                    if self._held and self._due():
                        self.flush()
            except (OSError, pa.ArrowException, SinkError) as exc:  # raised by the next write or close
                self._timer_error = exc
                return

    def _check_timer(self) -> None:
        if self._timer_error is not None:
            exc, self._timer_error = self._timer_error, None
            raise SinkError(f"parquet sink: a timed flush failed: {exc}") from exc

    def _flush_rows(self, batch: pa.RecordBatch, part: int | None) -> None:
        """Write ``batch`` as hidden files, commit them with a marker that lists them, then
        give them their names: a reader never sees a row that is not committed."""
        off = pc.cast(batch.column(self.offset), pa.int64()).to_numpy()
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
        files = []
        for h in np.unique(hours).tolist():
            rows = batch.filter(pa.array(hours == h))
            path = self.root / _hour_folder(int(h)) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_batches([rows])
            _durable(_hidden(path), partial(pq.write_table, table))
            files.append(path)
        for folder in {f.parent for f in files}:
            _sync_dir(folder)
        self._commit(stem, [str(f.relative_to(self.root)) for f in files])
        _publish(files)
        self.committed[part] = max(last, self.last_committed(part))

    def _commit(self, stem: str, files: list[str]) -> None:
        """The point a flush counts: its marker, naming its files, is on disk."""
        marker = self.root / COMMITS_DIR / stem
        tmp = marker.with_name(f".tmp-{stem}")
        _durable(tmp, lambda path: Path(path).write_text(json.dumps(files)))
        os.replace(tmp, marker)
        _sync_dir(marker.parent)

    # -- recovery ----------------------------------------------------------------------
    def _recover(self) -> None:
        """Finish what a crash left: a committed flush's hidden files get their names
        (roll forward); files of a flush that never committed are removed."""
        commits = self.root / COMMITS_DIR
        commits.mkdir(parents=True, exist_ok=True)
        ranges: set[_Range] = set()
        for p in commits.iterdir():
            m = _COMMIT.match(p.name)
            if m is None:
                if p.name.startswith(".tmp-"):
                    p.unlink()
                continue
            ranges.add(_parse_range(m))
            text = p.read_text()
            listed = [self.root / f for f in json.loads(text)] if text else []
            _publish([f for f in listed if _hidden(f).exists()])
        for part, _first, last in ranges:
            self.committed[part] = max(last, self.committed.get(part, -1))
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                path = Path(dirpath) / name
                if name.startswith(".tmp-"):
                    path.unlink()  # hidden files of a flush that never committed
                    continue
                m = _PART.match(name)
                if m and _parse_range(m) not in ranges:
                    path.unlink()  # named by a sink from before markers listed files


def _hidden(path: Path) -> Path:
    """Where a file waits for its commit: dot-files are skipped by Arrow, Spark and
    DuckDB dataset readers."""
    return path.with_name(f".tmp-{path.name}")


def _publish(files: list[Path]) -> None:
    """Give committed hidden files their names."""
    for f in files:
        os.replace(_hidden(f), f)
    for folder in {f.parent for f in files}:
        _sync_dir(folder)


def _durable(path: Path, writer: Callable[[str], Any]) -> None:
    writer(str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
