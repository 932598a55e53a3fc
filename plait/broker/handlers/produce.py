"""Produce and InitProducerId.

Record bytes go to ``Partition.append`` exactly as decoded from the request: the log
validates the CRC, rewrites base offsets and deduplicates idempotent retries, so the
broker never re-encodes a batch and compressed batches stay compressed. Partitions of one
request are appended in request order; an error in one partition does not stop the rest.
With acks=0 the client expects no response at all, so none is sent.
"""

from __future__ import annotations

import logging

from kafka.protocol.producer import InitProducerIdResponse

from plait.broker import errors as E
from plait.broker.codec import Request
from plait.broker.handlers._common import RawBody, error_code
from plait.broker.produce_wire import PartitionResult, encode_produce_body
from plait.broker.state import Broker

log = logging.getLogger(__name__)

MAX_EPOCH = 32767


def produce_now(broker: Broker, req: Request) -> RawBody | None:
    """Append every partition's batch now, on the caller's stack (no await).

    The server calls this as soon as the request is decoded, so pipelined produces of
    one partition land in arrival order, and a long-polling Fetch woken by the append
    (``Broker.notify``) is answered in the same event-loop iteration.
    """
    body = req.body
    metrics = broker.metrics
    topics: list[tuple[str, list[PartitionResult]]] = []
    for td in body.topic_data:
        parts = []
        for pd in td.partition_data:
            try:
                if body.transactional_id is not None:
                    raise E.InvalidRequest("transactional produce is not supported")
                if pd.records is None or len(pd.records) == 0:
                    raise E.InvalidRecord("produce request carries no record batch")
                partition = broker.partition(td.name, pd.index, create=True)
                result = partition.append(bytes(pd.records))
                if not result.duplicate:
                    metrics.produced(td.name, len(pd.records))
                    broker.notify(td.name, pd.index)
                parts.append(PartitionResult(
                    pd.index, 0, result.base_offset, result.log_append_time or -1,
                    result.log_start_offset))
            except Exception as exc:  # one partition's failure is reported for it alone
                code = error_code(exc)
                if code == E.UnknownServerError.errno:
                    log.exception("produce to %s[%s] failed", td.name, pd.index)
                metrics.partition_error("Produce", code)
                parts.append(PartitionResult(pd.index, code, error_message=str(exc)))
        topics.append((td.name, parts))
    if body.acks == 0:
        return None
    return RawBody([encode_produce_body(req.api_version, topics)])


async def handle_produce(broker: Broker, req: Request) -> RawBody | None:
    return produce_now(broker, req)


async def handle_init_producer_id(broker: Broker, req: Request) -> InitProducerIdResponse:
    """A producer id for an idempotent producer; transactions are not supported.

    v3+ clients resend their id and epoch after an error to bump the epoch (KIP-360):
    we keep the id and raise the epoch, so the log resets that producer's sequences.
    """
    body = req.body
    if body.transactional_id is not None:
        return InitProducerIdResponse(throttle_time_ms=0, error_code=E.InvalidRequest.errno,
                                      producer_id=-1, producer_epoch=-1)
    pid, epoch = getattr(body, "producer_id", -1), getattr(body, "producer_epoch", -1)
    if pid is not None and pid >= 0 and epoch is not None and 0 <= epoch < MAX_EPOCH:
        return InitProducerIdResponse(throttle_time_ms=0, error_code=0,
                                      producer_id=pid, producer_epoch=epoch + 1)
    return InitProducerIdResponse(throttle_time_ms=0, error_code=0,
                                  producer_id=broker.log.allocate_producer_id(), producer_epoch=0)
