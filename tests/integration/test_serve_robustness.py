"""A live plait serve under bad input: malformed, truncated, oversized and random frames.

Each bad connection may be answered with an error or closed, but the broker must not
crash or hang, and a second, well-behaved client keeps working throughout.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
)

from plait.broker.testing import ServeProcess


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data: Path = tmp_path_factory.mktemp("serve") / "data"
    proc = ServeProcess(data, "--max-request-mib", "1", "--max-inflight", "4").start()
    yield proc
    assert proc.stop() == 0, proc.output()[-3000:]


def _connect(b: ServeProcess) -> socket.socket:
    s = socket.create_connection((b.host, b.kafka_port), timeout=5)
    return s


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _roundtrip(s: socket.socket, req: object, corr: int) -> bytes:
    req.with_header(correlation_id=corr, client_id="probe")  # type: ignore[attr-defined]
    s.sendall(bytes(req.encode(header=True, framed=True)))  # type: ignore[attr-defined]
    (size,) = struct.unpack(">i", _recv_exact(s, 4))
    return _recv_exact(s, size)


def _healthy(b: ServeProcess, s: socket.socket, corr: int) -> None:
    """The well-behaved client still gets correct answers."""
    body = _roundtrip(s, MetadataRequest(version=1, topics=None), corr)
    assert struct.unpack(">i", body[:4])[0] == corr
    meta = MetadataResponse.decode(body[4:], version=1)
    assert meta.brokers[0].port == b.kafka_port
    assert b.proc is not None and b.proc.poll() is None


def _closed_or_answered(s: socket.socket) -> None:
    """After a bad frame the broker either answers or closes; it never leaves us hanging."""
    s.settimeout(5)
    try:
        s.recv(65536)
    except ConnectionResetError:
        pass
    except TimeoutError as exc:
        raise AssertionError("broker neither answered nor closed a bad connection") from exc


def test_unsupported_api_versions_answered_as_v0_with_table(broker: ServeProcess) -> None:
    with _connect(broker) as s:
        s.sendall(struct.pack(">ihhih", 10, 18, 99, 77, -1))
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        body = _recv_exact(s, size)
        assert struct.unpack(">i", body[:4])[0] == 77
        resp = ApiVersionsResponse.decode(body[4:], version=0)
        assert resp.error_code == 35
        assert any(k.api_key == 0 for k in resp.api_keys)
        # The connection stays usable: the client retries with a version we serve.
        body = _roundtrip(s, ApiVersionsRequest(version=3, client_software_name="p",
                                                client_software_version="1"), 78)
        assert ApiVersionsResponse.decode(body[4:], version=3).error_code == 0


def test_unknown_api_key_closes_only_that_connection(broker: ServeProcess) -> None:
    with _connect(broker) as good, _connect(broker) as bad:
        bad.sendall(struct.pack(">ihhih", 10, 999, 0, 1, -1))
        _closed_or_answered(bad)
        _healthy(broker, good, 1)


def test_oversized_frame_is_refused_before_it_is_read(broker: ServeProcess) -> None:
    with _connect(broker) as good, _connect(broker) as bad:
        bad.sendall(struct.pack(">i", 2_000_000_000) + b"\x00" * 100)
        _closed_or_answered(bad)
        bad.sendall(struct.pack(">i", -5))
        _healthy(broker, good, 2)


def test_truncated_frame_then_disconnect(broker: ServeProcess) -> None:
    with _connect(broker) as good:
        for cut in (1, 3, 7, 20):
            with _connect(broker) as bad:
                frame = struct.pack(">ihhih", 30, 3, 1, 5, 3) + b"abc" + b"\x00" * 20
                bad.sendall(frame[:cut])
        _healthy(broker, good, 3)


def test_pipelined_requests_answered_in_order(broker: ServeProcess) -> None:
    with _connect(broker) as s:
        out = b""
        for corr in range(20):
            req = MetadataRequest(version=1, topics=None)
            req.with_header(correlation_id=corr, client_id="pipe")
            out += bytes(req.encode(header=True, framed=True))
        s.sendall(out)
        seen = []
        for _ in range(20):
            (size,) = struct.unpack(">i", _recv_exact(s, 4))
            seen.append(struct.unpack(">i", _recv_exact(s, size)[:4])[0])
        assert seen == list(range(20))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 32, 777]),
       version=st.integers(-1, 15), payload=st.binary(max_size=400))
def test_fuzzed_frames_never_break_the_broker(broker: ServeProcess, key: int, version: int,
                                              payload: bytes) -> None:
    with _connect(broker) as good, _connect(broker) as bad:
        body = struct.pack(">hhih", key, version, 9, 1) + b"f" + payload
        bad.sendall(struct.pack(">i", len(body)) + body)
        bad.settimeout(2)
        try:
            head = bad.recv(4)
        except (TimeoutError, ConnectionResetError):
            head = b""
        if len(head) == 4:
            (size,) = struct.unpack(">i", head)
            assert 0 <= size < 1 << 20
        _healthy(broker, good, 4)


def _seed_frames() -> list[bytes]:
    from kafka.protocol.consumer import FetchRequest, JoinGroupRequest
    from kafka.protocol.producer import ProduceRequest

    P, F, J = ProduceRequest, FetchRequest, JoinGroupRequest
    reqs = [
        MetadataRequest(version=9, topics=[MetadataRequest.MetadataRequestTopic(name="fz")],
                        allow_auto_topic_creation=True),
        P(version=9, transactional_id=None, acks=1, timeout_ms=100, topic_data=[
            P.TopicProduceData(name="fz", partition_data=[
                P.TopicProduceData.PartitionProduceData(index=0, records=b"\x00" * 70)])]),
        F(version=11, replica_id=-1, max_wait_ms=50, min_bytes=1, max_bytes=1000,
          isolation_level=0, session_id=0, session_epoch=-1, topics=[
              F.FetchTopic(topic="fz", partitions=[F.FetchTopic.FetchPartition(
                  partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                  partition_max_bytes=1000)])], forgotten_topics_data=[], rack_id=""),
        J(version=5, group_id="fzg", session_timeout_ms=6000, rebalance_timeout_ms=1000,
          member_id="", group_instance_id=None, protocol_type="consumer",
          protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"")]),
    ]
    out = []
    for r in reqs:
        r.with_header(correlation_id=3, client_id="fz")
        out.append(bytes(r.encode(header=True, framed=True))[4:])
    return out


SEEDS = _seed_frames()


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), flips=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 30))
def test_mutated_real_requests_never_break_the_broker(broker: ServeProcess, seed: bytes,
                                                      flips: list[tuple[int, int]],
                                                      cut: int) -> None:
    body = bytearray(seed)
    for pos, value in flips:
        body[8 + pos % (len(body) - 8)] = value  # keep key/version/correlation id intact
    body = body[: len(body) - cut] if cut < len(body) - 8 else body
    with _connect(broker) as good, _connect(broker) as bad:
        bad.sendall(struct.pack(">i", len(body)) + bytes(body))
        bad.settimeout(1.5)
        try:
            bad.recv(65536)
        except (TimeoutError, ConnectionResetError):
            pass
        _healthy(broker, good, 5)


def test_no_connections_leak_after_fuzzing(broker: ServeProcess) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + 10
    value = -1.0
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(
            f"http://{broker.host}:{broker.http_port}/metrics", timeout=5).read().decode()
        line = next(ln for ln in text.splitlines() if ln.startswith("plait_broker_connections "))
        value = float(line.split()[1])
        if value == 0:
            break
        time.sleep(0.2)
    assert value == 0, f"{value} connections still open after every client closed"


def test_connections_over_the_limit_are_refused(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "d", "--max-connections", "2") as b:
        first, second = _connect(b), _connect(b)
        try:
            _healthy(b, first, 1)
            third = _connect(b)
            third.settimeout(5)
            assert third.recv(1) == b""  # closed on accept
            third.close()
            _healthy(b, second, 2)
        finally:
            first.close()
            second.close()


def test_offset_fetch_without_a_group_id_is_invalid_group_id(broker: ServeProcess) -> None:
    from kafka.protocol.consumer import OffsetFetchRequest, OffsetFetchResponse

    with _connect(broker) as s:
        for corr, group in enumerate((None, "")):
            req = OffsetFetchRequest(version=5, group_id=group, topics=None)
            body = _roundtrip(s, req, corr)
            resp = OffsetFetchResponse.decode(body[4:], version=5)
            assert resp.error_code == 24  # INVALID_GROUP_ID
        _healthy(broker, s, 99)
