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
from typing import Any

from plait.broker.errors import MalformedFrameError

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_FETCH_HEAD = struct.Struct(">iiiib")  # replica_id, max_wait_ms, min_bytes, max_bytes, isolation


class _Reader:
    """A cursor over one frame; ``flex`` selects compact (varint) lengths (KIP-482)."""

    __slots__ = ("buf", "flex", "key", "pos")

    def __init__(self, buf: memoryview, pos: int, flex: bool, key: int) -> None:
        self.buf = buf
        self.pos = pos
        self.flex = flex
        self.key = key

    def fail(self, what: str) -> MalformedFrameError:
        return MalformedFrameError(
            f"request field {what} at byte {self.pos} does not fit the {len(self.buf)}-byte frame",
            api_key=self.key, position=self.pos,
        )

    def fixed(self, st: struct.Struct, what: str) -> tuple[Any, ...]:
        pos = self.pos
        if pos + st.size > len(self.buf):
            raise self.fail(what)
        self.pos = pos + st.size
        return st.unpack_from(self.buf, pos)

    def i32(self, what: str) -> int:
        return int(self.fixed(_I32, what)[0])

    def uvarint(self, what: str) -> int:
        buf, pos = self.buf, self.pos
        value = shift = 0
        while True:
            if pos >= len(buf) or shift > 28:
                raise self.fail(what)
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                self.pos = pos
                return value
            shift += 7

    def length(self, what: str) -> int:
        """A string/bytes length: -1 means null (compact form: 0 means null)."""
        if self.flex:
            return self.uvarint(what) - 1
        return int(self.fixed(_I16, what)[0])

    def count(self, what: str) -> int:
        """An array length; a null array (-1) reads as empty, as kafka-python does."""
        n = self.uvarint(what) - 1 if self.flex else int(self.fixed(_I32, what)[0])
        if n > len(self.buf) - self.pos:  # each element takes at least one byte
            raise self.fail(what)
        return max(n, 0)

    def string(self, what: str) -> str | None:
        n = self.length(what)
        if n < 0:
            return None
        return self.take(n, what).decode("utf-8", "replace")

    def take(self, n: int, what: str) -> bytes:
        pos = self.pos
        if n < 0 or pos + n > len(self.buf):
            raise self.fail(what)
        self.pos = pos + n
        return bytes(self.buf[pos : pos + n])

    def records(self, what: str) -> memoryview | None:
        n = self.uvarint(what) - 1 if self.flex else self.i32(what)
        if n < 0:
            return None
        pos = self.pos
        if pos + n > len(self.buf):
            raise self.fail(what)
        self.pos = pos + n
        return self.buf[pos : pos + n]

    def skip_tags(self, what: str) -> None:
        if not self.flex:
            return
        for _ in range(self.uvarint(what)):
            self.uvarint(what)
            size = self.uvarint(what)
            if self.pos + size > len(self.buf):
                raise self.fail(what)
            self.pos += size


# -- Produce ------------------------------------------------------------------------------


class ProducePartition:
    __slots__ = ("index", "records")

    def __init__(self, index: int, records: memoryview | None) -> None:
        self.index = index
        self.records = records


class ProduceTopic:
    __slots__ = ("name", "partition_data")

    def __init__(self, name: str, partition_data: list[ProducePartition]) -> None:
        self.name = name
        self.partition_data = partition_data


class ProduceBody:
    __slots__ = ("acks", "timeout_ms", "topic_data", "transactional_id")

    def __init__(self, transactional_id: str | None, acks: int, timeout_ms: int,
                 topic_data: list[ProduceTopic]) -> None:
        self.transactional_id = transactional_id
        self.acks = acks
        self.timeout_ms = timeout_ms
        self.topic_data = topic_data


def decode_produce(buf: memoryview, pos: int, version: int) -> ProduceBody:
    """ProduceRequest v3-9 body starting at ``pos`` (after the request header)."""
    r = _Reader(buf, pos, version >= 9, 0)
    txn = r.string("transactional_id")
    acks, timeout = r.fixed(_ACKS, "acks/timeout_ms")
    topics = []
    for _ in range(r.count("topic_data")):
        name = r.string("topic name")
        parts = []
        for _ in range(r.count("partition_data")):
            index = r.i32("partition index")
            parts.append(ProducePartition(index, r.records("records")))
            r.skip_tags("partition tagged fields")
        r.skip_tags("topic tagged fields")
        topics.append(ProduceTopic(name or "", parts))
    r.skip_tags("tagged fields")
    return ProduceBody(txn, int(acks), int(timeout), topics)


_ACKS = struct.Struct(">hi")


# -- Fetch --------------------------------------------------------------------------------


class FetchPartition:
    __slots__ = (
        "current_leader_epoch",
        "fetch_offset",
        "last_fetched_epoch",
        "log_start_offset",
        "partition",
        "partition_max_bytes",
    )

    def __init__(self, partition: int, current_leader_epoch: int, fetch_offset: int,
                 last_fetched_epoch: int, log_start_offset: int,
                 partition_max_bytes: int) -> None:
        self.partition = partition
        self.current_leader_epoch = current_leader_epoch
        self.fetch_offset = fetch_offset
        self.last_fetched_epoch = last_fetched_epoch
        self.log_start_offset = log_start_offset
        self.partition_max_bytes = partition_max_bytes


class FetchTopic:
    __slots__ = ("partitions", "topic")

    def __init__(self, topic: str, partitions: list[FetchPartition]) -> None:
        self.topic = topic
        self.partitions = partitions


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
_OFFSET = struct.Struct(">q")


def decode_fetch(buf: memoryview, pos: int, version: int) -> FetchBody:
    """FetchRequest v4-12 body starting at ``pos`` (after the request header)."""
    r = _Reader(buf, pos, version >= 12, 1)
    head = r.fixed(_FETCH_HEAD, "fetch limits")
    session = r.fixed(_SESSION, "session id/epoch") if version >= 7 else (0, -1)
    topics = []
    for _ in range(r.count("topics")):
        name = r.string("topic name") or ""
        parts = []
        for _ in range(r.count("partitions")):
            index = r.i32("partition index")
            leader_epoch = r.i32("current_leader_epoch") if version >= 9 else -1
            (offset,) = r.fixed(_OFFSET, "fetch_offset")
            last_epoch = r.i32("last_fetched_epoch") if version >= 12 else -1
            log_start = r.fixed(_OFFSET, "log_start_offset")[0] if version >= 5 else -1
            max_bytes = r.i32("partition_max_bytes")
            r.skip_tags("partition tagged fields")
            parts.append(FetchPartition(index, leader_epoch, int(offset), last_epoch,
                                        int(log_start), max_bytes))
        r.skip_tags("topic tagged fields")
        topics.append(FetchTopic(name, parts))
    forgotten: list[tuple[str, list[int]]] = []
    if version >= 7:
        for _ in range(r.count("forgotten_topics_data")):
            name = r.string("forgotten topic") or ""
            indexes = [r.i32("forgotten partition") for _ in range(r.count("forgotten partitions"))]
            r.skip_tags("forgotten topic tagged fields")
            forgotten.append((name, indexes))
    rack = (r.string("rack_id") or "") if version >= 11 else ""
    r.skip_tags("tagged fields")
    return FetchBody(head, session, topics, forgotten, rack)


LEAN_DECODERS = {0: decode_produce, 1: decode_fetch}
