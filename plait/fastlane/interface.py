"""The fast-lane contract: push appended batches to subscribers, best effort.

A fast lane carries whole stored RecordBatch v2 bytes of one partition together
with their offsets ``base_offset .. last_offset`` (inclusive), on the subject
``plait.<topic>.<partition>``. It promises much less than the log does, on
purpose, so that any transport can implement it:

- Delivery is at most once and may have gaps: a message may be dropped (while
  disconnected, on overflow, over a size limit) or, across reconnects, arrive late.
  The log is the source of truth; a consumer fills gaps by reading it.
- ``publish`` is called from the log's appender and must not block it for long:
  an implementation queues (bounded) or drops, never waits for a peer.
- Callbacks run on a thread of the lane's choosing and must return quickly; a
  callback that raises is logged and does not stop the subscription.
- An *end marker* is a message with an empty batch and ``last_offset ==
  base_offset - 1``: its publisher has offered every append of the partition below
  ``base_offset`` before it (plait.fastlane.publisher sends them for quiet partitions).
  A subscriber that missed some of those learns of the gap from it.

Every backend (:mod:`plait.fastlane.inproc`, :mod:`plait.fastlane.nats`) passes the
same test suite in ``tests/fastlane``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from plait.fastlane.errors import InvalidSubjectError

#: ``callback(base_offset, last_offset, batch_bytes)``
BatchCallback = Callable[[int, int, bytes], None]

SUBJECT_PREFIX = "plait"
# Characters NATS gives a meaning in subjects (wildcards, token separators are fine
# inside a topic: "a.b" just makes a longer subject, subscribed to exactly).
_FORBIDDEN = frozenset(" \t\r\n*>")


def subject_for(topic: str, partition: int) -> str:
    """``plait.<topic>.<partition>``; raises InvalidSubjectError for names NATS rejects."""
    if not topic or any(c in _FORBIDDEN for c in topic) or topic.startswith(".") \
            or topic.endswith(".") or ".." in topic:
        raise InvalidSubjectError(
            f"topic {topic!r} cannot be part of a fast-lane subject: expected a non-empty "
            "name without whitespace, '*', '>' or empty '.'-separated tokens"
        )
    if partition < 0:
        raise InvalidSubjectError(f"partition must be >= 0 for topic {topic!r}, got {partition}")
    return f"{SUBJECT_PREFIX}.{topic}.{partition}"


@runtime_checkable
class Subscription(Protocol):
    """A live subscription; ``unsubscribe`` is idempotent and stops further callbacks
    (one already running may finish)."""

    def unsubscribe(self) -> None: ...


@runtime_checkable
class FastLane(Protocol):
    """Push appended batches of ``topic[partition]`` to subscribers (see module docs)."""

    @property
    def connected(self) -> bool:
        """True while published messages can reach subscribers; False means publishes
        are being dropped and subscribers hear nothing (they should read the log)."""
        ...

    def publish(
        self, topic: str, partition: int, base_offset: int, last_offset: int, batch: bytes
    ) -> None:
        """Offer ``batch`` (offsets ``base_offset..last_offset``) to subscribers.

        Never blocks for long; may drop. Raises FastLaneClosedError after close().
        """
        ...

    def subscribe(self, topic: str, partition: int, callback: BatchCallback) -> Subscription:
        """Call ``callback(base, last, batch)`` for each message of the partition's
        subject, from now on (no replay), in the order this lane received them."""
        ...

    def close(self) -> None:
        """Stop publishing and delivering; idempotent. Queued messages may be dropped."""
        ...
