"""The CLI contract, run as a user runs it: a real `plait` process per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import plait


def plait_cli(data: Path, *args: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "plait.cli.main", "--data", str(data), *args],
        input=stdin,
        check=False, capture_output=True,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], *needles: str) -> None:
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_topic_produce_consume_round_trip(tmp_path):
    data = tmp_path / "d"
    assert plait_cli(data, "topic", "create", "orders", "--partitions", "3").returncode == 0
    listed = plait_cli(data, "topic", "list")
    assert listed.stdout.decode().split() == ["orders"]
    lines = b"".join(b"k%d:v%d\n" % (i % 7, i) for i in range(1000))
    produced = plait_cli(data, "produce", "orders", "--key-separator", ":", "--fsync", "always", stdin=lines)
    assert produced.returncode == 0, produced.stderr
    described = plait_cli(data, "topic", "describe", "orders").stdout.decode()
    ends = [int(line.split()[2]) for line in described.splitlines()[2:]]
    assert sum(ends) == 1000 and len(ends) == 3
    consumed = plait_cli(data, "consume", "orders", "--from-beginning", "--max-events", "1000", "--timeout", "5")
    assert consumed.returncode == 0, consumed.stderr
    values = consumed.stdout.decode().split("\n")[:-1]
    assert sorted(values) == sorted(f"v{i}" for i in range(1000))
    # Per key (hence per partition) the order of stdin is kept.
    for key in range(7):
        mine = [int(v[1:]) for v in values if int(v[1:]) % 7 == key]
        assert mine == sorted(mine)


def test_consume_with_group_resumes_after_commit(tmp_path):
    data = tmp_path / "d"
    plait_cli(data, "topic", "create", "t")
    plait_cli(data, "produce", "t", stdin=b"".join(b"%d\n" % i for i in range(10)))
    first = plait_cli(data, "consume", "t", "--group", "g", "--from-beginning", "--max-events", "4", "--timeout", "5")
    second = plait_cli(data, "consume", "t", "--group", "g", "--from-beginning", "--timeout", "0.5")
    assert first.stdout.split() == [b"0", b"1", b"2", b"3"]
    assert second.stdout.split() == [b"%d" % i for i in range(4, 10)]


def test_consume_stops_after_timeout_without_events(tmp_path):
    data = tmp_path / "d"
    plait_cli(data, "topic", "create", "quiet")
    proc = plait_cli(data, "consume", "quiet", "--timeout", "0.3", timeout=20)
    assert proc.returncode == 0 and proc.stdout == b""


def test_errors_are_one_line(tmp_path):
    data = tmp_path / "d"
    plait_cli(data, "topic", "create", "t")
    assert_one_line_error(plait_cli(data, "produce", "missing", stdin=b"x\n"), "unknown topic", "missing")
    assert_one_line_error(plait_cli(data, "consume", "missing", "--timeout", "0"), "missing")
    assert_one_line_error(plait_cli(data, "produce", "t", "--key-separator", "", stdin=b"a\n"), "key-separator")
    assert_one_line_error(plait_cli(data, "produce", "t", "--key-separator", ":", stdin=b"a:1\nb\n"), "line 2")
    assert_one_line_error(plait_cli(data, "topic", "create", "t"), "already exists")
    assert_one_line_error(plait_cli(data, "topic", "create", "bad/name"), "bad/name")
    assert_one_line_error(plait_cli(data, "produce", "t", "--fsync", "sometimes", stdin=b"a\n"), "sometimes")


def test_non_utf8_key_separator_is_rejected(tmp_path):
    data = tmp_path / "d"
    plait_cli(data, "topic", "create", "t")
    proc = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"plait.cli.main", b"--data", os.fsencode(data),
         b"produce", b"t", b"--key-separator", b"\xff"],
        input=b"a\xffb\n",
        check=False, capture_output=True,
        timeout=60,
    )
    assert_one_line_error(proc, "UTF-8")


def test_locked_data_dir_is_a_clear_error(tmp_path):
    data = tmp_path / "d"
    holder = plait.connect(f"embedded:{data}")
    try:
        assert_one_line_error(plait_cli(data, "topic", "list"), "locked")
    finally:
        holder.close()


def test_bench_json_has_the_contract_keys(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "plait.cli.main", "bench", "--events", "20000", "--json"],
        check=False, capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in ("events_per_s", "mb_per_s", "p50_ms", "p99_ms", "p999_ms"):
        assert isinstance(result[key], (int, float)), key
    assert result["events_per_s"] > 0
    assert result["p50_ms"] <= result["p99_ms"] <= result["p999_ms"]


def test_serve_uses_the_root_data_option_and_the_same_layout(tmp_path):
    import signal

    data = tmp_path / "root-data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plait.cli.main", "--data", str(data), "serve", "--kafka-port", "0", "--http-port", "0"],
        stderr=subprocess.PIPE,
    )
    try:
        # The ready line comes after the signal handlers are installed: only then is
        # SIGTERM a clean stop rather than the default kill.
        assert proc.stderr is not None
        ready = proc.stderr.readline()
        assert b"plait serve: kafka on" in ready, ready
        assert (data / ".lock").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # What a client wrote through the broker is what the embedded CLI reads.
    from plait.broker.testing import ServeProcess

    broker = ServeProcess(data).start()
    try:
        made = plait_cli(data, "topic", "create", "shared", "--bootstrap", broker.bootstrap)
        assert made.returncode == 0, made.stderr
        sent = plait_cli(data, "produce", "shared", "--bootstrap", broker.bootstrap, stdin=b"one\ntwo\n")
        assert sent.returncode == 0, sent.stderr
    finally:
        assert broker.stop() == 0
    assert plait_cli(data, "topic", "list").stdout.split() == [b"shared"]
    read = plait_cli(data, "consume", "shared", "--from-beginning", "--max-events", "2", "--timeout", "5")
    assert read.stdout.split() == [b"one", b"two"]
