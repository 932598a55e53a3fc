"""The embedded metadata store: SQLite in WAL mode, shared safely by threads and processes.

Layout: ``kv`` holds the live keys with etcd's bookkeeping (create/mod revision,
version, lease); ``changelog`` holds one row per change, keyed by (revision, position
in its transaction), and feeds watches; ``state`` holds the store-wide revision and the
compaction point; ``lease`` holds TTLs as wall-clock deadlines (wall clock, not
monotonic, because several processes must agree on them).

Every write runs in ``BEGIN IMMEDIATE``: it takes SQLite's single write lock before
reading anything, so a compare and the writes it guards see no interleaved writer from
any thread or process, and revisions are handed out strictly in commit order. That last
point is what makes watches simple: a reader that sees revision N committed knows every
revision below N is committed too, so polling ``changelog`` for ``rev > cursor`` can
never skip a row that commits later.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Self, TypeVar

from plait.errors import ConfigError
from plait.meta._common import (
    QueueWatch,
    check_branch,
    check_compares,
    compare_holds,
    prefix_end,
)
from plait.meta._sqlite_watch import Dispatcher
from plait.meta.errors import LeaseNotFoundError, MetaClosedError, MetaUnavailableError
from plait.meta.interface import (
    Compare,
    Delete,
    Get,
    KeyValue,
    Op,
    Put,
    TxnResult,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state VALUES ('revision', 1), ('compact_revision', 0);
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS changelog (
    rev INTEGER NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, key BLOB NOT NULL,
    value BLOB NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
    version INTEGER NOT NULL, lease INTEGER NOT NULL, PRIMARY KEY (rev, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ttl REAL NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lease_by_expiry ON lease (expires_at);
"""

KIND_PUT, KIND_DELETE = 0, 1
_KV_COLS = "key, value, create_rev, mod_rev, version, lease"


def connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    """Open a connection in autocommit mode (we issue BEGIN ourselves) with WAL on.

    ``synchronous=FULL``: in WAL mode NORMAL already survives a process crash (the WAL
    is in the OS page cache), but it may lose the last commits on power loss or an OS
    crash. A committed offset that goes back after a reboot breaks "offsets never go
    backwards", and metadata writes are few and small, so we pay one fsync per commit.
    """
    conn = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def row_to_kv(row: Sequence[Any]) -> KeyValue:
    key, value, create_rev, mod_rev, version, lease = row
    return KeyValue(
        bytes(key),
        bytes(value),
        int(create_rev),
        int(mod_rev),
        int(version),
        int(lease),
    )


def range_clause(key: bytes, prefix: bool) -> tuple[str, tuple[bytes, ...]]:
    """SQL condition for one key or a prefix; SQLite orders BLOBs by memcmp, like etcd."""
    if not prefix:
        return "key = ?", (key,)
    end = prefix_end(key)
    if end is None:
        return "key >= ?", (key,)
    return "key >= ? AND key < ?", (key, end)


class _Writer:
    """One write transaction: hands out its revision lazily, so a no-op costs none."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._rev = 0
        self._seq = 0

    @property
    def rev(self) -> int:
        if not self._rev:
            self.conn.execute(
                "UPDATE state SET value = value + 1 WHERE name = 'revision'"
            )
            self._rev = int(
                self.conn.execute(
                    "SELECT value FROM state WHERE name = 'revision'"
                ).fetchone()[0]
            )
        return self._rev

    @property
    def wrote(self) -> bool:
        return self._rev != 0

    def log(self, kind: int, kv: KeyValue) -> None:
        self.conn.execute(
            "INSERT INTO changelog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.rev,
                self._seq,
                kind,
                kv.key,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease,
            ),
        )
        self._seq += 1

    def get(self, key: bytes, prefix: bool = False) -> list[KeyValue]:
        where, args = range_clause(key, prefix)
        rows = self.conn.execute(
            f"SELECT {_KV_COLS} FROM kv WHERE {where} ORDER BY key", args
        )
        return [row_to_kv(r) for r in rows]

    def put(self, key: bytes, value: bytes, lease: int) -> None:
        if (
            lease
            and self.conn.execute(
                "SELECT 1 FROM lease WHERE id = ?", (lease,)
            ).fetchone()
            is None
        ):
            raise LeaseNotFoundError(lease, f"put of {key!r}")
        old = self.conn.execute(
            "SELECT create_rev, version FROM kv WHERE key = ?", (key,)
        ).fetchone()
        rev = self.rev
        create, version = (int(old[0]), int(old[1]) + 1) if old else (rev, 1)
        kv = KeyValue(key, value, create, rev, version, lease)
        self.conn.execute(
            "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?)",
            (key, value, create, rev, version, lease),
        )
        self.log(KIND_PUT, kv)

    def delete(
        self,
        key: bytes,
        prefix: bool = False,
        where: str = "",
        args: tuple[object, ...] = (),
    ) -> int:
        if not where:
            where, args = range_clause(key, prefix)
        keys = [
            bytes(r[0])
            for r in self.conn.execute(
                f"SELECT key FROM kv WHERE {where} ORDER BY key", args
            )
        ]
        if not keys:
            return (
                0  # etcd does not bump the revision for a delete that matched nothing
            )
        rev = self.rev
        self.conn.execute(f"DELETE FROM kv WHERE {where}", args)
        for k in keys:
            self.log(KIND_DELETE, KeyValue(k, b"", 0, rev, 0, 0))
        return len(keys)


class SqliteMetaStore:
    """The reference :class:`~plait.meta.interface.MetaStore`, in one SQLite file.

    Open the same ``path`` from as many threads and processes as you like: writes are
    serialized by SQLite's write lock (waiting up to ``busy_timeout_s``), each call is
    one atomic, durable transaction, and watchers in every process see each change
    under their prefix once, in revision order, within about ``poll_interval_s``
    (immediately for changes made through this same object). The changelog keeps the
    last ``retain_revisions`` revisions; a watch that falls further behind is cancelled
    with ``compact_revision`` set rather than silently skipping changes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 30.0,
        poll_interval_s: float = 0.01,
        retain_revisions: int = 10_000,
    ) -> None:
        self.path = os.fspath(path)
        self.url = f"sqlite:{self.path}"
        if retain_revisions < 1:
            raise ConfigError(
                f"retain_revisions must be >= 1, got {retain_revisions} (store {self.url})"
            )
        self._retain = retain_revisions
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._conn = connect(self.path, busy_timeout_s)
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    # statement by statement: executescript() would COMMIT our BEGIN first
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                finally:
                    self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise MetaUnavailableError(self.url, f"cannot open: {exc}") from exc
        self._dispatcher = Dispatcher(self, busy_timeout_s, poll_interval_s)

    # plumbing -----------------------------------------------------------------
    def _write(self, body: Callable[[_Writer], T]) -> tuple[T, int]:
        """Run ``body`` in one BEGIN IMMEDIATE transaction; returns its result and the
        store revision after it. Expired leases are reaped first, each at its own
        revision, so no caller ever sees a key whose lease is already dead."""
        self._check_open()
        try:
            with self._lock:
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    wrote = self._reap(conn, time.time())
                    w = _Writer(conn)
                    result = body(w)
                    if w.wrote and w.rev % 256 == 0:
                        self._compact(conn, w.rev)
                    revision = int(
                        conn.execute(
                            "SELECT value FROM state WHERE name = 'revision'"
                        ).fetchone()[0]
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise MetaUnavailableError(self.url, f"write failed: {exc}") from exc
        if wrote or w.wrote:
            self._dispatcher.wake()
        return result, revision

    def _read(self, body: Callable[[_Writer], T]) -> T:
        """Reads share the write path only when a lease is due, so they stay cheap."""
        self._check_open()
        with self._lock:
            due = self._conn.execute(
                "SELECT 1 FROM lease WHERE expires_at <= ? LIMIT 1", (time.time(),)
            ).fetchone()
        if due is not None:
            return self._write(body)[0]
        try:
            with self._lock:
                self._conn.execute("BEGIN")
                try:
                    return body(_Writer(self._conn))
                finally:
                    self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise MetaUnavailableError(self.url, f"read failed: {exc}") from exc

    def _reap(self, conn: sqlite3.Connection, now: float) -> bool:
        expired = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM lease WHERE expires_at <= ? ORDER BY id", (now,)
            )
        ]
        for lease in expired:
            _Writer(conn).delete(b"", where="lease = ?", args=(lease,))
            conn.execute("DELETE FROM lease WHERE id = ?", (lease,))
        return bool(expired)

    def _compact(self, conn: sqlite3.Connection, rev: int) -> None:
        """Drop changelog rows older than the retention window; watches still behind
        it are cancelled by the dispatcher, never silently advanced."""
        floor = rev - self._retain
        if floor > 0:
            conn.execute("DELETE FROM changelog WHERE rev <= ?", (floor,))
            conn.execute(
                "UPDATE state SET value = MAX(value, ?) WHERE name = 'compact_revision'",
                (floor,),
            )

    def reap_expired(self) -> None:
        """Delete keys of leases past their deadline now (the dispatcher calls this)."""
        with self._lock:
            due = self._conn.execute(
                "SELECT 1 FROM lease WHERE expires_at <= ? LIMIT 1", (time.time(),)
            ).fetchone()
        if due is not None:
            self._write(lambda w: None)

    def _check_open(self) -> None:
        if self._closed:
            raise MetaClosedError(f"SqliteMetaStore({self.path!r})")

    # MetaStore ----------------------------------------------------------------
    def get(self, key: bytes) -> KeyValue | None:
        found = self._read(lambda w: w.get(key))
        return found[0] if found else None

    def range(self, prefix: bytes) -> list[KeyValue]:
        return self._read(lambda w: w.get(prefix, prefix=True))

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        return self._write(lambda w: w.put(key, value, lease))[1]

    def delete(self, key: bytes, *, prefix: bool = False) -> int:
        return self._write(lambda w: w.delete(key, prefix))[0]

    def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        check_compares(compares)
        check_branch(success, "success")
        check_branch(failure, "failure")

        def body(w: _Writer) -> tuple[bool, list[list[KeyValue] | int | None]]:
            ok = all(compare_holds(c, next(iter(w.get(c.key)), None)) for c in compares)
            responses: list[list[KeyValue] | int | None] = []
            for op in success if ok else failure:
                if isinstance(op, Put):
                    w.put(op.key, op.value, op.lease)
                    responses.append(None)
                elif isinstance(op, Delete):
                    responses.append(w.delete(op.key, op.prefix))
                elif isinstance(op, Get):
                    responses.append(w.get(op.key, op.prefix))
                else:
                    raise TypeError(
                        f"txn op must be Put, Delete or Get, got {type(op).__name__}"
                    )
            return ok, responses

        (ok, responses), revision = self._write(body)
        return TxnResult(ok, revision, responses)

    def watch(self, prefix: bytes, *, start_revision: int | None = None) -> QueueWatch:
        self._check_open()
        return self._dispatcher.add(prefix, start_revision)

    def lease_grant(self, ttl: float) -> int:
        if not ttl > 0:
            raise ConfigError(
                f"lease ttl must be > 0 seconds, got {ttl} (store {self.url})"
            )

        def body(w: _Writer) -> int:
            cur = w.conn.execute(
                "INSERT INTO lease (ttl, expires_at) VALUES (?, ?)",
                (ttl, time.time() + ttl),
            )
            return int(cur.lastrowid or 0)

        lease = self._write(body)[0]
        self._dispatcher.ensure_running()  # someone must reap it even if nobody calls us
        return lease

    def lease_keepalive(self, lease: int) -> None:
        def body(w: _Writer) -> None:
            cur = w.conn.execute(
                "UPDATE lease SET expires_at = ? + ttl WHERE id = ?",
                (time.time(), lease),
            )
            if cur.rowcount == 0:
                raise LeaseNotFoundError(lease, "keepalive")

        self._write(body)

    def lease_revoke(self, lease: int) -> None:
        def body(w: _Writer) -> None:
            if w.conn.execute("DELETE FROM lease WHERE id = ?", (lease,)).rowcount == 0:
                raise LeaseNotFoundError(lease, "revoke")
            w.delete(b"", where="lease = ?", args=(lease,))

        self._write(body)

    @property
    def revision(self) -> int:
        return self._read(
            lambda w: int(
                w.conn.execute(
                    "SELECT value FROM state WHERE name = 'revision'"
                ).fetchone()[0]
            )
        )

    def close(self) -> None:
        """Stop the dispatcher (ending every watch) and close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._dispatcher.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
