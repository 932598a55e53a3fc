"""The fixed 61-byte header of a Kafka RecordBatch v2 (magic 2).

The log stores batches exactly as the protocol carries them and only rewrites the
base offset (and partition leader epoch) on append, so this module is the one place
that knows the header's byte layout. Offsets come from Kafka's public protocol
definition (DefaultRecordBatch): all integers big-endian, CRC32C over the bytes from
``attributes`` to the end of the batch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c as _crc32c

from plait.protocol.errors import InvalidRecordBatchError

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset (8) + batchLength (4): bytes not counted in batchLength
MAGIC = 2

BASE_OFFSET = 0
BATCH_LENGTH = 8
PARTITION_LEADER_EPOCH = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES = 21
LAST_OFFSET_DELTA = 23
BASE_TIMESTAMP = 27
MAX_TIMESTAMP = 35
PRODUCER_ID = 43
PRODUCER_EPOCH = 51
BASE_SEQUENCE = 53
RECORD_COUNT = 57

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")
assert _HEADER.size == HEADER_SIZE


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC32C (Castagnoli) of ``data``; the C implementation from the ``crc32c`` package."""
    return _crc32c.crc32c(data)


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The decoded header fields; ``size`` is the whole batch in bytes."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def uses_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_BIT)

    @property
    def last_sequence(self) -> int:
        """Sequence of the batch's last record (sequences wrap at 2**31, as in Kafka)."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) % (2**31)


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the header at ``buf[pos:]``; checks length and magic, not the CRC."""
    if len(buf) - pos < HEADER_SIZE:
        raise InvalidRecordBatchError(
            f"record batch header needs {HEADER_SIZE} bytes, {len(buf) - pos} available",
            position=pos,
        )
    fields = _HEADER.unpack_from(buf, pos)
    header = BatchHeader(*fields)
    if header.magic != MAGIC:
        raise InvalidRecordBatchError(
            f"record batch magic is {header.magic}, expected {MAGIC}", position=pos + MAGIC_OFFSET
        )
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise InvalidRecordBatchError(
            f"record batch length {header.batch_length} is shorter than its header",
            position=pos + BATCH_LENGTH,
        )
    if header.last_offset_delta < 0 or header.record_count < 0:
        raise InvalidRecordBatchError(
            f"record batch has negative lastOffsetDelta {header.last_offset_delta} "
            f"or record count {header.record_count}",
            position=pos,
        )
    return header


def verify_crc(buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader) -> None:
    """Raise :class:`InvalidRecordBatchError` unless the batch's CRC32C matches its bytes."""
    end = pos + header.size
    if end > len(buf):
        raise InvalidRecordBatchError(
            f"record batch of {header.size} bytes is truncated to {len(buf) - pos}", position=pos
        )
    actual = crc32c(memoryview(buf)[pos + ATTRIBUTES : end])
    if actual != header.crc:
        raise InvalidRecordBatchError(
            f"record batch CRC32C is {actual:#010x}, header says {header.crc:#010x}", position=pos
        )


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Rewrite the base offset in place; it lies outside the CRC, so the CRC stays valid."""
    struct.pack_into(">q", buf, pos + BASE_OFFSET, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Rewrite the partition leader epoch in place; it too lies outside the CRC."""
    struct.pack_into(">i", buf, pos + PARTITION_LEADER_EPOCH, epoch)


def set_max_timestamp_and_recrc(buf: bytearray, pos: int, header: BatchHeader, ts: int) -> None:
    """Stamp LogAppendTime into a batch (base and max timestamp) and recompute its CRC.

    Used only for topics configured with ``message.timestamp.type=LogAppendTime``.
    """
    struct.pack_into(">qq", buf, pos + BASE_TIMESTAMP, ts, ts)
    attrs = header.attributes | TIMESTAMP_TYPE_BIT
    struct.pack_into(">h", buf, pos + ATTRIBUTES, attrs)
    crc = crc32c(memoryview(buf)[pos + ATTRIBUTES : pos + header.size])
    struct.pack_into(">I", buf, pos + CRC_OFFSET, crc)


def iter_batches(
    buf: bytes | bytearray | memoryview, *, check_crc: bool = False
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each whole batch in ``buf``; stops at a partial tail."""
    pos = 0
    n = len(buf)
    while n - pos >= HEADER_SIZE:
        header = parse_header(buf, pos)
        if pos + header.size > n:
            return
        if check_crc:
            verify_crc(buf, pos, header)
        yield pos, header
        pos += header.size
