"""Publish every append of a Log on a fast lane.

``attach(log, lane)`` registers an append listener on every partition of every topic,
and on topics created later (the log's topic listener runs inside ``create_topic``, so
a new topic's first append is already published). The listener runs after each append,
in offset order, once the append is durable under the data dir's fsync policy (the
log's contract), so the lane never carries an event the log could still lose.

With ``heartbeat_s``, a partition that published nothing for that long gets an end
marker (see plait.fastlane.interface): "everything below offset E has been published".
Why: a consumer that cannot see the log end for free (one reading through a broker)
otherwise cannot tell a silent lane on an idle topic from a lane that dropped the last
message, and keeps fetching from the broker to be sure (one empty fetch every 10 ms
cost ``plait serve`` ~4% of a core per idle consumer). A marker per idle partition per
heartbeat is the price instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from plait.fastlane.errors import FastLaneClosedError, InvalidSubjectError
from plait.fastlane.interface import FastLane, subject_for
from plait.log import Log, Partition
from plait.log.errors import LogError

Detach = Callable[[], None]
logger = logging.getLogger(__name__)


class LanePublisher:
    """The listener set for one (log, lane) pair; :func:`attach` is the usual entry."""

    def __init__(
        self,
        log: Log,
        lane: FastLane,
        heartbeat_s: float | None = None,
        max_markers_per_beat: int = 1000,
    ) -> None:
        self._log = log
        self._lane = lane
        self._max_markers = max(1, max_markers_per_beat)
        self._lock = threading.Lock()
        self._attached: dict[tuple[str, int], Partition] = {}
        # per partition: the end of what was published, and when the lane last carried
        # something for it (data or a marker); written by appenders and the heartbeat
        self._published: dict[tuple[str, int], tuple[int, float]] = {}
        self._stopped = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        log.add_topic_listener(self._on_topic)
        self.scan()
        if heartbeat_s is not None and heartbeat_s > 0:
            self._heartbeat = threading.Thread(
                target=self._beat, args=(heartbeat_s,), name="plait-lane-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def _on_append(self, topic: str, partition: int, base: int, last: int, data: bytes) -> None:
        self._lane.publish(topic, partition, base, last, data)
        self._published[(topic, partition)] = (last + 1, time.monotonic())

    def _beat(self, every: float) -> None:
        """Publish an end marker for each partition the lane was quiet about for ``every``,
        at most ``max_markers_per_beat`` per beat, the longest-quiet first: past that
        many quiet partitions each one's markers come less often (and a consumer that
        finds its marker stale reads the log to be sure), instead of the heartbeat
        growing without bound."""
        while not self._stop.wait(every):
            try:
                topics = set(self._log.list_topics())
            except LogError:
                return  # the log is closing
            now = time.monotonic()
            due: list[tuple[float, tuple[str, int], int]] = []
            for key, (end, at) in list(self._published.items()):
                if key[0] not in topics:  # deleted: nothing to mark any more
                    self._published.pop(key, None)
                elif now - at >= every:
                    due.append((at, key, end))
            if len(due) > self._max_markers:
                due = sorted(due)[: self._max_markers]
            for _, key, end in due:
                try:
                    self._lane.publish(key[0], key[1], end, end - 1, b"")
                except FastLaneClosedError:
                    return
                except Exception:  # a lane that fails must not end the heartbeat
                    logger.exception("fast-lane end marker for %s[%d] failed", *key)
                if self._published.get(key, (None, 0.0))[0] == end:
                    self._published[key] = (end, now)

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
                        # what the log held before: not published, but below the end
                        self._published[key] = (part.log_end_offset, 0.0)

    def detach(self) -> None:
        """Stop publishing; idempotent. Appends racing with this may still be published."""
        self._stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join()
        self._log.remove_topic_listener(self._on_topic)
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            for part in self._attached.values():
                part.remove_listener(self._on_append)
            self._attached.clear()


def attach(
    log: Log, lane: FastLane, *, heartbeat_s: float | None = None,
    max_markers_per_beat: int = 1000,
) -> Detach:
    """Publish every append of ``log`` (all partitions, also of later topics) on ``lane``,
    and with ``heartbeat_s`` an end marker for each partition quiet that long (at most
    ``max_markers_per_beat`` a beat, the longest-quiet first).

    Returns a function that detaches again. Detach before closing the lane; closing the
    log first is fine.
    """
    return LanePublisher(log, lane, heartbeat_s, max_markers_per_beat).detach
