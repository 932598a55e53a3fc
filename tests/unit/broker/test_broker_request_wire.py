"""The hand-written Produce/Fetch request readers and Produce answer writer, checked
against kafka-python's schema-generated classes (Kafka's JSON definitions)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from plait.broker import errors as E
from plait.broker.codec import Request, decode_request
from plait.broker.produce_wire import PartitionResult, encode_produce_body
from plait.broker.request_wire import FetchBody, ProduceBody

P = ProduceRequest
F = FetchRequest


def _frame(req: object) -> bytes:
    req.with_header(correlation_id=3, client_id="cid")  # type: ignore[attr-defined]
    return bytes(req.encode(header=True, framed=True))[4:]  # type: ignore[attr-defined]


def _produce(version: int, topics: list[tuple[str, list[tuple[int, bytes | None]]]],
             txn: str | None = None, acks: int = -1) -> bytes:
    data = [P.TopicProduceData(name=n, partition_data=[
        P.TopicProduceData.PartitionProduceData(index=i, records=r) for i, r in parts])
        for n, parts in topics]
    return _frame(P(version=version, transactional_id=txn, acks=acks, timeout_ms=1500,
                    topic_data=data))


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
produce_topics = st.lists(st.tuples(names, st.lists(st.tuples(
    st.integers(0, 2**31 - 1), st.one_of(st.none(), st.binary(max_size=64))), max_size=3)),
    max_size=3)


@settings(max_examples=100, deadline=None)
@given(version=st.integers(3, 9), topics=produce_topics,
       txn=st.one_of(st.none(), names), acks=st.sampled_from([-1, 0, 1]))
def test_produce_reader_agrees_with_kafka_python(version: int, topics: list, txn: str | None,
                                                 acks: int) -> None:
    req = decode_request(_produce(version, topics, txn, acks))
    assert isinstance(req, Request) and isinstance(req.body, ProduceBody)
    body = req.body
    assert (body.transactional_id, body.acks, body.timeout_ms) == (txn, acks, 1500)
    got = [(t.name, [(p.index, None if p.records is None else bytes(p.records))
                     for p in t.partition_data]) for t in body.topic_data]
    assert got == topics


fetch_parts = st.lists(st.tuples(st.integers(0, 1000), st.integers(-1, 2**62),
                                 st.integers(0, 2**31 - 1)), max_size=3)


@settings(max_examples=100, deadline=None)
@given(version=st.integers(4, 12), topics=st.lists(st.tuples(names, fetch_parts), max_size=3),
       forgotten=st.lists(st.tuples(names, st.lists(st.integers(0, 99), max_size=3)), max_size=2),
       limits=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**8)))
def test_fetch_reader_agrees_with_kafka_python(version: int, topics: list, forgotten: list,
                                               limits: tuple[int, int, int]) -> None:
    FT, FP = F.FetchTopic, F.FetchTopic.FetchPartition
    req = F(version=version, replica_id=-1, max_wait_ms=limits[0], min_bytes=limits[1],
            max_bytes=limits[2], isolation_level=1, session_id=7, session_epoch=2,
            topics=[FT(topic=n, partitions=[
                FP(partition=p, current_leader_epoch=4, fetch_offset=o, last_fetched_epoch=3,
                   log_start_offset=-1, partition_max_bytes=m) for p, o, m in parts])
                for n, parts in topics],
            forgotten_topics_data=[F.ForgottenTopic(topic=n, partitions=ps)
                                   for n, ps in forgotten],
            rack_id="rack-a")
    decoded = decode_request(_frame(req))
    assert isinstance(decoded, Request) and isinstance(decoded.body, FetchBody)
    body = decoded.body
    assert (body.replica_id, body.max_wait_ms, body.min_bytes, body.max_bytes,
            body.isolation_level) == (-1, *limits, 1)
    got = [(t.topic, [(p.partition, p.fetch_offset, p.partition_max_bytes) for p in t.partitions])
           for t in body.topics]
    assert got == topics
    if version >= 7:
        assert (body.session_id, body.session_epoch) == (7, 2)
        assert body.forgotten_topics_data == forgotten
    if version >= 9:
        assert all(p.current_leader_epoch == 4 for t in body.topics for p in t.partitions)
    if version >= 11:
        assert body.rack_id == "rack-a"


@pytest.mark.parametrize("version", [3, 8, 9])
def test_every_truncated_produce_raises_malformed(version: int) -> None:
    frame = _produce(version, [("orders", [(0, b"x" * 40), (1, b"y" * 10)])])
    header_end = 8 + 2 + 3
    for cut in range(header_end, len(frame)):
        with pytest.raises(E.MalformedFrameError) as info:
            decode_request(frame[:cut])
        assert info.value.api_key == 0


def test_records_length_past_the_frame_is_malformed() -> None:
    frame = bytearray(_produce(8, [("t", [(0, b"abc")])]))
    frame[-7:-3] = (1000).to_bytes(4, "big")  # records length claims 1000 bytes
    with pytest.raises(E.MalformedFrameError, match="records"):
        decode_request(bytes(frame))


results = st.lists(st.tuples(names, st.lists(st.builds(
    PartitionResult, st.integers(0, 2**31 - 1), st.integers(-1, 100), st.integers(-1, 2**62),
    st.integers(-1, 2**50), st.integers(-1, 2**62), st.one_of(st.none(), names)), max_size=3)),
    max_size=3)


@settings(max_examples=100, deadline=None)
@given(version=st.integers(3, 9), topics=results)
def test_produce_answer_decodes_with_kafka_python(version: int, topics: list) -> None:
    decoded = ProduceResponse[version].decode(encode_produce_body(version, topics))
    assert decoded.throttle_time_ms == 0
    got = []
    for t in decoded.responses:
        parts = []
        for p in t.partition_responses:
            start = p.log_start_offset if version >= 5 else -1
            message = p.error_message if version >= 8 else None
            parts.append(PartitionResult(p.index, p.error_code, p.base_offset,
                                         p.log_append_time_ms, start, message))
            if version >= 8:
                assert p.record_errors == []
        got.append((t.name, parts))
    want = [(n, [r._replace(log_start_offset=r.log_start_offset if version >= 5 else -1,
                            error_message=r.error_message if version >= 8 else None)
                 for r in parts]) for n, parts in topics]
    assert got == want
