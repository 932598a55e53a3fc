"""Fetch (with long polling) and ListOffsets.

Fetch answers with the log's stored batches, uncopied (see fetch_wire). A batch may
start before the requested offset (clients skip the records below it, as with Kafka).
When less than ``min_bytes`` is available the request waits, up to ``max_wait_ms``, for
an append to any partition it asked for; a produce to one of them wakes it at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kafka.protocol.consumer import ListOffsetsResponse

from plait.broker import errors as E
from plait.broker.codec import Request
from plait.broker.fetch_wire import PartitionData, TopicData, encode_fetch_body
from plait.broker.handlers._common import RawBody, error_code
from plait.broker.state import Broker
from plait.errors import PlaitError
from plait.log import Partition
from plait.protocol.records import iter_records

log = logging.getLogger(__name__)

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


def _read_all(broker: Broker, req: Request) -> tuple[list[TopicData], int, list[tuple[str, int]]]:
    body = req.body
    budget = broker.config.max_fetch_bytes
    if body.max_bytes > 0:
        budget = min(budget, body.max_bytes)
    total = 0
    topics: list[TopicData] = []
    keys: list[tuple[str, int]] = []
    for ft in body.topics:
        td = TopicData(ft.topic)
        for fp in ft.partitions:
            keys.append((ft.topic, fp.partition))
            pd = PartitionData(fp.partition, records=b"")
            try:
                part = broker.partition(ft.topic, fp.partition)
                pd.high_watermark = pd.last_stable_offset = part.log_end_offset
                pd.log_start_offset = part.log_start_offset
                # Kafka returns at least one batch even past max_bytes so a consumer can
                # always make progress; the log's read does the same for its max_bytes.
                limit = max(1, min(fp.partition_max_bytes, budget - total))
                if budget - total <= 0 and total > 0:
                    records = b""
                else:
                    records = part.read(fp.fetch_offset, limit)
                pd.records = records
                total += len(records)
            except Exception as exc:  # reported for this partition alone
                pd.error_code = error_code(exc)
                pd.records = None
                if pd.error_code == E.UnknownServerError.errno:
                    log.exception("fetch from %s[%s] failed", ft.topic, fp.partition)
                broker.metrics.partition_error("Fetch", pd.error_code)
            td.partitions.append(pd)
        topics.append(td)
    return topics, total, keys


class FetchPoll:
    """One Fetch, answered through ``deliver`` exactly once (or never, if cancelled).

    ``start`` reads at once; when less than ``min_bytes`` is there and the client allows
    a wait, the poll parks on its partitions. ``Broker.notify`` calls ``wake`` on the
    appending request's own stack, so the answer is written in the same event-loop
    iteration as the append that satisfies it (no task switch, no extra wake-up). The
    deadline is a loop timer; shutdown (``wake(final=True)``) answers with what is there.
    """

    __slots__ = ("broker", "deliver", "done", "keys", "req", "timer")

    def __init__(self, broker: Broker, req: Request,
                 deliver: Callable[[RawBody | None], None]) -> None:
        self.broker = broker
        self.req = req
        self.deliver = deliver
        self.keys: list[tuple[str, int]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def start(self) -> None:
        body = self.req.body
        topics, total, keys = _read_all(self.broker, self.req)
        if total >= max(1, body.min_bytes) or body.max_wait_ms <= 0 or not keys \
                or self.broker.stopping:
            self._answer(topics)
            return
        self.keys = keys
        self.broker.watch(keys, self)
        self.timer = asyncio.get_running_loop().call_later(body.max_wait_ms / 1000, self.wake, True)

    def wake(self, final: bool = False) -> None:
        """New data on a watched partition (or ``final``: the deadline or shutdown)."""
        if self.done:
            return
        try:
            topics, total, _keys = _read_all(self.broker, self.req)
            if final or total >= max(1, self.req.body.min_bytes):
                self._answer(topics)
        except Exception:  # never let a fetch bug fail the producer whose append woke it
            log.exception("fetch answer failed")
            self.cancel()
            self.deliver(None)

    def cancel(self) -> None:
        """Stop waiting without answering (the client is gone)."""
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        if self.keys:
            self.broker.unwatch(self.keys, self)
            self.keys = []

    def _answer(self, topics: list[TopicData]) -> None:
        self.cancel()
        self.deliver(RawBody(encode_fetch_body(self.req.api_version, topics)))


async def handle_fetch(broker: Broker, req: Request) -> RawBody | None:
    """The same Fetch as an awaitable (the server drives FetchPoll directly)."""
    future: asyncio.Future[RawBody | None] = asyncio.get_running_loop().create_future()
    poll = FetchPoll(broker, req, future.set_result)
    poll.start()
    try:
        return await future
    finally:
        poll.cancel()


def _timestamp_at(part: Partition, offset: int, fallback: int) -> int:
    """The timestamp of the record at ``offset``: decodes one stored batch (this is a
    rare admin lookup, so the decompression cost does not matter)."""
    for rec in iter_records(part.read(offset, 1), allow_partial_tail=True):
        if rec.offset == offset:
            return rec.timestamp
    return fallback


async def handle_list_offsets(broker: Broker, req: Request) -> ListOffsetsResponse:
    """Earliest (-2), latest (-1), max-timestamp (-3, v7) or the first offset at/after a time.

    A by-time lookup answers the found record's own timestamp, as Kafka does.
    """
    TR = ListOffsetsResponse.ListOffsetsTopicResponse
    PR = TR.ListOffsetsPartitionResponse
    topics = []
    for t in req.body.topics:
        parts = []
        for p in t.partitions:
            code, ts, offset = 0, -1, -1
            try:
                part = broker.partition(t.name, p.partition_index)
                if p.timestamp == LATEST:
                    offset = part.log_end_offset
                elif p.timestamp == EARLIEST:
                    offset = part.log_start_offset
                elif p.timestamp == MAX_TIMESTAMP:
                    offset = max(part.log_start_offset, part.log_end_offset - 1)
                elif p.timestamp < 0:
                    raise E.InvalidRequest(f"timestamp {p.timestamp} is not a time or -1/-2/-3")
                else:
                    found = part.offset_for_timestamp(p.timestamp)
                    if found is not None:
                        offset, ts = found, _timestamp_at(part, found, p.timestamp)
            except PlaitError as exc:  # reported for this partition alone
                code = error_code(exc)
            parts.append(PR(partition_index=p.partition_index, error_code=code,
                            old_style_offsets=[], timestamp=ts, offset=offset, leader_epoch=0))
        topics.append(TR(name=t.name, partitions=parts))
    return ListOffsetsResponse(throttle_time_ms=0, topics=topics)
