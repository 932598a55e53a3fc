"""Kafka error codes as a table of exception classes, and the broker's own errors.

Handlers raise (or look up) these classes; the server turns them into the numeric
``error_code`` Kafka clients understand. ``retriable`` mirrors Kafka's own
``RetriableException`` marking, which decides whether a client retries on its own.
The numbers are Kafka's public protocol error codes (see the protocol guide).
"""

from __future__ import annotations

from plait.errors import PlaitError


class BrokerError(PlaitError):
    """Base of every error the broker reports; ``errno`` is the Kafka error code."""

    errno: int = -1
    retriable: bool = False

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__name__)


class MalformedFrameError(BrokerError):
    """A request frame could not be decoded; the connection that sent it is closed.

    Carries what was expected, what arrived and at which byte, so the log line tells
    a client author where their encoder went wrong.
    """

    errno = 42  # INVALID_REQUEST

    def __init__(self, message: str, *, api_key: int | None = None, position: int | None = None):
        self.api_key = api_key
        self.position = position
        where = f" (api key {api_key}" if api_key is not None else " ("
        where += f", byte {position})" if position is not None else ")"
        super().__init__(message + (where if where != " ()" else ""))


class FrameTooLargeError(BrokerError):
    """A frame's size prefix exceeded ``max_request_bytes``: checked before reading it,
    so a hostile or broken client cannot make the broker allocate the memory."""

    errno = 42

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"request frame of {size} bytes exceeds the limit of {limit} bytes")


_BY_CODE: dict[int, type[BrokerError]] = {}


def _code(errno: int, name: str, retriable: bool = False) -> type[BrokerError]:
    cls = type(name, (BrokerError,), {"errno": errno, "retriable": retriable, "__doc__": name})
    _BY_CODE[errno] = cls
    return cls


UnknownServerError = _code(-1, "UnknownServerError")
OffsetOutOfRange = _code(1, "OffsetOutOfRange")
CorruptMessage = _code(2, "CorruptMessage", True)
UnknownTopicOrPartition = _code(3, "UnknownTopicOrPartition", True)
LeaderNotAvailable = _code(5, "LeaderNotAvailable", True)
NotLeaderOrFollower = _code(6, "NotLeaderOrFollower", True)
RequestTimedOut = _code(7, "RequestTimedOut", True)
MessageTooLarge = _code(10, "MessageTooLarge")
CoordinatorLoadInProgress = _code(14, "CoordinatorLoadInProgress", True)
CoordinatorNotAvailable = _code(15, "CoordinatorNotAvailable", True)
NotCoordinator = _code(16, "NotCoordinator", True)
InvalidTopic = _code(17, "InvalidTopic")
RecordListTooLarge = _code(18, "RecordListTooLarge")
IllegalGeneration = _code(22, "IllegalGeneration")
InconsistentGroupProtocol = _code(23, "InconsistentGroupProtocol")
InvalidGroupId = _code(24, "InvalidGroupId")
UnknownMemberId = _code(25, "UnknownMemberId")
InvalidSessionTimeout = _code(26, "InvalidSessionTimeout")
RebalanceInProgress = _code(27, "RebalanceInProgress")
InvalidTimestamp = _code(32, "InvalidTimestamp")
UnsupportedVersion = _code(35, "UnsupportedVersion")
TopicAlreadyExists = _code(36, "TopicAlreadyExists")
InvalidPartitions = _code(37, "InvalidPartitions")
InvalidReplicationFactor = _code(38, "InvalidReplicationFactor")
InvalidConfig = _code(40, "InvalidConfig")
InvalidRequest = _code(42, "InvalidRequest")
UnsupportedForMessageFormat = _code(43, "UnsupportedForMessageFormat")
OutOfOrderSequenceNumber = _code(45, "OutOfOrderSequenceNumber")
DuplicateSequenceNumber = _code(46, "DuplicateSequenceNumber")
InvalidProducerEpoch = _code(47, "InvalidProducerEpoch")
UnknownProducerId = _code(59, "UnknownProducerId")
NonEmptyGroup = _code(68, "NonEmptyGroup")
GroupIdNotFound = _code(69, "GroupIdNotFound")
InvalidRecord = _code(87, "InvalidRecord")
FencedInstanceId = _code(82, "FencedInstanceId")
ProducerFenced = _code(90, "ProducerFenced")

NONE = 0


def error_for_code(errno: int) -> type[BrokerError]:
    """The class for a Kafka error code; unknown codes map to UnknownServerError."""
    return _BY_CODE.get(errno, UnknownServerError)


def is_retriable(errno: int) -> bool:
    return error_for_code(errno).retriable
