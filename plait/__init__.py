"""plait: an ordered, durable, low-latency event-streaming platform for Python.

The public API is re-exported here and imported on first use, so ``import plait``
stays cheap for tools that only need the CLI or the errors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from plait.errors import ConfigError, CorruptDataError, PlaitError

__version__ = "0.1.0"

_LAZY = {
    "connect": "plait.client.connect",
    "EmbeddedClient": "plait.client.connect",
    "Message": "plait.client.messages",
    "RecordMetadata": "plait.client.messages",
    "BatchAck": "plait.client.messages",
    "ColumnBatch": "plait.client.messages",
    "FsyncPolicy": "plait.log.config",
    "LogConfig": "plait.log.config",
    "pipeline": "plait.pipeline",
}

__all__ = [
    "BatchAck",
    "ColumnBatch",
    "ConfigError",
    "CorruptDataError",
    "EmbeddedClient",
    "FsyncPolicy",
    "LogConfig",
    "Message",
    "PlaitError",
    "RecordMetadata",
    "connect",
    "pipeline",
]

if TYPE_CHECKING:
    from plait.client.connect import EmbeddedClient as EmbeddedClient
    from plait.client.connect import connect as connect
    from plait.client.messages import BatchAck as BatchAck
    from plait.client.messages import ColumnBatch as ColumnBatch
    from plait.client.messages import Message as Message
    from plait.client.messages import RecordMetadata as RecordMetadata
    from plait.log.config import FsyncPolicy as FsyncPolicy
    from plait.log.config import LogConfig as LogConfig


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
