"""SIGKILL a producer with fsync=always at random moments; nothing acknowledged is lost.

Each cycle starts a child that produces numbered events, kills it after a random
delay, reopens the data dir and checks: every acknowledged event is present exactly
once, ids are strictly increasing (no duplicate, no reordering), acknowledged
offsets match what is stored, and the log takes new writes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import plait

CHILD = Path(__file__).with_name("_producer.py")
CYCLES = 20


def read_all(client) -> list[tuple[int, int]]:
    consumer = client.consumer()
    consumer.assign([("crash", 0)])
    consumer.seek_to_beginning()
    out: list[tuple[int, int]] = []
    while True:
        batch = consumer.poll(timeout=0.2)
        if not batch:
            break
        out.extend((m.offset, int(m.value[:12])) for m in batch)
    consumer.close()
    return out


def test_acknowledged_events_survive_sigkill(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(1234)
    next_id = 0
    acked: dict[int, int] = {}  # every event ever acknowledged -> its offset
    for cycle in range(CYCLES):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(data), str(next_id)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdout is not None
        # Kill at a random moment once the child is producing (its first ack seen).
        first = child.stdout.readline()
        assert first.startswith(b"ACK"), child.stderr.read() if child.stderr else first
        time.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
        lines = (first + rest).decode().splitlines()
        acks = [line.split() for line in lines if line.startswith("ACK")]
        # A line cut by the kill is not an ack the test may rely on.
        for parts in acks:
            if len(parts) != 4:
                continue
            first, count, base = int(parts[1]), int(parts[2]), int(parts[3])
            for i in range(count):
                acked[first + i] = base + i
        with plait.connect(f"embedded:{data}") as client:
            stored = read_all(client)
            ids = [i for _, i in stored]
            assert ids == sorted(set(ids)), f"cycle {cycle}: duplicate or reordered ids"
            assert [o for o, _ in stored] == list(range(len(stored))), f"cycle {cycle}: offset gap"
            where = {i: o for o, i in stored}
            for event_id, offset in acked.items():
                assert where.get(event_id) == offset, f"cycle {cycle}: acked event {event_id} lost or moved"
            # The log takes new writes after recovery.
            with client.producer() as producer:
                probe_id = (ids[-1] + 1) if ids else next_id
                ack = producer.send_batch("crash", [b"%012d" % probe_id])
            assert ack.ranges[0].base_offset == len(stored)
            acked[probe_id] = len(stored)
            next_id = probe_id + 1
    assert len(acked) > 10 * CYCLES
