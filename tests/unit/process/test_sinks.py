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
        def _commit(
            self, first: int, last: int
        ) -> None:  # the process dies before its marker
            raise Crash

    ParquetSink(tmp_path, time="ts").write(batch(0, 5))
    crashing = CrashingSink(tmp_path, time="ts")
    with pytest.raises(Crash):
        crashing.write(batch(5, 5, hour_step=1))  # files land in several partitions
    (tmp_path / "dt=2023-11-14" / "hour=22" / ".tmp-stray").write_bytes(b"partial")
    assert read_all(tmp_path) == list(
        range(10)
    )  # uncommitted files are visible on disk...
    sink = ParquetSink(tmp_path, time="ts")  # ...until recovery removes them
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


class RecordingProducer:
    def __init__(self) -> None:
        self.calls: list[tuple[list[bytes], list[bytes] | None]] = []

    def send_batch(self, values: list[bytes], keys: list[bytes] | None = None) -> None:
        self.calls.append((values, keys))


def test_topic_sink_encodes_rows_and_keys() -> None:
    prod = RecordingProducer()
    TopicSink(prod, key="user").write(
        pa.record_batch({"user": [1, None], "note": ["é", "x"], "_offset": [4, 5]})
    )
    [(values, keys)] = prod.calls
    assert [json.loads(v) for v in values] == [
        {"user": 1, "note": "é"},
        {"user": None, "note": "x"},
    ]
    assert keys == [b"1", b""]
    with pytest.raises(SinkError, match="expected key column 'nope'"):
        TopicSink(prod, key="nope").write(pa.record_batch({"a": [1]}))
