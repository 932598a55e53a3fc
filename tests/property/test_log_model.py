"""The log against an in-memory model: appends, reads, time lookups, rolls, retention,
clean and unclean reopen. Segment boundaries and retention are modelled exactly
(roll when a batch would overflow ``segment_bytes``; delete whole oldest segments)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
from aiokafka.record.default_records import (
    DefaultRecordBatch,
    DefaultRecordBatchBuilder,
)
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from plait.log import FsyncPolicy, Log, LogConfig, Partition
from plait.log.errors import OffsetOutOfRangeError

CONFIG = LogConfig(segment_bytes=600, index_interval_bytes=100, retention_bytes=1500,
                   retention_ms=10_000, fsync=FsyncPolicy("never"))


def build(values: list[bytes], timestamps: list[int]) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i, (v, ts) in enumerate(zip(values, timestamps)):
        builder.append(i, timestamp=ts, key=None, value=v, headers=[])
    return bytes(builder.build())


def decode(data: bytes) -> list[list[tuple[int, bytes | None]]]:
    """Records of each batch in ``data``."""
    batches, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 8:pos + 12], "big") + 12
        batch = DefaultRecordBatch(data[pos:pos + size])
        assert batch.validate_crc()
        batches.append([(r.offset, r.value) for r in batch])
        pos += size
    assert pos == len(data)
    return batches


@dataclass
class ModelBatch:
    base: int
    values: list[bytes]
    max_ts: int
    size: int

    @property
    def last(self) -> int:
        return self.base + len(self.values) - 1


@dataclass
class ModelSegment:
    batches: list[ModelBatch] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.batches)

    @property
    def max_ts(self) -> int:
        return max(b.max_ts for b in self.batches)


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="plait-log-model-"))
        self.log = Log.open(self.tmp, CONFIG)
        self.log.create_topic("m", 1)
        self.segments: list[ModelSegment] = [ModelSegment()]
        self.end = 0

    @property
    def partition(self) -> Partition:
        return self.log.partition("m", 0)

    def batches(self) -> list[ModelBatch]:
        return [b for s in self.segments for b in s.batches]

    def start(self) -> int:
        first = self.segments[0]
        return first.batches[0].base if first.batches else self.end

    def retain(self, now: int) -> None:
        total = sum(s.size for s in self.segments)
        while len(self.segments) > 1:
            oldest = self.segments[0]
            if now - oldest.max_ts > CONFIG.retention_ms or \
                    total - oldest.size >= CONFIG.retention_bytes:
                total -= oldest.size
                self.segments.pop(0)
            else:
                break

    # few distinct sizes, so totals often land exactly on retention_bytes
    @rule(sizes=st.lists(st.sampled_from([0, 25, 100]), min_size=1, max_size=3),
          stamps=st.lists(st.integers(0, 50_000), min_size=4, max_size=4))
    def append(self, sizes: list[int], stamps: list[int]) -> None:
        values = [bytes([65 + (self.end + i) % 26]) * n for i, n in enumerate(sizes)]
        data = build(values, stamps[:len(values)])
        result = self.partition.append(data, now_ms=0)
        assert (result.base_offset, result.last_offset) == (self.end, self.end + len(values) - 1)
        active = self.segments[-1]
        rolled = bool(active.batches) and active.size + len(data) > CONFIG.segment_bytes
        if rolled:
            self.segments.append(ModelSegment())
        self.segments[-1].batches.append(
            ModelBatch(self.end, values, max(stamps[:len(values)]), len(data)))
        self.end += len(values)
        if rolled:
            self.retain(0)
        assert result.log_start_offset == self.start() or rolled

    @rule(data=st.data(), max_bytes=st.integers(1, 2000))
    def read(self, data: st.DataObject, max_bytes: int) -> None:
        offset = data.draw(st.integers(self.start(), self.end))
        got = decode(self.partition.read(offset, max_bytes))
        if offset == self.end:
            assert got == []
            return
        batches = self.batches()
        first = next(i for i, b in enumerate(batches) if b.last >= offset)
        expected = batches[first:first + len(got)]
        assert len(got) >= 1
        assert [[(b.base + i, v) for i, v in enumerate(b.values)] for b in expected] == got
        total = sum(b.size for b in expected)
        assert total <= max_bytes or len(got) == 1
        if first + len(got) < len(batches):  # stopped early only for lack of room
            assert total + batches[first + len(got)].size > max_bytes

    @rule(offset=st.integers(-5, 5))
    def read_out_of_range(self, offset: int) -> None:
        bad = self.start() - 1 - abs(offset) if offset < 0 else self.end + 1 + offset
        try:
            self.partition.read(bad)
        except OffsetOutOfRangeError as exc:
            assert exc.offset == bad
        else:
            raise AssertionError(f"read({bad}) outside [{self.start()}, {self.end}] succeeded")

    @rule(data=st.data())
    def by_timestamp(self, data: st.DataObject) -> None:
        stored = sorted({b.max_ts + d for b in self.batches() for d in (-1, 0, 1)})
        ts = data.draw(st.sampled_from(stored) | st.integers(-1, 51_000) if stored
                       else st.integers(-1, 51_000))
        expected = next((b.base for b in self.batches() if b.max_ts >= ts), None)
        assert self.partition.offset_for_timestamp(ts) == expected

    @rule(now=st.integers(0, 70_000))
    def retention(self, now: int) -> None:
        before = len(self.segments)
        self.retain(now)
        assert self.log.enforce_retention(now_ms=now) == before - len(self.segments)

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = Log.open(self.tmp, CONFIG)

    @rule()
    def crash_and_reopen(self) -> None:
        log = self.log
        assert log._thread is not None
        log._stop_background()
        for p in log.partitions("m"):
            p.abandon()
        log._lock_file.release()
        self.log = Log.open(self.tmp, CONFIG)

    @precondition(lambda self: self.end > 0)
    @invariant()
    def offsets_match(self) -> None:
        assert self.partition.log_end_offset == self.end
        assert self.partition.log_start_offset == self.start()

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


TestLogModel = LogModel.TestCase
TestLogModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                 suppress_health_check=[HealthCheck.too_slow])
