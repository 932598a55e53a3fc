"""OffsetCommit and OffsetFetch, through GroupStore's generation-fenced transactions.

A commit is checked against the live group first (unknown member, stale generation,
rebalance in progress), then written in one metadata-store transaction guarded by the
stored generation: all partitions of the request commit, or none do.
"""

from __future__ import annotations

import logging

from kafka.protocol.consumer import OffsetCommitResponse, OffsetFetchResponse

from plait.broker import errors as E
from plait.broker.codec import Request
from plait.broker.state import Broker
from plait.groups import FencedCommitError, GroupBusyError

log = logging.getLogger(__name__)


async def handle_offset_commit(broker: Broker, req: Request) -> OffsetCommitResponse:
    b = req.body
    generation = b.generation_id_or_member_epoch
    member_id = b.member_id or ""
    code = broker.coordinator.check_commit(b.group_id, generation, member_id)
    offsets = {
        (t.name, p.partition_index): (p.committed_offset, p.committed_metadata or "")
        for t in b.topics
        for p in t.partitions
    }
    if code == 0:
        if not b.group_id:
            code = E.InvalidGroupId.errno
        else:
            try:
                broker.coordinator.store.commit_offsets(b.group_id, generation, offsets)
            except FencedCommitError:
                code = E.IllegalGeneration.errno
            except GroupBusyError:
                code = E.RebalanceInProgress.errno
    TR = OffsetCommitResponse.OffsetCommitResponseTopic
    return OffsetCommitResponse(
        throttle_time_ms=0,
        topics=[
            TR(name=t.name, partitions=[
                TR.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
                for p in t.partitions
            ])
            for t in b.topics
        ],
    )


async def handle_offset_fetch(broker: Broker, req: Request) -> OffsetFetchResponse:
    """Committed offsets; -1 with no error for partitions never committed, as Kafka."""
    b = req.body
    TR = OffsetFetchResponse.OffsetFetchResponseTopic
    PR = TR.OffsetFetchResponsePartition
    store = broker.coordinator.store
    if not b.group_id:  # a null or empty group id names no group: Kafka's INVALID_GROUP_ID
        return OffsetFetchResponse(throttle_time_ms=0, topics=[], error_code=E.InvalidGroupId.errno)
    if b.topics is None:
        found = store.fetch_offsets(b.group_id)
        by_topic: dict[str, list[int]] = {}
        for topic, part in sorted(found):
            by_topic.setdefault(topic, []).append(part)
        wanted = list(by_topic.items())
    else:
        wanted = [(t.name, list(t.partition_indexes)) for t in b.topics]
        found = store.fetch_offsets(b.group_id, [(n, p) for n, ps in wanted for p in ps])
    topics = []
    for name, parts in wanted:
        rows = []
        for p in parts:
            offset, meta = found.get((name, p), (-1, ""))
            rows.append(PR(partition_index=p, committed_offset=offset, committed_leader_epoch=-1,
                           metadata=meta, error_code=0))
        topics.append(TR(name=name, partitions=rows))
    return OffsetFetchResponse(throttle_time_ms=0, topics=topics, error_code=0)
