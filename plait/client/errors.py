"""Errors raised by the SDK itself (log and group errors pass through unchanged)."""

from __future__ import annotations

from plait.errors import ConfigError, PlaitError


class ClientError(PlaitError):
    """Base class for SDK failures."""


class ClientClosedError(ClientError):
    """The producer, consumer or client was used after close()."""


class InvalidUrlError(ConfigError):
    """A connection URL could not be understood."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot use {url!r}: {reason}")


class NotAssignedError(ClientError):
    """seek/position/commit named a partition this consumer does not own."""

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        super().__init__(f"partition {topic}[{partition}] is not assigned to this consumer")


class DeliveryTimeoutError(ClientError):
    """flush() or a delivery future ran out of time before every event was acknowledged."""
