"""kill -9 a writer with fsync ``always`` at random moments; every acknowledged batch
must survive exactly once and in order, and an unacknowledged retry must not duplicate."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka.record.default_records import DefaultRecordBatch

from plait.log import Log

WRITER = Path(__file__).with_name("_log_writer.py")
CYCLES = 20


def stored_batches(data_dir: Path) -> list[tuple[int, int, int]]:
    """``(base_offset, last_offset, payload_id)`` of every stored batch, in log order;
    also checks the log still takes a write after recovery."""
    with Log.open(data_dir) as log:
        p = log.partition("crash", 0)
        data = p.read(0, 1 << 30) if p.log_end_offset else b""
        end = p.log_end_offset
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 8:pos + 12], "big") + 12
        batch = DefaultRecordBatch(data[pos:pos + size])
        assert batch.validate_crc()
        records = list(batch)
        ids = {int(r.value.split(b":")[0]) for r in records}
        assert len(ids) == 1, f"batch at {batch.base_offset} mixes payloads {ids}"
        out.append((batch.base_offset, records[-1].offset, ids.pop()))
        pos += size
    assert not out or out[-1][1] == end - 1
    return out


def run_cycle(data_dir: Path, producer_id: int, next_id: int, next_seq: int,
              retry: tuple[int, int] | None, rng: random.Random) -> list[str]:
    args = [sys.executable, str(WRITER), str(data_dir), str(producer_id), str(next_id),
            str(next_seq)]
    if retry is not None:
        args.append(f"{retry[0]}:{retry[1]}")
    err_path = data_dir.parent / "writer.err"
    with open(err_path, "wb") as err_file:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err_file)
    assert proc.stdout is not None
    try:
        ready = proc.stdout.readline()
        assert ready == b"READY\n", (ready, err_path.read_bytes())
        time.sleep(rng.uniform(0.0, 0.25))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        # read through the same buffered reader as readline(), which may hold lines
        out = proc.stdout.read()
        proc.stdout.close()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err_path.read_bytes().decode()
    complete = out.decode().split("\n")[:-1]  # the last piece may be a torn line
    return complete


def test_acknowledged_batches_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Log.open(data_dir) as log:
        producer_id = log.allocate_producer_id()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acked: dict[int, tuple[int, int]] = {}   # payload id -> (base, last)
    next_id, next_seq = 0, 0
    retry: tuple[int, int] | None = None
    deadline = time.monotonic() + 120
    for cycle in range(CYCLES):
        # a retry stays pending until acknowledged: the kill may land during the retry
        lines = run_cycle(data_dir, producer_id, next_id, next_seq, retry, rng)
        for line in lines:
            kind, *fields = line.split()
            if kind == "SEND":
                payload_id, seq = map(int, fields)
                retry = (payload_id, seq)        # in flight until its ACK
                next_id, next_seq = payload_id + 1, seq + 1 + payload_id % 3
            elif kind == "ACK":
                base, last, payload_id = map(int, fields)
                if payload_id in acked:           # a retried batch keeps its offsets
                    assert acked[payload_id] == (base, last)
                acked[payload_id] = (base, last)
                if retry is not None and retry[0] == payload_id:
                    retry = None
        batches = stored_batches(data_dir)
        ids = [payload_id for _, _, payload_id in batches]
        assert ids == sorted(set(ids)), f"cycle {cycle}: duplicated or reordered {ids}"
        where = {payload_id: (base, last) for base, last, payload_id in batches}
        for payload_id, offsets in acked.items():
            assert where.get(payload_id) == offsets, f"cycle {cycle}: lost ack {payload_id}"
        # anything stored beyond the acks is at most the one batch in flight
        assert set(ids) - set(acked) <= ({retry[0]} if retry else set())
        assert time.monotonic() < deadline, "crash test is too slow"
    assert len(acked) > CYCLES  # the writer made real progress
