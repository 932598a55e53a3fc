"""numba kernels behind :mod:`plait.process.cpu.cell_filter`: run a filter program on the
cells of :func:`plait.process.cpu._json_numba.scan`, then gather the rows that pass into
Arrow buffers.

The program is evaluated a whole column at a time (one truth vector per live operand,
0 false, 1 true, 2 null), so the interpreter's dispatch costs once per instruction, not
once per row. String cells are read in place from the records; a cell whose JSON body has
escapes is not compared here: :func:`run_program` then answers UNDECIDED and the caller
filters with Arrow instead.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from plait.process.cpu._json_lex import K_BOOL, K_FLOAT, K_INT, K_STRING
from plait.process.cpu._json_numba import _put
from plait.process.cpu._native import at, load_i64, store_i32, store_i64, store_u8

NULL = 2
# comparison codes
EQ, NE, LT, LE, GT, GE = range(6)
# string tests
CONTAINS, STARTS, ENDS = range(3)
# opcodes; a row of the program is (op, a, b, c, d, e)
CONST = 0  # a: value
BOOL_COLUMN = 1  # a: field, b: slot
IS_NULL = 2  # a: field, b: negated
CMP_INT_LITERAL = 3  # a: field, b: slot, c: cmp, d: int literal
CMP_FLOAT_LITERAL = 4  # a: field, b: slot, c: cmp, d: float literal
CMP_STRING_LITERAL = 5  # a: field, b: slot, c: cmp, d: string literal
CMP_BOOL_LITERAL = 6  # a: field, b: slot, c: cmp, d: 0 or 1
CMP_NUMBERS = 7  # a, b: fields, c: cmp
CMP_STRINGS = 8  # a, b: fields, c: cmp
CMP_BOOLS = 9  # a, b: fields, c: cmp
IN_INTS = 10  # a: field, b: slot, c: negated, d..e: int literals
IN_FLOATS = 11  # a: field, b: slot, c: negated, d..e: float literals
IN_STRINGS = 12  # a: field, b: slot, c: negated, d..e: string literals
IN_BOOLS = 13  # a: field, b: slot, c: negated, d: bit 0 false wanted, bit 1 true wanted
STRING_TEST = 14  # a: field, b: slot, c: which, d: string literal
NOT = 15
AND = 16
OR = 17

# run_program's answer when it cannot decide on the cells: a string cell it must read has
# escapes, or an int compared with a float is past 2**53, where Arrow's cast to float64
# raises (then so does the Arrow path the caller falls back to)
UNDECIDED = -1
_EXACT = 2**53
_STRUCT = 80  # sizeof(struct ArrowArray) in the Arrow C data interface
_I32_MAX = 2**31 - 1


@njit(cache=True, nogil=True)
def _holds(cmp: int, order: int) -> int:
    """Whether ``cmp`` holds for two values whose order is ``order`` (-1, 0, 1)."""
    if cmp == EQ:
        return order == 0
    if cmp == NE:
        return order != 0
    if cmp == LT:
        return order < 0
    if cmp == LE:
        return order <= 0
    if cmp == GT:
        return order > 0
    return order >= 0


@njit(cache=True, nogil=True)
def _bytes_order(p: int, n: int, q: int, m: int) -> int:
    """Order of the byte strings at addresses p (n bytes) and q (m bytes), as memcmp."""
    for k in range(min(n, m)):
        a = at(p, k)
        b = at(q, k)
        if a != b:
            return -1 if a < b else 1
    return -1 if n < m else (1 if n > m else 0)


@njit(cache=True, nogil=True)
def _find(p: int, n: int, q: int, m: int, which: int) -> int:
    """Whether the m bytes at q are contained in / start / end the n bytes at p."""
    if m > n:
        return 0
    if which == STARTS:
        return _bytes_order(p, m, q, m) == 0
    if which == ENDS:
        return _bytes_order(p + n - m, m, q, m) == 0
    for s in range(n - m + 1):
        if _bytes_order(p + s, m, q, m) == 0:
            return 1
    return 0


@njit(cache=True, nogil=True)
def run_program(
    objs: int,
    payload: int,
    n: int,
    code: np.ndarray,
    ints: np.ndarray,
    floats: np.ndarray,
    sbytes: np.ndarray,
    soffs: np.ndarray,
    depth: int,
    kinds: np.ndarray,
    slots: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    bvals: np.ndarray,
    valid: np.ndarray,
    s_start: np.ndarray,
    s_len: np.ndarray,
    keep: np.ndarray,
) -> int:
    """Evaluate the program on rows 0..n of the cells; the rows whose result is true go to
    ``keep`` (ascending). Returns how many, or UNDECIDED."""
    stack = np.empty((max(depth, 1), n), dtype=np.uint8)
    top = -1
    lits = sbytes.ctypes.data
    for pc in range(code.shape[0]):
        op, a, b, c, d, e = code[pc, 0], code[pc, 1], code[pc, 2], code[pc, 3], code[pc, 4], code[pc, 5]
        if op == NOT:
            for i in range(n):
                v = stack[top, i]
                stack[top, i] = v if v == NULL else 1 - v
            continue
        if op == AND or op == OR:
            for i in range(n):
                x = stack[top - 1, i]
                y = stack[top, i]
                if op == AND:
                    r = 0 if (x == 0 or y == 0) else (NULL if (x == NULL or y == NULL) else 1)
                else:
                    r = 1 if (x == 1 or y == 1) else (NULL if (x == NULL or y == NULL) else 0)
                stack[top - 1, i] = r
            top -= 1
            continue
        top += 1
        out = stack[top]
        if op == CONST:
            out[:] = a
            continue
        if op == IS_NULL:
            for i in range(n):
                out[i] = (valid[a, i] == 0) != (b != 0)
            continue
        if op == CMP_NUMBERS or op == CMP_STRINGS or op == CMP_BOOLS:
            sa, sb = slots[a], slots[b]
            both_int = kinds[a] == K_INT and kinds[b] == K_INT
            for i in range(n):
                if op == CMP_NUMBERS and not both_int:
                    for f, s_ in ((a, sa), (b, sb)):
                        if kinds[f] == K_INT and valid[f, i] and not -_EXACT <= ivals[s_, i] <= _EXACT:
                            return UNDECIDED
                if not (valid[a, i] and valid[b, i]):
                    out[i] = NULL
                    continue
                if op == CMP_STRINGS:
                    la, lb = s_len[sa, i], s_len[sb, i]
                    if la < 0 or lb < 0:
                        return UNDECIDED
                    pa_ = load_i64(objs, i) + payload
                    o = _bytes_order(pa_ + s_start[sa, i], la, pa_ + s_start[sb, i], lb)
                elif op == CMP_BOOLS:
                    o = int(bvals[sa, i]) - int(bvals[sb, i])
                elif both_int:
                    x, y = ivals[sa, i], ivals[sb, i]
                    o = -1 if x < y else (1 if x > y else 0)
                else:
                    fx = float(ivals[sa, i]) if kinds[a] == K_INT else fvals[sa, i]
                    fy = float(ivals[sb, i]) if kinds[b] == K_INT else fvals[sb, i]
                    o = -1 if fx < fy else (1 if fx > fy else 0)
                out[i] = _holds(c, o)
            continue
        # the rest read one column: a field, b its slot
        for i in range(n):
            if not valid[a, i]:
                out[i] = NULL
                continue
            if op == BOOL_COLUMN:
                out[i] = bvals[b, i]
            elif op == CMP_INT_LITERAL:
                x, y = ivals[b, i], ints[d]
                out[i] = _holds(c, -1 if x < y else (1 if x > y else 0))
            elif op == CMP_FLOAT_LITERAL:
                if kinds[a] == K_INT and not -_EXACT <= ivals[b, i] <= _EXACT:
                    return UNDECIDED
                fx = float(ivals[b, i]) if kinds[a] == K_INT else fvals[b, i]
                fy = floats[d]
                out[i] = _holds(c, -1 if fx < fy else (1 if fx > fy else 0))
            elif op == CMP_BOOL_LITERAL:
                out[i] = _holds(c, int(bvals[b, i]) - d)
            elif op == IN_INTS:
                hit = 0
                for k in range(d, e):
                    if ivals[b, i] == ints[k]:
                        hit = 1
                out[i] = hit != c
            elif op == IN_FLOATS:
                hit = 0
                for k in range(d, e):
                    if fvals[b, i] == floats[k]:
                        hit = 1
                out[i] = hit != c
            elif op == IN_BOOLS:
                out[i] = ((d >> bvals[b, i]) & 1) != c
            else:  # string cells
                ln = s_len[b, i]
                if ln < 0:
                    return UNDECIDED
                p = load_i64(objs, i) + payload + s_start[b, i]
                if op == CMP_STRING_LITERAL:
                    q = soffs[d]
                    out[i] = _holds(c, _bytes_order(p, ln, lits + q, soffs[d + 1] - q))
                elif op == STRING_TEST:
                    q = soffs[d]
                    out[i] = _find(p, ln, lits + q, soffs[d + 1] - q, c)
                else:  # IN_STRINGS
                    hit = 0
                    for k in range(d, e):
                        q = soffs[k]
                        if _bytes_order(p, ln, lits + q, soffs[k + 1] - q) == 0:
                            hit = 1
                    out[i] = hit != c
    m = 0
    for i in range(n):
        if stack[top, i] == 1:
            keep[m] = i
            m += 1
    return m


@njit(cache=True, nogil=True)
def gather(
    objs: int,
    payload: int,
    keep: np.ndarray,
    kinds: np.ndarray,
    slots: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    bvals: np.ndarray,
    valid: np.ndarray,
    s_start: np.ndarray,
    s_len: np.ndarray,
    release_batch: int,
    release_child: int,
    token: int,
) -> tuple[np.ndarray, int]:
    """The rows ``keep`` of the cells as one Arrow record batch in the C data interface:
    (arena, offset in it of the batch's ``struct ArrowArray``), or (empty, -1) when a
    string column would pass 2 GiB.

    Everything lives in the one zeroed arena: each column's validity bitmap and values
    (int64 / float64, bit-packed bools, or int32 string offsets and bytes), then the
    ArrowArray structs of the columns and of the batch (a struct array), whose buffer and
    child pointers point into the arena. ``release_batch`` / ``release_child`` are the
    addresses of the release callbacks and ``token`` the batch's ``private_data`` (the
    caller keeps the arena alive until ``release_batch`` is called with it). Every region
    starts 8-byte aligned; bytes under nulls are zero.
    """
    m = keep.shape[0]
    nf = kinds.shape[0]
    bitmap_bytes = ((m + 7) // 8 + 7) // 8 * 8
    layout = np.zeros(3 * nf, dtype=np.int64)  # per field: bitmap, values, string bytes
    sizes = np.zeros(nf, dtype=np.int64)  # a string column's byte count
    nulls = np.zeros(nf, dtype=np.int64)
    size = 0
    for j in range(nf):
        layout[3 * j] = size
        size += bitmap_bytes
        layout[3 * j + 1] = size
        kind = kinds[j]
        if kind == K_STRING:
            sl = slots[j]
            total = 0
            for r in range(m):
                i = keep[r]
                if valid[j, i]:
                    total += abs(s_len[sl, i])
            if total > _I32_MAX:  # past Arrow's int32 string offsets
                return np.zeros(0, dtype=np.uint8), -1
            size += ((m + 1) * 4 + 7) // 8 * 8
            layout[3 * j + 2] = size
            sizes[j] = total
            size += (total + 7) // 8 * 8
        elif kind == K_BOOL:
            size += bitmap_bytes
        else:
            size += 8 * m
    structs = size  # nf child structs, their buffer pointer arrays, the batch's struct
    size += nf * (_STRUCT + 24) + _STRUCT + 8 + 8 * nf
    arena = np.zeros(size, dtype=np.uint8)
    base = arena.ctypes.data
    for j in range(nf):
        kind = kinds[j]
        sl = slots[j]
        bits = base + layout[3 * j]
        vals = base + layout[3 * j + 1]
        data = base + layout[3 * j + 2]
        q = 0
        for r in range(m):
            i = keep[r]
            if not valid[j, i]:
                nulls[j] += 1
                if kind == K_STRING:
                    store_i32(vals, r + 1, q)
                continue
            store_u8(bits, r >> 3, at(bits, r >> 3) | (1 << (r & 7)))
            if kind == K_INT:
                store_i64(vals, r, ivals[sl, i])
            elif kind == K_FLOAT:
                store_i64(vals, r, fvals[sl, i])
            elif kind == K_BOOL:
                if bvals[sl, i]:
                    store_u8(vals, r >> 3, at(vals, r >> 3) | (1 << (r & 7)))
            else:
                n = s_len[sl, i]
                _put(load_i64(objs, i) + payload + s_start[sl, i], n, data + q)
                q += abs(n)
                store_i32(vals, r + 1, q)
    # the C data interface: struct ArrowArray is ten 8-byte words (length, null_count,
    # offset, n_buffers, n_children, buffers, children, dictionary, release, private_data)
    children = base + structs
    pointers = children + nf * _STRUCT
    batch = pointers + nf * 24
    for j in range(nf):
        child = children + j * _STRUCT
        bufs = pointers + j * 24
        store_i64(bufs, 0, base + layout[3 * j] if nulls[j] else 0)
        store_i64(bufs, 1, base + layout[3 * j + 1])
        store_i64(bufs, 2, base + layout[3 * j + 2])
        _array_struct(child, m, nulls[j], 3 if kinds[j] == K_STRING else 2, 0, bufs, 0,
                      release_child, token)  # fmt: skip
        store_i64(batch + _STRUCT + 8, j, child)
    _array_struct(batch, m, 0, 1, nf, batch + _STRUCT, batch + _STRUCT + 8, release_batch, token)
    return arena, batch - base


@njit(cache=True, nogil=True)
def _array_struct(
    at_: int, length: int, nulls: int, n_buffers: int, n_children: int, buffers: int,
    children: int, release: int, private: int,
) -> None:  # fmt: skip
    for k, v in enumerate((length, nulls, 0, n_buffers, n_children, buffers, children, 0,
                           release, private)):  # fmt: skip
        store_i64(at_, k, v)
