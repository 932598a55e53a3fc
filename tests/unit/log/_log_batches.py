"""Test batches built with aiokafka's RecordBatch v2 codec, the oracle for the log."""

from __future__ import annotations

from aiokafka.record.default_records import (
    DefaultRecordBatch,
    DefaultRecordBatchBuilder,
)

from plait.log import FsyncPolicy, Log, LogConfig

SMALL = LogConfig(segment_bytes=1024, index_interval_bytes=128, retention_ms=-1,
                  fsync=FsyncPolicy("never"))


def make_batch(values: list[bytes], *, timestamp: int = 1_000, producer_id: int = -1,
               epoch: int = -1, base_sequence: int = -1, compression: int = 0,
               timestamps: list[int] | None = None) -> bytes:
    """One RecordBatch v2 with base offset 0 holding ``values`` as record values."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=0, producer_id=producer_id,
        producer_epoch=epoch, base_sequence=base_sequence, batch_size=1 << 30)
    for i, value in enumerate(values):
        ts = timestamps[i] if timestamps is not None else timestamp + i
        builder.append(i, timestamp=ts, key=None, value=value, headers=[])
    return bytes(builder.build())


def decode(data: bytes) -> list[tuple[int, int, bytes | None]]:
    """``(offset, timestamp, value)`` of every record in concatenated batches, checking CRCs."""
    out: list[tuple[int, int, bytes | None]] = []
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 8:pos + 12], "big") + 12
        batch = DefaultRecordBatch(data[pos:pos + length])
        assert batch.validate_crc()
        out.extend((r.offset, r.timestamp, r.value) for r in batch)
        pos += length
    return out


def crash(log: Log) -> None:
    """Drop a Log as a killed process would: no flush, seal, snapshot or clean marker.

    Written bytes stay (they are in the page cache, as after kill -9); the kernel would
    release the lock, so the test releases it.
    """
    log._stop_background()
    for parts in log._topics.values():
        for p in parts[1]:
            p.abandon()
    log._lock_file.release()
