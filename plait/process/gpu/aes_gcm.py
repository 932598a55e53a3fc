"""AES-GCM decryption on the GPU: one numba.cuda thread per record.

Why one thread per record: plait's encrypted fields are short (tens to hundreds of bytes)
and independent, each with its own nonce, key and AAD. GCM's work per record is serial
(GHASH is a chain of multiplications), so splitting a record over threads buys little and
needs cross-thread reductions; thousands of records side by side fill the GPU instead.
Each thread reads only its own record and writes only its own output slice and status
byte, so there are no atomics and the result is deterministic.

What is hand-written, and why: no Python library exposes the AES key schedule or the
GHASH multiplication tables (``cryptography``/OpenSSL keep them internal), and device code
cannot call a host library anyway. So this module implements, from the specs:

- FIPS-197: the S-box (from its definition: inverse in GF(2^8), then the affine map), the
  T-tables derived from it, the key expansion for AES-128/192/256, and block encryption;
- NIST SP 800-38D: GCTR with the 96-bit-nonce rule J0 = nonce || 0x00000001, GHASH over
  AAD, ciphertext and the length block, and the tag check.

GHASH uses Shoup's 4-bit tables: per key, the 16 multiples of H by every 4-bit polynomial,
built on the host; H = AES_K(0^128) is computed with ``cryptography``'s AES (a single
block, as GCM itself defines it). The device multiplies a block by H with 32 table
look-ups and a 16-entry reduction table.

The tag check is constant time: the XOR of computed and received tags is OR-ed into one
word over all 16 bytes and turned into the status flag without a branch, so the time does
not depend on where (or whether) the tags differ.

Integer types on the device: tables and keys are stored as uint32, but every load is cast
to int64 and all arithmetic stays int64 (values < 2**32, masked after left shifts). numba
widens uint32 arithmetic to uint64, and mixing uint64 with int64 silently becomes float64;
one signed type everywhere avoids that on the GPU and behaves the same on the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numba import cuda

from plait.process.cpu.decrypt import DecryptResult
from plait.process.decrypt import NONCE_LEN, TAG_LEN, KeyRing
from plait.process.gpu.device import Backend, grid, host_strings

MAX_ROUNDS = 14  # AES-256
RK_WORDS = 4 * (MAX_ROUNDS + 1)  # 60 round-key words: every key row is padded to this
GHASH_WORDS = 16 * 4  # 16 table entries of 128 bits as 4 big-endian uint32 words
_MASK32 = 0xFFFFFFFF

# --------------------------------------------------------------------------------------
# Tables (host, at import). Derived from the definitions rather than typed in, so a typo
# cannot hide in them; tests check the cipher against FIPS-197's known answers.
# --------------------------------------------------------------------------------------


def _xtime(b: int) -> int:
    """Multiply by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (FIPS-197 4.2.1)."""
    b <<= 1
    return (b ^ 0x11B) if b & 0x100 else b


def _gmul8(a: int, b: int) -> int:
    """Product in GF(2^8), shift-and-add."""
    p = 0
    while b:
        if b & 1:
            p ^= a
        a = _xtime(a)
        b >>= 1
    return p


def _gpow8(a: int, e: int) -> int:
    """a**e in GF(2^8), square and multiply."""
    r = 1
    while e:
        if e & 1:
            r = _gmul8(r, a)
        a = _gmul8(a, a)
        e >>= 1
    return r


def _sbox() -> list[int]:
    """FIPS-197 5.1.1: multiplicative inverse (0 -> 0), then the affine transformation."""
    inv = [_gpow8(a, 254) for a in range(256)]  # a^254 = a^-1 since a^255 = 1; 0 -> 0
    out = []
    for b in inv:
        s = b
        for r in range(1, 5):
            s ^= ((b << r) | (b >> (8 - r))) & 0xFF
        out.append(s ^ 0x63)
    return out


def _t_tables(sbox: list[int]) -> list[np.ndarray]:
    """Te0..Te3: SubBytes + MixColumns of one byte, for each of the 4 input rows.

    Te0[x] is the column (2s, s, s, 3s) with s = S[x], row 0 in the most significant
    byte; Te1..Te3 are Te0 rotated right by 8, 16, 24 bits.
    """
    te0 = [(_gmul8(s, 2) << 24) | (s << 16) | (s << 8) | _gmul8(s, 3) for s in sbox]
    tables = []
    for r in range(4):
        sh = 8 * r
        tables.append(
            np.array(
                [((t >> sh) | (t << (32 - sh))) & _MASK32 for t in te0], dtype=np.uint32
            )
        )
    return tables


def _ghash_reduce_table() -> np.ndarray:
    """R[b]: what the 4 bits b shifted out of Z by Z * x^4 fold back into Z's top 16 bits.

    In GCM's bit order (SP 800-38D 6.3) multiplying by x is a right shift of the 128-bit
    block, XOR R = 0xE1 || 0^120 when a 1 falls off. Bit p (0 = lowest) falls off after
    p + 1 shifts and its 0xE1 is then shifted 3 - p more: 0xE1 << (117 + p) in the block,
    i.e. 0xE1 << (5 + p) in the top 16 bits. Those never fall off within the 4 shifts.
    """
    out = np.zeros(16, dtype=np.uint32)
    for b in range(16):
        r = 0
        for p in range(4):
            if (b >> p) & 1:
                r ^= 0xE1 << (5 + p)
        out[b] = r
    return out


_SBOX_LIST = _sbox()
SBOX = np.array(_SBOX_LIST, dtype=np.uint32)  # uint32 so device code has one load type
TE0, TE1, TE2, TE3 = _t_tables(_SBOX_LIST)
GHASH_R = _ghash_reduce_table()
_RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)

# --------------------------------------------------------------------------------------
# Host: per-key material
# --------------------------------------------------------------------------------------


def _sub_word(w: int) -> int:
    return (
        (_SBOX_LIST[w >> 24] << 24)
        | (_SBOX_LIST[(w >> 16) & 0xFF] << 16)
        | (_SBOX_LIST[(w >> 8) & 0xFF] << 8)
        | _SBOX_LIST[w & 0xFF]
    )


def expand_key(key: bytes) -> np.ndarray:
    """FIPS-197 5.2 KeyExpansion: 4 * (Nr + 1) uint32 words (44, 52 or 60)."""
    nk = len(key) // 4
    if len(key) not in (16, 24, 32):
        raise ValueError(f"AES key: expected 16, 24 or 32 bytes, got {len(key)}")
    nr = nk + 6
    w = [int.from_bytes(key[4 * i : 4 * i + 4], "big") for i in range(nk)]
    for i in range(nk, 4 * (nr + 1)):
        t = w[i - 1]
        if i % nk == 0:
            t = _sub_word(((t << 8) | (t >> 24)) & _MASK32) ^ (_RCON[i // nk - 1] << 24)
        elif nk > 6 and i % nk == 4:
            t = _sub_word(t)
        w.append(w[i - nk] ^ t)
    return np.array(w, dtype=np.uint32)


def _mul_x(v: int) -> int:
    """Multiply a 128-bit GCM block (as a big-endian int) by x: right shift, reduce."""
    return (v >> 1) ^ (0xE1 << 120) if v & 1 else v >> 1


def ghash_table(h: bytes) -> np.ndarray:
    """Shoup's 4-bit table for H: entry n = sum of H * x^j over the bits j of n, where
    bit j is n's (3 - j)-th bit (GCM numbers bits from the most significant end).
    64 uint32: entry n's 128 bits as 4 big-endian words at [4n, 4n + 4)."""
    hx = [int.from_bytes(h, "big")]
    for _ in range(3):
        hx.append(_mul_x(hx[-1]))
    out = np.zeros(GHASH_WORDS, dtype=np.uint32)
    for n in range(16):
        m = 0
        for j in range(4):
            if (n >> (3 - j)) & 1:
                m ^= hx[j]
        for w in range(4):
            out[4 * n + w] = (m >> (96 - 32 * w)) & _MASK32
    return out


def ghash_key(key: bytes) -> bytes:
    """H = AES_K(0^128), the GHASH key (SP 800-38D 7.1 step 1)."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(bytes(16)) + enc.finalize()


@dataclass(frozen=True)
class KeyMaterial:
    """What the kernel needs per key, one row per key."""

    round_keys: np.ndarray  # uint32 [n_keys, RK_WORDS], zero-padded after 4 * (Nr + 1)
    rounds: np.ndarray  # int32 [n_keys]: 10, 12 or 14
    ghash: np.ndarray  # uint32 [n_keys, GHASH_WORDS]: Shoup tables of H


def key_material(keys: Sequence[bytes]) -> KeyMaterial:
    """Expand each key once (rows in the order given)."""
    rk = np.zeros((max(1, len(keys)), RK_WORDS), dtype=np.uint32)
    rounds = np.zeros(max(1, len(keys)), dtype=np.int32)
    gh = np.zeros((max(1, len(keys)), GHASH_WORDS), dtype=np.uint32)
    for row, key in enumerate(keys):
        w = expand_key(key)
        rk[row, : len(w)] = w
        rounds[row] = len(key) // 4 + 6
        gh[row] = ghash_table(ghash_key(key))
    return KeyMaterial(rk, rounds, gh)


# --------------------------------------------------------------------------------------
# Device code. All words are int64 holding 32-bit values (see the module docstring).
# --------------------------------------------------------------------------------------


@cuda.jit(device=True)
def _aes_encrypt(rk, row, nr, te0, te1, te2, te3, sb, s0, s1, s2, s3):
    """One AES block (FIPS-197 5.1) with T-tables; the state as 4 big-endian columns."""
    s0 ^= np.int64(rk[row, 0])
    s1 ^= np.int64(rk[row, 1])
    s2 ^= np.int64(rk[row, 2])
    s3 ^= np.int64(rk[row, 3])
    k = 4
    for _ in range(1, nr):
        t0 = (
            np.int64(te0[(s0 >> 24) & 0xFF])
            ^ np.int64(te1[(s1 >> 16) & 0xFF])
            ^ np.int64(te2[(s2 >> 8) & 0xFF])
            ^ np.int64(te3[s3 & 0xFF])
            ^ np.int64(rk[row, k])
        )
        t1 = (
            np.int64(te0[(s1 >> 24) & 0xFF])
            ^ np.int64(te1[(s2 >> 16) & 0xFF])
            ^ np.int64(te2[(s3 >> 8) & 0xFF])
            ^ np.int64(te3[s0 & 0xFF])
            ^ np.int64(rk[row, k + 1])
        )
        t2 = (
            np.int64(te0[(s2 >> 24) & 0xFF])
            ^ np.int64(te1[(s3 >> 16) & 0xFF])
            ^ np.int64(te2[(s0 >> 8) & 0xFF])
            ^ np.int64(te3[s1 & 0xFF])
            ^ np.int64(rk[row, k + 2])
        )
        t3 = (
            np.int64(te0[(s3 >> 24) & 0xFF])
            ^ np.int64(te1[(s0 >> 16) & 0xFF])
            ^ np.int64(te2[(s1 >> 8) & 0xFF])
            ^ np.int64(te3[s2 & 0xFF])
            ^ np.int64(rk[row, k + 3])
        )
        s0, s1, s2, s3 = t0, t1, t2, t3
        k += 4
    # Last round: SubBytes + ShiftRows + AddRoundKey, no MixColumns.
    o0 = _last_column(sb, s0, s1, s2, s3) ^ np.int64(rk[row, k])
    o1 = _last_column(sb, s1, s2, s3, s0) ^ np.int64(rk[row, k + 1])
    o2 = _last_column(sb, s2, s3, s0, s1) ^ np.int64(rk[row, k + 2])
    o3 = _last_column(sb, s3, s0, s1, s2) ^ np.int64(rk[row, k + 3])
    return o0, o1, o2, o3


@cuda.jit(device=True)
def _last_column(sb, a, b, c, d):
    """S-box of row r taken from the column r places to the right (ShiftRows)."""
    return (
        (np.int64(sb[(a >> 24) & 0xFF]) << 24)
        | (np.int64(sb[(b >> 16) & 0xFF]) << 16)
        | (np.int64(sb[(c >> 8) & 0xFF]) << 8)
        | np.int64(sb[d & 0xFF])
    )


@cuda.jit(device=True)
def _ghash_word(gt, row, rt, w, z0, z1, z2, z3):
    """Horner steps for the 8 nibbles of one word, lowest nibble first: Z = Z*x^4 ^ M[n]."""
    for sh in range(0, 32, 4):
        rem = z3 & 0xF
        z3 = (z3 >> 4) | ((z2 & 0xF) << 28)
        z2 = (z2 >> 4) | ((z1 & 0xF) << 28)
        z1 = (z1 >> 4) | ((z0 & 0xF) << 28)
        z0 = (z0 >> 4) ^ (np.int64(rt[rem]) << 16)
        m = ((w >> sh) & 0xF) * 4
        z0 ^= np.int64(gt[row, m])
        z1 ^= np.int64(gt[row, m + 1])
        z2 ^= np.int64(gt[row, m + 2])
        z3 ^= np.int64(gt[row, m + 3])
    return z0, z1, z2, z3


@cuda.jit(device=True)
def _ghash_mul(gt, row, rt, y0, y1, y2, y3):
    """Y * H in GF(2^128) with the key's 4-bit table: nibbles from the block's last to
    its first, i.e. the highest power of x first in Horner's scheme."""
    z0 = np.int64(0)
    z1 = np.int64(0)
    z2 = np.int64(0)
    z3 = np.int64(0)
    z0, z1, z2, z3 = _ghash_word(gt, row, rt, y3, z0, z1, z2, z3)
    z0, z1, z2, z3 = _ghash_word(gt, row, rt, y2, z0, z1, z2, z3)
    z0, z1, z2, z3 = _ghash_word(gt, row, rt, y1, z0, z1, z2, z3)
    z0, z1, z2, z3 = _ghash_word(gt, row, rt, y0, z0, z1, z2, z3)
    return z0, z1, z2, z3


@cuda.jit(device=True)
def _load_word(buf, pos, end):
    """4 bytes big-endian from buf[pos:], zero past ``end`` (GCM pads partial blocks)."""
    w = np.int64(0)
    for j in range(4):
        w <<= 8
        if pos + j < end:
            w |= np.int64(buf[pos + j])
    return w


@cuda.jit(device=True)
def _ghash_bytes(gt, row, rt, buf, start, end, y0, y1, y2, y3):
    """Absorb buf[start:end] into Y, block by block, the last block zero-padded."""
    pos = start
    while pos < end:
        y0 = y0 ^ _load_word(buf, pos, end)
        y1 = y1 ^ _load_word(buf, pos + 4, end)
        y2 = y2 ^ _load_word(buf, pos + 8, end)
        y3 = y3 ^ _load_word(buf, pos + 12, end)
        y0, y1, y2, y3 = _ghash_mul(gt, row, rt, y0, y1, y2, y3)
        pos += 16
    return y0, y1, y2, y3


@cuda.jit(device=True)
def _store_word(out, pos, end, w):
    """Write w's 4 bytes big-endian to out[pos:], stopping at ``end``."""
    for j in range(4):
        if pos + j < end:
            out[pos + j] = (w >> (24 - 8 * j)) & 0xFF


@cuda.jit
def gcm_decrypt(
    data,
    offsets,
    key_index,
    round_keys,
    rounds,
    ghash_tables,
    aad_data,
    aad_offsets,
    out,
    out_offsets,
    status,
):
    """One thread per record: GCTR-decrypt record i and check its tag.

    data[offsets[i]:offsets[i+1]] = nonce (12) || ciphertext || tag (16); key row
    key_index[i] (-1: skip, the host has already decided the record's fate); AAD
    aad_data[aad_offsets[i]:aad_offsets[i+1]]; plaintext to out[out_offsets[i]:...];
    status[i] = 1 if the tag verified, else 0 (then ``out`` holds garbage).
    """
    # The look-up tables go to shared memory: threads of a warp index them at different
    # places, which constant memory would serialise. Every thread helps copy, then waits.
    te0 = cuda.shared.array(256, np.uint32)
    te1 = cuda.shared.array(256, np.uint32)
    te2 = cuda.shared.array(256, np.uint32)
    te3 = cuda.shared.array(256, np.uint32)
    sb = cuda.shared.array(256, np.uint32)
    rt = cuda.shared.array(16, np.uint32)
    j = cuda.threadIdx.x
    while j < 256:
        te0[j] = TE0[j]
        te1[j] = TE1[j]
        te2[j] = TE2[j]
        te3[j] = TE3[j]
        sb[j] = SBOX[j]
        if j < 16:
            rt[j] = GHASH_R[j]
        j += cuda.blockDim.x
    cuda.syncthreads()

    i = cuda.grid(1)
    if i >= key_index.shape[0]:
        return
    row = key_index[i]
    if row < 0:
        return
    nr = rounds[row]
    start = offsets[i]
    end = offsets[i + 1]
    ct = start + 12
    ct_end = end - 16
    n0 = _load_word(data, start, ct)
    n1 = _load_word(data, start + 4, ct)
    n2 = _load_word(data, start + 8, ct)

    y0, y1, y2, y3 = _ghash_bytes(
        ghash_tables,
        row,
        rt,
        aad_data,
        aad_offsets[i],
        aad_offsets[i + 1],
        np.int64(0),
        np.int64(0),
        np.int64(0),
        np.int64(0),
    )

    # GCTR from inc32(J0) = nonce || 2, GHASH-ing each ciphertext block as it goes.
    o = out_offsets[i]
    o_end = out_offsets[i + 1]
    ctr = np.int64(2)
    pos = ct
    while pos < ct_end:
        c0 = _load_word(data, pos, ct_end)
        c1 = _load_word(data, pos + 4, ct_end)
        c2 = _load_word(data, pos + 8, ct_end)
        c3 = _load_word(data, pos + 12, ct_end)
        k0, k1, k2, k3 = _aes_encrypt(
            round_keys, row, nr, te0, te1, te2, te3, sb, n0, n1, n2, ctr
        )
        _store_word(out, o, o_end, c0 ^ k0)
        _store_word(out, o + 4, o_end, c1 ^ k1)
        _store_word(out, o + 8, o_end, c2 ^ k2)
        _store_word(out, o + 12, o_end, c3 ^ k3)
        y0, y1, y2, y3 = _ghash_mul(
            ghash_tables, row, rt, y0 ^ c0, y1 ^ c1, y2 ^ c2, y3 ^ c3
        )
        ctr = (ctr + 1) & 0xFFFFFFFF
        pos += 16
        o += 16

    # Length block: len(A) || len(C), in bits, 64 bits each.
    a_bits = np.int64(aad_offsets[i + 1] - aad_offsets[i]) * 8
    c_bits = np.int64(ct_end - ct) * 8
    y0, y1, y2, y3 = _ghash_mul(
        ghash_tables,
        row,
        rt,
        y0 ^ ((a_bits >> 32) & 0xFFFFFFFF),
        y1 ^ (a_bits & 0xFFFFFFFF),
        y2 ^ ((c_bits >> 32) & 0xFFFFFFFF),
        y3 ^ (c_bits & 0xFFFFFFFF),
    )

    # Tag = AES_K(J0) ^ S; compare all 16 bytes without an early exit or a branch.
    e0, e1, e2, e3 = _aes_encrypt(
        round_keys, row, nr, te0, te1, te2, te3, sb, n0, n1, n2, np.int64(1)
    )
    diff = (
        (e0 ^ y0 ^ _load_word(data, ct_end, end))
        | (e1 ^ y1 ^ _load_word(data, ct_end + 4, end))
        | (e2 ^ y2 ^ _load_word(data, ct_end + 8, end))
        | (e3 ^ y3 ^ _load_word(data, ct_end + 12, end))
    )
    # 1 iff diff == 0: diff < 2**32, so diff - 1 is negative only then.
    status[i] = ((diff - 1) >> 63) & 1


# --------------------------------------------------------------------------------------
# Host driver
# --------------------------------------------------------------------------------------

_MIN_LEN = NONCE_LEN + TAG_LEN


def _as_array(col: pa.Array | pa.ChunkedArray, n: int) -> pa.Array:
    """One contiguous Array of the first n items (chunks combined)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col.slice(0, n)


@dataclass
class _KeyPlan:
    """Key ids resolved once per distinct id."""

    kid_values: list[Any]  # distinct key ids, as to_pylist gives them
    kid_of: np.ndarray  # int64 per record: index into kid_values, -1 for a null id
    row_of_kid: np.ndarray  # int32 per distinct id: its key row, -1 if not in the ring
    keys: list[bytes]  # key row -> key bytes


def _plan_keys(key_ids: pa.Array, ring: KeyRing) -> _KeyPlan:
    """Distinct key ids (dictionary encoding), each looked up in the ring as str(id)."""
    enc = (
        key_ids
        if pa.types.is_dictionary(key_ids.type)
        else pc.dictionary_encode(key_ids)
    )
    kid_values = enc.dictionary.to_pylist()
    kid_of = np.asarray(
        enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    rows: dict[str, int] = {}
    row_of_kid = np.full(max(1, len(kid_values)), -1, dtype=np.int32)
    for d, kid in enumerate(kid_values):
        skid = None if kid is None else str(kid)
        if skid is not None and skid in ring.keys:
            row_of_kid[d] = rows.setdefault(skid, len(rows))
    keys = [ring.keys[s] for s in rows]
    return _KeyPlan(kid_values, kid_of, row_of_kid, keys)


def _launch(
    backend: Backend,
    data: np.ndarray,
    offsets: np.ndarray,
    key_index: np.ndarray,
    mat: KeyMaterial,
    aad_data: np.ndarray,
    aad_offsets: np.ndarray,
    out_offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Upload, run ``gcm_decrypt``, download (plaintext bytes, status)."""
    n = len(key_index)
    total = int(out_offsets[-1])

    def up(a: np.ndarray) -> Any:  # the device side dislikes zero-length buffers
        return backend.to_device(a if len(a) else np.zeros(1, dtype=a.dtype))

    out = backend.empty(max(1, total), np.uint8)
    status = backend.zeros(n, np.uint8)
    blocks, threads = grid(n)
    gcm_decrypt[blocks, threads](
        up(data),
        up(offsets),
        up(key_index),
        backend.to_device(mat.round_keys),
        backend.to_device(mat.rounds),
        backend.to_device(mat.ghash),
        up(aad_data),
        up(aad_offsets),
        out,
        backend.to_device(out_offsets),
        status,
    )
    return backend.to_host(out)[:total], backend.to_host(status)


def _result(n: int, ok: np.ndarray, plen: np.ndarray, out: np.ndarray) -> pa.Array:
    """pa.binary() of the verified plaintexts, null elsewhere; the bytes of records that
    failed the tag check are dropped, not just hidden behind a null."""
    keep = np.where(ok, plen, 0)
    if not np.array_equal(keep, plen):
        out = out[np.repeat(ok, plen)]
    if len(out) > np.iinfo(np.int32).max:
        raise ValueError(f"plaintext too large for pa.binary(): {len(out)} bytes")
    offs = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(keep, out=offs[1:])
    nulls = n - int(ok.sum())
    validity = pa.py_buffer(np.packbits(ok, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(
        pa.binary(),
        n,
        [validity, pa.py_buffer(offs), pa.py_buffer(np.ascontiguousarray(out))],
        null_count=nulls,
    )


def _errors(
    unknown: np.ndarray,
    short: np.ndarray,
    failed: np.ndarray,
    lens: np.ndarray,
    plan: _KeyPlan,
    ring: KeyRing,
) -> list[tuple[int, str]]:
    """The CPU engine's (position, reason) list, built only for the failing records."""
    expected = sorted(ring.keys)
    errors: list[tuple[int, str]] = []
    for p in np.flatnonzero(unknown | short | failed).tolist():
        d = int(plan.kid_of[p])
        kid = None if d < 0 else plan.kid_values[d]
        if unknown[p]:
            reason = f"unknown key id {kid!r}: expected one of {expected}"
        elif short[p]:
            reason = (
                f"ciphertext too short: expected at least {_MIN_LEN} bytes, "
                f"got {int(lens[p])}"
            )
        else:
            reason = (
                f"authentication failed (AES-GCM tag mismatch) with key {str(kid)!r}"
            )
        errors.append((p, reason))
    return errors


def decrypt_device(
    backend: Backend,
    values: pa.Array | pa.ChunkedArray,
    key_ids: pa.Array | pa.ChunkedArray,
    ring: KeyRing,
    aad: pa.Array | pa.ChunkedArray | None = None,
) -> DecryptResult:
    """What :func:`plait.process.cpu.decrypt.decrypt_cpu` returns, computed on the device.

    The cheap verdicts (null value, unknown key id, too short) are reached here on the
    host, in the CPU engine's order and words; only the records left go to the kernel.
    """
    n = min(len(values), len(key_ids), len(aad) if aad is not None else len(values))
    vals = _as_array(values, n)
    plan = _plan_keys(_as_array(key_ids, n), ring)
    data, offsets, valid = host_strings(vals.cast(pa.large_binary()), "decrypt")
    lens = np.diff(offsets)

    present = valid.astype(bool)
    row = np.where(plan.kid_of >= 0, plan.row_of_kid[np.maximum(plan.kid_of, 0)], -1)
    unknown = present & (row < 0)
    short = present & ~unknown & (lens < _MIN_LEN)
    run = present & ~unknown & ~short
    key_index = np.where(run, row, -1).astype(np.int32)
    plen = np.where(run, lens - _MIN_LEN, 0).astype(np.int64)

    status = np.zeros(n, dtype=np.uint8)
    out = np.zeros(0, dtype=np.uint8)
    if run.any():
        if aad is not None:
            aad_data, aad_offsets, _ = host_strings(
                _as_array(aad, n).cast(pa.large_binary()).fill_null(b""), "decrypt aad"
            )
        else:
            aad_data, aad_offsets = np.zeros(0, np.uint8), np.zeros(n + 1, np.int64)
        out_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(plen, out=out_offsets[1:])
        out, status = _launch(
            backend,
            data,
            offsets,
            key_index,
            key_material(plan.keys),
            aad_data,
            aad_offsets,
            out_offsets,
        )
    ok = run & (status == 1)
    failed = run & ~ok
    return DecryptResult(
        _result(n, ok, plen, out), _errors(unknown, short, failed, lens, plan, ring)
    )
