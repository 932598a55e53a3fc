"""numba lexing helpers for :mod:`plait.process.cpu._json_numba`: whitespace, strings (with
escapes and UTF-8 validation), numbers, literals, and skipping any value.

Every helper reads bytes at raw addresses (``ptr + p``, see :mod:`._native` for why), not
through numpy arrays; the caller keeps the memory alive and every position in range.

Each helper returns the position after what it read, or -1 when the input is not what the
JSON grammar (RFC 8259) allows there, or when the value cannot be proven exact (see
:func:`number`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from plait.process.cpu._native import at, load_u64, trailing_zeros_u64

# Field kinds, as the caller encodes them in ``kinds``.
K_INT = 0
K_FLOAT = 1
K_BOOL = 2
K_STRING = 3
K_SKIP = -1

MAX_DEPTH = (
    62  # nesting inside an ignored value deeper than this is flagged, not skipped
)

QUOTE = 34
BSLASH = 92
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)  # all exact doubles
_TWO53 = 1 << 53
_I64_MAX_DIV10 = 922337203685477580
_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_QUOTES = np.uint64(0x2222222222222222)
_BSLASHES = np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACES = np.uint64(0x2020202020202020)


@njit(cache=True, nogil=True)
def ws(ptr: int, p: int, end: int) -> int:
    """First position at or after ``p`` that is not JSON whitespace (or ``end``)."""
    while p < end:
        c = at(ptr, p)
        if c != 32 and c != 10 and c != 13 and c != 9:
            return p
        p += 1
    return p


@njit(cache=True, nogil=True)
def _hex4(ptr: int, p: int, end: int) -> int:
    """The code unit of the 4 hex digits at ``p``, or -1."""
    if p + 4 > end:
        return -1
    v = 0
    for k in range(4):
        c = at(ptr, p + k)
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


@njit(cache=True, nogil=True)
def _utf8_len(ptr: int, p: int, end: int) -> int:
    """Length of the well-formed UTF-8 sequence at ``p`` (lead byte >= 0x80), or -1.

    Follows Unicode table 3-7: no overlongs, no surrogates, nothing past U+10FFFF.
    """
    c = at(ptr, p)
    n, lo, hi = 0, 0x80, 0xBF
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif c == 0xE0:
        n, lo = 3, 0xA0
    elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
        n = 3
    elif c == 0xED:
        n, hi = 3, 0x9F
    elif c == 0xF0:
        n, lo = 4, 0x90
    elif 0xF1 <= c <= 0xF3:
        n = 4
    elif c == 0xF4:
        n, hi = 4, 0x8F
    if n == 0 or p + n > end:
        return -1
    c1 = at(ptr, p + 1)
    if c1 < lo or c1 > hi:
        return -1
    for k in range(2, n):
        ck = at(ptr, p + k)
        if ck < 0x80 or ck > 0xBF:
            return -1
    return n


@njit(cache=True, nogil=True)
def escape(ptr: int, p: int, end: int) -> tuple[int, int, int]:
    """Escape at ``p`` (on the backslash): (bytes consumed, code point, UTF-8 length);
    consumed is -1 when the escape is invalid or a lone surrogate (msgspec rejects those)."""
    if p + 1 >= end:
        return -1, 0, 0
    c = at(ptr, p + 1)
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
    cp = _hex4(ptr, p + 2, end)
    if cp < 0 or 0xDC00 <= cp <= 0xDFFF:
        return -1, 0, 0
    if 0xD800 <= cp <= 0xDBFF:
        if p + 12 > end or at(ptr, p + 6) != BSLASH or at(ptr, p + 7) != 117:
            return -1, 0, 0
        lo = _hex4(ptr, p + 8, end)
        if lo < 0xDC00 or lo > 0xDFFF:
            return -1, 0, 0
        return 12, 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), 4
    if cp < 0x80:
        return 6, cp, 1
    if cp < 0x800:
        return 6, cp, 2
    return 6, cp, 3


@njit(cache=True, nogil=True)
def string(ptr: int, p: int, end: int) -> tuple[int, int]:
    """String body from ``p`` (after the opening quote): (position after the closing quote,
    decoded UTF-8 length), or (-1, 0). Decoded length < source length iff it has escapes
    (every escape is longer than what it stands for).

    Why by hand, 8 bytes a step: string bodies are most of an event's bytes. A word with no
    quote, backslash, control or non-ASCII byte is skipped whole; otherwise the first such
    byte is found from the word (the has-zero-byte bit trick: it may report bytes that are
    not there, but only above one that is, so the lowest report is exact).
    """
    out = 0
    while True:
        if p + 8 <= end:
            w = load_u64(ptr, p)
            q = w ^ _QUOTES
            b = w ^ _BSLASHES
            hits = (
                ((q - _ONES) & ~q) | ((b - _ONES) & ~b) | ((w - _SPACES) & ~w) | w
            ) & _HIGHS
            if hits == 0:
                p += 8
                out += 8
                continue
            k = trailing_zeros_u64(hits) >> 3  # the lowest report is always real
            p += k
            out += k
        elif p >= end:
            return -1, 0
        c = at(ptr, p)
        if c == QUOTE:
            return p + 1, out
        if c == BSLASH:
            used, _, n = escape(ptr, p, end)
            if used < 0:
                return -1, 0
        elif c < 0x20:
            return -1, 0
        elif c < 0x80:
            used, n = 1, 1
        else:
            used = n = _utf8_len(ptr, p, end)
            if n < 0:
                return -1, 0
        p += used
        out += n


@njit(cache=True, nogil=True)
def number(ptr: int, p: int, end: int, want: int) -> tuple[int, bool, int, float]:
    """JSON number at ``p``: (end position or -1 if malformed, exact, int value, float value).

    ``want`` is K_INT, K_FLOAT or K_SKIP (grammar only). ``exact`` is True only when the
    value is what msgspec gives for that kind: an int literal within int64; for floats,
    Clinger's fast path (significant digits <= 2**53 and a power of ten within 1e+-22, so
    one correctly rounded IEEE operation), or an int literal below 2**53.
    """
    neg = False
    if p < end and at(ptr, p) == 45:
        neg = True
        p += 1
    if p >= end:
        return -1, False, 0, 0.0
    c = at(ptr, p)
    digits = 0  # significant digits (zeros before the first non-zero do not count)
    mant = 0  # the first 18 significant digits
    last = 0  # a 19th integer digit, kept apart so int64 overflow is checked exactly
    if c == 48:
        p += 1
    elif 49 <= c <= 57:
        while p < end:
            d = at(ptr, p) - 48
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
    if p < end and at(ptr, p) == 46:
        is_float = True
        p += 1
        start = p
        while p < end:
            d = at(ptr, p) - 48
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
    if p < end and (at(ptr, p) == 101 or at(ptr, p) == 69):
        is_float = True
        p += 1
        eneg = False
        if p < end and (at(ptr, p) == 43 or at(ptr, p) == 45):
            eneg = at(ptr, p) == 45
            p += 1
        start = p
        while p < end:
            d = at(ptr, p) - 48
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
    if want == K_FLOAT:
        if digits > 18 or mant > _TWO53:
            return p, False, 0, 0.0
        if not is_float:
            # msgspec converts the integer, so -0 becomes +0.0 (not -0.0)
            return p, True, 0, float(-mant if neg else mant)
        if mant == 0:
            return p, True, 0, -0.0 if neg else 0.0
        e10 = exp - frac
        if e10 < -22 or e10 > 22:
            return p, False, 0, 0.0
        fv = float(mant)
        fv = fv * _POW10[e10] if e10 >= 0 else fv / _POW10[-e10]
        return p, True, 0, -fv if neg else fv
    return p, False, 0, 0.0


@njit(cache=True, nogil=True)
def literal(ptr: int, p: int, end: int) -> tuple[int, int]:
    """``true``/``false``/``null`` at ``p``: (end position or -1, 1/0/-1 for true/false/null)."""
    c = at(ptr, p)
    if c == 116:
        if (
            p + 4 <= end
            and at(ptr, p + 1) == 114
            and at(ptr, p + 2) == 117
            and at(ptr, p + 3) == 101
        ):
            return p + 4, 1
    elif c == 102:
        if (
            p + 5 <= end
            and at(ptr, p + 1) == 97
            and at(ptr, p + 2) == 108
            and at(ptr, p + 3) == 115
            and at(ptr, p + 4) == 101
        ):
            return p + 5, 0
    elif (
        c == 110
        and p + 4 <= end
        and at(ptr, p + 1) == 117
        and at(ptr, p + 2) == 108
        and at(ptr, p + 3) == 108
    ):
        return p + 4, -1
    return -1, 0


@njit(cache=True, nogil=True)
def _key_colon(ptr: int, p: int, end: int) -> int:
    """``"key" :`` and the whitespace after it, at ``p``, inside an ignored object."""
    if p >= end or at(ptr, p) != QUOTE:
        return -1
    p, _ = string(ptr, p + 1, end)
    if p < 0:
        return -1
    p = ws(ptr, p, end)
    if p >= end or at(ptr, p) != 58:
        return -1
    return ws(ptr, p + 1, end)


@njit(cache=True, nogil=True)
def skip(ptr: int, p: int, end: int) -> int:
    """Validate and step over any JSON value at ``p`` (an ignored field's value).

    Iterative, with the open containers as bits of one int (1: object, 0: array) so deep
    input cannot overflow the native stack; nesting past MAX_DEPTH is flagged (-1).
    """
    depth = 0
    kinds = 0  # bit d: container at depth d is an object
    while True:
        if p >= end:  # expecting a value at p
            return -1
        c = at(ptr, p)
        if c == 123 or c == 91:
            if depth >= MAX_DEPTH:
                return -1
            obj = c == 123
            if obj:
                kinds |= 1 << depth
            else:
                kinds &= ~(1 << depth)
            depth += 1
            p = ws(ptr, p + 1, end)
            if p < end and at(ptr, p) == (125 if obj else 93):
                depth -= 1
                p += 1
            else:
                if obj:
                    p = _key_colon(ptr, p, end)
                    if p < 0:
                        return -1
                continue
        elif c == QUOTE:
            p, _ = string(ptr, p + 1, end)
        elif c == 45 or 48 <= c <= 57:
            p, _, _, _ = number(ptr, p, end, K_SKIP)
        else:
            p, _ = literal(ptr, p, end)
        if p < 0:
            return -1
        while True:  # after a value: close containers, or a comma before the next value
            if depth == 0:
                return p
            p = ws(ptr, p, end)
            if p >= end:
                return -1
            c = at(ptr, p)
            obj = (kinds >> (depth - 1)) & 1 == 1
            if c == 44:
                p = ws(ptr, p + 1, end)
                if obj:
                    p = _key_colon(ptr, p, end)
                    if p < 0:
                        return -1
                break
            if (c == 125 and obj) or (c == 93 and not obj):
                depth -= 1
                p += 1
                continue
            return -1
