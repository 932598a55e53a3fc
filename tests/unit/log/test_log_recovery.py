"""Recovery on open: torn tails, flipped bytes, garbage, damaged indexes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from _log_batches import SMALL, crash, decode, make_batch

from plait.log import Log
from plait.log.errors import CorruptSegmentError


def folder(data_dir: Path) -> Path:
    return data_dir / "topics" / "t" / "0"


def fill(data_dir: Path, count: int, *, clean: bool) -> list[bytes]:
    """Append ``count`` one-record batches to t-0 and stop cleanly or by 'crash'."""
    log = Log.open(data_dir, SMALL)
    log.create_topic("t", 1)
    p = log.partition("t", 0)
    values = [b"value-%03d" % i * 8 for i in range(count)]
    for v in values:
        p.append(make_batch([v]))
    if clean:
        log.close()
    else:
        crash(log)
    return values


def segments(data_dir: Path) -> list[Path]:
    return sorted(folder(data_dir).glob("*.log"))


def reopen_and_check(data_dir: Path, expected: list[bytes]) -> None:
    """Everything in ``expected`` is readable in order, and the log takes appends."""
    with Log.open(data_dir, SMALL) as log:
        p = log.partition("t", 0)
        assert p.log_end_offset == len(expected)
        got = decode(p.read(0, 1 << 20)) if expected else []
        assert [v for _, _, v in got] == expected
        assert [o for o, _, _ in got] == list(range(len(expected)))
        assert p.append(make_batch([b"after"])).base_offset == len(expected)
        assert decode(p.read(len(expected)))[-1][2] == b"after"


def dropped_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "plait.log" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("clean", [True, False])
def test_torn_tail_is_truncated(data_dir: Path, caplog: pytest.LogCaptureFixture,
                                clean: bool) -> None:
    values = fill(data_dir, 30, clean=clean)
    tail = segments(data_dir)[-1]
    size = tail.stat().st_size
    os.truncate(tail, size - 10)  # the last batch loses its last 10 bytes
    batch_size = len(make_batch([values[-1]]))
    caplog.set_level(logging.WARNING, logger="plait.log")
    reopen_and_check(data_dir, values[:-1])
    [message] = dropped_warnings(caplog)
    assert f"truncated {batch_size - 10} bytes from {tail}" in message
    assert f"at byte {size - batch_size}" in message


def test_flipped_byte_in_tail_batch(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    values = fill(data_dir, 30, clean=False)
    tail = segments(data_dir)[-1]
    batch_size = len(make_batch([values[-1]]))
    size = tail.stat().st_size
    with open(tail, "r+b") as f:   # damage the second-to-last batch's payload
        f.seek(size - batch_size - 5)
        byte = f.read(1)
        f.seek(size - batch_size - 5)
        f.write(bytes([byte[0] ^ 0x40]))
    caplog.set_level(logging.WARNING, logger="plait.log")
    reopen_and_check(data_dir, values[:-2])
    [message] = dropped_warnings(caplog)
    assert f"truncated {2 * batch_size} bytes from {tail}" in message and "CRC32C" in message


def test_garbage_after_the_last_batch(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    values = fill(data_dir, 12, clean=True)
    tail = segments(data_dir)[-1]
    with open(tail, "ab") as f:
        f.write(os.urandom(100))
    caplog.set_level(logging.WARNING, logger="plait.log")
    reopen_and_check(data_dir, values)
    [message] = dropped_warnings(caplog)
    assert f"truncated 100 bytes from {tail}" in message


def test_copy_of_a_valid_batch_with_wrong_offset_is_cut(data_dir: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    values = fill(data_dir, 5, clean=False)
    tail = segments(data_dir)[-1]
    data = tail.read_bytes()
    batch_size = len(make_batch([values[-1]]))
    with open(tail, "ab") as f:  # a CRC-valid batch whose base offset repeats an old one
        f.write(data[-batch_size:])
    caplog.set_level(logging.WARNING, logger="plait.log")
    reopen_and_check(data_dir, values)
    assert "expected 5" in dropped_warnings(caplog)[0]


def test_damage_in_an_unflushed_middle_segment_drops_what_follows(
        data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    values = fill(data_dir, 60, clean=False)   # fsync never: recovery point stays at 0
    segs = segments(data_dir)
    assert len(segs) >= 4
    victim = segs[1]
    first_of_victim = int(victim.name[:-4])
    with open(victim, "r+b") as f:
        f.seek(70)  # inside the first batch's records
        b = f.read(1)
        f.seek(70)
        f.write(bytes([b[0] ^ 1]))
    caplog.set_level(logging.WARNING, logger="plait.log")
    reopen_and_check(data_dir, values[:first_of_victim])
    messages = dropped_warnings(caplog)
    assert f"from {victim} at byte 0" in messages[0]
    assert len(messages) == 1 + len(segs) - 2  # one per deleted later segment
    assert all("recovery deleted" in m for m in messages[1:])
    assert [p.name for p in segments(data_dir)] == [segs[0].name, victim.name]


@pytest.mark.parametrize("damage", ["missing", "torn", "garbage", "both-missing"])
def test_damaged_index_files_are_rebuilt(data_dir: Path, caplog: pytest.LogCaptureFixture,
                                         damage: str) -> None:
    values = fill(data_dir, 60, clean=True)
    sealed = segments(data_dir)[1]
    index = sealed.with_suffix(".index")
    timeindex = sealed.with_suffix(".timeindex")
    assert index.stat().st_size > 0
    original = index.read_bytes(), timeindex.read_bytes()
    if damage == "missing":
        index.unlink()
    elif damage == "torn":
        os.truncate(index, index.stat().st_size - 3)
    elif damage == "garbage":
        index.write_bytes(b"\xff" * 16)
    else:
        index.unlink()
        timeindex.unlink()
    caplog.set_level(logging.WARNING, logger="plait.log")
    reopen_and_check(data_dir, values)
    assert any(f"rebuilt missing or inconsistent indexes of {sealed}" in m
               for m in dropped_warnings(caplog))
    assert (index.read_bytes(), timeindex.read_bytes()) == original
    with Log.open(data_dir, SMALL) as log:  # reads through the rebuilt index find offsets
        p = log.partition("t", 0)
        for offset in range(int(sealed.name[:-4]), 60):
            assert decode(p.read(offset, 1))[0][0] == offset


def test_clean_open_skips_old_segments(data_dir: Path) -> None:
    values = fill(data_dir, 60, clean=True)
    old = segments(data_dir)[0]
    with open(old, "r+b") as f:  # bit rot in a sealed segment: not scanned on a clean open
        f.seek(70)
        b = f.read(1)
        f.seek(70)
        f.write(bytes([b[0] ^ 1]))
    with Log.open(data_dir, SMALL) as log:
        assert log.partition("t", 0).log_end_offset == len(values)
    # without indexes the segment must be scanned, and damage below the recovery point
    # is refused rather than silently dropping every later segment
    old.with_suffix(".index").unlink()
    with pytest.raises(CorruptSegmentError) as info:
        Log.open(data_dir, SMALL)
    assert str(old) in str(info.value) and "CRC32C" in str(info.value)
