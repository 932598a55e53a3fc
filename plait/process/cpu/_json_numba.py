"""numba kernels: a batch of flat JSON objects -> typed column buffers under a declared
schema, in one pass over each record's bytes (read in place), plus the string columns.

Hand-written because no library decodes a batch of JSON documents straight into Arrow
columns for a declared schema at this speed: pyarrow's JSON reader needs newline-delimited
input and ran at 0.3-0.8 M events/s here, and msgspec or orjson build Python objects per
record.

Contract (the caller, :mod:`plait.process.cpu.fast_json`, relies on it): for each record,
:func:`scan` either *proves* it decoded the record exactly as msgspec's typed decoder would
(the per-record reference in :mod:`plait.process.cpu.decode`), or sets ``flags[i] = 1`` so
the record is re-decoded by the reference. A flag is never wrong, it only costs time.
Flagged: a record that is not ``bytes``, anything but one JSON object with optional
surrounding whitespace, malformed JSON anywhere (also inside ignored values), a declared key
seen twice (msgspec keeps the last), a value of the wrong JSON type, ints past int64, floats
that Clinger's exact fast path cannot compute, lone surrogate escapes, invalid UTF-8 or raw
control bytes in any string, and nesting past ``_json_lex.MAX_DEPTH``.

Caching: numba caches each kernel keyed on this file only, so after editing
``_json_lex.py`` or ``_native.py`` delete ``plait/process/cpu/__pycache__/*.nb?`` (numba does
not notice edits to callees in other files).

Buffers are written for rows ``lo <= i < hi`` only, so threads may share the output arrays
on disjoint row ranges (every kernel is ``nogil``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from plait.process.cpu._json_lex import (
    BSLASH,
    K_BOOL,
    K_FLOAT,
    K_INT,
    K_STRING,
    QUOTE,
    escape,
    literal,
    number,
    skip,
    string,
    ws,
)
from plait.process.cpu._native import (
    at,
    copy_bytes,
    load_i64,
    load_u64,
    store_i32,
    store_i64,
    store_u8,
)

_I32_MAX = 2**31 - 1

__all__ = [
    "K_BOOL",
    "K_FLOAT",
    "K_INT",
    "K_STRING",
    "scan",
    "string_fill",
    "string_totals",
]


@njit(cache=True, nogil=True)
def _utf8_byte(cp: int, n: int, k: int) -> int:
    """Byte ``k`` of the ``n``-byte UTF-8 encoding of code point ``cp``."""
    if n == 1:
        return cp
    if k == 0:
        return (0xF00 >> n) & 0xFF | (cp >> (6 * (n - 1)))
    return 0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3F)


@njit(cache=True, nogil=True)
def _find_key(
    ptr: int, ks: int, ke: int, dlen: int, names: int, name_offs: int, nf: int
) -> int:
    """Index of the declared field whose UTF-8 name equals the key whose raw body is
    ks..ke and decoded length ``dlen`` (escapes decoded as compared), or -1.

    The key was validated by ``string``. ``names``/``name_offs`` are the addresses of the
    concatenated names and their int64 offsets (addresses, not arrays: see _value)."""
    for j in range(nf):
        a = load_i64(name_offs, j)
        if load_i64(name_offs, j + 1) - a != dlen:
            continue
        q = ks
        same = True
        while same and q < ke:
            c = at(ptr, q)
            if c != BSLASH:
                same = c == at(names, a)
                q += 1
                a += 1
                continue
            used, cp, n = escape(ptr, q, ke)
            for k in range(n):
                if _utf8_byte(cp, n, k) != at(names, a + k):
                    same = False
            q += used
            a += n
        if same:
            return j
    return -1


@njit(cache=True, nogil=True)
def scan(
    objs: int,
    layout: tuple[int, int],
    lo: int,
    hi: int,
    names: np.ndarray,
    name_offs: np.ndarray,
    name_words: np.ndarray,
    name_masks: np.ndarray,
    kinds: np.ndarray,
    slots: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    bvals: np.ndarray,
    valid: np.ndarray,
    s_start: np.ndarray,
    s_len: np.ndarray,
    flags: np.ndarray,
) -> int:
    """Decode records ``lo <= i < hi``, read in place from their ``bytes`` objects.

    ``objs`` is the address of an array of object pointers (a numpy object array the
    caller keeps alive); ``layout`` is (address of the ``bytes`` type, offset of the
    payload in a ``bytes`` object), checked by the caller (see fast_json.bytes_layout).
    A record that is not exactly ``bytes`` (None, str, bytearray, ...) is flagged.

    Field ``j`` (name j of ``names``/``name_offs``, kind ``kinds[j]``) lands in row
    ``slots[j]`` of the array for its kind: ``ivals`` (int), ``fvals`` (float), ``bvals``
    (bool, 0/1), or for strings ``s_start`` (offset of the body in the record) and
    ``s_len`` (decoded length, negative when the body has escapes). ``valid[j, i]`` is 1
    when the field is present and not null, else 0. ``flags[i]`` is set to 1
    for a flagged record (whose cells are then meaningless), else to 0.

    Keys are first compared with the field after the previous match (producers usually
    write keys in one order) as one masked 8-byte word: ``name_words[j]`` holds the first
    8 bytes of name j and ``name_masks[j]`` selects its length (0 for names longer than 8
    bytes or holding a quote, backslash or control byte, whose raw JSON text differs).
    Returns how many records of the range are flagged.
    """
    bytes_type, payload = layout
    n = flags.shape[0]
    nf = kinds.shape[0]
    names_ptr = names.ctypes.data
    offs_ptr = name_offs.ctypes.data
    # raw addresses of the outputs: see _value for why no arrays are passed per field
    out = (ivals.ctypes.data, fvals.ctypes.data, bvals.ctypes.data, valid.ctypes.data,
           s_start.ctypes.data, s_len.ctypes.data)  # fmt: skip
    flagged = 0
    for j in range(nf):
        valid[j, lo:hi] = 0
    for i in range(lo, hi):
        obj = load_i64(objs, i)
        size = load_i64(obj, 2)  # PyVarObject.ob_size
        if load_i64(obj, 1) != bytes_type or size > _I32_MAX:
            flags[i] = 1
            flagged += 1
            continue
        s = obj + payload
        e = s + size  # bytes objects end in a NUL, so reading e itself is allowed
        ok = False
        p = ws(0, s, e)
        if p < e and at(0, p) == 123:
            p = ws(0, p + 1, e)
            if p < e and at(0, p) == 125:
                ok = ws(0, p + 1, e) == e
            else:
                seen = 0
                hint = 0
                while True:  # one "key": value per turn; break leaves ok False (flag)
                    if p >= e or at(0, p) != QUOTE:
                        break
                    ks = p + 1
                    j = hint if hint < nf else 0
                    size_j = name_offs[j + 1] - name_offs[j]
                    if (
                        ks + 8 <= e
                        and ks + size_j < e
                        and load_u64(0, ks) & name_masks[j] == name_words[j]
                        and at(0, ks + size_j) == QUOTE
                    ):
                        p = ks + size_j + 1
                    else:
                        p, klen = string(0, ks, e)
                        if p < 0:
                            break
                        j = _find_key(0, ks, p - 1, klen, names_ptr, offs_ptr, nf)
                    p = ws(0, p, e)
                    if p >= e or at(0, p) != 58:
                        break
                    p = ws(0, p + 1, e)
                    if p >= e:
                        break
                    if j < 0:
                        p = skip(0, p, e)
                    else:
                        bit = 1 << j
                        if seen & bit:
                            break
                        seen |= bit
                        hint = j + 1
                        p = _value(
                            0, p, e, s, kinds[j], slots[j] * n + i, j * n + i, out
                        )
                    if p < 0:
                        break
                    p = ws(0, p, e)
                    if p >= e:
                        break
                    c = at(0, p)
                    if c == 125:
                        ok = ws(0, p + 1, e) == e
                        break
                    if c != 44:
                        break
                    p = ws(0, p + 1, e)
        flags[i] = 0 if ok else 1
        flagged += 0 if ok else 1
    return flagged


@njit(cache=True, nogil=True)
def _value(
    ptr: int,
    p: int,
    e: int,
    s: int,
    kind: int,
    cell: int,
    vcell: int,
    out: tuple[int, ...],
) -> int:
    """A declared field's value at ``p`` into its cells; the value's end, or -1 (flag).

    ``s`` is where the record starts, ``cell`` indexes the field's kind array, ``vcell``
    the validity array (both flattened), and ``out`` holds their raw addresses. Why
    addresses: numba reference-counts every array passed to a function (atomic updates),
    which cost more than the parse of a field.
    """
    c = at(ptr, p)
    if c == 110:
        q, _ = literal(ptr, p, e)
        return q
    if kind == K_STRING:
        if c != QUOTE:
            return -1
        q, n = string(ptr, p + 1, e)
        if q < 0:
            return -1
        store_i32(out[4], cell, p + 1 - s)
        store_i32(out[5], cell, n if n == q - p - 2 else -n)
        store_u8(out[3], vcell, 1)
        return q
    if kind == K_BOOL:
        q, v = literal(ptr, p, e)
        if q < 0 or v < 0:
            return -1
        store_u8(out[2], cell, v)
        store_u8(out[3], vcell, 1)
        return q
    if c != 45 and not (48 <= c <= 57):
        return -1
    q, exact, iv, fv = number(ptr, p, e, kind)
    if q < 0 or not exact:
        return -1
    if kind == K_INT:
        store_i64(out[0], cell, iv)
    else:
        store_i64(out[1], cell, fv)
    store_u8(out[3], vcell, 1)
    return q


@njit(cache=True, nogil=True)
def string_totals(
    s_len: np.ndarray,
    valid: np.ndarray,
    flags: np.ndarray,
    fields: np.ndarray,
    lo: int,
    hi: int,
) -> np.ndarray:
    """Decoded bytes in rows lo..hi of each string column ``k`` (field ``fields[k]``);
    null and flagged rows hold none."""
    totals = np.zeros(fields.shape[0], dtype=np.int64)
    for k in range(fields.shape[0]):
        j = fields[k]
        acc = 0
        for i in range(lo, hi):
            if valid[j, i] and not flags[i]:
                acc += abs(s_len[k, i])
        totals[k] = acc
    return totals


@njit(cache=True, nogil=True)
def string_fill(
    objs: int,
    payload: int,
    s_start: np.ndarray,
    s_len: np.ndarray,
    valid: np.ndarray,
    flags: np.ndarray,
    fields: np.ndarray,
    lo: int,
    hi: int,
    bases: np.ndarray,
    offs: np.ndarray,
    outs: np.ndarray,
) -> None:
    """Arrow offsets and bytes of rows lo..hi of every string column ``k``.

    Column k's bytes for these rows start at ``bases[k]`` in the buffer at address
    ``outs[k]`` (the caller sums :func:`string_totals` of earlier ranges), and
    ``offs[k, i + 1]`` is written for each row i (``offs[k, 0]`` by the range holding row
    0). Null and flagged rows are empty. Rows go outer so each record is read once, while
    cached; escaped bodies were validated by :func:`scan`, so decoding them stops exactly
    at their length.
    """
    ns = fields.shape[0]
    q = bases.copy()
    if lo == 0:
        for k in range(ns):
            offs[k, 0] = 0
    for i in range(lo, hi):
        rec = load_i64(objs, i) + payload
        keep = not flags[i]
        for k in range(ns):
            n = s_len[k, i]
            if keep and valid[fields[k], i]:
                _put(rec + s_start[k, i], n, outs[k] + q[k])
                q[k] += abs(n)
            offs[k, i + 1] = q[k]


@njit(cache=True, nogil=True)
def _put(p: int, n: int, dst: int) -> None:
    """Write the string body at address ``p`` (decoded length ``abs(n)``, escaped when
    ``n`` < 0) as UTF-8 at address ``dst``."""
    if n >= 0:
        copy_bytes(dst, p, n)
        return
    q = dst
    qe = dst - n
    while q < qe:
        c = at(0, p)
        if c != BSLASH:
            store_u8(q, 0, c)
            q += 1
            p += 1
            continue
        used, cp, m = escape(0, p, p + 12)  # validated: the escape is complete
        p += used
        for k in range(m):
            store_u8(q, k, _utf8_byte(cp, m, k))
        q += m
