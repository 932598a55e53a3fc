"""Publish every append of a Log on a fast lane.

``attach(log, lane)`` registers an append listener on every partition of every topic,
and on topics created later. The listener runs after each append, in offset order,
once the append is durable under the data dir's fsync policy (the log's contract),
so the lane never carries an event the log could still lose.

Why a rescan thread: the Log has no topic-created hook, so new topics are found by
listing topics every ``rescan_s`` seconds. Appends to a new topic before the rescan
finds it are not published; that is safe, because a low-latency consumer fills every
gap from the log, and only costs latency for the first events of a brand-new topic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from plait.fastlane.errors import InvalidSubjectError
from plait.fastlane.interface import FastLane, subject_for
from plait.log import Log, Partition
from plait.log.errors import LogError

logger = logging.getLogger("plait.fastlane")

Detach = Callable[[], None]


class LanePublisher:
    """The listener set for one (log, lane) pair; :func:`attach` is the usual entry."""

    def __init__(self, log: Log, lane: FastLane, *, rescan_s: float = 0.1) -> None:
        self._log = log
        self._lane = lane
        self._rescan_s = rescan_s
        self._lock = threading.Lock()
        self._attached: dict[tuple[str, int], Partition] = {}
        self._stop = threading.Event()
        self.scan()
        self._thread = threading.Thread(target=self._rescan, name="plait-lane-publisher",
                                        daemon=True)
        self._thread.start()

    def _on_append(self, topic: str, partition: int, base: int, last: int, data: bytes) -> None:
        self._lane.publish(topic, partition, base, last, data)

    def scan(self) -> None:
        """Attach to partitions not attached yet (new topics, or a topic re-created
        under the same name, whose partitions are new objects)."""
        try:
            topics = self._log.list_topics()
        except LogError:
            return  # the log is closing; nothing more to publish
        with self._lock:
            if self._stop.is_set():
                return
            for topic in topics:
                try:
                    subject_for(topic, 0)
                except InvalidSubjectError:
                    continue  # not nameable on the lane: consumers read it from the log
                try:
                    parts = self._log.partitions(topic)
                except LogError:
                    continue  # deleted between list and lookup
                for part in parts:
                    key = (topic, part.index)
                    if self._attached.get(key) is not part:
                        part.add_listener(self._on_append)
                        self._attached[key] = part

    def _rescan(self) -> None:
        while not self._stop.wait(self._rescan_s):
            try:
                self.scan()
            except Exception:
                logger.exception("fast-lane publisher rescan failed")

    def detach(self) -> None:
        """Stop publishing; idempotent. Appends racing with this may still be published."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            for part in self._attached.values():
                part.remove_listener(self._on_append)
            self._attached.clear()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


def attach(log: Log, lane: FastLane, *, rescan_s: float = 0.1) -> Detach:
    """Publish every append of ``log`` (all partitions, also of later topics) on ``lane``.

    Returns a function that detaches again. Detach before closing the lane; closing the
    log first is fine.
    """
    return LanePublisher(log, lane, rescan_s=rescan_s).detach
