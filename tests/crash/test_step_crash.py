"""SIGKILL the exactly-once step at random points; its output stays exactly-once.

Each cycle adds input, starts the step in a child process (tests/crash/_step.py),
kills it with SIGKILL after a random delay, and checks that every sink partition is
a prefix of the expected transformation of its input partition: nothing duplicated,
nothing skipped, nothing reordered. A last run without a kill must complete it.
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
from plait.protocol.records import iter_records

try:
    from tests.delivery import assert_exactly_once_in_order
except ImportError:  # pytest's rootdir-relative import puts tests/ on sys.path
    from delivery import assert_exactly_once_in_order  # type: ignore[no-redef]

sys.path.insert(0, str(Path(__file__).parent))
from _step import transform

CHILD = Path(__file__).with_name("_step.py")
CYCLES = 20
PARTITIONS = 3
PER_CYCLE = 150  # new input events per partition per cycle


def expected_outputs(values: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for v in values:
        got = transform(plait.Message("in", 0, 0, 0, None, v))
        if got is not None:
            out.extend([got] if isinstance(got, bytes) else got)
    return out


def sink(client, partition: int) -> list[bytes]:
    part = client.log.partition("out", partition)
    if part.log_end_offset == part.log_start_offset:
        return []
    return [r.value for r in iter_records(part.read(0, 1 << 30))]


def spawn(data: Path, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(data), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_step_output_is_exactly_once_across_sigkills(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(4321)
    inputs: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    counter = 1
    with plait.connect(f"embedded:{data}") as client:
        client.create_topic("in", PARTITIONS)
        client.create_topic("out", PARTITIONS)
    killed_with_progress = 0
    before = 0
    started = time.monotonic()
    for cycle in range(CYCLES + 1):
        with plait.connect(f"embedded:{data}") as client:
            # What the previous incarnation left: a prefix of the expected output.
            produced = 0
            for p in range(PARTITIONS):
                got, want = sink(client, p), expected_outputs(inputs[p])
                assert got == want[: len(got)], (
                    f"cycle {cycle}: sink partition {p} is not a prefix of the expected output"
                )
                produced += len(got)
            if cycle:
                killed_with_progress += produced > before
            before = produced
            if cycle == CYCLES:
                break
            with client.producer() as producer:
                for p in range(PARTITIONS):
                    values = [b"%d" % n for n in range(counter, counter + PER_CYCLE)]
                    counter += PER_CYCLE
                    producer.send_batch("in", values, partition=p)
                    inputs[p].extend(values)
        child = spawn(data, cycle)
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith(b"READY"), child.communicate(timeout=30)[1].decode()[-2000:]
        if cycle % 4 == 3:  # somewhere in start-up: joining, tail read, first poll
            time.sleep(rng.uniform(0.0, 0.8))
        else:  # while it processes
            assert child.stdout.readline().startswith(b"WARM")
            time.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    # The kills landed while the step was working, not only before or after it.
    assert killed_with_progress >= CYCLES // 2, killed_with_progress
    child = spawn(data, 999)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and b"DONE" in out, err.decode()[-2000:]
    with plait.connect(f"embedded:{data}") as client:
        produced = {p: expected_outputs(inputs[p]) for p in range(PARTITIONS)}
        delivered = {p: sink(client, p) for p in range(PARTITIONS)}
        assert_exactly_once_in_order(produced, delivered)
        assert delivered == produced
    assert time.monotonic() - started < 120
