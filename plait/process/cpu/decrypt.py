"""CPU decrypt: ``cryptography``'s AES-GCM (OpenSSL, AES-NI) called once per record."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plait.process.decrypt import NONCE_LEN, TAG_LEN, KeyRing


@dataclass
class DecryptResult:
    """Plaintexts aligned with the input (null where the record failed or was null), and
    the failures as (position, reason)."""

    plaintext: pa.Array
    errors: list[tuple[int, str]] = field(default_factory=list)


def decrypt_cpu(
    values: pa.Array, key_ids: pa.Array, ring: KeyRing, aad: pa.Array | None = None
) -> DecryptResult:
    """Decrypt each value with the key its key id names. A null value stays null (not an error)."""
    ciphers: dict[str, AESGCM] = {}
    out: list[bytes | None] = []
    errors: list[tuple[int, str]] = []
    vals = values.to_pylist()
    kids = key_ids.to_pylist()
    aads = aad.to_pylist() if aad is not None else [None] * len(vals)
    for i, (v, kid, ad) in enumerate(zip(vals, kids, aads)):
        if v is None:
            out.append(None)
            continue
        if isinstance(v, str):
            v = v.encode("utf-8")
        if isinstance(ad, str):
            ad = ad.encode("utf-8")
        skid = None if kid is None else str(kid)
        if skid is None or skid not in ring.keys:
            out.append(None)
            errors.append(
                (i, f"unknown key id {kid!r}: expected one of {sorted(ring.keys)}")
            )
            continue
        if len(v) < NONCE_LEN + TAG_LEN:
            out.append(None)
            errors.append(
                (
                    i,
                    f"ciphertext too short: expected at least {NONCE_LEN + TAG_LEN} bytes, got {len(v)}",
                )
            )
            continue
        c = ciphers.get(skid)
        if c is None:
            c = ciphers[skid] = AESGCM(ring.keys[skid])
        try:
            out.append(c.decrypt(v[:NONCE_LEN], v[NONCE_LEN:], ad))
        except InvalidTag:
            out.append(None)
            errors.append(
                (i, f"authentication failed (AES-GCM tag mismatch) with key {skid!r}")
            )
    return DecryptResult(pa.array(out, type=pa.binary()), errors)
