"""Produce and InitProducerId.

Record bytes go to ``Partition.append`` exactly as decoded from the request: the log
validates the CRC, rewrites base offsets and deduplicates idempotent retries, so the
broker never re-encodes a batch and compressed batches stay compressed. Partitions of one
request are appended in request order; an error in one partition does not stop the rest.
With acks=0 the client expects no response at all, so none is sent.
"""

from __future__ import annotations

import logging

from kafka.protocol.producer import InitProducerIdResponse, ProduceResponse

from plait.broker import errors as E
from plait.broker.codec import Request
from plait.broker.handlers._common import error_code
from plait.broker.state import Broker

log = logging.getLogger(__name__)

MAX_EPOCH = 32767


async def handle_produce(broker: Broker, req: Request) -> ProduceResponse | None:
    body = req.body
    TR = ProduceResponse.TopicProduceResponse
    PR = TR.PartitionProduceResponse
    topics = []
    for td in body.topic_data:
        parts = []
        for pd in td.partition_data:
            code, base, append_time, start, message = 0, -1, -1, -1, None
            try:
                if body.transactional_id is not None:
                    raise E.InvalidRequest("transactional produce is not supported")
                if pd.records is None or len(pd.records) == 0:
                    raise E.InvalidRecord("produce request carries no record batch")
                partition = broker.partition(td.name, pd.index, create=True)
                result = partition.append(bytes(pd.records))
                base, start = result.base_offset, result.log_start_offset
                append_time = result.log_append_time if result.log_append_time else -1
                if not result.duplicate:
                    broker.metrics.records_bytes_in.labels(td.name).inc(len(pd.records))
                    broker.notify(td.name, pd.index)
            except Exception as exc:  # one partition's failure is reported for it alone
                code, message = error_code(exc), str(exc)
                if code == E.UnknownServerError.errno:
                    log.exception("produce to %s[%s] failed", td.name, pd.index)
                broker.metrics.partition_errors.labels("Produce", str(code)).inc()
            parts.append(PR(index=pd.index, error_code=code, base_offset=base,
                            log_append_time_ms=append_time, log_start_offset=start,
                            record_errors=[], error_message=message))
        topics.append(TR(name=td.name, partition_responses=parts))
    if body.acks == 0:
        return None
    return ProduceResponse(responses=topics, throttle_time_ms=0)


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
