"""Errors raised by the embedded partitioned log.

Every class derives from :class:`LogError` (and so from :class:`plait.errors.PlaitError`).
Classes that carry data keep it as attributes, so the broker can map them to Kafka error
codes without parsing messages.
"""

from __future__ import annotations

from plait.errors import CorruptDataError, PlaitError


class LogError(PlaitError):
    """Base class of the log's errors."""


class DataDirLockedError(LogError):
    """Another process (or another ``Log`` in this one) holds the data dir's lock."""

    def __init__(self, path: str, holder_pid: int | None = None) -> None:
        self.path = path
        self.holder_pid = holder_pid
        who = f"process {holder_pid}" if holder_pid is not None else "another process"
        super().__init__(
            f"data dir {path} is locked by {who}; expected to hold it alone for writing"
        )


class UnknownTopicError(LogError, KeyError):
    """The named topic does not exist in this log."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"unknown topic {topic!r}")

    def __str__(self) -> str:  # KeyError would quote the whole message again
        return str(self.args[0])


class TopicExistsError(LogError):
    """``create_topic`` was called for a name that is already taken."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"topic {topic!r} already exists")


class InvalidTopicError(LogError, ValueError):
    """A topic name broke Kafka's rule (1-249 chars of ``[a-zA-Z0-9._-]``, not . or ..)."""


class PartitionOutOfRangeError(LogError, IndexError):
    """A partition index outside ``[0, partitions)`` was asked for."""

    def __init__(self, topic: str, index: int, partitions: int) -> None:
        self.topic = topic
        self.index = index
        self.partitions = partitions
        super().__init__(
            f"topic {topic!r} has partitions 0..{partitions - 1}, got partition {index}"
        )


class OffsetOutOfRangeError(LogError):
    """A read asked for an offset outside ``[log_start_offset, log_end_offset]``."""

    def __init__(self, where: str, offset: int, log_start: int, log_end: int) -> None:
        self.where = where
        self.offset = offset
        self.log_start = log_start
        self.log_end = log_end
        super().__init__(
            f"offset {offset} is outside [{log_start}, {log_end}] of {where}"
        )


class RecordTooLargeError(LogError):
    """A batch is larger than ``max_batch_bytes``; nothing of the append was written."""

    def __init__(self, where: str, size: int, limit: int) -> None:
        self.where = where
        self.size = size
        self.limit = limit
        super().__init__(
            f"record batch of {size} bytes exceeds max_batch_bytes {limit} in {where}"
        )


class OutOfOrderSequenceError(LogError):
    """An idempotent producer's sequence skipped ahead, went back, or a new epoch
    did not start at 0; nothing of the append was written."""

    def __init__(self, where: str, producer_id: int, expected: int, received: int) -> None:
        self.where = where
        self.producer_id = producer_id
        self.expected = expected
        self.received = received
        super().__init__(
            f"producer {producer_id} sent sequence {received}, expected {expected} in {where}"
        )


class ProducerFencedError(LogError):
    """A batch carried an epoch older than the producer's current one (a zombie)."""

    def __init__(self, where: str, producer_id: int, current_epoch: int, received: int) -> None:
        self.where = where
        self.producer_id = producer_id
        self.current_epoch = current_epoch
        self.received = received
        super().__init__(
            f"producer {producer_id} sent epoch {received}, current epoch is "
            f"{current_epoch} in {where}"
        )


class CorruptSegmentError(LogError, CorruptDataError):
    """Stored bytes failed validation where the log cannot repair them by truncation
    (a sealed segment below the recovery point, or a read of a damaged batch)."""
