"""Kafka RecordBatch v2 records: the pure-Python reference encoder and decoder.

A batch is the 61-byte header of :mod:`plait.protocol.batch_header` followed by
``record_count`` records (compressed as one unit when the attributes name a codec).
The first half of this module is the reference: simple, checked at every length, one
Python call per record. The second half is its columnar twin (``encode_columns``,
``encode_columns_into``, ``decode_columns``), which runs the kernels of
:mod:`plait.protocol._records_numba` once per buffer and is tested byte for byte
against the reference.

Contracts:

* ``decode_batch(encode_batch(records))`` gives back the same records, offsets and
  timestamps; encoding is deterministic (the same input gives the same bytes).
* Record offsets are ``base_offset + offsetDelta``; timestamps are ``base_timestamp +
  timestampDelta`` (create time) or the batch's max timestamp (LogAppendTime), as the
  Java client reports them. Both wrap at 64 bits, as in Java.
* Malformed bytes (truncated, bad varints, lengths past the end, CRC mismatch, trailing
  bytes, undecodable compression) raise :class:`InvalidRecordBatchError` with the byte
  position, never another exception type. Positions inside a compressed section are
  reported as the batch's position plus the offset into the decompressed records.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, Union

import numpy as np
import pyarrow as pa

from plait.errors import ConfigError
from plait.protocol import _records_numba as _kernels
from plait.protocol import compression as codecs
from plait.protocol.batch_header import (
    ATTRIBUTES,
    CONTROL_BIT,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    TRANSACTIONAL_BIT,
    BatchHeader,
    crc32c,
    parse_header,
    verify_crc,
)
from plait.protocol.errors import InvalidRecordBatchError

Buffer = bytes | bytearray | memoryview
Headers = Sequence[tuple[str, bytes | None]]
RecordTuple = tuple[bytes | None, bytes | None, int | None, Headers]
RecordInput = Union["Record", RecordTuple]

_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_HEADER_REST = struct.Struct(">hiqqqhii")  # attributes .. record count, after the CRC
_PREFIX = struct.Struct(">qiib")  # base offset, batch length, leader epoch, magic


@dataclass(slots=True)
class Record:
    """One decoded record; ``offset`` and ``timestamp`` are absolute, not deltas."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


def wrap64(value: int) -> int:
    """Reduce ``value`` to a signed 64-bit integer the way Java's ``long`` overflows."""
    return ((value + 2**63) % 2**64) - 2**63


def _check_fields(**fields: int) -> None:
    """Header fields must fit their wire types; say which one did not, not struct.error."""
    for name, value in fields.items():
        bits = _FIELD_BITS[name]
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        if not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name} must be a {bits}-bit signed integer, got {value!r}")


_FIELD_BITS = {
    "base_offset": 64,
    "base_timestamp": 64,
    "producer_id": 64,
    "producer_epoch": 16,
    "base_sequence": 32,
    "partition_leader_epoch": 32,
}


@dataclass(frozen=True, slots=True)
class _BatchFields:
    """Caller-chosen header fields of a batch, range-checked once."""

    base_offset: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    partition_leader_epoch: int

    def __post_init__(self) -> None:
        _check_fields(**{name: getattr(self, name) for name in self.__slots__})


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def write_varint(out: bytearray, value: int) -> None:
    """Append ``value`` as a zigzag varint (varlong when it needs more than 32 bits)."""
    raw = _zigzag(value)
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def read_varint(buf: Buffer, pos: int, end: int, *, long: bool = False) -> tuple[int, int]:
    """Read a zigzag varint (5 bytes at most) or varlong (10) from ``buf[pos:end]``.

    Returns ``(value, next_position)``. A varint keeps its low 32 bits, as Java's
    ``ByteUtils.readVarint`` does.
    """
    limit = 10 if long else 5
    raw = 0
    for i in range(limit):
        if pos + i >= end:
            raise InvalidRecordBatchError(
                f"varint starting at byte {pos} runs past the end at byte {end}",
                position=pos,
            )
        byte = buf[pos + i]
        raw |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            raw &= 0xFFFFFFFF if not long else 0xFFFFFFFFFFFFFFFF
            return (raw >> 1) ^ -(raw & 1), pos + i + 1
    raise InvalidRecordBatchError(f"varint at byte {pos} has more than {limit} bytes", position=pos)


def _bytes_like(value: object, what: str, index: int) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ConfigError(f"record {index}: {what} must be bytes or None, got {type(value).__name__}")


def _encode_record(
    out: bytearray, rec: RecordTuple, offset_delta: int, ts_delta: int, index: int
) -> None:
    key = _bytes_like(rec[0], "key", index)
    value = _bytes_like(rec[1], "value", index)
    body = bytearray(b"\x00")  # attributes: unused in v2
    write_varint(body, ts_delta)
    write_varint(body, offset_delta)
    for part in (key, value):
        if part is None:
            write_varint(body, -1)
        else:
            write_varint(body, len(part))
            body += part
    headers = rec[3]
    write_varint(body, len(headers))
    for hkey, hvalue in headers:
        if not isinstance(hkey, str):
            raise ConfigError(f"record {index}: header key must be str, got {type(hkey).__name__}")
        raw_key = hkey.encode("utf-8")
        write_varint(body, len(raw_key))
        body += raw_key
        hv = _bytes_like(hvalue, "header value", index)
        if hv is None:
            write_varint(body, -1)
        else:
            write_varint(body, len(hv))
            body += hv
    write_varint(out, len(body))
    out += body


def encode_batch(
    records: Sequence[RecordInput],
    *,
    base_offset: int = 0,
    compression: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    is_transactional: bool = False,
    is_control: bool = False,
) -> bytes:
    """Encode one batch; the first record's timestamp becomes the base timestamp.

    ``records`` holds ``(key, value, timestamp_ms, headers)`` tuples, given offsets
    ``base_offset + i``, or :class:`Record` objects, whose ``offset`` sets the offset
    delta (so a compacted batch with gaps can be re-encoded). A ``None`` timestamp
    means now. Raises ``ConfigError`` for an empty batch or values of the wrong type.
    """
    if not records:
        raise ConfigError("a record batch needs at least one record, got none")
    if compression not in codecs.CODEC_NAMES:
        raise codecs.UnknownCodecError(compression)
    _BatchFields(base_offset, producer_id, producer_epoch, base_sequence, partition_leader_epoch)
    now = int(time.time() * 1000)
    rows: list[tuple[RecordTuple, int]] = []
    timestamps: list[int] = []
    for i, rec in enumerate(records):
        if isinstance(rec, Record):
            delta = rec.offset - base_offset
            if not 0 <= delta <= _INT32_MAX:
                raise ConfigError(
                    f"record {i}: offset {rec.offset} is not within 2**31 after base offset {base_offset}"
                )
            row: RecordTuple = (rec.key, rec.value, rec.timestamp, rec.headers)
        else:
            row, delta = (rec[0], rec[1], now if rec[2] is None else rec[2], rec[3]), i
        ts = row[2]
        if not isinstance(ts, int) or not _INT64_MIN <= ts <= _INT64_MAX:
            raise ConfigError(f"record {i}: timestamp must be a 64-bit int or None, got {ts!r}")
        rows.append((row, delta))
        timestamps.append(ts)
    base_ts, max_ts = timestamps[0], max(timestamps)
    if min(timestamps) - base_ts < _INT64_MIN or max_ts - base_ts > _INT64_MAX:
        raise ConfigError(f"timestamps span more than a signed 64-bit delta from {base_ts}")
    body = bytearray()
    for i, ((rec, delta), ts) in enumerate(zip(rows, timestamps)):
        _encode_record(body, rec, delta, ts - base_ts, i)
    if compression != codecs.NONE:
        body = bytearray(codecs.compress(compression, body))
    attributes = compression
    if is_transactional:
        attributes |= TRANSACTIONAL_BIT
    if is_control:
        attributes |= CONTROL_BIT
    last_delta = rows[-1][1]
    rest = _HEADER_REST.pack(
        attributes,
        last_delta,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(rows),
    ) + bytes(body)
    crc = crc32c(rest)
    batch_length = HEADER_SIZE - LOG_OVERHEAD + len(body)
    return (
        _PREFIX.pack(base_offset, batch_length, partition_leader_epoch, MAGIC)
        + struct.pack(">I", crc)
        + rest
    )


def records_section(buf: Buffer, pos: int, header: BatchHeader) -> tuple[Buffer, int, int]:
    """Return ``(data, start, end)`` of a batch's records, decompressed when needed.

    For an uncompressed batch ``data`` is ``buf`` itself (no copy); otherwise it is the
    decompressed bytes with ``start`` 0.
    """
    start = pos + HEADER_SIZE
    end = pos + header.size
    if end > len(buf):
        raise InvalidRecordBatchError(
            f"record batch of {header.size} bytes is truncated to {len(buf) - pos}",
            position=pos,
        )
    codec = header.compression
    if codec == 0:
        return buf, start, end
    data = codecs.decompress(codec, memoryview(buf)[start:end], position=pos)
    return data, 0, len(data)


def decode_batch(
    buf: Buffer, pos: int = 0, *, verify: bool = True
) -> tuple[BatchHeader, list[Record]]:
    """Decode the whole batch at ``buf[pos:]`` (checking its CRC32C unless ``verify`` is false).

    Control batches are decoded like any other; check ``header.is_control``.
    """
    header = parse_header(buf, pos)
    if verify:
        verify_crc(buf, pos, header)
    data, start, end = records_section(buf, pos, header)
    # Positions in errors: absolute for plain batches, relative to the batch for compressed.
    shift = 0 if data is buf else pos
    if header.record_count > (end - start) // 7:
        raise InvalidRecordBatchError(
            f"record count {header.record_count} cannot fit in {end - start} bytes of records",
            position=pos,
        )
    fixed_ts = header.max_timestamp if header.uses_log_append_time else None
    records: list[Record] = []
    p = start
    for _ in range(header.record_count):
        try:
            record, p = _decode_record(data, p, end, header, fixed_ts)
        except InvalidRecordBatchError as exc:
            if shift and exc.position is not None:
                exc.position += shift
            raise
        records.append(record)
    if p != end:
        raise InvalidRecordBatchError(
            f"record batch has {end - p} bytes after its {header.record_count} records",
            position=p + shift,
        )
    return header, records


def _decode_bytes(
    data: Buffer, pos: int, end: int, what: str, nullable: bool = True
) -> tuple[bytes | None, int]:
    length, p = read_varint(data, pos, end)
    if length == -1 and nullable:
        return None, p
    if length < 0 or p + length > end:
        raise InvalidRecordBatchError(
            f"{what} length {length} at byte {pos} is invalid for a record ending at byte {end}",
            position=pos,
        )
    return bytes(data[p : p + length]), p + length


def _decode_record(
    data: Buffer, pos: int, limit: int, header: BatchHeader, fixed_ts: int | None
) -> tuple[Record, int]:
    length, p = read_varint(data, pos, limit)
    if length < 6 or p + length > limit:
        raise InvalidRecordBatchError(
            f"record length {length} at byte {pos} is invalid: records end at byte {limit}",
            position=pos,
        )
    end = p + length
    p += 1  # attributes: unused in v2
    ts_delta, p = read_varint(data, p, end, long=True)
    offset_delta, p = read_varint(data, p, end)
    key, p = _decode_bytes(data, p, end, "key")
    value, p = _decode_bytes(data, p, end, "value")
    count, q = read_varint(data, p, end)
    if count < 0:
        raise InvalidRecordBatchError(f"header count {count} at byte {p} is negative", position=p)
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        key_at = q
        raw_key, p = _decode_bytes(data, q, end, "header key", nullable=False)
        hvalue, q = _decode_bytes(data, p, end, "header value")
        try:
            hkey = (raw_key or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecordBatchError(
                f"header key at byte {key_at} is not UTF-8: {exc.reason}",
                position=key_at,
            ) from None
        headers.append((hkey, hvalue))
    if q != end:
        raise InvalidRecordBatchError(
            f"record at byte {pos} declares {length} bytes but its fields end at byte {q}, not {end}",
            position=q,
        )
    timestamp = fixed_ts if fixed_ts is not None else wrap64(header.base_timestamp + ts_delta)
    offset = wrap64(header.base_offset + offset_delta)
    return Record(offset, timestamp, key, value, headers), end


def iter_batches_strict(
    buf: Buffer, *, allow_partial_tail: bool = False
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` per batch; a partial last batch raises unless allowed.

    A Fetch response may end in a partial batch (the broker cuts at max bytes), so
    readers of fetched data pass ``allow_partial_tail=True``; the log never should.
    """
    pos = 0
    n = len(buf)
    while pos < n:
        if n - pos < HEADER_SIZE or pos + parse_header(buf, pos).size > n:
            if allow_partial_tail:
                return
            if n - pos < HEADER_SIZE:
                raise InvalidRecordBatchError(
                    f"record batch header needs {HEADER_SIZE} bytes, {n - pos} remain",
                    position=pos,
                )
            raise InvalidRecordBatchError(
                f"record batch of {parse_header(buf, pos).size} bytes is truncated to {n - pos}",
                position=pos,
            )
        header = parse_header(buf, pos)
        yield pos, header
        pos += header.size


def iter_records(
    buf: Buffer,
    *,
    verify: bool = True,
    include_control: bool = False,
    allow_partial_tail: bool = False,
) -> Iterator[Record]:
    """Yield the records of every batch in ``buf``, in offset order as stored.

    Control batches (transaction markers) are skipped unless ``include_control``.
    """
    for pos, header in iter_batches_strict(buf, allow_partial_tail=allow_partial_tail):
        if header.is_control and not include_control:
            if verify:
                verify_crc(buf, pos, header)
            continue
        yield from decode_batch(buf, pos, verify=verify)[1]


# ---------------------------------------------------------------------------------
# Columnar twins: one kernel call per buffer instead of one Python call per record.
# ---------------------------------------------------------------------------------

BinaryColumn: TypeAlias = Union[  # noqa: UP007 - pa.Array is not a class to mypy
    pa.Array, pa.ChunkedArray, Sequence[bytes | None], tuple[np.ndarray, np.ndarray]
]
_EMPTY_BOOL = np.zeros(0, dtype=np.bool_)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_U8 = np.zeros(0, dtype=np.uint8)
_NO_FIXED_TS = -(2**63)


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """Records of one or many batches as columns, in stored order.

    ``keys`` and ``values`` are ``pa.binary()`` arrays (``pa.large_binary()`` past 2 GiB)
    whose data buffers are built once and wrapped without a copy; a null key or value
    is null. Headers are not decoded: ``records_with_headers`` counts the records that
    carry some, so a caller that needs them can fall back to :func:`decode_batch`.
    """

    offsets: np.ndarray
    timestamps: np.ndarray
    keys: pa.Array
    values: pa.Array
    records_with_headers: int = 0

    def __len__(self) -> int:
        return int(self.offsets.shape[0])


def binary_parts(column: BinaryColumn, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(data uint8, offsets int64 of n+1, validity bool or empty when no nulls)``."""
    if isinstance(column, tuple):
        data, offs = column
        data = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        offs = np.ascontiguousarray(offs, dtype=np.int64)
        if offs.ndim != 1 or offs.shape[0] < 1:
            raise ConfigError(
                f"{what} offsets must be a 1-d array of n+1 entries, got shape {offs.shape}"
            )
        if offs[0] < 0 or offs[-1] > data.shape[0]:  # falling offsets: see encoded_size
            raise ConfigError(f"{what} offsets must rise from >= 0 to at most {data.shape[0]}")
        return data, offs, _EMPTY_BOOL
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not isinstance(column, pa.Array):
        column = pa.array(column, type=pa.binary())
    if pa.types.is_binary(column.type) or pa.types.is_string(column.type):
        off_type: type = np.int32
    elif pa.types.is_large_binary(column.type) or pa.types.is_large_string(column.type):
        off_type = np.int64
    else:
        raise ConfigError(f"{what} must be a binary array, got {column.type}")
    n = len(column)
    bufs = column.buffers()
    offs = np.frombuffer(bufs[1], dtype=off_type, count=column.offset + n + 1)[column.offset :]
    data = _EMPTY_U8 if bufs[2] is None else np.frombuffer(bufs[2], dtype=np.uint8)
    if n and (offs[0] < 0 or offs[-1] > data.shape[0]):
        # Arrow trusts its producer; the copy kernels do not check bounds, so we do.
        raise ConfigError(
            f"{what} offsets run from {offs[0]} to {offs[-1]}, data has {data.shape[0]}"
        )
    valid = _EMPTY_BOOL
    if column.null_count:
        valid = column.is_valid().to_numpy(zero_copy_only=False)
    return data, offs.astype(np.int64), valid


@dataclass(frozen=True, slots=True)
class _ColumnPlan:
    """Validated inputs of one columnar batch and its exact encoded size."""

    count: int
    size: int  # whole batch, header included
    base_ts: int
    max_ts: int
    kernel_args: tuple[Any, ...]


def _plan_columns(
    values: BinaryColumn,
    keys: BinaryColumn | None,
    timestamps: np.ndarray | Sequence[int] | None,
    base_timestamp: int | None,
) -> _ColumnPlan:
    val_data, val_offs, val_valid = binary_parts(values, "values")
    n = val_offs.shape[0] - 1
    if n <= 0:
        raise ConfigError("a record batch needs at least one record, got none")
    key_data, key_offs, key_valid = _EMPTY_U8, _EMPTY_I64, _EMPTY_BOOL
    if keys is not None:
        key_data, key_offs, key_valid = binary_parts(keys, "keys")
        if key_offs.shape[0] != n + 1:
            raise ConfigError(f"keys has {key_offs.shape[0] - 1} entries, values has {n}")
    if base_timestamp is not None:
        _check_fields(base_timestamp=base_timestamp)
    if timestamps is None:
        ts = _EMPTY_I64
        base_ts = int(time.time() * 1000) if base_timestamp is None else int(base_timestamp)
    else:
        try:
            ts = np.ascontiguousarray(timestamps, dtype=np.int64)
        except (OverflowError, TypeError, ValueError) as exc:
            raise ConfigError(f"timestamps must be 64-bit ints: {exc}") from None
        if ts.shape != (n,):
            raise ConfigError(f"timestamps has shape {ts.shape}, expected ({n},)")
        base_ts = int(ts[0]) if base_timestamp is None else int(base_timestamp)
    has_keys = keys is not None
    size, ts_min, ts_max = _kernels.encoded_size(
        val_offs, val_valid, key_offs, key_valid, has_keys, ts, base_ts
    )
    if size < 0:
        raise ConfigError(f"offsets of keys or values fall at record {-size - 1}")
    if int(ts_min) - base_ts < _INT64_MIN or int(ts_max) - base_ts > _INT64_MAX:
        raise ConfigError(f"timestamps span more than a signed 64-bit delta from {base_ts}")
    args = (
        val_data,
        val_offs,
        val_valid,
        key_data,
        key_offs,
        key_valid,
        has_keys,
        ts,
        base_ts,
    )
    return _ColumnPlan(n, HEADER_SIZE + int(size), base_ts, int(ts_max), args)


def encode_columns(
    values: BinaryColumn,
    keys: BinaryColumn | None = None,
    timestamps: np.ndarray | Sequence[int] | None = None,
    *,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
) -> bytearray:
    """Encode columns as one uncompressed batch without headers.

    Byte-identical to :func:`encode_batch` given the same records: offsets
    ``base_offset + i``; the base timestamp is ``timestamps[0]``, and without
    ``timestamps`` every record gets ``base_timestamp`` (default: now). Returns a
    ``bytearray`` so the log can rewrite the base offset in place.
    """
    fields = _BatchFields(
        base_offset, producer_id, producer_epoch, base_sequence, partition_leader_epoch
    )
    plan = _plan_columns(values, keys, timestamps, base_timestamp)
    out = bytearray(plan.size)
    _write_columns(out, 0, plan, fields)
    return out


def encode_columns_into(
    out: bytearray | memoryview | np.ndarray,
    pos: int,
    values: BinaryColumn,
    keys: BinaryColumn | None = None,
    timestamps: np.ndarray | Sequence[int] | None = None,
    *,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
) -> int:
    """Like :func:`encode_columns`, but write the batch at ``out[pos:]``; returns its end.

    For callers that reuse buffers (a producer's pool, a log segment's mapped tail):
    fresh memory costs a page fault per 4 KiB, which on this codec's hot path can cost
    more than encoding. Raises ``ConfigError`` before writing anything if the batch
    does not fit or ``out`` is read-only.
    """
    if isinstance(out, np.ndarray):
        if out.dtype != np.uint8 or out.ndim != 1 or not out.flags.c_contiguous:
            raise ConfigError(
                f"encode_columns_into needs a 1-d contiguous uint8 array, got {out.dtype}"
            )
        view = out.data
    else:
        view = memoryview(out).cast("B")
    if view.readonly:
        raise ConfigError("encode_columns_into needs a writable buffer, got a read-only one")
    fields = _BatchFields(
        base_offset, producer_id, producer_epoch, base_sequence, partition_leader_epoch
    )
    plan = _plan_columns(values, keys, timestamps, base_timestamp)
    if pos < 0 or pos + plan.size > view.nbytes:
        raise ConfigError(
            f"a batch of {plan.size} bytes at byte {pos} does not fit a {view.nbytes}-byte buffer"
        )
    _write_columns(view, pos, plan, fields)
    return pos + plan.size


def _write_columns(
    out: bytearray | memoryview, pos: int, plan: _ColumnPlan, fields: _BatchFields
) -> None:
    arr = np.frombuffer(out, dtype=np.uint8)
    end = _kernels.encode_into(arr, pos + HEADER_SIZE, *plan.kernel_args)
    if end != pos + plan.size:  # the size pass and the write pass must agree
        raise AssertionError(f"records end at byte {end}, planned {pos + plan.size}")
    counts_and_times = (plan.count - 1, plan.base_ts, plan.max_ts)
    producer = (fields.producer_id, fields.producer_epoch, fields.base_sequence)
    _HEADER_REST.pack_into(out, pos + ATTRIBUTES, 0, *counts_and_times, *producer, plan.count)
    crc = crc32c(memoryview(out)[pos + ATTRIBUTES : end])
    length = plan.size - LOG_OVERHEAD
    _PREFIX.pack_into(out, pos, fields.base_offset, length, fields.partition_leader_epoch, MAGIC)
    struct.pack_into(">I", out, pos + ATTRIBUTES - 4, crc)


_ERROR_TEXT = {
    _kernels.ERR_VARINT_TRUNCATED: "varint runs past the end of its record",
    _kernels.ERR_VARINT_TOO_LONG: "varint is longer than its 5 or 10 bytes",
    _kernels.ERR_RECORD_LENGTH: "record length is too short or runs past the records section",
    _kernels.ERR_KEY_LENGTH: "key length is below -1 or runs past the record",
    _kernels.ERR_VALUE_LENGTH: "value length is below -1 or runs past the record",
    _kernels.ERR_HEADER_COUNT: "header count is negative",
    _kernels.ERR_HEADER_KEY_LENGTH: "header key length is negative or runs past the record",
    _kernels.ERR_HEADER_VALUE_LENGTH: "header value length is below -1 or runs past the record",
    _kernels.ERR_RECORD_TRAILING: "record fields end before its declared length",
    _kernels.ERR_SECTION_TRAILING: "bytes follow the batch's last record",
}


def headers_at(buf: Buffer, offsets: Sequence[int]) -> list[tuple[tuple[str, bytes | None], ...]]:
    """The headers of the records at ``offsets`` in ``buf``, in that order (``()`` for a
    record without any). :func:`decode_columns` does not decode headers; a columnar read
    whose batch counts ``records_with_headers`` takes them from here (the rare path)."""
    wanted = set(offsets)
    found = {r.offset: tuple(r.headers) for r in iter_records(buf) if r.offset in wanted}
    return [found.get(o, ()) for o in offsets]


@functools.cache
def warm_decoder() -> None:
    """Load :func:`decode_columns`' compiled kernels now (once per process).

    Why: the first call loads numba's machinery and the cached machine code, ~0.3-0.5 s
    on a small machine. A consumer whose first decode happens mid-stream (a remote
    low-latency consumer decoding its first lane message) would stall every event
    queued behind it for that long; paying at construction keeps the stream smooth.
    """
    decode_columns(encode_batch([(None, b"warm", 0, [])]))


def decode_columns(
    buf: Buffer, *, verify: bool = True, allow_partial_tail: bool = False
) -> ColumnBatch:
    """Decode every batch in ``buf`` into columns; control batches are skipped.

    Compressed batches are decompressed first (one copy of all record sections); an
    uncompressed buffer is parsed in place. Raises :class:`InvalidRecordBatchError` for
    the same malformed input as :func:`decode_batch` (header keys are not checked for
    UTF-8, since headers are not decoded).
    """
    batches = [(p, h) for p, h in iter_batches_strict(buf, allow_partial_tail=allow_partial_tail)]
    plain = np.frombuffer(buf, dtype=np.uint8) if len(buf) else _EMPTY_U8
    sections: list[tuple[int, BatchHeader, Buffer, int, int]] = []
    compressed = False
    for pos, header in batches:
        if verify:
            verify_crc(buf, pos, header)
        if header.is_control:
            continue
        data, start, end = records_section(buf, pos, header)
        if header.record_count > (end - start) // _kernels.MIN_RECORD_SIZE:
            raise InvalidRecordBatchError(
                f"record count {header.record_count} cannot fit in {end - start} bytes of records",
                position=pos,
            )
        compressed |= data is not buf
        sections.append((pos, header, data, start, end))
    count = len(sections)
    sec_start = np.empty(count, np.int64)
    sec_end = np.empty(count, np.int64)
    if compressed:
        # One buffer of all record sections, so one kernel call covers every batch.
        parts = [memoryview(d)[s:e] for _p, _h, d, s, e in sections]
        lengths = np.array([len(x) for x in parts], dtype=np.int64)
        sec_end[:] = np.cumsum(lengths)
        sec_start[:] = sec_end - lengths
        data_arr = np.frombuffer(b"".join(parts), dtype=np.uint8) if parts else _EMPTY_U8
    else:
        sec_start[:] = [s for _p, _h, _d, s, _e in sections]
        sec_end[:] = [e for _p, _h, _d, _s, e in sections]
        data_arr = plain
    headers = [h for _p, h, _d, _s, _e in sections]
    sec_count = np.array([h.record_count for h in headers], dtype=np.int64)
    sec_base_off = np.array([h.base_offset for h in headers], dtype=np.int64)
    sec_base_ts = np.array([h.base_timestamp for h in headers], dtype=np.int64)
    sec_fixed = np.array(
        [h.max_timestamp if h.uses_log_append_time else _NO_FIXED_TS for h in headers],
        dtype=np.int64,
    )
    n = int(sec_count.sum())
    offsets = np.empty(n, np.int64)
    timestamps = np.empty(n, np.int64)
    key_pos = np.empty(n, np.int64)
    key_len = np.empty(n, np.int64)
    val_pos = np.empty(n, np.int64)
    val_len = np.empty(n, np.int64)
    code, where, with_headers = _kernels.decode_sections(
        data_arr,
        sec_start,
        sec_end,
        sec_count,
        sec_base_off,
        sec_base_ts,
        sec_fixed,
        offsets,
        timestamps,
        key_pos,
        key_len,
        val_pos,
        val_len,
    )
    if code:
        raise _kernel_error(code, int(where), sections, sec_start, compressed)
    keys = _gather_binary(data_arr, key_pos, key_len)
    values = _gather_binary(data_arr, val_pos, val_len)
    return ColumnBatch(offsets, timestamps, keys, values, int(with_headers))


def _kernel_error(
    code: int,
    where: int,
    sections: list[tuple[int, BatchHeader, Buffer, int, int]],
    sec_start: np.ndarray,
    compressed: bool,
) -> InvalidRecordBatchError:
    text = _ERROR_TEXT.get(code, f"record decoding failed with code {code}")
    if not compressed:
        return InvalidRecordBatchError(f"{text} at byte {where}", position=where)
    s = max(int(np.searchsorted(sec_start, where, side="right")) - 1, 0)
    batch_pos = sections[s][0]
    inner = where - int(sec_start[s])
    return InvalidRecordBatchError(
        f"{text} at byte {inner} of the decompressed records of the batch at byte {batch_pos}",
        position=batch_pos + inner,
    )


def _gather_binary(data: np.ndarray, pos: np.ndarray, lens: np.ndarray) -> pa.Array:
    """Copy scattered fields into one buffer and wrap it as a binary array (no second copy)."""
    n = lens.shape[0]
    total, null_count = _kernels.field_totals(lens)
    if null_count == n:
        return pa.nulls(n, pa.binary())
    large = total > _INT32_MAX
    offsets = np.empty(n + 1, np.int64 if large else np.int32)
    out = np.empty(total, np.uint8)
    _kernels.gather(data, pos, lens, offsets, out)
    bitmap = None
    if null_count:
        bitmap = pa.py_buffer(np.packbits(lens >= 0, bitorder="little"))
    return pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        n,
        [bitmap, pa.py_buffer(offsets), pa.py_buffer(out)],
        null_count=int(null_count),
    )


__all__ = [
    "ColumnBatch",
    "Record",
    "decode_batch",
    "decode_columns",
    "encode_batch",
    "encode_columns",
    "encode_columns_into",
    "iter_batches_strict",
    "iter_records",
    "read_varint",
    "records_section",
    "wrap64",
    "write_varint",
]
