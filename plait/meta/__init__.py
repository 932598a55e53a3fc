"""The metadata strand: a consistent key-value store with txns, watches and leases.

Open one by URL with :func:`open_meta` (``sqlite:PATH`` embedded, ``etcd://...``
distributed); both backends keep the contract in :mod:`plait.meta.interface`.
"""

from plait.meta.errors import (
    CompactedError,
    LeaseNotFoundError,
    MetaError,
    MetaTLSError,
    MetaUnavailableError,
    TxnError,
    WatchCancelledError,
)
from plait.meta.interface import (
    Compare,
    CompareTarget,
    Delete,
    EventType,
    Get,
    KeyValue,
    MetaStore,
    Put,
    TxnResult,
    Watch,
    WatchEvent,
)
from plait.meta.url import open_meta

__all__ = [
    "CompactedError",
    "Compare",
    "CompareTarget",
    "Delete",
    "EventType",
    "Get",
    "KeyValue",
    "LeaseNotFoundError",
    "MetaError",
    "MetaStore",
    "MetaTLSError",
    "MetaUnavailableError",
    "Put",
    "TxnError",
    "TxnResult",
    "Watch",
    "WatchCancelledError",
    "WatchEvent",
    "open_meta",
]
