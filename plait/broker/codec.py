"""Request decoding and response framing, on bytes only (no sockets).

The per-API message classes come from kafka-python's ``kafka.protocol``, which are
generated from Kafka's own JSON message definitions: we do not transcribe schemas.
The table below says which versions plait implements; ApiVersions advertises exactly
it. Produce and Fetch, the per-message requests, are decoded by the hand readers in
request_wire.py (checked against these same classes in tests). Record sets stay opaque
bytes: Produce hands them to the log as decoded, and Fetch builds its body around
stored bytes (see fetch_wire.py).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka.protocol.admin import (
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
)
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import (
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
)

from plait.broker.errors import MalformedFrameError
from plait.broker.request_wire import LEAN_DECODERS


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """One API the broker implements, with the inclusive version range it serves."""

    key: int
    name: str
    request: Any
    response: Any
    min_version: int
    max_version: int


# Versions chosen so that librdkafka 2.12, kafka-python 3, aiokafka 0.14 and the Java
# client all find a common version, and so that no feature we do not implement is
# implied: Fetch stops at 12 and Metadata at 12 because 13+ address topics by id only;
# Produce starts at 3 because older versions carry message sets v0/v1, which the log
# does not store; OffsetFetch stops at 7 because 8+ batches groups.
_SPECS = [
    ApiSpec(0, "Produce", ProduceRequest, ProduceResponse, 3, 9),
    ApiSpec(1, "Fetch", FetchRequest, FetchResponse, 4, 12),
    ApiSpec(2, "ListOffsets", ListOffsetsRequest, ListOffsetsResponse, 1, 7),
    ApiSpec(3, "Metadata", MetadataRequest, MetadataResponse, 0, 12),
    ApiSpec(8, "OffsetCommit", OffsetCommitRequest, OffsetCommitResponse, 2, 8),
    ApiSpec(9, "OffsetFetch", OffsetFetchRequest, OffsetFetchResponse, 1, 7),
    ApiSpec(10, "FindCoordinator", FindCoordinatorRequest, FindCoordinatorResponse, 0, 4),
    ApiSpec(11, "JoinGroup", JoinGroupRequest, JoinGroupResponse, 0, 9),
    ApiSpec(12, "Heartbeat", HeartbeatRequest, HeartbeatResponse, 0, 4),
    ApiSpec(13, "LeaveGroup", LeaveGroupRequest, LeaveGroupResponse, 0, 5),
    ApiSpec(14, "SyncGroup", SyncGroupRequest, SyncGroupResponse, 0, 5),
    ApiSpec(15, "DescribeGroups", DescribeGroupsRequest, DescribeGroupsResponse, 0, 5),
    ApiSpec(16, "ListGroups", ListGroupsRequest, ListGroupsResponse, 0, 4),
    ApiSpec(18, "ApiVersions", ApiVersionsRequest, ApiVersionsResponse, 0, 3),
    ApiSpec(19, "CreateTopics", CreateTopicsRequest, CreateTopicsResponse, 2, 7),
    ApiSpec(20, "DeleteTopics", DeleteTopicsRequest, DeleteTopicsResponse, 1, 5),
    ApiSpec(22, "InitProducerId", InitProducerIdRequest, InitProducerIdResponse, 0, 4),
    ApiSpec(32, "DescribeConfigs", DescribeConfigsRequest, DescribeConfigsResponse, 1, 4),
]
SUPPORTED: dict[int, ApiSpec] = {s.key: s for s in _SPECS}
API_VERSIONS_KEY = 18
_PEEK = struct.Struct(">hhi")


@dataclass(slots=True)
class Request:
    """A decoded request: header fields plus the kafka-python body object."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any
    size: int
    client_host: str = ""

    @property
    def spec(self) -> ApiSpec:
        return SUPPORTED[self.api_key]


@dataclass(frozen=True, slots=True)
class UnsupportedRequest:
    """A frame whose API key or version plait does not serve; header fields only."""

    api_key: int
    api_version: int
    correlation_id: int
    size: int


def peek_header(frame: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) from a frame body (size prefix removed)."""
    if len(frame) < _PEEK.size:
        raise MalformedFrameError(
            f"request header needs at least {_PEEK.size} bytes, got {len(frame)}", position=0
        )
    key, version, corr = _PEEK.unpack_from(frame, 0)
    return int(key), int(version), int(corr)


def decode_request(frame: bytes | bytearray | memoryview) -> Request | UnsupportedRequest:
    """Decode one request frame (without its 4-byte size prefix).

    Returns UnsupportedRequest when the key/version is not in SUPPORTED (the caller
    answers UNSUPPORTED_VERSION); raises MalformedFrameError when the bytes do not
    parse as the version they claim. Bytes after the body are ignored, as Kafka does.
    """
    key, version, corr = peek_header(frame)
    spec = SUPPORTED.get(key)
    if spec is None or not spec.min_version <= version <= spec.max_version:
        return UnsupportedRequest(key, version, corr, len(frame))
    view = memoryview(frame)
    client_id, pos = _read_header_tail(view, spec.request.flexible_version_q(version), key)
    lean = LEAN_DECODERS.get(key)
    if lean is not None:  # the hot APIs: a hand path checked against kafka-python in tests
        return Request(key, version, corr, client_id, lean(view, pos, version), len(frame))
    try:
        body = spec.request.decode(view[pos:], version=version, header=False)
    except Exception as exc:  # kafka-python raises struct.error, ValueError, IndexError...
        raise MalformedFrameError(
            f"{spec.name} v{version} request did not decode: {type(exc).__name__}: {exc}",
            api_key=key,
            position=pos,
        ) from exc
    return Request(key, version, corr, client_id, body, len(frame))


def _read_header_tail(view: memoryview, flexible: bool, key: int) -> tuple[str | None, int]:
    """Read client_id (and the header's tag buffer when flexible) after the fixed 8 bytes.

    Hand-written rather than kafka-python's header decoder because that one copies
    the whole frame (record sets included) into a BytesIO first.
    """
    pos = _PEEK.size
    if len(view) < pos + 2:
        raise MalformedFrameError("request header ends before client_id", api_key=key, position=pos)
    (n,) = struct.unpack_from(">h", view, pos)
    pos += 2
    client_id: str | None = None
    if n >= 0:
        if len(view) < pos + n:
            raise MalformedFrameError(
                f"client_id claims {n} bytes, {len(view) - pos} remain", api_key=key, position=pos
            )
        client_id = bytes(view[pos : pos + n]).decode("utf-8", "replace")
        pos += n
    elif n != -1:
        raise MalformedFrameError(f"client_id length {n} is negative", api_key=key, position=pos)
    if flexible:
        count, pos = _uvarint(view, pos, key)
        for _ in range(count):
            _tag, pos = _uvarint(view, pos, key)
            size, pos = _uvarint(view, pos, key)
            if len(view) < pos + size:
                raise MalformedFrameError("header tagged field is truncated", api_key=key, position=pos)
            pos += size
    return client_id, pos


def _uvarint(view: memoryview, pos: int, key: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(view) or shift > 28:
            raise MalformedFrameError("bad unsigned varint in header", api_key=key, position=pos)
        b = view[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def response_header(api_key: int, version: int, correlation_id: int) -> bytes:
    """Response header bytes: v1 (with an empty tag buffer) for flexible versions.

    ApiVersions always answers with header v0, so that a client that does not yet know
    the broker's versions can read the correlation id (KIP-511).
    """
    spec = SUPPORTED.get(api_key)
    flexible = (
        spec is not None
        and api_key != API_VERSIONS_KEY
        and spec.response.flexible_version_q(version)
    )
    head = struct.pack(">i", correlation_id)
    return head + b"\x00" if flexible else head


def encode_body(api_key: int, version: int, body: Any) -> bytes:
    """Encode a kafka-python response object's body (no header, no frame)."""
    return bytes(body.encode(version=version, header=False, framed=False))


def frame(parts: Sequence[bytes | bytearray | memoryview]) -> list[bytes | bytearray | memoryview]:
    """Prefix ``parts`` with their total size; the parts themselves are not copied."""
    size = sum(len(p) for p in parts)
    return [struct.pack(">i", size), *parts]


def api_versions_table() -> list[tuple[int, int, int]]:
    """(key, min, max) for every API served, for the ApiVersions response."""
    return [(s.key, s.min_version, s.max_version) for s in _SPECS]
