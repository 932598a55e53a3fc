"""The GPU AES-GCM decrypt kernel, run on numba's CUDA simulator: known-answer vectors from
FIPS-197 and the GCM specification, and record-for-record equality with the CPU engine
(``cryptography``) on plaintexts, nulls and every failure reason.

Inputs are small on purpose: the simulator runs each CUDA thread as a Python thread.
"""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from numba import cuda

from plait.process.cpu.decrypt import DecryptResult, decrypt_cpu
from plait.process.decrypt import KeyRing, encrypt_value
from plait.process.gpu import aes_gcm
from plait.process.gpu.aes_gcm import decrypt_device, expand_key, ghash_key
from plait.process.gpu.device import Backend

try:
    from tests.gpu_sim.engines import backend_under_test
except ImportError:
    from gpu_sim.engines import backend_under_test  # type: ignore[no-redef]

pytestmark = pytest.mark.gpu_sim

LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 64, 100]
AAD_LENGTHS = [0, 5, 16, 20]


@pytest.fixture(scope="module")
def backend() -> Backend:
    return backend_under_test()


def _ring() -> KeyRing:
    rnd = random.Random(7)
    return KeyRing(
        {
            "k128": rnd.randbytes(16),
            "k192": rnd.randbytes(24),
            "k256": rnd.randbytes(32),
        }
    )


def _same(
    backend: Backend,
    values: pa.Array | pa.ChunkedArray,
    key_ids: pa.Array | pa.ChunkedArray,
    ring: KeyRing,
    aad: pa.Array | pa.ChunkedArray | None = None,
) -> DecryptResult:
    """Run both engines; assert identical plaintexts (nulls included) and errors."""
    got = decrypt_device(backend, values, key_ids, ring, aad)
    want = decrypt_cpu(values, key_ids, ring, aad)
    assert got.plaintext.type == pa.binary()
    assert got.plaintext.equals(want.plaintext), (got.plaintext, want.plaintext)
    assert got.errors == want.errors
    return got


# --- known answers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "checks"),
    [
        # FIPS-197 Appendix A.1 (AES-128): w[4..7] and w[40..43]
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            {
                4: 0xA0FAFE17,
                5: 0x88542CB1,
                6: 0x23A33939,
                7: 0x2A6C7605,
                40: 0xD014F9A8,
                41: 0xC9EE2589,
                42: 0xE13F0CC8,
                43: 0xB6630CA6,
            },
        ),
        # A.2 (AES-192): w[6..7] and w[51]
        (
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            {6: 0xFE0C91F7, 7: 0x2402F5A5, 51: 0x01002202},
        ),
        # A.3 (AES-256): w[8..9] and w[56..59]
        (
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            {
                8: 0x9BA35411,
                9: 0x8E6925AF,
                56: 0xFE4890D1,
                57: 0xE6188D0B,
                58: 0x046DF344,
                59: 0x706C631E,
            },
        ),
    ],
)
def test_key_expansion_fips197_appendix_a(key: str, checks: dict[int, int]) -> None:
    raw = bytes.fromhex(key)
    w = expand_key(raw)
    assert w.dtype == np.uint32
    assert len(w) == 4 * (len(raw) // 4 + 7)
    for i in range(len(raw) // 4):  # the first Nk words are the key itself
        assert int(w[i]) == int.from_bytes(raw[4 * i : 4 * i + 4], "big")
    for i, want in checks.items():
        assert int(w[i]) == want, f"w[{i}]"


@cuda.jit
def _encrypt_blocks(rk, rounds, blocks, out):
    """Test-only: AES-encrypt block i (4 big-endian words) with key row i."""
    i = cuda.grid(1)
    if i < blocks.shape[0]:
        o0, o1, o2, o3 = aes_gcm._aes_encrypt(
            rk,
            i,
            rounds[i],
            aes_gcm.TE0,
            aes_gcm.TE1,
            aes_gcm.TE2,
            aes_gcm.TE3,
            aes_gcm.SBOX,
            np.int64(blocks[i, 0]),
            np.int64(blocks[i, 1]),
            np.int64(blocks[i, 2]),
            np.int64(blocks[i, 3]),
        )
        out[i, 0] = o0
        out[i, 1] = o1
        out[i, 2] = o2
        out[i, 3] = o3


def test_block_cipher_fips197_appendix_c(backend: Backend) -> None:
    """C.1-C.3: key 000102..., plaintext 00112233...ff."""
    pt = bytes.fromhex("00112233445566778899aabbccddeeff")
    cases = [
        (bytes(range(16)), "69c4e0d86a7b0430d8cdb78070b4c55a"),
        (bytes(range(24)), "dda97ca4864cdfe06eaf70a0ec0d7191"),
        (bytes(range(32)), "8ea2b7ca516745bfeafc49904b496089"),
    ]
    mat = aes_gcm.key_material([k for k, _ in cases])
    blocks = np.tile(np.frombuffer(pt, dtype=">u4").astype(np.uint32), (3, 1))
    out = backend.zeros((3, 4), np.uint32)
    _encrypt_blocks[1, 32](backend.to_device(mat.round_keys), backend.to_device(mat.rounds),
                           backend.to_device(blocks), out)
    out = backend.to_host(out)
    for row, (_, want) in enumerate(cases):
        assert out[row].astype(">u4").tobytes().hex() == want


_GCM_K = "feffe9928665731c6d6a8f9467308308"
_GCM_IV = "cafebabefacedbaddecaf888"
_GCM_P = (
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
_GCM_C = (
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
)


def test_gcm_spec_test_cases_2_3_4(backend: Backend) -> None:
    """McGrew & Viega, "The Galois/Counter Mode of Operation", appendix B, AES-128."""
    assert ghash_key(bytes(16)).hex() == "66e94bd4ef8a2c3b884cfa59ca342b2e"
    assert ghash_key(bytes.fromhex(_GCM_K)).hex() == "b83b533708bf535d0aa6e52980d53b78"
    ring = KeyRing({"zero": bytes(16), "k": bytes.fromhex(_GCM_K)})
    iv, c = bytes.fromhex(_GCM_IV), bytes.fromhex(_GCM_C)
    values = [
        # test case 2: K = 0, IV = 0, P = 0^128
        bytes(12)
        + bytes.fromhex("0388dace60b6a392f328c2b971b2fe78")
        + bytes.fromhex("ab6e47d42cec13bdf53a67b21257bddf"),
        # test case 3: 64-byte P, no AAD
        iv + c + bytes.fromhex("4d5c2af327cd64a62cf35abd2ba6fab4"),
        # test case 4: 60-byte P, 20-byte AAD
        iv + c[:60] + bytes.fromhex("5bc94fbc3221a5db94fae95ae7121a47"),
    ]
    aad = [None, None, bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")]
    got = _same(
        backend,
        pa.array(values, pa.binary()),
        pa.array(["zero", "k", "k"]),
        ring,
        pa.array(aad, pa.binary()),
    )
    p = bytes.fromhex(_GCM_P)
    assert got.plaintext.to_pylist() == [bytes(16), p, p[:60]]
    assert got.errors == []


# --- equality with the CPU engine -------------------------------------------------------


@pytest.mark.parametrize("kid", ["k128", "k192", "k256"])
def test_lengths_with_and_without_aad(backend: Backend, kid: str) -> None:
    ring = _ring()
    rnd = random.Random(kid)
    plains = [rnd.randbytes(n) for n in LENGTHS]
    aads = [
        rnd.randbytes(AAD_LENGTHS[i % len(AAD_LENGTHS)]) for i in range(len(LENGTHS))
    ]
    key = ring.keys[kid]
    kids = pa.array([kid] * len(LENGTHS))

    with_aad = [encrypt_value(key, p, a) for p, a in zip(plains, aads)]
    got = _same(backend, pa.array(with_aad, pa.binary()), kids, ring, pa.array(aads))
    assert got.plaintext.to_pylist() == plains

    without = [encrypt_value(key, p) for p in plains]
    got = _same(backend, pa.array(without, pa.binary()), kids, ring)
    assert got.plaintext.to_pylist() == plains


def test_failures_match_cpu_reasons(backend: Backend) -> None:
    ring = _ring()
    rnd = random.Random(11)
    k128, k256 = ring.keys["k128"], ring.keys["k256"]
    good = encrypt_value(k128, rnd.randbytes(40), b"aad!")
    tag_flipped = good[:-1] + bytes([good[-1] ^ 0x01])
    ct_flipped = good[:20] + bytes([good[20] ^ 0x80]) + good[21:]
    rows: list[tuple[bytes | None, str | None, bytes | None]] = [
        (good, "k128", b"aad!"),  # ok
        (tag_flipped, "k128", b"aad!"),  # tampered tag
        (ct_flipped, "k128", b"aad!"),  # tampered ciphertext
        (encrypt_value(k256, b"secret", None), "k128", None),  # wrong key
        (good, "k128", b"aad?"),  # wrong AAD
        (good, "k128", None),  # AAD missing
        (good, "nope", b"aad!"),  # unknown key id
        (good, None, b"aad!"),  # null key id
        (b"", "k128", None),  # too short: empty
        (good[:27], "k128", None),  # too short: one byte under
        (good[:12] + good[-16:], "k128", None),  # 28 bytes, tag wrong for empty P
        (encrypt_value(k256, b"", None), "k256", None),  # 28 bytes, empty plaintext, ok
        (None, "k128", None),  # null value: null, no error
        (None, "nope", None),  # null value wins over an unknown key id
        (b"x", "nope", None),  # unknown key id wins over too short
        (encrypt_value(k256, b"last", b"z"), "k256", b"z"),  # ok
    ]
    values = pa.array([r[0] for r in rows], pa.binary())
    kids = pa.array([r[1] for r in rows], pa.string())
    aad = pa.array([r[2] for r in rows], pa.binary())
    got = _same(backend, values, kids, ring, aad)
    assert [p for p, _ in got.errors] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14]
    reasons = dict(got.errors)
    assert reasons[1].startswith("authentication failed")
    assert reasons[3] == "authentication failed (AES-GCM tag mismatch) with key 'k128'"
    assert reasons[6].startswith("unknown key id 'nope'")
    assert reasons[7].startswith("unknown key id None")
    assert reasons[9] == "ciphertext too short: expected at least 28 bytes, got 27"
    assert got.plaintext.null_count == 13
    # Unauthenticated plaintext is dropped, not merely hidden behind a null.
    assert got.plaintext.buffers()[2].size == 40 + 0 + 4


def test_sliced_chunked_and_other_column_types(backend: Backend) -> None:
    ring = KeyRing({"1": bytes(range(16)), "2": bytes(range(100, 132))})
    rnd = random.Random(5)
    n = 24
    kid_ints = [rnd.choice([1, 2, 2, 9]) for _ in range(n)]
    aad_text = [f"key-{i}" if i % 3 else "" for i in range(n)]
    values = [
        encrypt_value(
            ring.keys.get(str(k), bytes(16)),
            rnd.randbytes(rnd.randrange(0, 40)),
            aad_text[i].encode() or None,
        )
        if i % 7 != 3
        else None
        for i, k in enumerate(kid_ints)
    ]
    v = pa.array(values, pa.binary())
    k = pa.array(kid_ints, pa.int64())
    a = pa.array(aad_text, pa.string())

    # Int key ids (looked up as str), string AAD, all three sliced at different offsets.
    got = _same(backend, v.slice(5, 14), k.slice(5, 14), ring, a.slice(5, 14))
    assert any(r.startswith("unknown key id 9:") for _, r in got.errors)

    # Chunked values, dictionary-encoded key ids, large_binary AAD.
    chunked = pa.chunked_array([v.slice(0, 10), v.slice(10, 14)])
    _same(
        backend,
        chunked,
        pa.array([str(x) for x in kid_ints]).dictionary_encode(),
        ring,
        a.cast(pa.large_binary()),
    )

    # A sliced large_binary value column with no AAD column: records with AAD fail.
    _same(backend, v.cast(pa.large_binary()).slice(3), k.slice(3), ring)


def test_nothing_to_decrypt(backend: Backend) -> None:
    """All records decided on the host (or none at all): no launch, same answer."""
    ring = _ring()
    _same(backend, pa.array([], pa.binary()), pa.array([], pa.string()), ring)
    _same(
        backend,
        pa.array([None, b"short", b"x" * 40], pa.binary()),
        pa.array(["k128", "k128", "gone"]),
        ring,
    )
