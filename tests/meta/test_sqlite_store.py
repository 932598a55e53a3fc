"""SQLite-only behaviour: crash durability, changelog compaction, WAL settings."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from plait.meta.errors import CompactedError, MetaClosedError, WatchCancelledError
from plait.meta.sqlite import SqliteMetaStore


def _put_and_report(path: str, conn: Connection) -> None:
    store = SqliteMetaStore(path)
    i = 0
    while True:  # runs until the parent SIGKILLs us
        i += 1
        store.put(b"/plait/crash/counter", b"%d" % i)
        conn.send(i)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = str(tmp_path / "meta.db")
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_put_and_report, args=(path, child))
    proc.start()
    acked = 0
    while acked < 50:
        assert parent.poll(30), "writer stopped acknowledging"
        acked = parent.recv()
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    while parent.poll(0):
        acked = parent.recv()
    with SqliteMetaStore(path) as store:
        kv = store.get(b"/plait/crash/counter")
        assert kv is not None
        assert int(kv.value) >= acked, "an acknowledged put was lost by a process crash"
        assert kv.version == int(kv.value) and store.revision == kv.mod_revision


def test_wal_and_full_sync(tmp_path: Path) -> None:
    with SqliteMetaStore(tmp_path / "m.db") as store:
        store.put(b"/a", b"1")
        raw = sqlite3.connect(tmp_path / "m.db")
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        raw.close()


def test_old_start_revision_is_compacted(tmp_path: Path) -> None:
    with SqliteMetaStore(tmp_path / "m.db", retain_revisions=10) as store:
        for i in range(300):
            store.put(b"/k", b"%d" % i)
        with pytest.raises(CompactedError) as err:
            store.watch(b"/", start_revision=2)
        assert err.value.compact_revision >= 2
        watch = store.watch(b"/", start_revision=store.revision)
        assert [e.kv.value for e in watch.get(timeout=2)] == [b"299"]
        watch.cancel()


def test_lagging_watch_is_cancelled_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    writer = SqliteMetaStore(path, retain_revisions=10)
    slow = SqliteMetaStore(path, poll_interval_s=3600)  # polls only when woken
    try:
        watch = slow.watch(b"/")
        for i in range(300):
            writer.put(b"/k", b"%d" % i)
        slow.put(b"/other", b"x")  # wakes slow's dispatcher, which finds the gap
        with pytest.raises(WatchCancelledError) as err:
            while True:
                assert watch.get(timeout=5), (
                    "expected the watch to end, not to time out"
                )
        assert err.value.compact_revision > 1
    finally:
        writer.close()
        slow.close()


def test_closed_store_refuses_calls_and_ends_watches(tmp_path: Path) -> None:
    store = SqliteMetaStore(tmp_path / "m.db")
    watch = store.watch(b"/")
    store.close()
    with pytest.raises(MetaClosedError):
        store.put(b"/a", b"1")
    with pytest.raises(WatchCancelledError):
        watch.get(timeout=1)
