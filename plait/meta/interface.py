"""The metadata store contract, shaped after etcd v3 so both backends can keep it.

Keys and values are bytes. Every change bumps one store-wide ``revision``; each key
remembers the revision that created it (``create_revision``), the one that last
changed it (``mod_revision``) and how many times it was written (``version``). A
transaction compares keys, then applies one of two lists of operations atomically:
this is how offsets are committed with a fence on the group generation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


class CompareTarget(str, Enum):
    VALUE = "value"
    VERSION = "version"
    CREATE_REVISION = "create_revision"
    MOD_REVISION = "mod_revision"


CompareOp = Literal["==", "!=", "<", ">"]


@dataclass(frozen=True, slots=True)
class Compare:
    """One guard of a transaction.

    As in etcd, a missing key has version, create_revision and mod_revision 0, and
    a VALUE compare against it is false whatever the operator (a missing value is
    not the same as ``b""``). Integer targets take an ``int`` operand, VALUE ``bytes``.
    """

    key: bytes
    target: CompareTarget
    op: CompareOp
    operand: bytes | int

    @classmethod
    def value(cls, key: bytes, op: CompareOp, value: bytes) -> Compare:
        return cls(key, CompareTarget.VALUE, op, value)

    @classmethod
    def version(cls, key: bytes, op: CompareOp, version: int) -> Compare:
        return cls(key, CompareTarget.VERSION, op, version)

    @classmethod
    def mod_revision(cls, key: bytes, op: CompareOp, revision: int) -> Compare:
        return cls(key, CompareTarget.MOD_REVISION, op, revision)

    @classmethod
    def create_revision(cls, key: bytes, op: CompareOp, revision: int) -> Compare:
        return cls(key, CompareTarget.CREATE_REVISION, op, revision)

    @classmethod
    def absent(cls, key: bytes) -> Compare:
        """True when ``key`` does not exist (etcd idiom: create_revision == 0)."""
        return cls(key, CompareTarget.CREATE_REVISION, "==", 0)


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes
    prefix: bool = False


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    """``succeeded`` says which branch ran; ``responses`` has one entry per op of it:
    a list of KeyValue for Get, the number of deleted keys for Delete, None for Put."""

    succeeded: bool
    revision: int
    responses: list[list[KeyValue] | int | None] = field(default_factory=list)


class EventType(str, Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    kv: KeyValue  # for DELETE: value b"", mod_revision = revision of the delete


class Watch(Protocol):
    """An ordered stream of changes under a prefix.

    Events arrive in revision order, each exactly once, starting after the revision
    the watch was created at (or at ``start_revision`` when given).
    """

    def get(self, timeout: float | None = None) -> list[WatchEvent]:
        """Block up to ``timeout`` seconds for events; returns ``[]`` on timeout."""
        ...

    def cancel(self) -> None: ...

    def __iter__(self) -> Iterator[WatchEvent]: ...


@runtime_checkable
class MetaStore(Protocol):
    """A consistent key-value store with transactions, watches and leases.

    Every method is safe to call from several threads. Writes are durable once the
    call returns. A lease id of 0 means "no lease".
    """

    def get(self, key: bytes) -> KeyValue | None: ...

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Store ``value``; returns the new store revision."""
        ...

    def delete(self, key: bytes, *, prefix: bool = False) -> int:
        """Delete ``key`` (or every key under it); returns how many keys went."""
        ...

    def range(self, prefix: bytes) -> list[KeyValue]:
        """Every key starting with ``prefix``, sorted by key."""
        ...

    def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """If every compare holds, apply ``success``, else ``failure``, atomically."""
        ...

    def watch(self, prefix: bytes, *, start_revision: int | None = None) -> Watch: ...

    def lease_grant(self, ttl: float) -> int:
        """Create a lease that expires ``ttl`` seconds from now unless kept alive."""
        ...

    def lease_keepalive(self, lease: int) -> None:
        """Renew the lease for its full TTL; raises LeaseNotFoundError once expired."""
        ...

    def lease_revoke(self, lease: int) -> None:
        """End the lease now and delete every key attached to it."""
        ...

    @property
    def revision(self) -> int: ...

    def close(self) -> None: ...
