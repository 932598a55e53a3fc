"""Kernels behind the columnar RecordBatch v2 codec (``records.encode_columns`` and
``records.decode_columns``): zigzag varints and the per-record layout, run once per
batch over whole columns instead of once per record in Python.

Hand-written because no library offers a vectorized RecordBatch v2 encoder or decoder:
the Kafka clients (kafka-python, aiokafka, confluent-kafka) build and parse batches one
record at a time. The byte layout is Kafka's public DefaultRecord format:

    length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
    keyLength varint | key | valueLength varint | value | headerCount varint | headers

with every varint zigzag-encoded, a length of -1 meaning null.

The kernels are compiled lazily by numba (``@njit(cache=True)``: the first call in a
process compiles or loads the on-disk cache). When numba cannot be imported, or
``NUMBA_DISABLE_JIT=1`` is set, the same function bodies run as plain Python, which is
slow but gives identical results; :data:`BACKEND` says which is active.

Arithmetic is written to be exact in both modes: varints are accumulated in uint64 and
zigzag is computed without signed overflow, so the interpreter and the compiled code
agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

_numba: Any
try:
    import numba as _numba
except ImportError:  # pragma: no cover - exercised in a subprocess test
    _numba = None

if _numba is not None and not _numba.config.DISABLE_JIT:
    from numba.core import cgutils
    from numba.extending import intrinsic

    BACKEND = "numba"

    def _kernel(func: F) -> F:
        compiled: F = _numba.njit(cache=True, nogil=True)(func)
        return compiled

    def _memcpy_typer(typingctx: Any, dst: Any, dst_at: Any, src: Any, src_at: Any, n: Any) -> Any:
        # LLVM's memcpy intrinsic: numba compiles a slice assignment to a generic strided
        # loop, about 3x slower for the ~100-byte fields this codec copies. Unlike a
        # ctypes call to libc, an intrinsic keeps the kernels cacheable (cache=True).
        sig = _numba.types.void(dst, dst_at, src, src_at, n)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> None:
            out_arr = context.make_array(signature.args[0])(context, builder, args[0])
            in_arr = context.make_array(signature.args[2])(context, builder, args[2])
            dst_ptr = builder.gep(out_arr.data, [args[1]])
            src_ptr = builder.gep(in_arr.data, [args[3]])
            cgutils.raw_memcpy(builder, dst_ptr, src_ptr, args[4], 1)

        return sig, codegen

    _memcpy_intrinsic: Any = intrinsic(_memcpy_typer)

    @_kernel
    def copy_bytes(dst: np.ndarray, dst_at: int, src: np.ndarray, src_at: int, n: int) -> None:
        """``dst[dst_at:dst_at+n] = src[src_at:src_at+n]`` for uint8 arrays that do not overlap."""
        _memcpy_intrinsic(dst, dst_at, src, src_at, n)

else:
    BACKEND = "python"

    def _kernel(func: F) -> F:
        return func

    def copy_bytes(dst: np.ndarray, dst_at: int, src: np.ndarray, src_at: int, n: int) -> None:
        """``dst[dst_at:dst_at+n] = src[src_at:src_at+n]`` for uint8 arrays that do not overlap."""
        dst[dst_at : dst_at + n] = src[src_at : src_at + n]


NUMBA_ACTIVE = BACKEND == "numba"

# Error codes returned by decode_sections (0 = ok); records.py turns them into messages.
OK = 0
ERR_VARINT_TRUNCATED = 1
ERR_VARINT_TOO_LONG = 2
ERR_RECORD_LENGTH = 3
ERR_KEY_LENGTH = 4
ERR_VALUE_LENGTH = 5
ERR_HEADER_COUNT = 6
ERR_HEADER_KEY_LENGTH = 7
ERR_HEADER_VALUE_LENGTH = 8
ERR_RECORD_TRAILING = 9
ERR_SECTION_TRAILING = 10

MIN_RECORD_SIZE = 7  # length, attributes, ts delta, offset delta, key len, value len, header count

_U7F = np.uint64(0x7F)
_U80 = np.uint64(0x80)
_U1 = np.uint64(1)
_U7 = np.uint64(7)
_U32_MASK = np.uint64(0xFFFFFFFF)


@_kernel
def zigzag64(v: int) -> np.uint64:
    """Zigzag-map a signed 64-bit value to unsigned without overflowing either type."""
    if v >= 0:
        return np.uint64(v) << _U1
    return (np.uint64(-(v + 1)) << _U1) | _U1


@_kernel
def varint_size(u: np.uint64) -> int:
    """Bytes needed for the unsigned (already zigzagged) value ``u``."""
    n = 1
    while u >= _U80:
        u >>= _U7
        n += 1
    return n


@_kernel
def write_varint(out: np.ndarray, pos: int, v: int) -> int:
    """Write signed ``v`` zigzag-encoded at ``out[pos]``; returns the position after it."""
    u = zigzag64(v)
    while u >= _U80:
        out[pos] = np.uint8((u & _U7F) | _U80)
        u >>= _U7
        pos += 1
    out[pos] = np.uint8(u)
    return pos + 1


@_kernel
def read_varint(data: np.ndarray, pos: int, end: int, max_bytes: int) -> tuple[int, int]:
    """Read a zigzag varint (``max_bytes`` 5) or varlong (10) from ``data[pos:end]``.

    Returns ``(value, next_pos)``; ``next_pos`` is ``-ERR_VARINT_TRUNCATED`` or
    ``-ERR_VARINT_TOO_LONG`` on failure. A 5-byte varint keeps its low 32 bits, as
    Java's ``ByteUtils.readVarint`` does.
    """
    raw = np.uint64(0)
    shift = np.uint64(0)
    for _ in range(max_bytes):
        if pos >= end:
            return 0, -ERR_VARINT_TRUNCATED
        b = data[pos]
        pos += 1
        raw |= (np.uint64(b) & _U7F) << shift
        if b < 0x80:
            if max_bytes == 5:
                raw &= _U32_MASK
            half = np.int64(raw >> _U1)
            if raw & _U1:
                return int(-half - 1), pos
            return int(half), pos
        shift += _U7
    return 0, -ERR_VARINT_TOO_LONG


@_kernel
def _field_size(length: int) -> int:
    if length < 0:
        return 1
    return varint_size(zigzag64(length)) + length


@_kernel
def encoded_size(
    val_offs: np.ndarray,
    val_valid: np.ndarray,
    key_offs: np.ndarray,
    key_valid: np.ndarray,
    has_keys: bool,
    ts: np.ndarray,
    base_ts: int,
) -> tuple[int, int, int]:
    """``(bytes of the records section, min timestamp, max timestamp)``.

    ``*_valid`` of length 0 means no nulls; ``ts`` of length 0 means every record has
    ``base_ts``. Deltas wrap here; the caller rejects timestamps whose delta overflows.
    A size of ``-(i + 1)`` says the offsets fall at record ``i``.
    """
    n = val_offs.shape[0] - 1
    total = 0
    ts_min = base_ts
    ts_max = base_ts
    if ts.shape[0] > 0:
        ts_min = ts[0]
        ts_max = ts[0]
    for i in range(n):
        vlen = val_offs[i + 1] - val_offs[i]
        klen = -1
        if has_keys:
            klen = key_offs[i + 1] - key_offs[i]
            if klen < 0:  # falling offsets: the copy in encode_into would run wild
                return -(i + 1), 0, 0
            if key_valid.shape[0] > 0 and not key_valid[i]:
                klen = -1
        if vlen < 0:
            return -(i + 1), 0, 0
        if val_valid.shape[0] > 0 and not val_valid[i]:
            vlen = -1
        delta = 0
        if ts.shape[0] > 0:
            t = ts[i]
            ts_min = min(ts_min, t)
            ts_max = max(ts_max, t)
            delta = t - base_ts
        body = 2 + varint_size(zigzag64(delta)) + varint_size(zigzag64(i))
        body += _field_size(klen) + _field_size(vlen)
        total += varint_size(zigzag64(body)) + body
    return total, ts_min, ts_max


@_kernel
def _write_field(out: np.ndarray, pos: int, data: np.ndarray, start: int, length: int) -> int:
    if length < 0:
        out[pos] = 1  # zigzag(-1): null
        return pos + 1
    pos = write_varint(out, pos, length)
    copy_bytes(out, pos, data, start, length)
    return pos + length


@_kernel
def encode_into(
    out: np.ndarray,
    pos: int,
    val_data: np.ndarray,
    val_offs: np.ndarray,
    val_valid: np.ndarray,
    key_data: np.ndarray,
    key_offs: np.ndarray,
    key_valid: np.ndarray,
    has_keys: bool,
    ts: np.ndarray,
    base_ts: int,
) -> int:
    """Write records with offset deltas 0..n-1 and no headers; returns the end position."""
    n = val_offs.shape[0] - 1
    for i in range(n):
        vstart = val_offs[i]
        vlen = val_offs[i + 1] - vstart
        if val_valid.shape[0] > 0 and not val_valid[i]:
            vlen = -1
        kstart = 0
        klen = -1
        if has_keys:
            kstart = key_offs[i]
            klen = key_offs[i + 1] - kstart
            if key_valid.shape[0] > 0 and not key_valid[i]:
                klen = -1
        delta = 0
        if ts.shape[0] > 0:
            delta = ts[i] - base_ts
        body = 2 + varint_size(zigzag64(delta)) + varint_size(zigzag64(i))
        body += _field_size(klen) + _field_size(vlen)
        pos = write_varint(out, pos, body)
        out[pos] = 0  # record attributes: unused in v2
        pos = write_varint(out, pos + 1, delta)
        pos = write_varint(out, pos, i)
        pos = _write_field(out, pos, key_data, kstart, klen)
        pos = _write_field(out, pos, val_data, vstart, vlen)
        out[pos] = 0  # header count
        pos += 1
    return pos


@_kernel
def _skip_bytes(data: np.ndarray, pos: int, end: int, allow_null: bool) -> tuple[int, int, int]:
    """Read a length-prefixed field; returns (start, length, next_pos), next_pos < 0 on error."""
    length, p = read_varint(data, pos, end, 5)
    if p < 0:
        return 0, 0, p
    if length < -1 or (length == -1 and not allow_null) or p + max(length, 0) > end:
        return 0, length, -100
    return p, length, p + max(length, 0)


@_kernel
def decode_sections(
    data: np.ndarray,
    sec_start: np.ndarray,
    sec_end: np.ndarray,
    sec_count: np.ndarray,
    sec_base_offset: np.ndarray,
    sec_base_ts: np.ndarray,
    sec_fixed_ts: np.ndarray,
    out_offset: np.ndarray,
    out_ts: np.ndarray,
    key_pos: np.ndarray,
    key_len: np.ndarray,
    val_pos: np.ndarray,
    val_len: np.ndarray,
) -> tuple[int, int, int]:
    """Parse the records of each section ``data[sec_start[s]:sec_end[s]]`` into columns.

    ``sec_fixed_ts[s]`` is the timestamp every record of the section gets (LogAppendTime)
    or ``-2**63`` to use base timestamp + delta. Returns ``(error_code, position,
    records_with_headers)``; offsets and timestamps wrap at 64 bits as in Java.
    """
    i = 0
    with_headers = 0
    no_fixed = np.int64(-(2**63))
    for s in range(sec_start.shape[0]):
        pos = sec_start[s]
        end = sec_end[s]
        base_off = sec_base_offset[s]
        base_ts = sec_base_ts[s]
        fixed_ts = sec_fixed_ts[s]
        for _ in range(sec_count[s]):
            length, p = read_varint(data, pos, end, 5)
            if p < 0:
                return -p, pos, 0
            if length < MIN_RECORD_SIZE - 1 or p + length > end:
                return ERR_RECORD_LENGTH, pos, 0
            rend = p + length
            p += 1  # attributes
            ts_delta, q = read_varint(data, p, rend, 10)
            if q < 0:
                return -q, p, 0
            off_delta, p = read_varint(data, q, rend, 5)
            if p < 0:
                return -p, q, 0
            kstart, klen, q = _skip_bytes(data, p, rend, True)
            if q < 0:
                return (ERR_KEY_LENGTH if q == -100 else -q), p, 0
            vstart, vlen, p = _skip_bytes(data, q, rend, True)
            if p < 0:
                return (ERR_VALUE_LENGTH if p == -100 else -p), q, 0
            count, q = read_varint(data, p, rend, 5)
            if q < 0:
                return -q, p, 0
            if count < 0:
                return ERR_HEADER_COUNT, p, 0
            if count > 0:
                with_headers += 1
            for _h in range(count):
                _a, _b, p = _skip_bytes(data, q, rend, False)
                if p < 0:
                    return (ERR_HEADER_KEY_LENGTH if p == -100 else -p), q, 0
                _a, _b, q = _skip_bytes(data, p, rend, True)
                if q < 0:
                    return (ERR_HEADER_VALUE_LENGTH if q == -100 else -q), p, 0
            if q != rend:
                return ERR_RECORD_TRAILING, q, 0
            out_offset[i] = base_off + off_delta
            out_ts[i] = fixed_ts if fixed_ts != no_fixed else base_ts + ts_delta
            key_pos[i] = kstart
            key_len[i] = klen
            val_pos[i] = vstart
            val_len[i] = vlen
            i += 1
            pos = rend
        if pos != end:
            return ERR_SECTION_TRAILING, pos, 0
    return OK, 0, with_headers


@_kernel
def field_totals(lens: np.ndarray) -> tuple[int, int]:
    """``(total bytes, null count)`` of fields whose length is -1 when null."""
    total = 0
    nulls = 0
    for i in range(lens.shape[0]):
        n = lens[i]
        if n < 0:
            nulls += 1
        else:
            total += n
    return total, nulls


@_kernel
def gather(
    data: np.ndarray,
    pos: np.ndarray,
    lens: np.ndarray,
    offsets: np.ndarray,
    out: np.ndarray,
) -> None:
    """Copy ``data[pos[i]:pos[i]+lens[i]]`` to ``out`` back to back, writing Arrow offsets.

    ``offsets`` (int32 or int64, n + 1 entries) receives the running start of each
    field; a null (negative length) takes no bytes.
    """
    dst = 0
    offsets[0] = 0
    for i in range(pos.shape[0]):
        n = lens[i]
        if n > 0:
            copy_bytes(out, dst, data, pos[i], n)
            dst += n
        offsets[i + 1] = dst
