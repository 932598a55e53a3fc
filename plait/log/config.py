"""Typed, frozen settings of the log and the small value types its API returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from plait.errors import ConfigError

FsyncMode = Literal["always", "interval", "never"]

#: Default interval for ``FsyncPolicy.parse("interval")`` and for ``LogConfig``.
DEFAULT_FSYNC_INTERVAL_MS = 50
MAX_SEGMENT_BYTES = 2**31 - 1  # index positions are stored as unsigned 32-bit, like Kafka


@dataclass(frozen=True)
class FsyncPolicy:
    """When appended bytes are forced to stable storage.

    * ``always``: ``append`` fsyncs before it returns, so an acknowledged batch survives
      a power cut.
    * ``interval``: a background flusher thread (one per :class:`~plait.log.Log`) fsyncs
      every partition with unflushed data at least every ``interval_ms``; a power cut
      loses at most that window, a process crash loses nothing (the bytes are in the OS
      page cache once ``append`` returns).
    * ``never``: fsync only on ``flush()``, roll and ``close()``.
    """

    mode: FsyncMode
    interval_ms: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("always", "interval", "never"):
            raise ConfigError(
                f"fsync mode must be 'always', 'interval' or 'never', got {self.mode!r}"
            )
        if self.mode == "interval" and self.interval_ms <= 0:
            raise ConfigError(f"fsync interval must be > 0 ms, got {self.interval_ms}")
        if self.mode != "interval" and self.interval_ms != 0:
            raise ConfigError(f"fsync mode {self.mode!r} takes no interval, got {self.interval_ms}")

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """Parse ``always``, ``never``, ``interval`` (50 ms) or ``interval:<ms>``."""
        raw = text.strip().lower()
        if raw in ("always", "never"):
            return cls(raw)  # type: ignore[arg-type]
        if raw == "interval":
            return cls("interval", DEFAULT_FSYNC_INTERVAL_MS)
        if raw.startswith("interval:"):
            number = raw.split(":", 1)[1]
            try:
                ms = int(number)
            except ValueError:
                raise ConfigError(
                    f"fsync policy {text!r}: expected an integer of ms after 'interval:'"
                ) from None
            return cls("interval", ms)
        raise ConfigError(
            f"fsync policy must be 'always', 'never', 'interval' or 'interval:<ms>', got {text!r}"
        )

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}" if self.mode == "interval" else self.mode


def _default_fsync() -> FsyncPolicy:
    # Why interval:50 and not Kafka's "never": plait's embedded log has no replicas to
    # fall back on, so the page cache is the only copy; 50 ms bounds what a power cut can
    # take while costing ~20 fsyncs/s per busy partition instead of one per append.
    return FsyncPolicy("interval", DEFAULT_FSYNC_INTERVAL_MS)


@dataclass(frozen=True)
class LogConfig:
    """Per-topic storage settings (the Log's config is the default for new topics).

    Sizes are bytes, times milliseconds; ``-1`` disables a retention bound.

    * ``segment_bytes``: roll before an append would make the active segment larger
      (a batch bigger than this still goes alone into a fresh segment).
    * ``segment_ms``: roll when the active segment's first append is this old (after a
      reopen the age counts from that first batch's max timestamp, as in Kafka).
    * ``retention_ms``: a sealed segment is deleted once ``now - its max timestamp``
      exceeds this; ``retention_bytes``: oldest sealed segments are deleted while the
      partition stays at or above this size. The active segment is never deleted.
    * ``index_interval_bytes``: one offset-index entry per this many bytes of batches.
    * ``max_batch_bytes``: largest accepted batch (Kafka's ``message.max.bytes``).
    """

    segment_bytes: int = 256 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    retention_ms: int = 7 * 24 * 3600 * 1000
    index_interval_bytes: int = 4096
    fsync: FsyncPolicy = field(default_factory=_default_fsync)
    max_batch_bytes: int = 1048588

    def __post_init__(self) -> None:
        if isinstance(self.fsync, str):
            object.__setattr__(self, "fsync", FsyncPolicy.parse(self.fsync))
        if not isinstance(self.fsync, FsyncPolicy):
            raise ConfigError(f"fsync must be an FsyncPolicy or a string, got {self.fsync!r}")
        checks: list[tuple[str, int, int, int]] = [
            ("segment_bytes", self.segment_bytes, 128, MAX_SEGMENT_BYTES),
            ("segment_ms", self.segment_ms, 1, 2**63 - 1),
            ("index_interval_bytes", self.index_interval_bytes, 0, MAX_SEGMENT_BYTES),
            ("max_batch_bytes", self.max_batch_bytes, 61, MAX_SEGMENT_BYTES),
        ]
        for name, value, low, high in checks:
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
        for name, value in (("retention_bytes", self.retention_bytes),
                            ("retention_ms", self.retention_ms)):
            if not isinstance(value, int) or isinstance(value, bool) or (value < 0 and value != -1):
                raise ConfigError(f"{name} must be -1 (unlimited) or >= 0, got {value!r}")

    def overrides(self, base: LogConfig) -> dict[str, Any]:
        """The fields that differ from ``base``, as JSON-ready values."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(base, f.name)
            if mine != theirs:
                out[f.name] = str(mine) if isinstance(mine, FsyncPolicy) else mine
        return out

    def with_overrides(self, overrides: dict[str, Any]) -> LogConfig:
        """A copy of this config with ``overrides`` applied; unknown keys are rejected."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown log config keys {unknown}; expected some of {sorted(names)}")
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class TopicInfo:
    """A topic's name, partition count and effective config."""

    name: str
    partitions: int
    config: LogConfig


@dataclass(frozen=True)
class AppendResult:
    """Offsets given to an append.

    ``log_append_time`` is the wall-clock ms at which the log took the batch (the broker
    reports it only for LogAppendTime topics). ``duplicate`` is True when an idempotent
    producer's retry was recognised: nothing was written and the offsets are those the
    original append received.
    """

    base_offset: int
    last_offset: int
    log_append_time: int
    log_start_offset: int
    duplicate: bool = False
