"""The Kafka listener: frames in, handlers, frames out, on asyncio.

Each connection is an asyncio Protocol that parses frames as bytes arrive and
dispatches each request at once; answers are written strictly in request order (Kafka's
per-connection ordering promise), yet requests overlap their waits (a long-polling
Fetch does not hold up a Heartbeat). Produce runs as soon as its frame is parsed, so
pipelined batches of one partition land in send order, and a Fetch parked on that partition is answered by
the append itself, in the same event-loop iteration (see handlers/fetch.FetchPoll).

Limits protect the other clients: a frame's size is checked before it is read; one
connection holds at most ``max_inflight_per_connection`` requests and about
``max_request_bytes`` of request bytes at a time (a single frame may always be read),
and stops reading while a client leaves more than ``_WRITE_HIGH`` answer bytes unread;
connections past ``max_connections`` are closed on accept. A frame that does not decode
closes only its own connection, as Kafka does.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from typing import Any, cast

from plait.broker import errors as E
from plait.broker.codec import (
    API_VERSIONS_KEY,
    SUPPORTED,
    Request,
    UnsupportedRequest,
    decode_request,
    encode_body,
    frame,
    response_header,
)
from plait.broker.handlers import HANDLERS, RawBody
from plait.broker.handlers.fetch import FetchPoll
from plait.broker.handlers.produce import produce_now
from plait.broker.handlers.versions import api_versions_response
from plait.broker.state import Broker

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
PRODUCE_KEY = 0
FETCH_KEY = 1
_JOIN_MAX = 64 * 1024  # answers up to this size are joined into one buffer
_WRITE_HIGH = 1 << 20  # pause reading while this much is queued for a slow reader
Chunks = list[bytes | bytearray | memoryview]


class _Slot:
    """One request's place in the connection's answer order."""

    __slots__ = ("api", "chunks", "done", "poll", "req", "started", "task")

    def __init__(self, req: Request | UnsupportedRequest, api: str) -> None:
        self.req = req
        self.api = api
        self.started = time.perf_counter()
        self.chunks: Chunks | None = None
        self.done = False
        self.task: asyncio.Task[Any] | None = None
        self.poll: FetchPoll | None = None


class _Connection(asyncio.Protocol):
    """One client connection, parsed in ``data_received``: no reader task, no awaits.

    Produce and Fetch (the hot path) run synchronously as their frame is parsed; a Fetch
    that must wait parks as a FetchPoll that the appending produce answers directly.
    Other APIs run as tasks. Whenever an answer completes, every answer at the head of
    the order that is ready is written with one ``transport.write``: no writer task,
    no extra loop iteration between an answer and its bytes on the socket.
    """

    def __init__(self, server: KafkaServer) -> None:
        self.server = server
        self.broker = server.broker
        self.metrics = server.broker.metrics
        self.limit = self.broker.config.max_request_bytes
        self.max_running = self.broker.config.max_inflight_per_connection
        self.transport: asyncio.Transport | None = None
        self.host = ""
        self.buf = bytearray()  # bytes received but not yet parsed into a frame
        self.pending: deque[_Slot] = deque()
        self.running = 0  # requests whose handler has not finished
        self.inflight_bytes = 0
        self.blocked = False  # parsing stopped at a limit; _finish resumes it
        self.paused = False  # transport reading paused (limits, slow reader, shutdown)
        self.write_paused = False
        self.stopped = False  # shutdown: take no more requests, answer those read
        self.broken = False  # closed: nobody reads answers any more
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- transport callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport implements asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        server = self.server
        if server.closing or len(server.conns) >= self.broker.config.max_connections:
            self.metrics.rejected_connections.inc()
            self.broken = True
            transport.close()
            return
        transport.set_write_buffer_limits(high=_WRITE_HIGH)
        peer = transport.get_extra_info("peername")
        self.host = str(peer[0]) if peer else ""
        server.conns.add(self)
        self.metrics.connections.inc()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.server.conns:
            self.server.conns.discard(self)
            self.metrics.connections.dec()
        self._abandon()  # the client is gone: nobody is left to answer
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        # A client that does not read its answers stops having its requests read.
        self.write_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._resume()

    def data_received(self, data: bytes) -> None:
        if self.broken or self.stopped:
            return
        self.buf += data
        if not self.blocked:
            self._parse()

    def eof_received(self) -> bool:
        return False  # a half-closed client has gone: close (answers in flight are dropped)

    # -- frames ------------------------------------------------------------------------

    def _parse(self) -> None:
        """Dispatch every complete frame in the buffer that the limits allow."""
        buf = self.buf
        pos = 0
        try:
            # A slow reader (write_paused) stops parsing too; resume_writing resumes it.
            while not (self.stopped or self.broken or self.write_paused) and len(buf) - pos >= 4:
                (size,) = _SIZE.unpack_from(buf, pos)
                if size < 0 or size > self.limit:
                    raise E.FrameTooLargeError(size, self.limit)
                # At most ``max_running`` requests and ``limit`` request bytes (one frame
                # always may) per connection: stop reading until a request finishes.
                if self.running >= self.max_running or (
                        self.inflight_bytes and self.inflight_bytes + size > self.limit):
                    self.blocked = True
                    self._pause()
                    break
                end = pos + 4 + size
                if len(buf) < end:
                    break
                data = bytes(buf[pos + 4 : end])
                pos = end
                self.inflight_bytes += size
                self.metrics.received(4 + size)
                req = decode_request(data)  # raises MalformedFrameError: the connection closes
                if isinstance(req, Request):
                    req.client_host = self.host
                elif _unsupported(req) is None:
                    # No answer the client could parse exists (unknown key): close, as Kafka does.
                    raise E.MalformedFrameError(
                        f"unsupported API key {req.api_key} version {req.api_version}",
                        api_key=req.api_key,
                    )
                self._dispatch(req)
        except (E.MalformedFrameError, E.FrameTooLargeError) as exc:
            self.metrics.malformed.inc()
            log.warning("closing connection from %s: %s", self.host, exc)
            self._abandon()
            if self.transport is not None:
                self.transport.close()  # answers already written are still flushed
            return
        del buf[:pos]

    def _pause(self) -> None:
        if not self.paused and self.transport is not None and not self.broken:
            self.paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        """Read again when neither a limit, a slow reader nor shutdown holds us back."""
        if self.broken or self.stopped or self.write_paused:
            return
        self.blocked = False
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self._parse()

    def _abandon(self) -> None:
        """Cancel requests still running (a long poll, a parked JoinGroup) whose answer
        no one will read, so a vanished client holds no memory or group slot."""
        self.broken = True
        pending, self.pending = self.pending, deque()
        for slot in pending:
            if slot.task is not None:
                slot.task.cancel()
            if slot.poll is not None:
                slot.poll.cancel()

    def stop_reading(self) -> None:
        """Take no more requests from this client; what was read is still answered,
        then the connection closes."""
        self.stopped = True
        self._pause()
        if not self.pending and self.transport is not None:
            self.transport.close()

    def _dispatch(self, req: Request | UnsupportedRequest) -> None:
        spec = SUPPORTED.get(req.api_key)
        slot = _Slot(req, spec.name if spec else f"key{req.api_key}")
        self.pending.append(slot)
        self.running += 1
        if isinstance(req, UnsupportedRequest):
            self._finish(slot, _unsupported(req), E.UnsupportedVersion.errno)
        elif req.api_key == PRODUCE_KEY:
            try:
                reply = produce_now(self.broker, req)
            except Exception:  # a handler bug must not take the other requests with it
                log.exception("Produce v%s from %s failed", req.api_version, self.host)
                self._finish(slot, None, E.UnknownServerError.errno)
            else:
                self._reply(slot, reply)
        elif req.api_key == FETCH_KEY:
            slot.poll = FetchPoll(self.broker, req, lambda reply: self._reply(slot, reply))
            try:
                slot.poll.start()
            except Exception:
                log.exception("Fetch v%s from %s failed", req.api_version, self.host)
                slot.poll.cancel()
                self._finish(slot, None, E.UnknownServerError.errno)
        else:
            slot.task = asyncio.ensure_future(HANDLERS[req.api_key](self.broker, req))
            slot.task.add_done_callback(lambda task: self._task_done(slot, task))

    def _task_done(self, slot: _Slot, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._finish(slot, None, E.UnknownServerError.errno)
        elif (exc := task.exception()) is not None:
            self._failed(slot, exc)
        else:
            self._reply(slot, task.result())

    def _reply(self, slot: _Slot, reply: Any) -> None:
        req = slot.req
        if reply is None:
            self._finish(slot, None, 0)
            return
        try:
            head = response_header(req.api_key, req.api_version, req.correlation_id)
            if isinstance(reply, RawBody):
                self._finish(slot, frame([head, *reply.chunks]), reply.top_error)
            else:
                body = encode_body(req.api_key, req.api_version, reply)
                self._finish(slot, frame([head, body]), _top_error(reply))
        except Exception:
            log.exception("%s v%s answer to %s failed", slot.api, req.api_version, self.host)
            self._finish(slot, None, E.UnknownServerError.errno)

    def _failed(self, slot: _Slot, exc: BaseException) -> None:
        # A handler bug must not take the connection's other requests with it; the
        # client sees its request time out and retries or fails with the error.
        log.error("%s v%s from %s failed", slot.api, slot.req.api_version, self.host,
                  exc_info=exc)
        self._finish(slot, None, E.UnknownServerError.errno)

    def _finish(self, slot: _Slot, chunks: Chunks | None, code: int) -> None:
        """Record the answer, then write every ready answer at the head, in order."""
        if slot.done:
            return
        slot.done = True
        slot.chunks = chunks
        self.running -= 1
        self.inflight_bytes -= slot.req.size
        if self.blocked:
            # Not on this stack: _finish may run inside another connection's produce.
            asyncio.get_running_loop().call_soon(self._resume)
        self.metrics.request_done(slot.api, code, time.perf_counter() - slot.started)
        pending = self.pending
        transport = self.transport
        if self.broken or transport is None or not pending or not pending[0].done:
            return
        out: Chunks = []
        while pending and pending[0].done:
            ready = pending.popleft().chunks
            if ready is not None:
                out.extend(ready)
        if out and not transport.is_closing():
            size = sum(len(c) for c in out)
            # One write: a joined small answer costs one send() syscall; big Fetch
            # answers go uncopied through writelines.
            if size <= _JOIN_MAX:
                transport.write(b"".join(out))
            else:
                transport.writelines(out)
            self.metrics.sent(size)
        if self.stopped and not pending:
            transport.close()


def _top_error(reply: Any) -> int:
    try:
        return int(reply.error_code or 0)
    except (AttributeError, TypeError):
        return 0


def _unsupported(req: UnsupportedRequest) -> Chunks | None:
    """UNSUPPORTED_VERSION answers: ApiVersions as v0 with our table (clients then retry
    with a version we serve); other APIs with the error at the version the client asked
    for, when kafka-python's schema knows that version and it has a top-level error."""
    if req.api_key == API_VERSIONS_KEY:
        body = api_versions_response(E.UnsupportedVersion.errno)
        return frame([response_header(req.api_key, 0, req.correlation_id),
                      encode_body(req.api_key, 0, body)])
    spec = SUPPORTED.get(req.api_key)
    if spec is None or not 0 <= req.api_version <= (spec.response.max_version or 0):
        return None
    if "error_code" not in spec.response.fields:
        return None
    body = spec.response(error_code=E.UnsupportedVersion.errno)
    try:
        encoded = encode_body(req.api_key, req.api_version, body)
    except (ValueError, TypeError, AttributeError, struct.error):
        return None  # a version whose required fields we cannot default: close instead
    head = struct.pack(">i", req.correlation_id)
    if spec.response.flexible_version_q(req.api_version):
        head += b"\x00"
    return frame([head, encoded])


class KafkaServer:
    """Accepts Kafka connections for one Broker; ``start`` binds, ``stop`` drains."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.closing = False
        self._server: asyncio.Server | None = None
        self.conns: set[_Connection] = set()

    async def start(self) -> int:
        cfg = self.broker.config
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), cfg.host, cfg.port, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.broker.port = int(sock.getsockname()[1])
        return self.broker.port

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, answer what is in flight (long polls end early), then close."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        self.broker.wake_all()
        conns = list(self.conns)
        for conn in conns:
            conn.stop_reading()
        if conns:
            _done, late = await asyncio.wait([c.closed for c in conns], timeout=grace_s)
            for conn in conns:
                if not conn.closed.done() and conn.transport is not None:
                    conn.transport.abort()  # a request still parked past the grace period
            if late:
                await asyncio.wait(late, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()
