"""A member killed with SIGKILL sends no LeaveGroup: the broker must expire its session
and hand its partitions to the survivor, which then reads everything (nothing lost)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from plait.broker.testing import ServeProcess

TOPIC = "expiry"
N = 4000

MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "exp", "client.id": "doomed",
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "session.timeout.ms": 2000, "heartbeat.interval.ms": 200})
c.subscribe(["expiry"])
while True:
    for m in c.consume(50, 0.2):
        if m.error() is None:
            print("got", m.partition(), m.offset(), flush=True)
    time.sleep(0.05)
"""


def test_killed_member_is_expired_and_its_partitions_move(serve: ServeProcess,
                                                          tmp_path: Path) -> None:
    admin = AdminClient({"bootstrap.servers": serve.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 4, 1)])[TOPIC].result(10)
    p = Producer({"bootstrap.servers": serve.bootstrap})
    for i in range(N):
        p.produce(TOPIC, key=b"%d" % i, value=b"%d" % i)
    assert p.flush(10) == 0

    doomed = subprocess.Popen([sys.executable, "-c", MEMBER, serve.bootstrap],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    survivor = Consumer({"bootstrap.servers": serve.bootstrap, "group.id": "exp",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 2000, "heartbeat.interval.ms": 200})
    survivor.subscribe([TOPIC])
    seen: set[tuple[int, int]] = set()
    try:
        assert doomed.stdout is not None
        line = doomed.stdout.readline()  # the doomed member owns partitions and reads
        assert line.startswith(b"got"), line
        share_deadline = time.monotonic() + 15
        while len(survivor.assignment()) != 2 and time.monotonic() < share_deadline:
            for m in survivor.consume(50, 0.2):
                if m.error() is None:
                    seen.add((m.partition(), m.offset()))
        assert len(survivor.assignment()) == 2, "both members should share the 4 partitions"
        doomed.kill()
        doomed.wait(10)
        killed_at = time.monotonic()
        deadline = killed_at + 30
        while len(seen) < N and time.monotonic() < deadline:
            for m in survivor.consume(500, 0.5):
                if m.error() is None:
                    seen.add((m.partition(), m.offset()))
        took = time.monotonic() - killed_at
        assert len(survivor.assignment()) == 4
        assert len(seen) == N, f"survivor saw {len(seen)} of {N} in {took:.1f}s"
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        survivor.close()
