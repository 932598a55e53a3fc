"""Parquet data-lake sink: partitioning, atomic files, exactly once across replays and
crashes; topic sink against a producer that records what it is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plait.process.errors import SinkError
from plait.process.sinks import ParquetSink, TopicSink

HOUR = 3_600_000
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


def batch(first: int, n: int, hour_step: int = 0) -> pa.RecordBatch:
    offs = list(range(first, first + n))
    return pa.record_batch(
        {
            "_offset": pa.array(offs, pa.int64()),
            "ts": pa.array(
                [T0 + (o - first) * hour_step * HOUR for o in offs], pa.int64()
            ),
            "v": pa.array([f"row{o}" for o in offs]),
        }
    )


def read_all(root: Path) -> list[int]:
    files = sorted(root.rglob("part-*.parquet"))
    offs: list[int] = []
    for f in files:
        offs.extend(pq.read_table(f).column("_offset").to_pylist())
    return sorted(offs)


def test_partitions_and_names(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, time="ts")
    sink.write(batch(0, 3, hour_step=1))
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert names == [
        "dt=2023-11-14/hour=22/part-00000000000000000000-00000000000000000002.parquet",
        "dt=2023-11-14/hour=23/part-00000000000000000000-00000000000000000002.parquet",
        "dt=2023-11-15/hour=00/part-00000000000000000000-00000000000000000002.parquet",
    ]
    assert not list(tmp_path.rglob(".tmp-*"))
    assert (
        tmp_path / "_plait_commits" / "00000000000000000000-00000000000000000002"
    ).exists()


def test_replay_after_restart_writes_each_row_once(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, time="ts")
    sink.write(batch(0, 10))
    sink.write(batch(10, 10))
    before = {p: p.read_bytes() for p in tmp_path.rglob("part-*")}
    # restart and replay the same range, cut differently, plus new rows
    sink2 = ParquetSink(tmp_path, time="ts")
    sink2.write(batch(0, 7))
    sink2.write(batch(7, 18))
    assert read_all(tmp_path) == list(range(25))
    for p, data in before.items():
        assert p.read_bytes() == data  # untouched


def test_crash_before_commit_rolls_back_and_replay_restores(tmp_path: Path) -> None:
    class Crash(Exception):
        pass

    class CrashingSink(ParquetSink):
        def _commit(self, stem: str, files: list[str]) -> None:  # dies before its marker
            raise Crash

    ParquetSink(tmp_path, time="ts").write(batch(0, 5))
    crashing = CrashingSink(tmp_path, time="ts")
    with pytest.raises(Crash):
        crashing.write(batch(5, 5, hour_step=1))  # files land in several partitions
    (tmp_path / "dt=2023-11-14" / "hour=22" / ".tmp-stray").write_bytes(b"partial")
    # the uncommitted files are on disk, hidden: a reader never sees their rows...
    assert len(list(tmp_path.rglob(".tmp-part-*.parquet"))) == 5
    assert read_all(tmp_path) == list(range(5))
    sink = ParquetSink(tmp_path, time="ts")  # ...and recovery removes them
    assert read_all(tmp_path) == list(range(5))
    assert not list(tmp_path.rglob(".tmp-*"))
    sink.write(batch(3, 7))  # replay from an older offset
    assert read_all(tmp_path) == list(range(10))


def test_bad_input(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, time="ts")
    with pytest.raises(SinkError, match="expected column '_offset'"):
        sink.write(pa.record_batch({"ts": [1]}))
    sink.write(
        pa.record_batch(
            {"_offset": pa.array([0], pa.int64()), "ts": pa.array([None], pa.int64())}
        )
    )
    assert list((tmp_path / "dt=unknown" / "hour=unknown").glob("part-*.parquet"))


def partitioned(part: int, first: int, n: int) -> pa.RecordBatch:
    b = batch(first, n)
    return b.append_column("_partition", pa.array([part] * n, pa.int32()))


def read_pairs(root: Path) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    for f in root.rglob("part-*.parquet"):
        t = pq.read_table(f)
        pairs.extend(zip(t.column("_partition").to_pylist(), t.column("_offset").to_pylist()))
    return sorted(pairs)


def test_offsets_are_per_input_partition(tmp_path: Path) -> None:
    """Partitions share offset numbers: partition 1's offsets 0..9 arriving after
    partition 0 reached 19 are new rows, not a replay."""
    sink = ParquetSink(tmp_path, time="ts")
    sink.write(partitioned(0, 0, 20))
    sink.write(partitioned(1, 0, 10))
    sink.write(pa.concat_batches([partitioned(2, 0, 5), partitioned(1, 10, 5)]))
    want = [(0, o) for o in range(20)] + [(1, o) for o in range(15)] + [(2, o) for o in range(5)]
    assert read_pairs(tmp_path) == want
    assert (tmp_path / "_plait_commits" / f"p1-{0:020d}-{9:020d}").exists()
    assert sink.last_committed(1) == 14 and sink.last_committed(2) == 4
    assert sink.last_committed(3) == -1 and sink.last_committed() == -1
    # a restart replays every partition from older offsets, cut differently
    again = ParquetSink(tmp_path, time="ts")
    assert again.committed == {0: 19, 1: 14, 2: 4}
    again.write(partitioned(1, 5, 15))
    again.write(partitioned(0, 18, 4))
    again.write(partitioned(2, 0, 5))
    want += [(0, 20), (0, 21)] + [(1, o) for o in range(15, 20)]
    assert read_pairs(tmp_path) == sorted(want)


def test_crash_between_partitions_keeps_the_committed_one(tmp_path: Path) -> None:
    class Crash(Exception):
        pass

    class CrashOnSecond(ParquetSink):
        def _commit(self, stem: str, files: list[str]) -> None:
            if stem.startswith("p5-"):
                raise Crash
            super()._commit(stem, files)

    with pytest.raises(Crash):
        CrashOnSecond(tmp_path, time="ts").write(
            pa.concat_batches([partitioned(4, 0, 3), partitioned(5, 0, 3)])
        )
    sink = ParquetSink(tmp_path, time="ts")
    assert read_pairs(tmp_path) == [(4, 0), (4, 1), (4, 2)]
    sink.write(pa.concat_batches([partitioned(4, 0, 3), partitioned(5, 0, 3)]))
    assert read_pairs(tmp_path) == [(4, o) for o in range(3)] + [(5, o) for o in range(3)]


def test_null_partition_is_refused(tmp_path: Path) -> None:
    b = batch(0, 2).append_column("_partition", pa.array([0, None], pa.int32()))
    with pytest.raises(SinkError, match="'_partition' has 1 nulls"):
        ParquetSink(tmp_path, time="ts").write(b)
    assert not list(tmp_path.rglob("part-*"))


def test_crash_after_the_marker_rolls_forward(tmp_path: Path) -> None:
    """Dead between its commit and naming its files: the rows count (the marker says
    so), readers see them once the sink opens again, and a replay adds nothing."""
    import plait.process.parquet_sink as ps

    class Crash(Exception):
        pass

    def crash(files: list[Path]) -> None:
        raise Crash

    real = ps._publish
    ps._publish = crash
    try:
        with pytest.raises(Crash):
            ParquetSink(tmp_path, time="ts").write(batch(0, 4, hour_step=1))
    finally:
        ps._publish = real
    assert read_all(tmp_path) == []  # committed but not yet named: not visible
    sink = ParquetSink(tmp_path, time="ts")
    assert read_all(tmp_path) == [0, 1, 2, 3] and sink.last_committed() == 3
    sink.write(batch(0, 6))
    assert read_all(tmp_path) == list(range(6))
    assert not list(tmp_path.rglob(".tmp-*"))


def test_dataset_readers_see_committed_rows_only(tmp_path: Path) -> None:
    """Arrow's dataset reader (as Spark and DuckDB do) skips the hidden files."""
    import pyarrow.dataset as ds

    class Crash(Exception):
        pass

    class CrashingSink(ParquetSink):
        def _commit(self, stem: str, files: list[str]) -> None:
            raise Crash

    ParquetSink(tmp_path, time="ts").write(batch(0, 3))
    with pytest.raises(Crash):
        CrashingSink(tmp_path, time="ts").write(batch(3, 3))
    got = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert sorted(got.column("_offset").to_pylist()) == [0, 1, 2]


def test_topic_sink_produces_rows_keyed_through_the_sdk(tmp_path: Path) -> None:
    """Into a real embedded topic: rows as JSON without plait's ``_`` columns, a key's
    rows in that key's partition in order, a null key sent as no key."""
    import plait
    from plait.client.partitioner import partition_for_key

    rows = pa.record_batch({
        "user": [1, None, 1, 7], "note": ["é", "x", "y", "z"], "_offset": [4, 5, 6, 7],
    })
    with plait.connect(f"embedded:{tmp_path / 'data'}") as client:
        client.create_topic("out", 3)
        with client.producer() as producer:
            TopicSink(producer, "out", key="user").write(rows)
            with pytest.raises(SinkError, match="expected key column 'nope'"):
                TopicSink(producer, "out", key="nope").write(pa.record_batch({"a": [1]}))
        with client.consumer(["out"], from_beginning=True) as consumer:
            got = []
            while len(got) < 4:
                polled = consumer.poll(timeout=5)
                assert polled, got
                got += polled
    by_key: dict[bytes | None, list[tuple[int, dict]]] = {}
    for m in got:
        by_key.setdefault(m.key, []).append((m.partition, json.loads(m.value)))
    assert set(by_key) == {b"1", b"7", None}
    assert [v for _, v in by_key[b"1"]] == [{"user": 1, "note": "é"}, {"user": 1, "note": "y"}]
    assert {p for p, _ in by_key[b"1"]} == {partition_for_key(b"1", 3)}
    assert by_key[None] == [(by_key[None][0][0], {"user": None, "note": "x"})]


def files(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def test_rolling_files_hold_rows_until_enough_and_say_which(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, time="ts", flush_rows=10)
    sink.write(partitioned(0, 0, 4))
    sink.write(partitioned(1, 0, 3))
    sink.write(partitioned(0, 4, 2))
    assert files(tmp_path) == [] and sink.committed == {}
    assert sink.pending_offsets() == {0: 0, 1: 0}
    sink.write(partitioned(1, 3, 1))  # 10 held: one file set per partition
    assert [f.name for f in files(tmp_path)] == [
        f"part-p0-{0:020d}-{5:020d}.parquet", f"part-p1-{0:020d}-{3:020d}.parquet",
    ]
    assert sink.pending_offsets() == {} and sink.committed == {0: 5, 1: 3}
    sink.write(partitioned(0, 3, 5))  # a replay of 3..5 and two new rows
    assert sink.pending_offsets() == {0: 6}
    sink.close()
    assert read_pairs(tmp_path) == [(0, o) for o in range(8)] + [(1, o) for o in range(4)]
    assert sink.pending_offsets() == {}


def test_rolling_files_flush_on_age_without_more_input(tmp_path: Path) -> None:
    import time

    sink = ParquetSink(tmp_path, time="ts", flush_rows=1000, flush_interval_s=0.2)
    sink.write(partitioned(2, 7, 3))
    assert files(tmp_path) == []
    deadline = time.monotonic() + 5
    while not files(tmp_path):
        assert time.monotonic() < deadline, "the timer never flushed"
        time.sleep(0.02)
    assert sink.pending_offsets() == {}
    assert read_pairs(tmp_path) == [(2, 7), (2, 8), (2, 9)]
    sink.close()


def test_a_failed_flush_keeps_its_rows_pending(tmp_path: Path) -> None:
    class FailsOnce(ParquetSink):
        failed = False

        def _commit(self, stem: str, files: list[str]) -> None:
            if not self.failed:
                self.failed = True
                raise OSError("disk full")
            super()._commit(stem, files)

    sink = FailsOnce(tmp_path, time="ts", flush_rows=3)
    with pytest.raises(OSError, match="disk full"):
        sink.write(partitioned(0, 0, 3))
    assert sink.pending_offsets() == {0: 0}  # still held: a runner commits nothing past 0
    sink.close()
    assert read_pairs(tmp_path) == [(0, 0), (0, 1), (0, 2)]
    with pytest.raises(SinkError, match="flush_rows >= 0"):
        ParquetSink(tmp_path, time="ts", flush_rows=-1)
