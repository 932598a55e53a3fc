"""The Python SDK: connect, produce, consume."""

from plait.client.connect import EmbeddedClient, TopicDescription, connect
from plait.client.errors import (
    ClientClosedError,
    ClientError,
    InvalidUrlError,
    NotAssignedError,
)
from plait.client.messages import (
    BatchAck,
    ColumnBatch,
    Message,
    PartitionAck,
    RecordMetadata,
)

__all__ = [
    "BatchAck",
    "ClientClosedError",
    "ClientError",
    "ColumnBatch",
    "EmbeddedClient",
    "InvalidUrlError",
    "Message",
    "NotAssignedError",
    "PartitionAck",
    "RecordMetadata",
    "TopicDescription",
    "connect",
]
