"""What handlers share: the reply type and the mapping of library errors to Kafka codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plait.broker import errors as E
from plait.log import errors as L
from plait.protocol.errors import InvalidRecordBatchError


@dataclass(frozen=True, slots=True)
class RawBody:
    """A response body already encoded as chunks (Fetch), sent without copying."""

    chunks: list[bytes | memoryview]
    top_error: int = 0


# What a handler returns: a kafka-python response object, raw chunks, or None when the
# request expects no response (Produce with acks=0).
Reply = Any

# Ordered most specific first: several log errors also derive from KeyError/ValueError.
_LOG_ERRORS: list[tuple[type[BaseException], int]] = [
    (L.UnknownTopicError, E.UnknownTopicOrPartition.errno),
    (L.PartitionOutOfRangeError, E.UnknownTopicOrPartition.errno),
    (L.TopicExistsError, E.TopicAlreadyExists.errno),
    (L.InvalidTopicError, E.InvalidTopic.errno),
    (L.OffsetOutOfRangeError, E.OffsetOutOfRange.errno),
    (L.RecordTooLargeError, E.MessageTooLarge.errno),
    (L.OutOfOrderSequenceError, E.OutOfOrderSequenceNumber.errno),
    (L.ProducerFencedError, E.InvalidProducerEpoch.errno),
    (InvalidRecordBatchError, E.CorruptMessage.errno),
]


def error_code(exc: BaseException) -> int:
    """The Kafka error code for an exception raised while serving one partition/item.

    Errors that are not plait's own (bugs) map to UNKNOWN_SERVER_ERROR; the caller logs them.
    """
    if isinstance(exc, E.BrokerError):
        return exc.errno
    for cls, code in _LOG_ERRORS:
        if isinstance(exc, cls):
            return code
    return E.UnknownServerError.errno
