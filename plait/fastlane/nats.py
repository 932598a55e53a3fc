"""The distributed fast lane on core NATS subjects (nats-py), no persistence.

A message is one or more whole stored RecordBatch v2 of one partition, published on
``plait.<topic>.<partition>``; its offsets travel in the headers ``Plait-Base-Offset``
and ``Plait-Last-Offset`` so a subscriber can place it without decoding it.

Threads: nats-py is asyncio, the log's appenders are threads. One event loop runs in
a daemon thread; ``publish`` only appends to a bounded outbox and wakes the loop, so
an appender never waits for the network. Subscriber callbacks run on the loop thread.

Failure behaviour (why it is safe to be lossy): the log fills every gap, so this lane
drops rather than buffers whenever buffering could grow without bound:

- while disconnected (including before the first connection) publishes are dropped;
- when the outbox holds more than ``max_outbox_bytes`` new publishes are dropped;
- an append larger than the server's ``max_payload`` is split at batch boundaries,
  and a single batch over it is dropped.

The connection is retried forever, every ``reconnect_wait`` seconds, from the first
attempt on (nats-py alone gives up on a failed first connect); nats-py re-sends the
subscriptions after a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from plait.fastlane.errors import FastLaneClosedError
from plait.fastlane.interface import BatchCallback, subject_for
from plait.protocol.batch_header import iter_batches

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSub

logger = logging.getLogger("plait.fastlane")

BASE_HEADER = "Plait-Base-Offset"
LAST_HEADER = "Plait-Last-Offset"
# Room left in max_payload for the HPUB header block (two offset headers).
_HEADER_ROOM = 128
_T = TypeVar("_T")


@dataclass(eq=False)
class NatsSubscription:
    lane: NatsFastLane
    subject: str
    callback: BatchCallback
    handle: NatsSub | None = None
    active: bool = True

    def unsubscribe(self) -> None:
        if not self.active:
            return
        self.active = False
        self.lane._drop_subscription(self)


@dataclass
class NatsLaneStats:
    """Counters since the lane was opened (messages, not events)."""

    published: int = 0
    received: int = 0
    dropped_disconnected: int = 0
    dropped_overflow: int = 0
    dropped_oversize: int = 0
    connects: int = 0
    disconnects: int = 0


class NatsFastLane:
    """A fast lane over core NATS; see the module docstring for its guarantees."""

    def __init__(
        self,
        servers: list[str],
        *,
        tls: ssl.SSLContext | None = None,
        tls_hostname: str | None = None,
        reconnect_wait: float = 0.25,
        connect_timeout: float = 1.0,
        max_outbox_bytes: int = 64 << 20,
        name: str = "plait-fastlane",
    ) -> None:
        # Imported here so that plait without the NATS extra still imports.
        import nats  # noqa: F401

        self.servers = list(servers)
        self.stats = NatsLaneStats()
        self._tls = tls
        self._tls_hostname = tls_hostname
        self._reconnect_wait = reconnect_wait
        self._connect_timeout = connect_timeout
        self._max_outbox = max_outbox_bytes
        self._name = name
        self._outbox: deque[tuple[str, int, int, bytes]] = deque()
        self._outbox_bytes = 0
        self._outbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._subs: list[NatsSubscription] = []
        self._nc: Client | None = None
        self._closed = False
        self._connected_event = threading.Event()
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._connect_forever(), self._loop)

    # -- state -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        nc = self._nc
        return not self._closed and nc is not None and nc.is_connected

    def wait_connected(self, timeout: float) -> bool:
        """Block until the first connection is up (True) or ``timeout`` s pass (False)."""
        return self._connected_event.wait(timeout) and self.connected

    # -- publishing --------------------------------------------------------------

    def publish(
        self, topic: str, partition: int, base_offset: int, last_offset: int, batch: bytes
    ) -> None:
        if self._closed:
            raise FastLaneClosedError("publish on a closed NATS fast lane")
        subject = subject_for(topic, partition)
        if not self.connected:
            self.stats.dropped_disconnected += 1
            return
        with self._outbox_lock:
            if self._outbox_bytes + len(batch) > self._max_outbox:
                self.stats.dropped_overflow += 1
                return
            self._outbox.append((subject, base_offset, last_offset, batch))
            self._outbox_bytes += len(batch)
            wake = not self._drain_scheduled
            self._drain_scheduled = True
        if wake:
            # One wake-up per burst: the drain task empties everything queued by then.
            self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            with self._outbox_lock:
                if not self._outbox:
                    self._drain_scheduled = False
                    return
                subject, base, last, batch = self._outbox.popleft()
                self._outbox_bytes -= len(batch)
            nc = self._nc
            if nc is None or not nc.is_connected:
                self.stats.dropped_disconnected += 1
                continue
            try:
                for b, lst, part in _split(batch, base, last, nc.max_payload - _HEADER_ROOM):
                    await nc.publish(
                        subject, part, headers={BASE_HEADER: str(b), LAST_HEADER: str(lst)}
                    )
                    self.stats.published += 1
            except _Oversize:
                self.stats.dropped_oversize += 1
            except Exception as exc:  # noqa: BLE001 - a lossy lane drops; the log fills
                self.stats.dropped_disconnected += 1
                logger.debug("fast-lane publish on %s dropped: %r", subject, exc)

    # -- subscribing -------------------------------------------------------------

    def subscribe(self, topic: str, partition: int, callback: BatchCallback) -> NatsSubscription:
        """Subscribe; when connected, returns after the server has the subscription
        (a flush round trip), so messages published afterwards reach ``callback``."""
        if self._closed:
            raise FastLaneClosedError("subscribe on a closed NATS fast lane")
        sub = NatsSubscription(self, subject_for(topic, partition), callback)
        self._subs.append(sub)
        if self.connected:
            try:
                self._call(self._subscribe(sub, flush=True), timeout=self._connect_timeout + 1)
            except Exception as exc:  # noqa: BLE001 - resubscribed when (re)connected
                logger.debug("fast-lane subscribe to %s deferred: %r", sub.subject, exc)
        return sub

    async def _subscribe(self, sub: NatsSubscription, *, flush: bool) -> None:
        nc = self._nc
        if nc is None or sub.handle is not None or not sub.active:
            return

        async def on_msg(msg: Msg) -> None:
            if not sub.active:
                return
            try:
                hdrs = msg.headers or {}
                base, last = int(hdrs[BASE_HEADER]), int(hdrs[LAST_HEADER])
            except (KeyError, ValueError):
                logger.warning("fast-lane message on %s without valid offset headers, "
                               "expected %s and %s, got %r", msg.subject, BASE_HEADER,
                               LAST_HEADER, msg.headers)
                return
            self.stats.received += 1
            try:
                sub.callback(base, last, msg.data)
            except Exception:
                logger.exception("fast-lane callback %r failed on %s", sub.callback, sub.subject)

        # A bounded per-subscription queue: past it nats-py drops (slow consumer).
        sub.handle = await nc.subscribe(sub.subject, cb=on_msg, pending_bytes_limit=64 << 20)
        if flush:
            await nc.flush(timeout=max(1, int(self._connect_timeout)))

    def _drop_subscription(self, sub: NatsSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        handle = sub.handle
        if handle is not None and not self._closed and self._loop.is_running():
            sub.handle = None
            if threading.current_thread() is self._thread:
                # From a callback on the loop thread: waiting here would deadlock.
                self._loop.create_task(handle.unsubscribe())
                return
            try:
                self._call(handle.unsubscribe(), timeout=self._connect_timeout)
            except Exception as exc:  # noqa: BLE001 - the server forgets it on disconnect
                logger.debug("fast-lane unsubscribe from %s failed: %r", sub.subject, exc)

    # -- connection --------------------------------------------------------------

    async def _connect_forever(self) -> None:
        import nats
        from nats.errors import Error as NatsError

        async def on_disconnect() -> None:
            self.stats.disconnects += 1

        async def on_reconnect() -> None:
            self.stats.connects += 1

        async def on_error(exc: Exception) -> None:
            logger.debug("fast-lane NATS error: %r", exc)

        while not self._closed:
            try:
                nc = await nats.connect(
                    servers=self.servers,
                    name=self._name,
                    tls=self._tls,
                    tls_hostname=self._tls_hostname,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait,
                    connect_timeout=self._connect_timeout,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    pending_size=8 << 20,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                    error_cb=on_error,
                )
            except (TimeoutError, OSError, NatsError) as exc:
                logger.debug("fast-lane NATS connect to %s failed: %r", self.servers, exc)
                await asyncio.sleep(self._reconnect_wait)
                continue
            self._nc = nc
            self.stats.connects += 1
            for sub in list(self._subs):
                await self._subscribe(sub, flush=False)
            self._connected_event.set()
            return

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._main.cancel()
        nc = self._nc
        if nc is not None:
            try:
                self._call(nc.close(), timeout=self._connect_timeout + 1)
            except Exception as exc:  # noqa: BLE001 - closing anyway
                logger.debug("fast-lane NATS close: %r", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __repr__(self) -> str:
        return f"<NatsFastLane {','.join(self.servers)} connected={self.connected}>"


class _Oversize(Exception):
    pass


def _split(batch: bytes, base: int, last: int, limit: int) -> list[tuple[int, int, bytes]]:
    """Cut an append into messages of at most ``limit`` bytes at batch boundaries,
    each with its own offset range; raise _Oversize if one batch alone is over it."""
    if len(batch) <= limit:
        return [(base, last, batch)]
    out: list[tuple[int, int, bytes]] = []
    view = memoryview(batch)
    start = first = None
    prev_last = base - 1
    for pos, header in iter_batches(batch):
        if header.size > limit:
            raise _Oversize
        if start is None:
            start, first = pos, header.base_offset
        elif pos + header.size - start > limit:
            assert first is not None
            out.append((first, prev_last, bytes(view[start:pos])))
            start, first = pos, header.base_offset
        prev_last = header.last_offset
    if start is not None and first is not None:
        out.append((first, prev_last, bytes(view[start:])))
    return out


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows); asyncio works too
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
