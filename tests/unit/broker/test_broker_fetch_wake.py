"""A parked Fetch is answered by the append that satisfies it, on the producer's stack."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

from plait.broker.codec import Request, decode_request
from plait.broker.config import BrokerConfig
from plait.broker.handlers import RawBody
from plait.broker.handlers.fetch import FetchPoll
from plait.broker.handlers.produce import produce_now
from plait.broker.state import Broker
from plait.groups import GroupStore
from plait.log import Log
from plait.meta.url import open_meta
from plait.observe.metrics import BrokerMetrics


def _request(req: object) -> Request:
    req.with_header(correlation_id=1, client_id="t")  # type: ignore[attr-defined]
    decoded = decode_request(bytes(req.encode(header=True, framed=True))[4:])  # type: ignore[attr-defined]
    assert isinstance(decoded, Request)
    return decoded


def _produce(value: bytes) -> Request:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 16)
    b.append(0, timestamp=1, key=None, value=value, headers=[])
    P = ProduceRequest
    return _request(P(version=9, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[
        P.TopicProduceData(name="t", partition_data=[
            P.TopicProduceData.PartitionProduceData(index=0, records=bytes(b.build()))])]))


def _fetch(offset: int, max_wait_ms: int) -> Request:
    FT, FP = FetchRequest.FetchTopic, FetchRequest.FetchTopic.FetchPartition
    return _request(FetchRequest(
        version=12, replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
        isolation_level=0, session_id=0, session_epoch=-1, topics=[FT(topic="t", partitions=[
            FP(partition=0, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
               log_start_offset=-1, partition_max_bytes=1 << 20)])],
        forgotten_topics_data=[], rack_id=""))


def _records_of(reply: RawBody) -> bytes:
    body = FetchResponse[12].decode(b"".join(bytes(c) for c in reply.chunks))
    return bytes(body.responses[0].partitions[0].records)


def test_parked_fetch_is_answered_inside_the_produce_then_never_again(tmp_path: Path) -> None:
    meta = open_meta(f"sqlite:{tmp_path / 'meta.sqlite'}")
    log = Log.open(tmp_path / "log")
    broker = Broker(log, GroupStore(meta), BrokerConfig(), BrokerMetrics())

    async def run() -> None:
        answers: list[RawBody | None] = []
        poll = FetchPoll(broker, _fetch(0, max_wait_ms=60_000), answers.append)
        broker.topic("t", create=True)
        poll.start()
        assert answers == []  # nothing to read yet: parked
        reply = produce_now(broker, _produce(b"hello"))
        assert len(answers) == 1, "the append did not answer the parked fetch on its stack"
        assert isinstance(answers[0], RawBody) and b"hello" in _records_of(answers[0])
        assert isinstance(reply, RawBody)
        assert ProduceResponse[9].decode(b"".join(reply.chunks)).responses[0] \
            .partition_responses[0].error_code == 0
        produce_now(broker, _produce(b"again"))  # an answered poll is no longer watched
        broker.wake_all()
        assert len(answers) == 1

    def deadline_case() -> None:
        async def go() -> None:
            answers: list[RawBody | None] = []
            FetchPoll(broker, _fetch(2, max_wait_ms=20), answers.append).start()
            assert answers == []
            await asyncio.sleep(0.2)
            assert len(answers) == 1 and isinstance(answers[0], RawBody)
            assert _records_of(answers[0]) == b""  # the deadline answers empty
        asyncio.run(go())

    try:
        asyncio.run(run())
        broker.stopping = False
        deadline_case()
    finally:
        log.close()
        meta.close()
