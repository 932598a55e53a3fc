"""The codec against kafka-python's schema-generated classes (Kafka's JSON definitions)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.metadata import ApiVersionsResponse, MetadataRequest
from kafka.protocol.producer import ProduceRequest

from plait.broker import errors as E
from plait.broker.codec import (
    SUPPORTED,
    Request,
    UnsupportedRequest,
    decode_request,
    response_header,
)
from plait.broker.fetch_wire import PartitionData, TopicData, encode_fetch_body
from plait.broker.handlers.versions import api_versions_response


def _frame(req: object, corr: int = 7, client: str = "c") -> bytes:
    req.with_header(correlation_id=corr, client_id=client)  # type: ignore[attr-defined]
    return bytes(req.encode(header=True, framed=True))[4:]  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [0, 4, 9, 12])
def test_decodes_metadata_request_at_every_header_version(version: int) -> None:
    topics = [MetadataRequest.MetadataRequestTopic(name="orders")]
    req = decode_request(_frame(MetadataRequest(version=version, topics=topics,
                                                allow_auto_topic_creation=True)))
    assert isinstance(req, Request)
    assert (req.api_key, req.api_version, req.correlation_id, req.client_id) == (3, version, 7, "c")
    assert [t.name for t in req.body.topics] == ["orders"]


def test_produce_records_arrive_as_the_bytes_sent() -> None:
    records = bytes(range(256)) * 3
    P = ProduceRequest
    req = P(version=9, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[
        P.TopicProduceData(name="t", partition_data=[
            P.TopicProduceData.PartitionProduceData(index=2, records=records)])])
    decoded = decode_request(_frame(req))
    assert isinstance(decoded, Request)
    assert bytes(decoded.body.topic_data[0].partition_data[0].records) == records


def test_unknown_key_and_version_are_unsupported_not_errors() -> None:
    frame = struct.pack(">hhih", 1000, 0, 42, -1)
    assert decode_request(frame) == UnsupportedRequest(1000, 0, 42, len(frame))
    too_new = struct.pack(">hhih", 1, 99, 5, -1)
    assert isinstance(decode_request(too_new), UnsupportedRequest)


@pytest.mark.parametrize("frame", [b"", b"\x00\x03", struct.pack(">hhih", 3, 9, 1, 50) + b"x"])
def test_truncated_headers_raise_malformed(frame: bytes) -> None:
    with pytest.raises(E.MalformedFrameError):
        decode_request(frame)


def test_truncated_body_raises_malformed_with_the_api_key() -> None:
    frame = _frame(MetadataRequest(version=4, topics=[
        MetadataRequest.MetadataRequestTopic(name="x" * 40)], allow_auto_topic_creation=True))
    with pytest.raises(E.MalformedFrameError) as info:
        decode_request(frame[:-20])
    assert info.value.api_key == 3


def test_api_versions_response_header_is_never_flexible() -> None:
    assert response_header(18, 3, 9) == struct.pack(">i", 9)
    assert response_header(3, 9, 9) == struct.pack(">i", 9) + b"\x00"
    assert response_header(3, 8, 9) == struct.pack(">i", 9)


def test_api_versions_advertises_exactly_the_table() -> None:
    body = api_versions_response().encode(version=3)
    decoded = ApiVersionsResponse.decode(bytes(body), version=3)
    got = {(k.api_key, k.min_version, k.max_version) for k in decoded.api_keys}
    assert got == {(s.key, s.min_version, s.max_version) for s in SUPPORTED.values()}


def test_error_code_table_is_consistent() -> None:
    assert E.error_for_code(3) is E.UnknownTopicOrPartition and E.is_retriable(3)
    assert not E.is_retriable(E.TopicAlreadyExists.errno)
    assert E.error_for_code(12345) is E.UnknownServerError


@pytest.mark.parametrize("version", range(4, 13))
def test_fetch_body_decodes_with_kafkas_schema(version: int) -> None:
    topics = [
        TopicData("orders", [PartitionData(0, 0, 10, 10, 2, b"batch-bytes"),
                             PartitionData(3, 1, -1, -1, -1, None),
                             PartitionData(4, 0, 5, 5, 0, b"")]),
        TopicData("empty", []),
    ]
    chunks = encode_fetch_body(version, topics, throttle_time_ms=5)
    assert any(c is topics[0].partitions[0].records for c in chunks), "records were copied"
    decoded = FetchResponse.decode(b"".join(chunks), version=version)
    assert decoded.throttle_time_ms == 5
    (orders, empty) = decoded.responses
    assert (orders.topic, empty.topic, empty.partitions) == ("orders", "empty", [])
    p0, p3, p4 = orders.partitions
    assert (p0.partition_index, p0.error_code, p0.high_watermark, bytes(p0.records)) == (
        0, 0, 10, b"batch-bytes")
    assert (p3.partition_index, p3.error_code, p3.records) == (3, 1, None)
    assert bytes(p4.records) == b""
    if version >= 5:
        assert p0.log_start_offset == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_frames_decode_or_raise_typed_errors(data: bytes) -> None:
    try:
        decode_request(data)
    except E.MalformedFrameError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SUPPORTED)), st.data())
def test_mutated_valid_frames_decode_or_raise_typed_errors(key: int, data: st.DataObject) -> None:
    spec = SUPPORTED[key]
    version = data.draw(st.integers(spec.min_version, spec.max_version))
    frame = bytearray(struct.pack(">hhih", key, version, 1, 1) + b"c")
    if spec.request.flexible_version_q(version):
        frame += b"\x00"
    frame += data.draw(st.binary(max_size=200))
    try:
        decode_request(bytes(frame))
    except E.MalformedFrameError:
        pass
