"""A topic-backed reference table through plait serve with the kafka:// client: the whole
topic at open (every partition, from the beginning, no group), records produced later
seen by a later reload, tombstones, an unknown topic; and ``plait process --bootstrap``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import plait
from plait.broker.testing import ServeProcess
from plait.client.kafka import KafkaClient
from plait.process.enrich_topic import TopicReferenceTable
from plait.process.errors import UnknownReferenceTopicError

USERS = {"user_id": "int", "segment": "string"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "broker-data", "--no-auto-create").start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.output()[-4000:]


def user(uid: int, segment: str) -> bytes:
    return json.dumps({"user_id": uid, "segment": segment}).encode()


def test_table_follows_a_topic_through_the_broker(broker: ServeProcess) -> None:
    client = plait.connect(f"kafka://{broker.bootstrap}")
    assert isinstance(client, KafkaClient)
    with client:
        client.create_topic("users", 3)
        with client.producer() as p:
            p.send_batch("users", [user(i, f"s{i}") for i in range(300)],
                         keys=[str(i).encode() for i in range(300)])
            p.send_batch("users", [user(7, "seven"), None, b"{bad"], keys=[b"7", b"8", b"9"])
        dead = []
        with TopicReferenceTable(client, "users", "user_id", USERS, refresh_s=0.0,
                                 on_dead=dead.append) as table:
            got = {r["user_id"]: r["segment"] for r in table.table.to_pylist()}
            want = {i: f"s{i}" for i in range(300) if i != 8}
            want[7] = "seven"
            assert got == want  # complete at open: all three partitions read to their end
            assert table.rejected == 1 and len(dead) == 1 and dead[0].value == b"{bad"
            with client.producer() as p:
                p.send_batch("users", [user(1000, "new"), None], keys=[b"1000", b"7"])
            probe = pa.record_batch({"uid": pa.array([1000, 7, 3], pa.int64())})
            deadline = time.monotonic() + 20
            segs = table.lookup(probe, "uid").column("segment").to_pylist()
            while segs != ["new", None, "s3"] and time.monotonic() < deadline:
                time.sleep(0.05)
                table.maybe_reload()
                segs = table.lookup(probe, "uid").column("segment").to_pylist()
            assert segs == ["new", None, "s3"]
        with pytest.raises(UnknownReferenceTopicError):
            TopicReferenceTable(client, "absent", "user_id", USERS)


def test_process_reads_the_enrich_topic_through_bootstrap(tmp_path: Path, broker: ServeProcess) -> None:
    with plait.connect(f"kafka://{broker.bootstrap}") as client:
        client.create_topic("users", 2)
        with client.producer() as p:
            p.send_batch("users", [user(1, "gold"), user(2, "silver"), None], keys=[b"1", b"2", b"2"])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "schema: {user_id: int}\n"
        "enrich: {topic: users, key: user_id, schema: {user_id: int, segment: string}}\n"
    )
    events = b'{"user_id": 1}\n{"user_id": 2}\n{"user_id": 3}\n'
    proc = subprocess.run(
        [sys.executable, "-m", "plait.cli.main", "--data", str(tmp_path / "unused"),
         "process", str(spec), "--engine", "cpu", "--bootstrap", broker.bootstrap],
        input=events, capture_output=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["user_id"], r["segment"]) for r in rows] == [(1, "gold"), (2, None), (3, None)]
    assert not (tmp_path / "unused").exists()  # --bootstrap: the data dir is not opened
