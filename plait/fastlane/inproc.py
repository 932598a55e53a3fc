"""The reference fast lane: subscribers in this process, called on the publisher's thread.

Why synchronous delivery: within one process the cheapest push is a function call,
and the appender already calls listeners outside the log's locks (after the append,
in offset order). Callbacks must therefore be quick (the low-latency consumer only
enqueues). A :class:`Hub` is the shared "server"; each :class:`InProcFastLane` is
one connection to it, so a publisher and its consumers must share a hub
(``open_fastlane("inproc")`` hands out the process-wide default one).

``Hub.set_connected(False)`` models an outage of the transport: publishes are
dropped and subscribers hear nothing until it is back, which is what a NATS
server restart looks like to plait. Tests use it; so can a chaos drill.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from plait.fastlane.errors import FastLaneClosedError
from plait.fastlane.interface import BatchCallback, subject_for

logger = logging.getLogger("plait.fastlane")


@dataclass(eq=False)
class _Sub:
    hub: Hub
    subject: str
    callback: BatchCallback
    owner: InProcFastLane
    active: bool = field(default=True)

    def unsubscribe(self) -> None:
        self.active = False
        self.hub._remove(self)


class Hub:
    """In-process subjects and their subscribers; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, tuple[_Sub, ...]] = {}
        self._connected = True
        self.published = 0
        self.dropped = 0

    @property
    def connected(self) -> bool:
        return self._connected

    def set_connected(self, up: bool) -> None:
        """Simulate the transport going down (``False``) or coming back (``True``)."""
        self._connected = up

    def _add(self, sub: _Sub) -> None:
        with self._lock:
            self._subs[sub.subject] = self._subs.get(sub.subject, ()) + (sub,)

    def _remove(self, sub: _Sub) -> None:
        with self._lock:
            rest = tuple(s for s in self._subs.get(sub.subject, ()) if s is not sub)
            if rest:
                self._subs[sub.subject] = rest
            else:
                self._subs.pop(sub.subject, None)

    def _deliver(self, subject: str, base: int, last: int, batch: bytes) -> None:
        if not self._connected:
            self.dropped += 1
            return
        self.published += 1
        # A tuple snapshot: subscribing from inside a callback cannot disturb this loop.
        for sub in self._subs.get(subject, ()):
            if not sub.active:
                continue
            try:
                sub.callback(base, last, batch)
            except Exception:
                logger.exception("fast-lane callback %r failed on %s", sub.callback, subject)


_default_hub: Hub | None = None
_named_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def shared_hub(name: str = "") -> Hub:
    """The process-wide hub called ``name`` ("" is the default), created on first use."""
    global _default_hub
    with _hubs_lock:
        if not name:
            if _default_hub is None:
                _default_hub = Hub()
            return _default_hub
        return _named_hubs.setdefault(name, Hub())


class InProcFastLane:
    """One connection to a :class:`Hub` (a private hub when none is given)."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub if hub is not None else Hub()
        self._subs: list[_Sub] = []
        self._closed = False

    @property
    def connected(self) -> bool:
        return not self._closed and self.hub.connected

    def publish(
        self, topic: str, partition: int, base_offset: int, last_offset: int, batch: bytes
    ) -> None:
        if self._closed:
            raise FastLaneClosedError("publish on a closed in-process fast lane")
        self.hub._deliver(subject_for(topic, partition), base_offset, last_offset, batch)

    def subscribe(self, topic: str, partition: int, callback: BatchCallback) -> _Sub:
        if self._closed:
            raise FastLaneClosedError("subscribe on a closed in-process fast lane")
        sub = _Sub(self.hub, subject_for(topic, partition), callback, self)
        self.hub._add(sub)
        self._subs.append(sub)
        return sub

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sub in self._subs:
            sub.unsubscribe()
        self._subs.clear()

    def __repr__(self) -> str:
        return f"<InProcFastLane connected={self.connected}>"
