"""Append and read paths of one partition, with aiokafka's codec as the oracle."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import pytest
from _log_batches import decode, make_batch
from aiokafka.record.default_records import DefaultRecordBatch

from plait.log import FsyncPolicy, Log, LogConfig
from plait.log.errors import OffsetOutOfRangeError, RecordTooLargeError
from plait.protocol.errors import InvalidRecordBatchError


def test_append_assigns_offsets_and_read_decodes(log: Log) -> None:
    log.create_topic("t", 1)
    p = log.partition("t", 0)
    r1 = p.append(make_batch([b"a", b"b", b"c"]), now_ms=5)
    r2 = p.append(make_batch([b"d"]))
    assert (r1.base_offset, r1.last_offset, r1.log_append_time, r1.duplicate) == (0, 2, 5, False)
    assert (r2.base_offset, r2.last_offset) == (3, 3)
    assert p.log_end_offset == 4 and p.log_start_offset == 0
    records = decode(p.read(0))
    assert [(o, v) for o, _, v in records] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]
    # the batch containing offset 1 starts at 0: whole batches come back
    assert decode(p.read(1))[0][0] == 0
    assert decode(p.read(3)) == [(3, 1000, b"d")]
    assert p.read(4) == b""


@pytest.mark.parametrize("codec", [1, 2, 3, 4])  # gzip, snappy, lz4, zstd
def test_compressed_batches_are_stored_verbatim(log: Log, codec: int) -> None:
    log.create_topic("c", 1)
    p = log.partition("c", 0)
    p.append(make_batch([b"x"]))
    raw = make_batch([b"v%d" % i * 20 for i in range(50)], compression=codec)
    p.append(raw)
    stored = p.read(1)
    # only the base offset differs from what the producer sent
    assert stored[8:] == raw[8:] and struct.unpack(">q", stored[:8])[0] == 1
    batch = DefaultRecordBatch(stored)
    assert batch.compression_type == codec
    assert [r.offset for r in batch] == list(range(1, 51))


def test_several_batches_in_one_append(log: Log) -> None:
    log.create_topic("m", 1)
    p = log.partition("m", 0)
    result = p.append(make_batch([b"1", b"2"]) + make_batch([b"3"]) + make_batch([b"4", b"5"]))
    assert (result.base_offset, result.last_offset) == (0, 4)
    assert [o for o, _, _ in decode(p.read(0))] == [0, 1, 2, 3, 4]


def test_invalid_input_writes_nothing(log: Log) -> None:
    log.create_topic("bad", 1)
    p = log.partition("bad", 0)
    good = make_batch([b"ok"])
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF
    with pytest.raises(InvalidRecordBatchError, match="CRC32C") as info:
        p.append(good + bytes(flipped))  # second batch bad: the first is not written either
    assert info.value.position == len(good) and "bad-0" in str(info.value)
    with pytest.raises(InvalidRecordBatchError, match="truncated"):
        p.append(good[:-1])
    with pytest.raises(InvalidRecordBatchError, match="0 bytes"):
        p.append(b"")
    wrong_magic = bytearray(good)
    wrong_magic[16] = 1
    with pytest.raises(InvalidRecordBatchError, match="magic"):
        p.append(wrong_magic)
    assert p.log_end_offset == 0 and p.read(0) == b""


def test_record_too_large(data_dir: Path) -> None:
    with Log.open(data_dir, LogConfig(max_batch_bytes=200)) as log:
        log.create_topic("big", 1)
        p = log.partition("big", 0)
        batch = make_batch([b"x" * 300])
        with pytest.raises(RecordTooLargeError) as info:
            p.append(batch)
        assert info.value.size == len(batch) and info.value.limit == 200
        assert str(len(batch)) in str(info.value) and "200" in str(info.value)
        assert p.log_end_offset == 0


def test_read_limits_and_range(log: Log) -> None:
    log.create_topic("r", 1)
    p = log.partition("r", 0)
    batches = [make_batch([b"%03d" % i * 10]) for i in range(20)]
    for b in batches:
        p.append(b)
    size = len(batches[0])
    assert len(p.read(0, max_bytes=size * 3 + 5)) == size * 3
    assert len(p.read(0, max_bytes=1)) == size        # always at least one whole batch
    assert len(p.read(0, max_bytes=1 << 20)) == size * 20  # spans several segments
    assert len(list((log.path / "topics" / "r" / "0").glob("*.log"))) > 1
    for max_bytes in range(1, size * 20, 37):  # any limit: a gap-free run from the start
        offsets = [o for o, _, _ in decode(p.read(0, max_bytes))]
        assert offsets == list(range(max(1, max_bytes // size)))
    with pytest.raises(OffsetOutOfRangeError) as info:
        p.read(21)
    assert (info.value.offset, info.value.log_start, info.value.log_end) == (21, 0, 20)
    with pytest.raises(OffsetOutOfRangeError):
        p.read(-1)


def test_offset_for_timestamp(log: Log) -> None:
    log.create_topic("ts", 1)
    p = log.partition("ts", 0)
    # out-of-order client timestamps: the answer is the first batch whose max reaches ts
    stamps = [100, 300, 200, 400, 250, 500] * 5
    for i, ts in enumerate(stamps):
        p.append(make_batch([b"v" * 40], timestamp=ts + i))
    assert p.offset_for_timestamp(0) == 0
    assert p.offset_for_timestamp(250) == 1
    assert p.offset_for_timestamp(405) == 5
    for target in range(0, 560, 7):
        expected = next((i for i, ts in enumerate(stamps) if ts + i >= target), None)
        assert p.offset_for_timestamp(target) == expected, target
    assert p.offset_for_timestamp(10_000) is None


def test_roll_by_size_and_age(data_dir: Path) -> None:
    batch = make_batch([b"x" * 100])
    cfg = LogConfig(segment_bytes=3 * len(batch), segment_ms=1000, retention_ms=-1)
    with Log.open(data_dir, cfg) as log:
        log.create_topic("roll", 1)
        p = log.partition("roll", 0)
        for _ in range(4):
            p.append(batch, now_ms=0)
        folder = data_dir / "topics" / "roll" / "0"
        assert sorted(f.name for f in folder.glob("*.log")) == [
            "00000000000000000000.log", "00000000000000000003.log"]
        p.append(batch, now_ms=999)       # segment [3, 4] first written at 0: not yet old
        p.append(batch, now_ms=1000)      # now it is: roll by age although not full
        assert (folder / "00000000000000000005.log").exists()
        assert (folder / "00000000000000000003.index").exists()  # sealed at roll


def test_retention_by_size_and_age(data_dir: Path) -> None:
    batch = make_batch([b"y" * 100], timestamp=10_000)
    size = len(batch)
    cfg = LogConfig(segment_bytes=size * 2, retention_bytes=size * 3, retention_ms=-1)
    with Log.open(data_dir, cfg) as log:
        log.create_topic("ret", 1)
        p = log.partition("ret", 0)
        for _ in range(9):  # segments of 2 batches: [0,1] [2,3] [4,5] [6,7] [8]
            p.append(batch)
        # deletes oldest-first while what remains is still >= retention_bytes (as Kafka)
        assert p.log_start_offset == 6     # kept exactly 3 batches: [6,7] [8]
        with pytest.raises(OffsetOutOfRangeError):
            p.read(5)
        assert decode(p.read(6))[0][0] == 6
    age = LogConfig(segment_bytes=size * 2, retention_ms=1000)
    with Log.open(data_dir, age) as log:
        log.create_topic("age", 1, LogConfig(segment_bytes=size * 2, retention_ms=1000))
        p = log.partition("age", 0)
        for i in range(5):
            p.append(make_batch([b"z" * 100], timestamp=i * 1000), now_ms=0)
        assert p.enforce_retention(now_ms=2500) == 1       # [0,1] has max ts 1000+
        assert p.log_start_offset == 2
        assert p.enforce_retention(now_ms=10**9) == 1      # never the active segment
        assert p.log_start_offset == 4 and p.log_end_offset == 5


def test_wait_for_data_wakes_on_append(log: Log) -> None:
    log.create_topic("w", 1)
    p = log.partition("w", 0)
    assert p.wait_for_data(0, 0.05) is False
    woke: list[float] = []

    def consumer() -> None:
        start = time.monotonic()
        assert p.wait_for_data(0, 5.0)
        woke.append(time.monotonic() - start)

    thread = threading.Thread(target=consumer)
    thread.start()
    time.sleep(0.05)
    p.append(make_batch([b"x"]))
    thread.join(5)
    assert woke and woke[0] < 2.0
    assert p.wait_for_data(0, 0) is True


def test_listeners_see_appends_in_order(log: Log) -> None:
    log.create_topic("l", 2)
    p = log.partition("l", 1)
    seen: list[tuple[str, int, int, int, list[int]]] = []

    def listener(topic: str, part: int, base: int, last: int, data: bytes) -> None:
        seen.append((topic, part, base, last, [o for o, _, _ in decode(data)]))

    def broken(*_: object) -> None:
        raise RuntimeError("listener bug")

    p.add_listener(broken)
    p.add_listener(listener)
    p.append(make_batch([b"a", b"b"]))
    p.append(make_batch([b"c"]))
    p.remove_listener(listener)
    p.append(make_batch([b"d"]))
    assert seen == [("l", 1, 0, 1, [0, 1]), ("l", 1, 2, 2, [2])]


def test_concurrent_appends_and_reads(log: Log) -> None:
    log.create_topic("cc", 1)
    p = log.partition("cc", 0)
    errors: list[BaseException] = []

    def writer(tag: bytes) -> None:
        try:
            for i in range(100):
                p.append(make_batch([tag + b"%d" % i]))
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def reader() -> None:
        try:
            offset = 0
            while offset < 300:
                if not p.wait_for_data(offset, 5):
                    raise AssertionError("no data")
                records = decode(p.read(offset))
                assert records[0][0] <= offset
                offset = records[-1][0] + 1
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in (b"a", b"b", b"c")]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    records = decode(p.read(0, 1 << 24))
    assert [o for o, _, _ in records] == list(range(300))
    for tag in (b"a", b"b", b"c"):  # each writer's records keep their order
        mine = [v for _, _, v in records if v is not None and v.startswith(tag)]
        assert mine == [tag + b"%d" % i for i in range(100)]


def test_fsync_always_is_durable_before_return_and_listeners_follow_order(
        data_dir: Path) -> None:
    cfg = LogConfig(fsync=FsyncPolicy("always"), segment_bytes=4096, retention_ms=-1)
    with Log.open(data_dir, cfg) as log:
        log.create_topic("a", 1)
        p = log.partition("a", 0)
        seen: list[tuple[int, int, bool]] = []
        p.add_listener(lambda _t, _i, base, last, _d: seen.append(
            (base, last, p._durable_offset > last)))
        failures: list[str] = []

        def writer() -> None:
            for i in range(30):
                result = p.append(make_batch([b"%d" % i * 50]))
                if p._durable_offset <= result.last_offset:
                    failures.append(f"offset {result.last_offset} returned before fsync")

        threads = [threading.Thread(target=writer) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures
        assert [(b, last) for b, last, _ in seen] == [(i, i) for i in range(90)]
        assert all(durable for _, _, durable in seen)


def test_fsync_interval_flusher_and_never(data_dir: Path) -> None:
    with Log.open(data_dir, LogConfig(fsync=FsyncPolicy("interval", 20))) as log:
        log.create_topic("i", 1)
        log.create_topic("n", 1, LogConfig(fsync=FsyncPolicy("never")))
        interval, never = log.partition("i", 0), log.partition("n", 0)
        interval.append(make_batch([b"x"]))
        never.append(make_batch([b"x"]))
        deadline = time.monotonic() + 5
        while interval._durable_offset < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert interval._durable_offset == 1
        assert never._durable_offset == 0
        never.flush()
        assert never._durable_offset == 1


def test_interval_fsync_keeps_its_interval_across_many_partitions_and_policies(
    data_dir: Path,
) -> None:
    """Every partition with unflushed data is fsynced within its interval: a fast one
    made dirty while the flusher waits on a slow one is not held up by it."""
    with Log.open(data_dir, LogConfig(fsync=FsyncPolicy("interval", 20))) as log:
        log.create_topic("slow", 1, LogConfig(fsync=FsyncPolicy("interval", 2000)))
        log.create_topic("fast", 200)
        slow = log.partition("slow", 0)
        slow.append(make_batch([b"s"]))
        slow.append(make_batch([b"s"]))  # the second waits ~2 s: the flusher sleeps on it
        time.sleep(0.05)
        late: list[float] = []
        for round_ in range(5):
            started = time.monotonic()
            parts = [log.partition("fast", p) for p in range(round_, 200, 5)]
            for p in parts:
                p.append(make_batch([b"f"]))
            for p in parts:
                while p._durable_offset < p.log_end_offset:
                    assert time.monotonic() - started < 1.0, f"{p.where} not fsynced in 1 s"
                    time.sleep(0.002)
            late.append(time.monotonic() - started)
        assert slow._durable_offset < slow.log_end_offset  # its interval has not passed
        assert max(late) < 1.0, late


def test_an_idle_log_with_many_partitions_leaves_the_flusher_asleep(data_dir: Path) -> None:
    """The flusher looks only at partitions an append left unflushed: with thousands of
    idle partitions its thread uses no CPU (it walked them all every 25 ms: ~24% of a
    core at 5,000 partitions)."""
    import os

    with Log.open(data_dir, LogConfig(fsync=FsyncPolicy("interval", 20))) as log:
        log.create_topic("idle", 3000)
        log.partition("idle", 7).append(make_batch([b"x"]))  # one flush, then nothing
        time.sleep(0.3)
        assert log._thread is not None and log._thread.native_id is not None
        stat = Path(f"/proc/self/task/{log._thread.native_id}/stat")
        if not stat.exists():
            pytest.skip("no /proc thread statistics on this system")

        def cpu_ticks() -> int:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks

        before = cpu_ticks()
        time.sleep(1.0)
        used = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK")
        assert used < 0.02, f"the flusher used {used:.3f} s of CPU in 1 s of idling"
