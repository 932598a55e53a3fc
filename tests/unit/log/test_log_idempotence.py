"""Idempotent producer state: duplicates, gaps, fencing, and survival across reopen."""

from __future__ import annotations

from pathlib import Path

import pytest
from _log_batches import SMALL, crash, decode, make_batch

from plait.log import Log
from plait.log.errors import OutOfOrderSequenceError, ProducerFencedError


def idem(values: list[bytes], seq: int, *, pid: int = 7, epoch: int = 0) -> bytes:
    return make_batch(values, producer_id=pid, epoch=epoch, base_sequence=seq)


def test_retry_of_a_recent_batch_is_not_written(log: Log) -> None:
    log.create_topic("i", 1)
    p = log.partition("i", 0)
    first = p.append(idem([b"a", b"b"], 0))
    second = p.append(idem([b"c"], 2))
    retry = p.append(idem([b"a", b"b"], 0))
    assert retry.duplicate and (retry.base_offset, retry.last_offset) == (0, 1)
    assert (first.base_offset, second.base_offset) == (0, 2)
    assert p.log_end_offset == 3
    assert [v for _, _, v in decode(p.read(0))] == [b"a", b"b", b"c"]


def test_only_five_batches_are_remembered(log: Log) -> None:
    log.create_topic("i", 1)
    p = log.partition("i", 0)
    for seq in range(7):
        p.append(idem([b"%d" % seq], seq))
    assert p.append(idem([b"2"], 2)).duplicate          # one of the last five
    with pytest.raises(OutOfOrderSequenceError) as info:
        p.append(idem([b"1"], 1))                        # too old to recognise
    assert (info.value.expected, info.value.received) == (7, 1)


def test_gap_and_epoch_rules(log: Log) -> None:
    log.create_topic("i", 1)
    p = log.partition("i", 0)
    with pytest.raises(OutOfOrderSequenceError) as info:
        p.append(idem([b"x"], 3))                        # unknown producer must start at 0
    assert info.value.expected == 0 and info.value.producer_id == 7
    p.append(idem([b"x"], 0))
    with pytest.raises(OutOfOrderSequenceError) as gap:
        p.append(idem([b"y"], 2))
    assert (gap.value.expected, gap.value.received) == (1, 2) and "i-0" in str(gap.value)
    p.append(idem([b"z"], 0, epoch=1))                   # new epoch restarts at 0
    with pytest.raises(ProducerFencedError) as fenced:
        p.append(idem([b"old"], 1, epoch=0))
    assert (fenced.value.current_epoch, fenced.value.received) == (1, 0)
    with pytest.raises(OutOfOrderSequenceError):
        p.append(idem([b"w"], 5, epoch=2))              # new epoch not at 0
    assert p.log_end_offset == 2
    # other producers and non-idempotent batches are independent
    p.append(idem([b"other"], 0, pid=8))
    p.append(make_batch([b"plain"]))
    p.append(make_batch([b"plain"]))
    assert p.log_end_offset == 5


def test_sequence_wraps_at_int32(log: Log) -> None:
    log.create_topic("i", 1)
    p = log.partition("i", 0)
    p.append(idem([b"a"], 0, epoch=3))
    state = p._producers.producers[7]
    last = state.batches[-1]
    state.batches[-1] = type(last)(2**31 - 3, 2**31 - 2, last.first_offset, last.last_offset)
    p.append(idem([b"b", b"c"], 2**31 - 1, epoch=3))     # last sequence wraps to 0
    p.append(idem([b"d"], 1, epoch=3))
    assert p.log_end_offset == 4


def test_state_survives_clean_reopen_and_crash(data_dir: Path) -> None:
    log = Log.open(data_dir, SMALL)
    log.create_topic("i", 1)
    p = log.partition("i", 0)
    for seq in range(30):                                 # several rolls and snapshots
        p.append(idem([b"v%02d" % seq * 10], seq))
    log.close()
    log = Log.open(data_dir, SMALL)
    p = log.partition("i", 0)
    retry = p.append(idem([b"v29" * 10], 29))
    assert retry.duplicate and retry.base_offset == 29
    p.append(idem([b"v30"], 30))
    crash(log)  # no final snapshot: recovery must replay headers after the last one
    assert not (data_dir / ".clean_shutdown").exists()
    with Log.open(data_dir, SMALL) as log:
        p = log.partition("i", 0)
        assert p.append(idem([b"v30"], 30)).duplicate
        with pytest.raises(OutOfOrderSequenceError):
            p.append(idem([b"v32"], 32))
        assert p.append(idem([b"v31"], 31)).base_offset == 31


def test_corrupt_newest_snapshot_falls_back_and_replays(data_dir: Path) -> None:
    log = Log.open(data_dir, SMALL)
    log.create_topic("i", 1)
    p = log.partition("i", 0)
    for seq in range(30):
        p.append(idem([b"v%02d" % seq * 10], seq))
    log.close()
    folder = data_dir / "topics" / "i" / "0"
    snapshots = sorted(folder.glob("*.snapshot"))
    assert len(snapshots) == 2 and snapshots[-1].name == f"{30:020d}.snapshot"
    data = bytearray(snapshots[-1].read_bytes())
    data[-1] ^= 0xFF
    snapshots[-1].write_bytes(bytes(data))
    with Log.open(data_dir, SMALL) as log:
        p = log.partition("i", 0)
        assert p.append(idem([b"v29" * 10], 29)).duplicate   # rebuilt by replaying headers
        with pytest.raises(OutOfOrderSequenceError) as info:
            p.append(idem([b"v31"], 31))
        assert info.value.expected == 30


def test_concurrent_retries_are_written_once(data_dir: Path) -> None:
    import threading

    from plait.log import FsyncPolicy, LogConfig
    with Log.open(data_dir, LogConfig(fsync=FsyncPolicy("always"))) as log:
        log.create_topic("i", 1)
        p = log.partition("i", 0)
        results = []
        for seq in range(10):
            batch = idem([b"%d" % seq], seq)
            threads = [threading.Thread(target=lambda b=batch: results.append(p.append(b)))
                       for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert p.log_end_offset == 10
        assert sorted(r.base_offset for r in results if not r.duplicate) == list(range(10))
        assert sum(r.duplicate for r in results) == 30


def test_retry_mixed_with_new_batch_is_refused(log: Log) -> None:
    log.create_topic("i", 1)
    p = log.partition("i", 0)
    p.append(idem([b"a"], 0))
    with pytest.raises(OutOfOrderSequenceError) as info:
        p.append(idem([b"a"], 0) + idem([b"b"], 1))
    assert (info.value.expected, info.value.received) == (1, 0)
    assert p.log_end_offset == 1
