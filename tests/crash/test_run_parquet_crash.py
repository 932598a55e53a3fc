"""SIGKILL ``plait run`` feeding the Parquet data-lake sink from a multi-partition topic.

Offsets repeat across partitions, so the sink must key its exactly-once bookkeeping on
(partition, offset). Each cycle adds input to a 3-partition topic, starts ``plait run``
as a child process (a static group member, so a restart takes its partitions back at
once), kills it with SIGKILL once it has committed some files, and checks
that the lake holds, per input partition, a prefix of that partition's events with no
row twice. A last run to the end must leave every event in the lake exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plait

PARTITIONS = 3
CYCLES = 6
PER_CYCLE = 400  # new events per partition per cycle
T0 = 1_700_000_000_000

PIPELINE = """
import os
import time

from plait.pipeline import pipeline as make
from plait.process.sinks import ParquetSink


def slow(batch):
    time.sleep(0.01)  # gives the kill room to land between a batch's files and commits
    return batch


def pipeline(source):
    return (
        make(source, engine="cpu")
        .decode({"id": "int", "ts": "int"})
        .map(slow)
        .to(ParquetSink(os.environ["PLAIT_TEST_LAKE"], time="ts",
                        flush_rows=int(os.environ["PLAIT_TEST_FLUSH_ROWS"])))
    )
"""


def lake_rows(lake: Path) -> list[tuple[int, int, int]]:
    """(partition, offset, id) of every row in committed-or-not files on disk."""
    tables = [pq.read_table(f) for f in lake.rglob("part-*.parquet")]
    if not tables:
        return []
    t = pa.concat_tables(tables)
    return list(
        zip(
            t.column("_partition").to_pylist(),
            t.column("_offset").to_pylist(),
            t.column("id").to_pylist(),
        )
    )


def commits(lake: Path) -> int:
    folder = lake / "_plait_commits"
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else 0


def spawn(
    data: Path, lake: Path, pipeline_file: Path, idle: float | None, flush_rows: int
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "plait.cli.main", "--data", str(data), "run", str(pipeline_file),
           "--topic", "events", "--group", "lake", "--member-id", "lake-1",
           "--batch-size", "60"]
    if idle is not None:
        cmd += ["--idle-timeout", str(idle)]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PLAIT_TEST_LAKE": str(lake), "PYTHONUNBUFFERED": "1",
             "PLAIT_TEST_FLUSH_ROWS": str(flush_rows)},
    )


def check_prefixes(rows: list[tuple[int, int, int]], ids: dict[tuple[int, int], int]) -> None:
    seen = [(p, o) for p, o, _ in rows]
    assert len(seen) == len(set(seen)), "a row is in the lake twice"
    for p, o, i in rows:
        assert ids[(p, o)] == i, f"partition {p} offset {o} holds id {i}, not {ids[(p, o)]}"
    for p in range(PARTITIONS):
        offs = sorted(o for q, o in seen if q == p)
        assert offs == list(range(len(offs))), f"partition {p}: not a prefix: {offs[:5]}..."


@pytest.mark.parametrize("flush_rows", [0, 150], ids=["file-per-batch", "rolling-files"])
def test_run_into_parquet_is_exactly_once_across_sigkills(tmp_path: Path, flush_rows: int) -> None:
    """With rolling files the sink holds rows in memory past a batch: the kills then
    also lose held rows, which the run must not have committed past."""
    data, lake = tmp_path / "data", tmp_path / "lake"
    pipeline_file = tmp_path / "lake_pipeline.py"
    pipeline_file.write_text(PIPELINE)
    rng = random.Random(2026)
    ids: dict[tuple[int, int], int] = {}
    next_id = 0
    with plait.connect(f"embedded:{data}") as client:
        client.create_topic("events", PARTITIONS)
    killed_mid_run = 0
    for cycle in range(CYCLES):
        with plait.connect(f"embedded:{data}") as client, client.producer() as producer:
            for p in range(PARTITIONS):
                start = client.log.partition("events", p).log_end_offset
                values = []
                for k in range(PER_CYCLE):
                    values.append(json.dumps({"id": next_id, "ts": T0 + next_id * 1000}).encode())
                    ids[(p, start + k)] = next_id
                    next_id += 1
                producer.send_batch("events", values, partition=p)
        before = commits(lake)
        child = spawn(data, lake, pipeline_file, idle=None, flush_rows=flush_rows)
        deadline = time.monotonic() + 60
        while commits(lake) <= before and child.poll() is None:
            assert time.monotonic() < deadline, "plait run made no progress in 60 s"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
        rows = lake_rows(lake)
        # what a reader sees right after the kill, before any recovery: only committed
        # rows (a killed flush's files are hidden), none twice, none out of order
        check_prefixes(rows, ids)
        killed_mid_run += len(rows) < len(ids)
    assert killed_mid_run >= CYCLES // 2, killed_mid_run
    child = spawn(data, lake, pipeline_file, idle=2.0, flush_rows=flush_rows)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()[-2000:]
    rows = lake_rows(lake)
    check_prefixes(rows, ids)
    assert sorted((p, o) for p, o, _ in rows) == sorted(ids)
