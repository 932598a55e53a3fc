"""GPU JSON decode: a batch of flat JSON objects -> typed columns under a declared schema,
as numba.cuda kernels with one thread per record; the twin of the CPU kernels in
:mod:`plait.process.cpu._json_numba` and :mod:`plait.process.cpu._json_lex`.

Why one thread per record: records are independent, short (~100-500 bytes) and many
(10^5-10^6 a batch), and JSON is sequential within a record (a byte's meaning depends on
everything before it). A thread walks its record once, like the CPU kernel does, with no
inter-thread communication, no atomics and a deterministic result. The price is that
a warp's 32 threads read 32 different records (uncoalesced loads) and diverge where
records differ in shape; for the mostly-uniform events of one topic that is acceptable.

Contract (as on the CPU): for each record :func:`scan_kernel` either *proves* it decoded
the record exactly as msgspec's typed decoder would (the per-record reference in
:mod:`plait.process.cpu.decode`), or sets ``flags[i] = 1`` and the host re-decodes that
record with the reference and splices it back in order. A flag is never wrong, it only
costs time. Flagged here exactly as on the CPU: a null record, anything but one JSON
object with optional surrounding whitespace, malformed JSON anywhere (ignored values
included), a declared key seen twice, a value of the wrong JSON type, ints past int64,
floats off Clinger's exact fast path, lone surrogate escapes, invalid UTF-8 or raw
control bytes in any string, nesting past ``MAX_DEPTH`` in an ignored value, a record
over 2 GiB.

Why a second copy of the lexer rather than one shared source: the CPU kernels read memory
through raw-address LLVM intrinsics (:mod:`plait.process.cpu._native`, to skip numba's
per-array reference counting) that numba.cuda cannot compile, while device code must index
arrays. The grammar and the flag rules are kept the same, and tests/gpu_sim asserts that
both flag exactly the same records.

What differs from the CPU kernels:

- Input: one flat ``uint8`` buffer ``data`` with int64 ``offsets`` (record i is
  ``data[offsets[i]:offsets[i + 1]]``) and ``rec_valid`` (0: a null record), read as
  arrays, instead of CPython ``bytes`` objects read through raw addresses.
- Bytes are read one at a time: no 8-byte-word skip in string bodies, and no masked-word
  key compare; keys are validated, then compared byte by byte with the declared names,
  starting with the field after the previous match (producers write keys in one order).
- Device functions return values (tuples of scalars) and the kernel stores the cells;
  no array addresses are passed around.
- Strings: one flat output buffer for all string columns; the host computes every row's
  absolute start with a cumsum on the device (:func:`scan_device`), so
  :func:`string_fill_kernel` needs no per-column pointers.

Arithmetic is the CPU's: int64 that never overflows (at most 18 digits accumulated, a 19th
kept apart), float64 with one correctly rounded multiply or divide (no fastmath).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, overload

import numpy as np
import pyarrow as pa
from numba import cuda

from plait.process.cpu._json_lex import (
    BSLASH,
    K_BOOL,
    K_FLOAT,
    K_INT,
    K_SKIP,
    K_STRING,
    MAX_DEPTH,
    QUOTE,
)
from plait.process.cpu.decode import DecodeResult
from plait.process.cpu.fast_json import (
    Plan,
    batch_from_cells,
    merge_flagged,
    plan_for,
    supported,
)
from plait.process.errors import ProcessError
from plait.process.gpu.device import Backend, grid, host_strings
from plait.process.schema import Schema

__all__ = [
    "DeviceCells",
    "decode_device",
    "scan_device",
    "scan_kernel",
    "string_fill_kernel",
    "upload_records",
]

PerRecord = Callable[[Sequence[bytes], Schema, str], DecodeResult]

_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)  # all exact doubles
_TWO53 = 1 << 53
_I64_MAX_DIV10 = 922337203685477580
_I32_MAX = 2**31 - 1


# ---------------------------------------------------------------------------------------
# Lexing (device functions). Each returns the position after what it read, or -1 when
# the input is not what RFC 8259 allows there or the value cannot be proven exact.
# ---------------------------------------------------------------------------------------


@cuda.jit(device=True)
def _at(data: np.ndarray, p: int) -> int:
    """The byte at ``p`` as a plain int (arithmetic on it must not wrap as uint8)."""
    return int(data[p])


@cuda.jit(device=True)
def ws(data: np.ndarray, p: int, end: int) -> int:
    """First position at or after ``p`` that is not JSON whitespace (or ``end``)."""
    while p < end:
        c = _at(data, p)
        if c != 32 and c != 10 and c != 13 and c != 9:
            return p
        p += 1
    return p


@cuda.jit(device=True)
def _hex4(data: np.ndarray, p: int, end: int) -> int:
    """The code unit of the 4 hex digits at ``p``, or -1."""
    if p + 4 > end:
        return -1
    v = 0
    for k in range(4):
        c = _at(data, p + k)
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            return -1
        v = v * 16 + d
    return v


@cuda.jit(device=True)
def _utf8_len(data: np.ndarray, p: int, end: int) -> int:
    """Length of the well-formed UTF-8 sequence at ``p`` (lead byte >= 0x80), or -1
    (Unicode table 3-7: no overlongs, no surrogates, nothing past U+10FFFF)."""
    c = _at(data, p)
    n = 0
    lo = 0x80
    hi = 0xBF
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif c == 0xE0:
        n = 3
        lo = 0xA0
    elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
        n = 3
    elif c == 0xED:
        n = 3
        hi = 0x9F
    elif c == 0xF0:
        n = 4
        lo = 0x90
    elif 0xF1 <= c <= 0xF3:
        n = 4
    elif c == 0xF4:
        n = 4
        hi = 0x8F
    if n == 0 or p + n > end:
        return -1
    c1 = _at(data, p + 1)
    if c1 < lo or c1 > hi:
        return -1
    for k in range(2, n):
        ck = _at(data, p + k)
        if ck < 0x80 or ck > 0xBF:
            return -1
    return n


@cuda.jit(device=True)
def escape(data: np.ndarray, p: int, end: int) -> tuple[int, int, int]:
    """Escape at ``p`` (on the backslash): (bytes consumed, code point, UTF-8 length);
    consumed is -1 when the escape is invalid or a lone surrogate (msgspec rejects those)."""
    if p + 1 >= end:
        return -1, 0, 0
    c = _at(data, p + 1)
    if c == 34 or c == 92 or c == 47:
        return 2, c, 1
    if c == 98:
        return 2, 8, 1
    if c == 102:
        return 2, 12, 1
    if c == 110:
        return 2, 10, 1
    if c == 114:
        return 2, 13, 1
    if c == 116:
        return 2, 9, 1
    if c != 117:
        return -1, 0, 0
    cp = _hex4(data, p + 2, end)
    if cp < 0 or 0xDC00 <= cp <= 0xDFFF:
        return -1, 0, 0
    if 0xD800 <= cp <= 0xDBFF:
        if p + 12 > end or _at(data, p + 6) != BSLASH or _at(data, p + 7) != 117:
            return -1, 0, 0
        lo = _hex4(data, p + 8, end)
        if lo < 0xDC00 or lo > 0xDFFF:
            return -1, 0, 0
        return 12, 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), 4
    if cp < 0x80:
        return 6, cp, 1
    if cp < 0x800:
        return 6, cp, 2
    return 6, cp, 3


@cuda.jit(device=True)
def string(data: np.ndarray, p: int, end: int) -> tuple[int, int]:
    """String body from ``p`` (after the opening quote): (position after the closing
    quote, decoded UTF-8 length), or (-1, 0). The decoded length is below the source
    length iff the body has escapes (every escape is longer than what it stands for)."""
    out = 0
    while p < end:
        c = _at(data, p)
        if c == QUOTE:
            return p + 1, out
        if c == BSLASH:
            used, _cp, n = escape(data, p, end)
            if used < 0:
                return -1, 0
        elif c < 0x20:
            return -1, 0
        elif c < 0x80:
            used = 1
            n = 1
        else:
            used = _utf8_len(data, p, end)
            n = used
            if n < 0:
                return -1, 0
        p += used
        out += n
    return -1, 0


@cuda.jit(device=True)
def number(
    data: np.ndarray, p: int, end: int, want: int
) -> tuple[int, bool, int, float]:
    """JSON number at ``p``: (end position or -1 if malformed, exact, int value, float).

    ``want`` is K_INT, K_FLOAT or K_SKIP (grammar only). ``exact`` is True only when the
    value is what msgspec gives for that kind: an int literal within int64; for floats,
    Clinger's fast path (significant digits <= 2**53 and a power of ten within 1e+-22,
    so one correctly rounded IEEE operation), or an int literal up to 2**53.
    """
    neg = False
    if p < end and _at(data, p) == 45:
        neg = True
        p += 1
    if p >= end:
        return -1, False, 0, 0.0
    c = _at(data, p)
    digits = 0  # significant digits (zeros before the first non-zero do not count)
    mant = 0  # the first 18 significant digits
    last = 0  # a 19th integer digit, kept apart so int64 overflow is checked exactly
    if c == 48:
        p += 1
    elif 49 <= c <= 57:
        while p < end:
            d = _at(data, p) - 48
            if d < 0 or d > 9:
                break
            if digits < 18:
                mant = mant * 10 + d
            elif digits == 18:
                last = d
            digits += 1
            p += 1
    else:
        return -1, False, 0, 0.0
    int_digits = digits
    frac = 0  # fraction digits folded into mant (a power of ten below)
    is_float = False
    if p < end and _at(data, p) == 46:
        is_float = True
        p += 1
        start = p
        while p < end:
            d = _at(data, p) - 48
            if d < 0 or d > 9:
                break
            if digits > 0 or d != 0:
                if digits < 18:
                    mant = mant * 10 + d
                digits += 1
            frac += 1
            p += 1
        if p == start:
            return -1, False, 0, 0.0
    exp = 0
    if p < end and (_at(data, p) == 101 or _at(data, p) == 69):
        is_float = True
        p += 1
        eneg = False
        if p < end and (_at(data, p) == 43 or _at(data, p) == 45):
            eneg = _at(data, p) == 45
            p += 1
        start = p
        while p < end:
            d = _at(data, p) - 48
            if d < 0 or d > 9:
                break
            if exp < 100000:
                exp = exp * 10 + d
            p += 1
        if p == start:
            return -1, False, 0, 0.0
        if eneg:
            exp = -exp
    if want == K_INT:
        return _int_result(p, neg, is_float, int_digits, mant, last)
    if want == K_FLOAT:
        return _float_result(p, neg, is_float, digits, mant, exp - frac)
    return p, False, 0, 0.0


@cuda.jit(device=True)
def _int_result(
    p: int, neg: bool, is_float: bool, int_digits: int, mant: int, last: int
) -> tuple[int, bool, int, float]:
    """:func:`number`'s result for an int field: exact only within int64."""
    if is_float or int_digits > 19:
        return p, False, 0, 0.0
    if int_digits == 19:
        if mant > _I64_MAX_DIV10:
            return p, False, 0, 0.0
        if mant == _I64_MAX_DIV10:
            if last > 8 or (last == 8 and not neg):
                return p, False, 0, 0.0
            if last == 8:
                return p, True, -9223372036854775807 - 1, 0.0
        v = mant * 10 + last
        return p, True, -v if neg else v, 0.0
    return p, True, -mant if neg else mant, 0.0


@cuda.jit(device=True)
def _float_result(
    p: int, neg: bool, is_float: bool, digits: int, mant: int, e10: int
) -> tuple[int, bool, int, float]:
    """:func:`number`'s result for a float field: exact only on Clinger's fast path."""
    if digits > 18 or mant > _TWO53:
        return p, False, 0, 0.0
    if not is_float:
        # msgspec converts the integer, so -0 becomes +0.0 (not -0.0)
        return p, True, 0, float(-mant if neg else mant)
    if mant == 0:
        return p, True, 0, -0.0 if neg else 0.0
    if e10 < -22 or e10 > 22:
        return p, False, 0, 0.0
    fv = float(mant)
    if e10 >= 0:
        fv = fv * _POW10[e10]
    else:
        fv = fv / _POW10[-e10]
    return p, True, 0, -fv if neg else fv


@cuda.jit(device=True)
def literal(data: np.ndarray, p: int, end: int) -> tuple[int, int]:
    """``true``/``false``/``null`` at ``p``: (end or -1, 1/0/-1 for true/false/null)."""
    c = _at(data, p)
    if c == 116:
        if (
            p + 4 <= end
            and _at(data, p + 1) == 114
            and _at(data, p + 2) == 117
            and _at(data, p + 3) == 101
        ):
            return p + 4, 1
    elif c == 102:
        if (
            p + 5 <= end
            and _at(data, p + 1) == 97
            and _at(data, p + 2) == 108
            and _at(data, p + 3) == 115
            and _at(data, p + 4) == 101
        ):
            return p + 5, 0
    elif (
        c == 110
        and p + 4 <= end
        and _at(data, p + 1) == 117
        and _at(data, p + 2) == 108
        and _at(data, p + 3) == 108
    ):
        return p + 4, -1
    return -1, 0


@cuda.jit(device=True)
def _key_colon(data: np.ndarray, p: int, end: int) -> int:
    """``"key" :`` and the whitespace after it, at ``p``, inside an ignored object."""
    if p >= end or _at(data, p) != QUOTE:
        return -1
    p, _n = string(data, p + 1, end)
    if p < 0:
        return -1
    p = ws(data, p, end)
    if p >= end or _at(data, p) != 58:
        return -1
    return ws(data, p + 1, end)


@cuda.jit(device=True)
def skip(data: np.ndarray, p: int, end: int) -> int:
    """Validate and step over any JSON value at ``p`` (an ignored field's value).

    Iterative, with the open containers as bits of one int (1: object, 0: array): no
    recursion, so no device stack to size; nesting past MAX_DEPTH is flagged (-1).
    """
    depth = 0
    kinds = 0  # bit d: container at depth d is an object
    while True:
        if p >= end:  # expecting a value at p
            return -1
        c = _at(data, p)
        if c == 123 or c == 91:
            if depth >= MAX_DEPTH:
                return -1
            obj = c == 123
            if obj:
                kinds |= 1 << depth
            else:
                kinds &= ~(1 << depth)
            depth += 1
            p = ws(data, p + 1, end)
            if p < end and _at(data, p) == (125 if obj else 93):
                depth -= 1
                p += 1
            else:
                if obj:
                    p = _key_colon(data, p, end)
                    if p < 0:
                        return -1
                continue
        elif c == QUOTE:
            p, _n = string(data, p + 1, end)
        elif c == 45 or 48 <= c <= 57:
            p, _x, _i, _f = number(data, p, end, K_SKIP)
        else:
            p, _v = literal(data, p, end)
        if p < 0:
            return -1
        while True:  # after a value: close containers, or a comma before the next value
            if depth == 0:
                return p
            p = ws(data, p, end)
            if p >= end:
                return -1
            c = _at(data, p)
            obj = (kinds >> (depth - 1)) & 1 == 1
            if c == 44:
                p = ws(data, p + 1, end)
                if obj:
                    p = _key_colon(data, p, end)
                    if p < 0:
                        return -1
                break
            if (c == 125 and obj) or (c == 93 and not obj):
                depth -= 1
                p += 1
                continue
            return -1


# ---------------------------------------------------------------------------------------
# Records: keys, declared values, the object.
# ---------------------------------------------------------------------------------------


@cuda.jit(device=True)
def _utf8_byte(cp: int, n: int, k: int) -> int:
    """Byte ``k`` of the ``n``-byte UTF-8 encoding of code point ``cp``."""
    if n == 1:
        return cp
    if k == 0:
        return (0xF00 >> n) & 0xFF | (cp >> (6 * (n - 1)))
    return 0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3F)


@cuda.jit(device=True)
def _key_is(data: np.ndarray, ks: int, ke: int, names: np.ndarray, a: int) -> bool:
    """Whether the key body ks..ke (validated, escapes decoded as compared) spells the
    name at ``names[a:]`` (the caller checked the decoded lengths are equal)."""
    q = ks
    while q < ke:
        c = _at(data, q)
        if c != BSLASH:
            if c != _at(names, a):
                return False
            q += 1
            a += 1
            continue
        used, cp, n = escape(data, q, ke)
        for k in range(n):
            if _utf8_byte(cp, n, k) != _at(names, a + k):
                return False
        q += used
        a += n
    return True


@cuda.jit(device=True)
def _find_key(
    data: np.ndarray,
    ks: int,
    ke: int,
    dlen: int,
    names: np.ndarray,
    name_offs: np.ndarray,
    hint: int,
) -> int:
    """Index of the declared field named by the key body ks..ke (decoded length
    ``dlen``), or -1; tries field ``hint`` first, then the following ones (names are
    unique, so the order of tries never changes the answer)."""
    nf = name_offs.shape[0] - 1
    for t in range(nf):
        j = hint + t
        if j >= nf:
            j -= nf
        a = int(name_offs[j])
        if int(name_offs[j + 1]) - a == dlen and _key_is(data, ks, ke, names, a):
            return j
    return -1


@cuda.jit(device=True)
def _value(
    data: np.ndarray, p: int, e: int, kind: int
) -> tuple[int, bool, int, int, float]:
    """A declared field's value at ``p``: (end or -1 to flag, present, a, b, float).

    Present is False for ``null``. By kind: int -> a; bool -> a (0/1); float -> the
    float; string -> a = body start, b = decoded length, negative when it has escapes.
    """
    c = _at(data, p)
    if c == 110:
        q, _v = literal(data, p, e)
        return q, False, 0, 0, 0.0
    if kind == K_STRING:
        if c != QUOTE:
            return -1, False, 0, 0, 0.0
        q, n = string(data, p + 1, e)
        if q < 0:
            return -1, False, 0, 0, 0.0
        return q, True, p + 1, n if n == q - p - 2 else -n, 0.0
    if kind == K_BOOL:
        q, v = literal(data, p, e)
        if q < 0 or v < 0:
            return -1, False, 0, 0, 0.0
        return q, True, v, 0, 0.0
    if c != 45 and not (48 <= c <= 57):
        return -1, False, 0, 0, 0.0
    q, exact, iv, fv = number(data, p, e, kind)
    if q < 0 or not exact:
        return -1, False, 0, 0, 0.0
    return q, True, iv, 0, fv


@cuda.jit(device=True)
def _object(
    data: np.ndarray,
    s: int,
    e: int,
    i: int,
    names: np.ndarray,
    name_offs: np.ndarray,
    kinds: np.ndarray,
    slots: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    bvals: np.ndarray,
    valid: np.ndarray,
    s_start: np.ndarray,
    s_len: np.ndarray,
) -> bool:
    """Decode record ``i`` (bytes s..e) into its cells; False to flag it."""
    p = ws(data, s, e)
    if p >= e or _at(data, p) != 123:
        return False
    p = ws(data, p + 1, e)
    if p < e and _at(data, p) == 125:
        return ws(data, p + 1, e) == e
    nf = name_offs.shape[0] - 1
    seen = 0  # bit j: field j seen; a second one is flagged (msgspec keeps the last)
    hint = 0
    while True:  # one "key": value per turn
        if p >= e or _at(data, p) != QUOTE:
            return False
        ks = p + 1
        p, klen = string(data, ks, e)
        if p < 0:
            return False
        j = _find_key(data, ks, p - 1, klen, names, name_offs, hint)
        p = ws(data, p, e)
        if p >= e or _at(data, p) != 58:
            return False
        p = ws(data, p + 1, e)
        if p >= e:
            return False
        if j < 0:
            p = skip(data, p, e)
        else:
            bit = 1 << j
            if seen & bit:
                return False
            seen |= bit
            hint = j + 1 if j + 1 < nf else 0
            kind = int(kinds[j])
            slot = int(slots[j])
            p, present, a, b, fv = _value(data, p, e, kind)
            if p >= 0 and present:
                valid[j, i] = 1
                if kind == K_INT:
                    ivals[slot, i] = a
                elif kind == K_FLOAT:
                    fvals[slot, i] = fv
                elif kind == K_BOOL:
                    bvals[slot, i] = a
                else:
                    s_start[slot, i] = a - s
                    s_len[slot, i] = b
        if p < 0:
            return False
        p = ws(data, p, e)
        if p >= e:
            return False
        c = _at(data, p)
        if c == 125:
            return ws(data, p + 1, e) == e
        if c != 44:
            return False
        p = ws(data, p + 1, e)


@cuda.jit
def scan_kernel(
    data: np.ndarray,
    offsets: np.ndarray,
    rec_valid: np.ndarray,
    names: np.ndarray,
    name_offs: np.ndarray,
    kinds: np.ndarray,
    slots: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    bvals: np.ndarray,
    valid: np.ndarray,
    s_start: np.ndarray,
    s_len: np.ndarray,
    flags: np.ndarray,
    lo: int,
    hi: int,
) -> None:
    """Decode record ``i = lo + cuda.grid(1)`` for ``lo <= i < hi`` (one thread per record;
    a chunked upload scans each chunk's rows as it lands).

    Field ``j`` (UTF-8 name ``names[name_offs[j]:name_offs[j + 1]]``, kind ``kinds[j]``,
    ``n_fields = len(name_offs) - 1``) lands in row ``slots[j]`` of the array for its kind:
    ``ivals`` (int64), ``fvals`` (float64), ``bvals`` (uint8 0/1), or for strings
    ``s_start`` (int32 offset of the body from the record's start) and ``s_len`` (int32
    decoded length, negative when the body has escapes). ``valid[j, i]`` is 1 when the
    field is present and not null, else 0; ``flags[i]`` is 1 for a flagged record (its
    cells are then meaningless), else 0. Arrays other than ``valid`` and ``flags`` need
    not be initialised.
    """
    i = lo + cuda.grid(1)  # type: ignore[call-arg]
    if i >= hi:
        return
    for j in range(name_offs.shape[0] - 1):
        valid[j, i] = 0
    s = int(offsets[i])
    e = int(offsets[i + 1])
    ok = False
    if rec_valid[i] != 0 and e - s <= _I32_MAX:
        ok = _object(
            data, s, e, i, names, name_offs, kinds, slots, ivals, fvals, bvals,
            valid, s_start, s_len,
        )  # fmt: skip
    flags[i] = 0 if ok else 1


@cuda.jit
def string_fill_kernel(
    data: np.ndarray,
    offsets: np.ndarray,
    s_start: np.ndarray,
    s_len: np.ndarray,
    valid: np.ndarray,
    flags: np.ndarray,
    fields: np.ndarray,
    out_offs: np.ndarray,
    out_data: np.ndarray,
) -> None:
    """Write record ``i``'s decoded strings (one thread per record) into ``out_data``.

    String column ``k`` is field ``fields[k]`` (slot k of ``s_start``/``s_len``). Row i of
    column k goes at ``out_data[out_offs[k, i]:]`` (absolute int64 starts, see
    :func:`scan_device`); null and flagged rows write nothing. Bodies were validated by
    :func:`scan_kernel`, so decoding an escaped body stops exactly at its length.
    """
    i = cuda.grid(1)  # type: ignore[call-arg, var-annotated]
    if i >= flags.shape[0] or flags[i] != 0:
        return
    s = int(offsets[i])
    e = int(offsets[i + 1])
    for k in range(fields.shape[0]):
        if valid[fields[k], i] != 0:
            _put(data, s + int(s_start[k, i]), e, int(s_len[k, i]), out_data,
                 int(out_offs[k, i]))  # fmt: skip


@cuda.jit(device=True)
def _put(data: np.ndarray, p: int, e: int, n: int, out: np.ndarray, q: int) -> None:
    """The string body at ``p`` (decoded length ``abs(n)``, escaped when ``n`` < 0) as
    UTF-8 at ``out[q:]``."""
    if n >= 0:
        for k in range(n):
            out[q + k] = data[p + k]
        return
    qe = q - n
    while q < qe:
        c = _at(data, p)
        if c != BSLASH:
            out[q] = c
            q += 1
            p += 1
            continue
        used, cp, m = escape(data, p, e)
        p += used
        for k in range(m):
            out[q + k] = _utf8_byte(cp, m, k)
        q += m


# ---------------------------------------------------------------------------------------
# Host side.
# ---------------------------------------------------------------------------------------


class DeviceCells(NamedTuple):
    """One decoded batch, still on the device (arrays of ``backend.xp``), n rows.

    - ``flags``: uint8[n]; 1 = not decoded here (null, malformed or not provably exact):
      re-decode that record with the per-record reference. Every other array is
      meaningless in a flagged row.
    - ``valid``: uint8[n_fields, n]; 1 = field j present and not null.
    - ``ivals`` int64, ``fvals`` float64, ``bvals`` uint8 (0/1): [max(count, 1), n] each;
      field j of that kind is row ``plan.slots[j]`` (undefined where not valid).
    - ``str_offs``: int64[n_strings, n + 1]; string column k (the k-th string field in
      schema order) row i is ``str_data[str_offs[k, i]:str_offs[k, i + 1]]``, empty where
      null or flagged; so ``str_offs[k] - str_offs[k, 0]`` are Arrow offsets, and column
      k's bytes are ``str_data[str_offs[k, 0]:str_offs[k, n]]`` (columns back to back).
    - ``str_data``: uint8, all string columns' decoded UTF-8 bytes (at least 1 byte long).
    """

    flags: Any
    valid: Any
    ivals: Any
    fvals: Any
    bvals: Any
    str_offs: Any
    str_data: Any


class _PlanOnDevice(NamedTuple):
    """The per-schema kernel inputs of fast_json.Plan, on the device."""

    names: Any
    name_offs: Any
    kinds: Any
    slots: Any
    string_fields: Any


def _upload_plan(backend: Backend, plan: Plan) -> _PlanOnDevice:
    return _PlanOnDevice(
        backend.to_device(plan.names),
        backend.to_device(plan.name_offs),
        backend.to_device(plan.kinds),
        backend.to_device(plan.slots),
        backend.to_device(plan.string_fields),
    )


def scan_device(
    backend: Backend, data: Any, offsets: Any, rec_valid: Any, schema: Schema
) -> DeviceCells:
    """Decode the records already on the device; the cells stay there (see DeviceCells).

    ``data``: uint8 bytes (at least 1 long), ``offsets``: int64[n + 1] into ``data``,
    ``rec_valid``: uint8[n] (0: null record). ``schema`` must be :func:`supported`. Blocks
    once, to size the string buffer.
    """
    plan = plan_for(schema)
    dev = _upload_plan(backend, plan)
    n = int(offsets.shape[0]) - 1
    cells = _alloc_cells(backend, plan, n)
    blocks, threads = grid(n)
    scan_kernel[blocks, threads](
        data, offsets, rec_valid, dev.names, dev.name_offs, dev.kinds, dev.slots,
        cells.ivals, cells.fvals, cells.bvals, cells.valid, cells.s_start, cells.s_len,
        cells.flags, 0, n,
    )  # fmt: skip
    return _finish_strings(backend, plan, dev, cells, data, offsets)


def upload_and_scan(
    backend: Backend, values: pa.Array | pa.ChunkedArray, schema: Schema,
    chunk_bytes: int = 32 << 20,
) -> DeviceCells:
    """Upload ``values`` and decode them, overlapping the two: the records go up in
    chunks of about ``chunk_bytes`` and each chunk's rows are scanned (on the backend's
    compute stream) while the next chunk is still crossing (on its copy stream). Same
    result as :func:`upload_records` then :func:`scan_device`."""
    return _upload_and_scan(backend, _host_records(values), schema, chunk_bytes)


def _upload_and_scan(
    backend: Backend, host: _HostRecords, schema: Schema, chunk_bytes: int = 32 << 20
) -> DeviceCells:
    plan = plan_for(schema)
    dev = _upload_plan(backend, plan)
    n = len(host.valid)
    offsets = backend.to_device(host.offsets)
    rec_valid = backend.to_device(host.valid)
    data = backend.empty(len(host.data), np.uint8)
    cells = _alloc_cells(backend, plan, n)
    for r0, r1 in _row_chunks(host.offsets, chunk_bytes):
        b0, b1 = int(host.offsets[r0]), int(host.offsets[r1])
        ready = backend.copy_in(data, b0, host.data[b0:max(b1, b0)])
        backend.launch(
            scan_kernel, r1 - r0, ready,
            data, offsets, rec_valid, dev.names, dev.name_offs, dev.kinds, dev.slots,
            cells.ivals, cells.fvals, cells.bvals, cells.valid, cells.s_start,
            cells.s_len, cells.flags, r0, r1,
        )  # fmt: skip
    backend.synchronize()
    return _finish_strings(backend, plan, dev, cells, data, offsets)


def _row_chunks(offsets: np.ndarray, chunk_bytes: int) -> list[tuple[int, int]]:
    """Row ranges of about ``chunk_bytes`` of record data each (at least one row)."""
    n = len(offsets) - 1
    if n <= 0:
        return []
    cuts = np.searchsorted(offsets, np.arange(chunk_bytes, int(offsets[-1]), chunk_bytes))
    bounds = sorted({0, n, *(int(c) for c in cuts if 0 < c < n)})
    return list(itertools.pairwise(bounds))


class _Cells(NamedTuple):
    flags: Any
    valid: Any
    ivals: Any
    fvals: Any
    bvals: Any
    s_start: Any
    s_len: Any


def _alloc_cells(backend: Backend, plan: Plan, n: int) -> _Cells:
    c = plan.counts
    ns = c[K_STRING]
    # at least one row each: a zero-size device array may have no address to pass
    return _Cells(
        backend.empty(n, np.uint8),
        backend.empty((len(plan.kinds), n), np.uint8),
        backend.empty((max(c[K_INT], 1), n), np.int64),
        backend.empty((max(c[K_FLOAT], 1), n), np.float64),
        backend.empty((max(c[K_BOOL], 1), n), np.uint8),
        backend.empty((max(ns, 1), n), np.int32),
        backend.empty((max(ns, 1), n), np.int32),
    )


def _finish_strings(backend: Backend, plan: Plan, dev: _PlanOnDevice, cells: _Cells,
                    data: Any, offsets: Any) -> DeviceCells:
    """Gather the string columns into one flat buffer once every row is scanned."""
    n = int(offsets.shape[0]) - 1
    ns = plan.counts[K_STRING]
    if ns == 0:
        str_offs = backend.zeros((0, n + 1), np.int64)
        str_data = backend.zeros(1, np.uint8)
    else:
        str_offs = _string_offsets(backend, cells.s_len[:ns], cells.valid, cells.flags,
                                   dev.string_fields)
        total = int(str_offs[ns - 1, n])  # the one host round trip
        str_data = backend.empty(max(total, 1), np.uint8)
        blocks, threads = grid(n)
        string_fill_kernel[blocks, threads](
            data, offsets, cells.s_start, cells.s_len, cells.valid, cells.flags,
            dev.string_fields, str_offs, str_data,
        )  # fmt: skip
    return DeviceCells(cells.flags, cells.valid, cells.ivals, cells.fvals, cells.bvals,
                       str_offs, str_data)


def _string_offsets(
    backend: Backend, s_len: Any, valid: Any, flags: Any, fields: Any
) -> Any:
    """Absolute starts of every string cell in one flat buffer (see DeviceCells), as an
    exclusive cumsum of the decoded lengths of the kept cells, column after column."""
    xp = backend.xp
    ns, n = s_len.shape
    keep = (valid[fields] != 0) & (flags == 0)[None, :]
    lens = backend.zeros((ns, n + 1), np.int64)
    lens[:, :n] = xp.where(keep, xp.abs(s_len.astype(np.int64)), 0)
    flat = lens.reshape(-1)
    return (xp.cumsum(flat) - flat).reshape(ns, n + 1)


class _HostRecords(NamedTuple):
    """The records of an Arrow binary/string array as the kernels read them."""

    data: np.ndarray  # uint8, the used slice of the values buffer (at least 1 byte)
    offsets: np.ndarray  # int64[n + 1], rebased to ``data``
    valid: np.ndarray  # uint8[n], 0 for a null record


def _host_records(values: pa.Array | pa.ChunkedArray) -> _HostRecords:
    t = values.type
    if not (
        pa.types.is_binary(t)
        or pa.types.is_string(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_large_string(t)
    ):
        raise ProcessError(f"decode: expected a binary or string array, got {t}")
    return _HostRecords(*host_strings(values))


def upload_records(
    backend: Backend, values: pa.Array | pa.ChunkedArray
) -> tuple[Any, Any, Any]:
    """(data, offsets, rec_valid) of ``values`` on the device, as :func:`scan_device`
    takes them: the used slice of the values buffer, offsets rebased to it."""
    host = _host_records(values)
    return _upload(backend, host)


def _upload(backend: Backend, host: _HostRecords) -> tuple[Any, Any, Any]:
    return (
        backend.to_device(host.data),
        backend.to_device(host.offsets),
        backend.to_device(host.valid),
    )


class _Records(Sequence[bytes]):
    """The batch's records as ``bytes`` (None for a null record, which the reference
    reports), made on demand: merging reads only the flagged ones."""

    def __init__(self, host: _HostRecords) -> None:
        self._host = host

    def __len__(self) -> int:
        return len(self._host.valid)

    @overload
    def __getitem__(self, i: int) -> bytes: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[bytes]: ...

    def __getitem__(self, i: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = range(len(self))[i]
        h = self._host
        if not h.valid[k]:
            return None  # type: ignore[return-value]
        return h.data[int(h.offsets[k]) : int(h.offsets[k + 1])].tobytes()


def decode_device(
    backend: Backend,
    values: pa.Array | pa.ChunkedArray,
    schema: Schema,
    per_record: PerRecord,
) -> DecodeResult | None:
    """Decode JSON ``values`` (binary or string, large or not, sliced, with nulls) on the
    device: exactly ``decode_records([v.as_py() as bytes ...], schema, "json")`` (same
    rows, ``good`` indices and errors), or None when the kernels cannot take ``schema``
    (the rule of ``fast_json.supported``). ``per_record`` is the reference decoder
    (``decode._per_record``), used for the flagged records.
    """
    if not supported(schema):
        return None
    host = _host_records(values)
    records = _Records(host)
    n = len(records)
    if n == 0:
        return per_record([], schema, "json")
    cells = _upload_and_scan(backend, host, schema)
    flags = backend.to_host(cells.flags)
    strings = _host_strings(backend, cells)
    if strings is None:  # a column past 2 GiB: Arrow's int32 offsets cannot hold it
        return per_record(records, schema, "json")
    any_flagged = bool(flags.any())
    batch = batch_from_cells(
        plan_for(schema),
        backend.to_host(cells.ivals),
        backend.to_host(cells.fvals),
        backend.to_host(cells.bvals),
        backend.to_host(cells.valid),
        flags,
        any_flagged,
        *strings,
    )
    if not any_flagged:
        return DecodeResult(batch, np.arange(n, dtype=np.int64), [])
    return DecodeResult(*merge_flagged(records, schema, batch, flags, per_record))


def _host_strings(
    backend: Backend, cells: DeviceCells
) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Per string column: int32 Arrow offsets (one row each) and bytes (views of one
    downloaded buffer); None when a column passes 2 GiB."""
    offs = backend.to_host(cells.str_offs)
    if offs.shape[0] == 0:
        return np.zeros((0, offs.shape[1]), np.int32), []
    sizes = offs[:, -1] - offs[:, 0]
    if int(sizes.max()) > _I32_MAX:
        return None
    data = backend.to_host(cells.str_data)
    arrow_offs = (offs - offs[:, :1]).astype(np.int32)
    cols = [data[int(a) : int(b)] for a, b in zip(offs[:, 0], offs[:, -1])]
    return arrow_offs, cols
