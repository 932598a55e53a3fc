"""The Kafka listener: frames in, handlers, frames out, on asyncio.

Per connection, a reader decodes frames and starts one task per request, and a writer
sends the answers strictly in request order (Kafka's per-connection ordering promise),
so pipelined requests overlap their waits (a long-polling Fetch does not hold up a
Heartbeat) yet answers never cross. Produce tasks start in arrival order and append
before their first await, so pipelined batches of one partition land in send order.

Limits protect the other clients: a frame's size is checked before it is read; one
connection holds at most ``max_inflight_per_connection`` requests and about
``max_request_bytes`` of request bytes at a time (a single frame may always be read);
connections past ``max_connections`` are closed on accept. A frame that does not decode
closes only its own connection, as Kafka does.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

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
from plait.broker.handlers.versions import api_versions_response
from plait.broker.state import Broker

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
Chunks = list[bytes | bytearray | memoryview]


class _Connection:
    def __init__(self, server: KafkaServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.broker = server.broker
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.host = str(peer[0]) if peer else ""
        self.pending: deque[asyncio.Task[Chunks | None]] = deque()
        self.slots = asyncio.Semaphore(self.broker.config.max_inflight_per_connection)
        self.inflight_bytes = 0
        self.changed = asyncio.Condition()
        self.have_work = asyncio.Event()
        self.reading_done = False
        self.read_task: asyncio.Task[None] | None = None

    def _room_for(self, size: int, limit: int) -> Callable[[], bool]:
        """Predicate: this frame fits the connection's byte budget (one frame always may)."""
        return lambda: self.inflight_bytes == 0 or self.inflight_bytes + size <= limit

    def _abandon(self) -> None:
        """Cancel requests still running (a long poll, a parked JoinGroup) whose answer
        no one will read, so a vanished client holds no memory or group slot."""
        for task in self.pending:
            task.cancel()

    def stop_reading(self) -> None:
        """Take no more requests from this client; what was read is still answered."""
        if self.read_task is not None:
            self.read_task.cancel()

    async def run(self) -> None:
        writer_task = asyncio.create_task(self._write_loop())
        self.read_task = asyncio.create_task(self._read_loop())
        try:
            await self.read_task
        except (E.MalformedFrameError, E.FrameTooLargeError) as exc:
            self.broker.metrics.malformed.inc()
            log.warning("closing connection from %s: %s", self.host, exc)
            self._abandon()
        except (asyncio.IncompleteReadError, ConnectionError):
            self._abandon()  # the client is gone: nobody is left to answer
        except asyncio.CancelledError:
            # Shutdown stopped the reader (see stop_reading); the writer still answers
            # every request already read (long polls have been woken to end early).
            pass
        finally:
            self.reading_done = True
            self.have_work.set()
            try:
                await writer_task
            except (ConnectionError, RuntimeError) as exc:  # socket gone; nothing to send
                log.debug("writer for %s ended: %s", self.host, exc)
            self.writer.close()

    async def _read_loop(self) -> None:
        limit = self.broker.config.max_request_bytes
        while not self.server.closing:
            head = await self.reader.readexactly(4)
            (size,) = _SIZE.unpack(head)
            if size < 0 or size > limit:
                raise E.FrameTooLargeError(size, limit)
            async with self.changed:
                await self.changed.wait_for(self._room_for(size, limit))
                self.inflight_bytes += size
            data = await self.reader.readexactly(size)
            self.broker.metrics.bytes_in.inc(4 + size)
            req = decode_request(data)  # raises MalformedFrameError: the connection closes
            if isinstance(req, Request):
                req.client_host = self.host
            elif _unsupported(req) is None:
                # No answer the client could parse exists (unknown key): close, as Kafka does.
                raise E.MalformedFrameError(
                    f"unsupported API key {req.api_key} version {req.api_version}",
                    api_key=req.api_key,
                )
            await self.slots.acquire()
            self.pending.append(asyncio.create_task(self._serve(req)))
            self.have_work.set()

    async def _serve(self, req: Request | UnsupportedRequest) -> Chunks | None:
        started = time.perf_counter()
        spec = SUPPORTED.get(req.api_key)
        api = spec.name if spec else f"key{req.api_key}"
        code = 0
        try:
            if isinstance(req, UnsupportedRequest):
                code = E.UnsupportedVersion.errno
                return _unsupported(req)
            reply = await HANDLERS[req.api_key](self.broker, req)
            if reply is None:
                return None
            head = response_header(req.api_key, req.api_version, req.correlation_id)
            if isinstance(reply, RawBody):
                code = reply.top_error
                return frame([head, *reply.chunks])
            code = _top_error(reply)
            return frame([head, encode_body(req.api_key, req.api_version, reply)])
        except Exception:
            # A handler bug must not take the connection's other requests with it; the
            # client sees its request time out and retries or fails with the error.
            code = E.UnknownServerError.errno
            log.exception("%s v%s from %s failed", api, req.api_version, self.host)
            return None
        finally:
            self.broker.metrics.requests.labels(api, str(code)).inc()
            self.broker.metrics.latency.labels(api).observe(time.perf_counter() - started)
            self.slots.release()
            async with self.changed:
                self.inflight_bytes -= req.size
                self.changed.notify_all()

    async def _write_loop(self) -> None:
        while True:
            if not self.pending:
                if self.reading_done:
                    return
                self.have_work.clear()
                await self.have_work.wait()
                continue
            task = self.pending[0]
            try:
                chunks = await task
            except asyncio.CancelledError:
                chunks = None
                if not task.cancelled():
                    raise  # the writer itself is being cancelled
            self.pending.popleft()
            if chunks is None:
                continue
            try:
                self.writer.writelines(chunks)
                self.broker.metrics.bytes_out.inc(sum(len(c) for c in chunks))
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                # The peer went away: abort so the reader stops too, and drop the rest.
                self.writer.transport.abort()
                self.stop_reading()
                for rest in self.pending:
                    rest.cancel()
                self.pending.clear()
                return


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
        self._conns: dict[asyncio.Task[None], _Connection] = {}

    async def start(self) -> int:
        cfg = self.broker.config
        self._server = await asyncio.start_server(
            self._accept, cfg.host, cfg.port, limit=1 << 16, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.broker.port = int(sock.getsockname()[1])
        return self.broker.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        metrics = self.broker.metrics
        if self.closing or len(self._conns) >= self.broker.config.max_connections:
            metrics.rejected_connections.inc()
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(self, reader, writer)
        self._conns[task] = conn
        metrics.connections.inc()
        try:
            await conn.run()
        finally:
            metrics.connections.dec()
            self._conns.pop(task, None)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, answer what is in flight (long polls end early), then close."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        self.broker.wake_all()
        for conn in list(self._conns.values()):
            conn.stop_reading()
        if self._conns:
            _done, still = await asyncio.wait(set(self._conns), timeout=grace_s)
            for task in still:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
