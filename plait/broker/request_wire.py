"""Lean decoders for the two hot requests, Produce (v3-9) and Fetch (v4-12).

At 10,000 produce and fetch requests a second, kafka-python's generic schema decoder
(a BytesIO copy of the frame, then one object per field) was a large share of the
broker's per-request time. These hand-written readers follow Kafka's
ProduceRequest.json and FetchRequest.json field by field and return small slotted
objects with the same attribute names the handlers read from kafka-python's classes;
tests/unit/broker checks them by machine against kafka-python's schema-generated
encoders at every served version. Record sets stay views into the frame (uncopied).

Every reader raises ``MalformedFrameError`` (with the API key and byte position) when
the bytes end early or carry an impossible length, never a struct or index error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from plait.broker.errors import MalformedFrameError

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_FETCH_HEAD = struct.Struct(">iiiib")  # replica_id, max_wait_ms, min_bytes, max_bytes, isolation


def _length(buf: memoryview, pos: int, flex: bool, fixed: struct.Struct) -> tuple[int, int]:
    """A string or array length: compact (unsigned varint + 1) in flexible versions,
    else a fixed-width signed int; -1 means null. Returns (length, next position)."""
    if flex:
        n, pos = _varint(buf, pos)
        return n - 1, pos
    return fixed.unpack_from(buf, pos)[0], pos + fixed.size


# -- Produce ------------------------------------------------------------------------------


@dataclass(slots=True)
class ProducePartition:
    index: int
    records: memoryview | None


@dataclass(slots=True)
class ProduceTopic:
    name: str
    partition_data: list[ProducePartition]


@dataclass(slots=True)
class ProduceBody:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: list[ProduceTopic]


def decode_produce(buf: memoryview, pos: int, version: int) -> ProduceBody:
    """ProduceRequest v3-9 body starting at ``pos`` (after the request header).

    Written flat (local cursor, one-byte varints inline) because this runs for every
    produce; a read past the end surfaces as struct.error/IndexError and is reported as
    MalformedFrameError at the last field start, and lengths are checked explicitly.
    """
    flex = version >= 9
    end = len(buf)
    start = pos
    what = "transactional_id"
    try:
        n, pos = _length(buf, pos, flex, _I16)
        txn = None
        if n >= 0:
            if pos + n > end:
                raise _Short(pos)
            txn = bytes(buf[pos : pos + n]).decode("utf-8", "replace")
            pos += n
        what = "acks/timeout_ms"
        acks, timeout = _ACKS.unpack_from(buf, pos)
        pos += 6
        what = "topic_data"
        nt, pos = _length(buf, pos, flex, _I32)
        if nt > end - pos:
            raise _Short(pos)
        topics = []
        for _ in range(nt):
            what = "topic name"
            n, pos = _length(buf, pos, flex, _I16)
            if n < 0 or pos + n > end:
                raise _Short(pos)
            name = bytes(buf[pos : pos + n]).decode("utf-8", "replace")
            pos += n
            what = "partition_data"
            np, pos = _length(buf, pos, flex, _I32)
            if np > end - pos:
                raise _Short(pos)
            parts = []
            for _ in range(np):
                what = "partition index/records"
                index = _I32.unpack_from(buf, pos)[0]
                pos += 4
                n, pos = _length(buf, pos, flex, _I32)
                records = None
                if n >= 0:
                    if pos + n > end:
                        raise _Short(pos)
                    records = buf[pos : pos + n]
                    pos += n
                parts.append(ProducePartition(index, records))
                if flex:
                    pos = _skip_tags(buf, pos)
            what = "tagged fields"
            if flex:
                pos = _skip_tags(buf, pos)
            topics.append(ProduceTopic(name, parts))
        if flex:
            pos = _skip_tags(buf, pos)
    except (struct.error, IndexError, _Short) as exc:
        at = exc.pos if isinstance(exc, _Short) else pos
        raise MalformedFrameError(
            f"Produce v{version} request: {what} at byte {at} runs past the {end}-byte frame "
            f"(body from byte {start})", api_key=0, position=at,
        ) from None
    return ProduceBody(txn, int(acks), int(timeout), topics)


class _Short(Exception):
    """A length in the frame points past its end (internal to the flat decoders)."""

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = buf[pos]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos + 1
        shift += 7
        if shift > 28:
            raise _Short(pos)


def _skip_tags(buf: memoryview, pos: int) -> int:
    count, pos = _varint(buf, pos)
    for _ in range(count):
        _tag, pos = _varint(buf, pos)
        size, pos = _varint(buf, pos)
        pos += size
        if pos > len(buf):
            raise _Short(pos)
    return pos


_ACKS = struct.Struct(">hi")


# -- Fetch --------------------------------------------------------------------------------


@dataclass(slots=True)
class FetchPartition:
    partition: int
    current_leader_epoch: int
    fetch_offset: int
    last_fetched_epoch: int
    log_start_offset: int
    partition_max_bytes: int


@dataclass(slots=True)
class FetchTopic:
    topic: str
    partitions: list[FetchPartition]


class FetchBody:
    __slots__ = (
        "forgotten_topics_data",
        "isolation_level",
        "max_bytes",
        "max_wait_ms",
        "min_bytes",
        "rack_id",
        "replica_id",
        "session_epoch",
        "session_id",
        "topics",
    )

    def __init__(self, head: tuple[Any, ...], session: tuple[int, int],
                 topics: list[FetchTopic], forgotten: list[tuple[str, list[int]]],
                 rack_id: str) -> None:
        (self.replica_id, self.max_wait_ms, self.min_bytes, self.max_bytes,
         self.isolation_level) = head
        self.session_id, self.session_epoch = session
        self.topics = topics
        self.forgotten_topics_data = forgotten
        self.rack_id = rack_id


_SESSION = struct.Struct(">ii")


def decode_fetch(buf: memoryview, pos: int, version: int) -> FetchBody:
    """FetchRequest v4-12 body starting at ``pos`` (after the request header).

    Flat like decode_produce, for the same reason: it runs for every fetch.
    """
    flex = version >= 12
    end = len(buf)
    start = pos
    what = "fetch limits"
    try:
        head = _FETCH_HEAD.unpack_from(buf, pos)
        pos += _FETCH_HEAD.size
        session = (0, -1)
        if version >= 7:
            what = "session id/epoch"
            session = _SESSION.unpack_from(buf, pos)
            pos += 8
        what = "topics"
        nt, pos = _count(buf, pos, flex)
        topics = []
        for _ in range(nt):
            what = "topic name"
            name, pos = _string(buf, pos, flex)
            what = "partitions"
            np, pos = _count(buf, pos, flex)
            parts = []
            for _ in range(np):
                what = "partition fields"
                if version >= 12:
                    index, leader_epoch, offset, last_epoch, log_start, max_bytes = \
                        _FETCH_P12.unpack_from(buf, pos)
                    pos += _FETCH_P12.size
                elif version >= 9:
                    index, leader_epoch, offset, log_start, max_bytes = \
                        _FETCH_P9.unpack_from(buf, pos)
                    pos += _FETCH_P9.size
                    last_epoch = -1
                elif version >= 5:
                    index, offset, log_start, max_bytes = _FETCH_P5.unpack_from(buf, pos)
                    pos += _FETCH_P5.size
                    leader_epoch = last_epoch = -1
                else:
                    index, offset, max_bytes = _FETCH_P4.unpack_from(buf, pos)
                    pos += _FETCH_P4.size
                    leader_epoch = last_epoch = log_start = -1
                if flex:
                    pos = _skip_tags(buf, pos)
                parts.append(FetchPartition(index, leader_epoch, offset, last_epoch,
                                            log_start, max_bytes))
            if flex:
                pos = _skip_tags(buf, pos)
            topics.append(FetchTopic(name or "", parts))
        forgotten: list[tuple[str, list[int]]] = []
        if version >= 7:
            what = "forgotten_topics_data"
            nf, pos = _count(buf, pos, flex)
            for _ in range(nf):
                fname, pos = _string(buf, pos, flex)
                ni, pos = _count(buf, pos, flex)
                indexes = list(struct.unpack_from(f">{ni}i", buf, pos))
                pos += 4 * ni
                if flex:
                    pos = _skip_tags(buf, pos)
                forgotten.append((fname or "", indexes))
        rack = ""
        if version >= 11:
            what = "rack_id"
            rack_s, pos = _string(buf, pos, flex)
            rack = rack_s or ""
        what = "tagged fields"
        if flex:
            pos = _skip_tags(buf, pos)
    except (struct.error, IndexError, _Short) as exc:
        at = exc.pos if isinstance(exc, _Short) else pos
        raise MalformedFrameError(
            f"Fetch v{version} request: {what} at byte {at} runs past the {end}-byte frame "
            f"(body from byte {start})", api_key=1, position=at,
        ) from None
    return FetchBody(head, session, topics, forgotten, rack)


_FETCH_P4 = struct.Struct(">iqi")  # partition, fetch_offset, partition_max_bytes
_FETCH_P5 = struct.Struct(">iqqi")  # + log_start_offset
_FETCH_P9 = struct.Struct(">iiqqi")  # + current_leader_epoch
_FETCH_P12 = struct.Struct(">iiqiqi")  # + last_fetched_epoch


def _count(buf: memoryview, pos: int, flex: bool) -> tuple[int, int]:
    """An array length (a null array reads as empty, as kafka-python does)."""
    n, pos = _length(buf, pos, flex, _I32)
    if n > len(buf) - pos:  # every element takes at least one byte
        raise _Short(pos)
    return max(n, 0), pos


def _string(buf: memoryview, pos: int, flex: bool) -> tuple[str | None, int]:
    n, pos = _length(buf, pos, flex, _I16)
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise _Short(pos)
    return bytes(buf[pos : pos + n]).decode("utf-8", "replace"), pos + n


LEAN_DECODERS = {0: decode_produce, 1: decode_fetch}
