"""Publish every append of a Log on a fast lane.

``attach(log, lane)`` registers an append listener on every partition of every topic,
and on topics created later (the log's topic listener runs inside ``create_topic``, so
a new topic's first append is already published). The listener runs after each append,
in offset order, once the append is durable under the data dir's fsync policy (the
log's contract), so the lane never carries an event the log could still lose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from plait.fastlane.errors import InvalidSubjectError
from plait.fastlane.interface import FastLane, subject_for
from plait.log import Log, Partition
from plait.log.errors import LogError

Detach = Callable[[], None]


class LanePublisher:
    """The listener set for one (log, lane) pair; :func:`attach` is the usual entry."""

    def __init__(self, log: Log, lane: FastLane) -> None:
        self._log = log
        self._lane = lane
        self._lock = threading.Lock()
        self._attached: dict[tuple[str, int], Partition] = {}
        self._stopped = False
        log.add_topic_listener(self._on_topic)
        self.scan()

    def _on_append(self, topic: str, partition: int, base: int, last: int, data: bytes) -> None:
        self._lane.publish(topic, partition, base, last, data)

    def _on_topic(self, _name: str) -> None:
        self.scan()

    def scan(self) -> None:
        """Attach to partitions not attached yet (new topics, or a topic re-created
        under the same name, whose partitions are new objects)."""
        try:
            topics = self._log.list_topics()
        except LogError:
            return  # the log is closing; nothing more to publish
        with self._lock:
            if self._stopped:
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

    def detach(self) -> None:
        """Stop publishing; idempotent. Appends racing with this may still be published."""
        self._log.remove_topic_listener(self._on_topic)
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            for part in self._attached.values():
                part.remove_listener(self._on_append)
            self._attached.clear()


def attach(log: Log, lane: FastLane) -> Detach:
    """Publish every append of ``log`` (all partitions, also of later topics) on ``lane``.

    Returns a function that detaches again. Detach before closing the lane; closing the
    log first is fine.
    """
    return LanePublisher(log, lane).detach
