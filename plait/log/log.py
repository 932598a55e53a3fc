"""The data dir: topics, their partitions, producer ids, the lock and clean shutdown.

Layout::

    DIR/.lock                      flock'ed while a Log has the dir open (holds the pid)
    DIR/.clean_shutdown            present only between a clean close and the next open
    DIR/producer-ids               end of the last producer-id block handed out
    DIR/topics/<topic>/topic.json  name, partition count, config overrides
    DIR/topics/<topic>/<n>/        segments, indexes, snapshots, recovery-point
    DIR/tmp/                       topics being created or deleted (swept on open)

Topics live under ``topics/`` because every Kafka-legal file name is a legal topic name,
so nothing else may share their folder. Creation and deletion are a rename of a whole
folder, so a crash leaves a topic fully there or fully gone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from plait.errors import ConfigError
from plait.log.config import LogConfig, TopicInfo
from plait.log.errors import (
    InvalidTopicError,
    LogError,
    PartitionOutOfRangeError,
    TopicExistsError,
    UnknownTopicError,
)
from plait.log.fsutil import DataDirLock, atomic_write, fsync_dir
from plait.log.partition import Partition

logger = logging.getLogger("plait.log")
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_CLEAN_MARKER = ".clean_shutdown"
_PRODUCER_IDS = "producer-ids"
PRODUCER_ID_BLOCK = 1000
#: How often the background thread applies retention (Kafka's default check interval).
RETENTION_CHECK_MS = 300_000


def validate_topic_name(name: str) -> None:
    """Kafka's rule: 1-249 characters of ``[a-zA-Z0-9._-]``, and not ``.`` or ``..``."""
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidTopicError(
            f"topic name must be 1-249 characters of [a-zA-Z0-9._-] and not '.' or '..', "
            f"got {name!r}"
        )


class Log:
    """An open data dir. Use :meth:`open`; close with :meth:`close` or a ``with`` block."""

    def __init__(self, path: Path, config: LogConfig, lock: DataDirLock) -> None:
        self.path = path
        self.config = config
        self._lock_file = lock
        self._lock = threading.RLock()
        self._topics: dict[str, tuple[TopicInfo, list[Partition]]] = {}
        self._closed = False
        self._next_pid = self._pid_block_end = self._read_pid_block_end()
        self._stop = threading.Event()
        # Partitions with unflushed data under the interval policy (reported by their
        # appends); the flusher looks at these only. ``_wake`` cuts its sleep short.
        self._dirty: set[Partition] = set()
        self._dirty_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._topic_listeners: list[Callable[[str], None]] = []

    @classmethod
    def open(cls, path: str | os.PathLike[str], config: LogConfig | None = None) -> Log:
        """Create (if needed), lock and recover the data dir at ``path``.

        Raises :class:`DataDirLockedError` if another ``Log`` holds it. Recovery follows
        :mod:`plait.log.recovery`; a missing clean-shutdown marker means a full check of
        every segment above each partition's recovery point.
        """
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        lock = DataDirLock(root)
        try:
            marker = root / _CLEAN_MARKER
            clean = marker.exists()
            if clean:
                marker.unlink()  # from here on a crash must count as unclean
                fsync_dir(root)
            for sub in ("topics", "tmp"):
                (root / sub).mkdir(exist_ok=True)
            shutil.rmtree(root / "tmp", ignore_errors=True)
            (root / "tmp").mkdir(exist_ok=True)
            log = cls(root, config or LogConfig(), lock)
            for entry in sorted(os.listdir(root / "topics")):
                log._load_topic(root / "topics" / entry, clean)
        except BaseException:
            if "log" in locals():
                for _, parts in log._topics.values():
                    for part in parts:
                        part.abandon()
            lock.release()
            raise
        log._start_background()
        return log

    # -- topics ----------------------------------------------------------------

    def _load_topic(self, folder: Path, clean: bool) -> None:
        doc = json.loads((folder / "topic.json").read_text())
        config = self.config.with_overrides(doc.get("config", {}))
        info = TopicInfo(doc["name"], int(doc["partitions"]), config)
        parts = [Partition(info.name, i, folder / str(i), config, clean=clean,
                           on_dirty=self._mark_dirty)
                 for i in range(info.partitions)]
        self._topics[info.name] = (info, parts)

    def create_topic(self, name: str, partitions: int,
                     config: LogConfig | None = None) -> TopicInfo:
        """Create a topic durably (it survives a crash once this returns)."""
        validate_topic_name(name)
        if not isinstance(partitions, int) or partitions < 1:
            raise ConfigError(f"partitions must be an integer >= 1, got {partitions!r}")
        config = config or self.config
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise TopicExistsError(name)
            staging = self.path / "tmp" / f"creating-{uuid.uuid4().hex}"
            staging.mkdir()
            for i in range(partitions):
                (staging / str(i)).mkdir()
            doc = {"name": name, "partitions": partitions,
                   "config": config.overrides(self.config)}
            atomic_write(staging / "topic.json", json.dumps(doc, indent=1).encode())
            final = self.path / "topics" / name
            os.rename(staging, final)
            fsync_dir(self.path / "topics")
            info = TopicInfo(name, partitions, config)
            parts = [Partition(name, i, final / str(i), config, clean=True,
                               on_dirty=self._mark_dirty)
                     for i in range(partitions)]
            self._topics[name] = (info, parts)
            listeners = list(self._topic_listeners)
        for listener in listeners:  # outside the lock: a listener may use the log
            listener(name)
        return info

    def add_topic_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(name)`` after each topic this Log creates (before
        create_topic returns, so nothing can be appended to it unseen)."""
        with self._lock:
            self._topic_listeners.append(listener)

    def remove_topic_listener(self, listener: Callable[[str], None]) -> None:
        with self._lock:
            if listener in self._topic_listeners:
                self._topic_listeners.remove(listener)

    def delete_topic(self, name: str) -> None:
        """Remove a topic and its data; partitions handed out before become unusable."""
        with self._lock:
            self._check_open()
            _, parts = self._get(name)
            for p in parts:
                p.abandon()
            del self._topics[name]
            grave = self.path / "tmp" / f"deleted-{uuid.uuid4().hex}"
            os.rename(self.path / "topics" / name, grave)
            fsync_dir(self.path / "topics")
        shutil.rmtree(grave, ignore_errors=True)

    def list_topics(self) -> list[str]:
        with self._lock:
            self._check_open()
            return sorted(self._topics)

    def describe(self, name: str) -> TopicInfo:
        with self._lock:
            return self._get(name)[0]

    def partition(self, topic: str, index: int) -> Partition:
        with self._lock:
            info, parts = self._get(topic)
            if not 0 <= index < info.partitions:
                raise PartitionOutOfRangeError(topic, index, info.partitions)
            return parts[index]

    def partitions(self, topic: str) -> list[Partition]:
        with self._lock:
            return list(self._get(topic)[1])

    def _get(self, name: str) -> tuple[TopicInfo, list[Partition]]:
        self._check_open()
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopicError(name) from None

    def _all_partitions(self) -> list[Partition]:
        with self._lock:
            return [p for _, parts in self._topics.values() for p in parts]

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"log at {self.path} is closed")

    # -- producer ids ----------------------------------------------------------

    def _read_pid_block_end(self) -> int:
        try:
            return int((self.path / _PRODUCER_IDS).read_text().strip())
        except FileNotFoundError:
            return 0

    def allocate_producer_id(self) -> int:
        """A producer id never handed out before by this data dir, even across crashes.

        Ids are reserved in durable blocks of ``PRODUCER_ID_BLOCK``; ids left unused in
        a block when the process stops are skipped, so ids grow but may have gaps.
        """
        with self._lock:
            self._check_open()
            if self._next_pid >= self._pid_block_end:
                end = self._next_pid + PRODUCER_ID_BLOCK
                atomic_write(self.path / _PRODUCER_IDS, f"{end}\n".encode())
                self._pid_block_end = end
            pid = self._next_pid
            self._next_pid += 1
            return pid

    # -- maintenance -----------------------------------------------------------

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Apply every topic's retention now; returns the number of segments deleted."""
        return sum(p.enforce_retention(now_ms) for p in self._all_partitions())

    def flush(self) -> None:
        """fsync every partition."""
        for p in self._all_partitions():
            p.flush()

    def _start_background(self) -> None:
        self._thread = threading.Thread(target=self._background, name=f"plait-log {self.path}",
                                        daemon=True)
        self._thread.start()

    def _stop_background(self) -> None:
        """Stop the flusher thread and wait for it (close, and tests that model a crash)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _mark_dirty(self, partition: Partition) -> None:
        """A partition's append left unflushed data (once per flush cycle): look at it."""
        with self._dirty_lock:
            self._dirty.add(partition)
        self._wake.set()

    def _background(self) -> None:
        """The interval flusher and the periodic retention check, in one thread.

        Why a set of dirty partitions rather than a walk over all of them: the walk, every
        half interval, cost an idle log with 5,000 partitions ~24% of a core. Each
        partition is fsynced once ``interval_ms`` has passed since its last fsync (at
        once when that was long ago); the thread sleeps until the next one is due, a
        new dirty partition, the retention check or close."""
        next_retention = time.monotonic() + RETENTION_CHECK_MS / 1000
        while not self._stop.is_set():
            now = time.monotonic()
            with self._dirty_lock:
                batch, self._dirty = self._dirty, set()
                self._wake.clear()
            waiting: set[Partition] = set()
            sleep = max(0.0, next_retention - now)
            for p in batch:
                try:
                    left = p.flush_if_due(now)
                except Exception:  # keep flushing the others; the error is logged
                    logger.exception("background flush of %r failed", p)
                    left = 0.05  # try again soon
                if left is not None:
                    waiting.add(p)
                    sleep = min(sleep, left)
            if waiting:
                with self._dirty_lock:
                    self._dirty |= waiting
            if now >= next_retention:
                for p in self._all_partitions():
                    try:
                        p.enforce_retention()
                    except Exception:  # keep checking the others; the error is logged
                        logger.exception("retention on %r failed", p)
                next_retention = now + RETENTION_CHECK_MS / 1000
                continue
            self._wake.wait(sleep)

    def close(self) -> None:
        """Flush, seal, snapshot, mark the shutdown clean and release the lock; idempotent."""
        with self._lock:
            if self._closed:
                return
        self._stop_background()
        with self._lock:
            for p in [p for _, parts in self._topics.values() for p in parts]:
                p.close()
            self._closed = True
            atomic_write(self.path / _CLEAN_MARKER, b"")
            self._lock_file.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
