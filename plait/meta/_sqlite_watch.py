"""Feeds SQLite watches from the changelog table, for changes made by any process.

One dispatcher thread per store object polls ``PRAGMA data_version`` (a counter SQLite
bumps when *another* connection commits, read from shared memory, so an idle poll
costs microseconds) every ``poll_interval_s``, and is woken at once by commits made
through its own store. It keeps a single cursor (the last revision it handed out) and
fans each new changelog row out to the watches whose prefix it matches. A new watch is
registered under the same lock after a catch-up read of rows at or below the cursor,
so no row is delivered twice or skipped between the catch-up and the live feed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plait.meta._common import QueueWatch, prefix_end
from plait.meta.errors import CompactedError, MetaClosedError
from plait.meta.interface import EventType, KeyValue, WatchEvent

if TYPE_CHECKING:
    from plait.meta.sqlite import SqliteMetaStore

log = logging.getLogger(__name__)

_BATCH_REVISIONS = 1000  # bounded reads keep one poll short even after a long stall


def _event(row: Sequence[Any]) -> WatchEvent:
    _rev, _seq, kind, key, value, create_rev, mod_rev, version, lease = row
    kv = KeyValue(
        bytes(key),
        bytes(value),
        int(create_rev),
        int(mod_rev),
        int(version),
        int(lease),
    )
    return WatchEvent(EventType.DELETE if kind else EventType.PUT, kv)


class _Sub:
    __slots__ = ("end", "prefix", "start", "watch")

    def __init__(self, watch: QueueWatch, start: int) -> None:
        self.watch = watch
        self.start = start
        self.prefix = watch.prefix
        self.end = prefix_end(watch.prefix)

    def wants(self, rev: int, key: bytes) -> bool:
        return rev >= self.start and key.startswith(self.prefix)


class Dispatcher:
    """Owns the store's polling thread: watch delivery and background lease reaping."""

    def __init__(
        self, store: SqliteMetaStore, busy_timeout_s: float, poll_interval_s: float
    ) -> None:
        self._store = store
        self._busy_timeout_s = busy_timeout_s
        self._poll = poll_interval_s
        self._lock = threading.Lock()  # guards _conn, _cursor, _subs
        self._conn: sqlite3.Connection | None = None
        self._cursor = 0
        self._data_version = -1
        self._subs: list[_Sub] = []
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> sqlite3.Connection:
        """Start the thread on first need (a watch or a lease), with its own connection."""
        with self._lock:
            if self._stop:
                raise MetaClosedError(f"SqliteMetaStore({self._store.path!r})")
            if self._conn is None:
                from plait.meta.sqlite import connect

                self._conn = connect(self._store.path, self._busy_timeout_s)
                self._cursor = self._scalar("revision")
                self._thread = threading.Thread(
                    target=self._run,
                    name=f"plait-meta-watch:{self._store.path}",
                    daemon=True,
                )
                self._thread.start()
            return self._conn

    def _scalar(self, name: str) -> int:
        assert self._conn is not None
        return int(
            self._conn.execute(
                "SELECT value FROM state WHERE name = ?", (name,)
            ).fetchone()[0]
        )

    def wake(self) -> None:
        self._wake.set()

    def add(self, prefix: bytes, start_revision: int | None) -> QueueWatch:
        conn = self.ensure_running()
        watch = QueueWatch(prefix, self._remove)
        with self._lock:
            conn.execute("BEGIN")  # one snapshot for the compaction check and catch-up
            try:
                current, compacted = (
                    self._scalar("revision"),
                    self._scalar("compact_revision"),
                )
                start = (
                    start_revision
                    if start_revision and start_revision > 0
                    else current + 1
                )
                if start <= compacted:
                    raise CompactedError(start, compacted)
                sub = _Sub(watch, start)
                if start <= self._cursor:
                    rows = conn.execute(
                        "SELECT * FROM changelog WHERE rev >= ? AND rev <= ? ORDER BY rev, seq",
                        (start, self._cursor),
                    ).fetchall()
                    watch.push(
                        [_event(r) for r in rows if sub.wants(int(r[0]), bytes(r[3]))]
                    )
            finally:
                conn.execute("COMMIT")
            self._subs.append(sub)
        return watch

    def _remove(self, watch: QueueWatch) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s.watch is not watch]

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._poll)
            self._wake.clear()
            if self._stop:
                break
            try:
                self._store.reap_expired()
                self._poll_once()
            except MetaClosedError:
                break
            except Exception:  # a transient SQLite error must not kill every watch
                log.exception(
                    "metadata watch poll on %s failed; retrying", self._store.path
                )

    def _poll_once(self) -> None:
        with self._lock:
            conn = self._conn
            if conn is None or self._stop:
                return
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version == self._data_version:
                return
            self._data_version = version
            while True:
                conn.execute("BEGIN")
                try:
                    current, compacted = (
                        self._scalar("revision"),
                        self._scalar("compact_revision"),
                    )
                    if not self._subs:
                        self._cursor = current  # nobody to serve: just keep up
                        return
                    if compacted > self._cursor:
                        for sub in self._subs:
                            sub.watch.fail(
                                f"changes after revision {self._cursor} were compacted",
                                compact_revision=compacted,
                            )
                        self._subs = []
                        self._cursor = current
                        return
                    upto = min(current, self._cursor + _BATCH_REVISIONS)
                    rows = conn.execute(
                        "SELECT * FROM changelog WHERE rev > ? AND rev <= ? ORDER BY rev, seq",
                        (self._cursor, upto),
                    ).fetchall()
                finally:
                    conn.execute("COMMIT")
                for sub in self._subs:
                    sub.watch.push(
                        [_event(r) for r in rows if sub.wants(int(r[0]), bytes(r[3]))]
                    )
                self._cursor = upto
                if upto >= current:
                    return

    def close(self) -> None:
        """End every watch with WatchCancelledError and stop the thread."""
        with self._lock:
            self._stop = True
            subs, self._subs = self._subs, []
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for sub in subs:
            sub.watch.fail("the store was closed")
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
