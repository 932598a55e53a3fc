"""The CLI through a broker: `--bootstrap` on topic, produce and consume against plait serve."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.broker.testing import ServeProcess


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "broker-data")
    proc.start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.output()[-4000:]


def cli(tmp_path: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    # --data points at an empty dir: with --bootstrap it must not be used at all.
    return subprocess.run(
        [sys.executable, "-m", "plait.cli.main", "--data", str(tmp_path / "unused"), *args],
        input=stdin,
        check=False, capture_output=True,
        timeout=120,
    )


def test_topic_produce_consume_through_broker(tmp_path, broker):
    bs = ("--bootstrap", broker.bootstrap)
    assert cli(tmp_path, "topic", "create", "via", "--partitions", "2", *bs).returncode == 0
    assert "via" in cli(tmp_path, "topic", "list", *bs).stdout.decode().split()
    lines = b"".join(b"k%d|v%d\n" % (i % 5, i) for i in range(500))
    produced = cli(tmp_path, "produce", "via", "--key-separator", "|", *bs, stdin=lines)
    assert produced.returncode == 0, produced.stderr
    described = cli(tmp_path, "topic", "describe", "via", *bs).stdout.decode().splitlines()
    assert sum(int(line.split()[2]) for line in described[2:]) == 500
    first = cli(tmp_path, "consume", "via", "--group", "g", "--from-beginning", "--max-events", "200", "--timeout", "10", *bs)
    rest = cli(tmp_path, "consume", "via", "--group", "g", "--from-beginning", "--timeout", "3", *bs)
    got = first.stdout.split() + rest.stdout.split()
    assert len(first.stdout.split()) == 200
    assert sorted(got) == sorted(b"v%d" % i for i in range(500))
    assert not (tmp_path / "unused").exists()


def test_unknown_topic_through_broker_is_one_line(tmp_path):
    strict = ServeProcess(tmp_path / "strict-data", "--no-auto-create")
    strict.start()
    try:
        proc = cli(tmp_path, "produce", "absent-topic", "--bootstrap", strict.bootstrap, stdin=b"x\n")
    finally:
        assert strict.stop() == 0
    assert proc.returncode != 0
    err = [line for line in proc.stderr.decode().splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0] and "absent-topic" in err[0], err
