"""Fetch response bodies built around stored record bytes, without copying them.

kafka-python's generated encoder would copy every record set into its own buffer;
for Fetch, which moves the most bytes, we write the body as a list of small header
chunks interleaved with the log's stored batches, and the server hands the list to
``transport.writelines``. Field order and types follow Kafka's FetchResponse.json for
versions 4-12 (v12 is the first flexible version); tests/unit/broker decode our bytes
with kafka-python's schema-generated FetchResponse to check this by machine.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_VERSION = 4
MAX_VERSION = 12

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


@dataclass(slots=True)
class PartitionData:
    """One partition of a Fetch answer. ``records`` are whole stored batches."""

    partition_index: int
    error_code: int = 0
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: bytes | memoryview | None = None


@dataclass(slots=True)
class TopicData:
    topic: str
    partitions: list[PartitionData] = field(default_factory=list)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(s: str, flexible: bool) -> bytes:
    raw = s.encode("utf-8")
    if flexible:
        return _uvarint(len(raw) + 1) + raw
    return _I16.pack(len(raw)) + raw


def _array_len(n: int, flexible: bool) -> bytes:
    return _uvarint(n + 1) if flexible else _I32.pack(n)


def encode_fetch_body(
    version: int,
    topics: Sequence[TopicData],
    *,
    throttle_time_ms: int = 0,
    error_code: int = 0,
    session_id: int = 0,
) -> list[bytes | memoryview]:
    """The FetchResponse body (no header, no size prefix) as chunks, records uncopied.

    ``session_id`` 0 tells clients that fetch sessions (KIP-227) are not in use, so
    they keep sending full fetch requests.
    """
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ValueError(f"Fetch response version {version} outside {MIN_VERSION}-{MAX_VERSION}")
    flex = version >= 12
    head = bytearray(_I32.pack(throttle_time_ms))
    if version >= 7:
        head += struct.pack(">hi", error_code, session_id)
    head += _array_len(len(topics), flex)
    chunks: list[bytes | memoryview] = []
    for topic in topics:
        head += _string(topic.topic, flex)
        head += _array_len(len(topic.partitions), flex)
        for p in topic.partitions:
            head += struct.pack(
                ">ihqq", p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset
            )
            if version >= 5:
                head += struct.pack(">q", p.log_start_offset)
            head += _array_len(0, flex)  # aborted_transactions: none, no transactions
            if version >= 11:
                head += _I32.pack(-1)  # preferred_read_replica: none
            records = p.records
            if records is None:
                head += b"\x00" if flex else _I32.pack(-1)
            else:
                head += _uvarint(len(records) + 1) if flex else _I32.pack(len(records))
                if len(records):
                    chunks.append(bytes(head))
                    chunks.append(records)
                    head = bytearray()
            if flex:
                head += b"\x00"  # partition tagged fields
        if flex:
            head += b"\x00"  # topic tagged fields
    if flex:
        head += b"\x00"  # top-level tagged fields
    chunks.append(bytes(head))
    return chunks
