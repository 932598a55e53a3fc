"""Fetch (with long polling) and ListOffsets.

Fetch answers with the log's stored batches, uncopied (see fetch_wire). A batch may
start before the requested offset (clients skip the records below it, as with Kafka).
When less than ``min_bytes`` is available the request waits, up to ``max_wait_ms``, for
an append to any partition it asked for; a produce to one of them wakes it at once.
"""

from __future__ import annotations

import asyncio
import logging

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
                broker.metrics.partition_errors.labels("Fetch", str(pd.error_code)).inc()
            td.partitions.append(pd)
        topics.append(td)
    return topics, total, keys


async def handle_fetch(broker: Broker, req: Request) -> RawBody:
    body = req.body
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0, body.max_wait_ms) / 1000
    topics, total, keys = _read_all(broker, req)
    if total < max(1, body.min_bytes) and body.max_wait_ms > 0 and keys:
        event = asyncio.Event()
        broker.watch(keys, event)
        try:
            while total < max(1, body.min_bytes) and not broker.stopping:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    break
                event.clear()
                topics, total, keys = _read_all(broker, req)
        finally:
            broker.unwatch(keys, event)
    return RawBody(encode_fetch_body(req.api_version, topics))


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
