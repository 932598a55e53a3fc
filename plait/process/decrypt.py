"""AES-GCM decryption per record, the key chosen by a key-id column.

Wire layout of an encrypted field (what :func:`encrypt_value` writes)::

    nonce (12 bytes) || ciphertext (len(plaintext) bytes) || tag (16 bytes)

i.e. the 12-byte nonce followed by ``AESGCM.encrypt``'s output. Associated data is empty,
or the bytes of an ``aad`` column when one is named (e.g. the record key), so a ciphertext
moved to another record fails authentication. A record with an unknown key id, a value
shorter than 28 bytes, or a failed tag check is a dead letter with that reason.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plait.process.errors import KeyRingError

NONCE_LEN = 12
TAG_LEN = 16


@dataclass(frozen=True)
class KeyRing:
    """Key id -> AES key (16, 24 or 32 bytes). ``repr`` hides the keys."""

    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        for kid, key in self.keys.items():
            if len(key) not in (16, 24, 32):
                raise KeyRingError(
                    f"key {kid!r}: expected 16, 24 or 32 bytes, got {len(key)}"
                )

    def __repr__(self) -> str:
        return f"KeyRing(ids={sorted(self.keys)})"

    @classmethod
    def of(cls, source: KeyRing | Mapping[str, bytes | str] | str | Path) -> KeyRing:
        """From a KeyRing, a dict (bytes, or base64 text), or a JSON file ``{"id": "<base64>"}``."""
        if isinstance(source, KeyRing):
            return source
        if isinstance(source, (str, Path)):
            try:
                raw = json.loads(Path(source).read_text())
            except (OSError, ValueError) as exc:
                raise KeyRingError(
                    f"key ring file {source}: expected a JSON object of base64 keys: {exc}"
                ) from exc
            if not isinstance(raw, dict):
                raise KeyRingError(
                    f"key ring file {source}: expected a JSON object, got {type(raw).__name__}"
                )
            source = raw
        keys: dict[str, bytes] = {}
        for kid, key in source.items():
            if isinstance(key, str):
                try:
                    key = base64.b64decode(key, validate=True)
                except ValueError as exc:
                    raise KeyRingError(
                        f"key {kid!r}: expected base64 text: {exc}"
                    ) from exc
            keys[str(kid)] = bytes(key)
        return cls(keys)


def encrypt_value(
    key: bytes, plaintext: bytes, aad: bytes | None = None, nonce: bytes | None = None
) -> bytes:
    """Encrypt one value in plait's layout (for producers and tests). A random nonce unless given."""
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
