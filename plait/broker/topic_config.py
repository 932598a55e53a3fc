"""Kafka topic config names ↔ the log's LogConfig fields.

Kafka clients create topics with Kafka's dotted names (``retention.ms``); the log keeps
typed fields (``retention_ms``). Names the log enforces map to fields; a few names that
clients routinely send but that have no meaning for a single-node log without compaction
are accepted and reported with their default value (listed in ACCEPTED). Anything else is refused
with INVALID_CONFIG rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from plait.errors import ConfigError
from plait.log.config import LogConfig

MAPPED: dict[str, str] = {
    "segment.bytes": "segment_bytes",
    "segment.ms": "segment_ms",
    "retention.bytes": "retention_bytes",
    "retention.ms": "retention_ms",
    "index.interval.bytes": "index_interval_bytes",
    "max.message.bytes": "max_batch_bytes",
}

# Accepted, not enforced: replication and compaction settings (one node, no compactor),
# and settings whose only supported value is the default.
ACCEPTED: dict[str, str] = {
    "cleanup.policy": "delete",
    "min.insync.replicas": "1",
    "compression.type": "producer",
    "message.timestamp.type": "CreateTime",
    "unclean.leader.election.enable": "false",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "86400000",
    "message.downconversion.enable": "true",
}


def log_overrides(configs: dict[str, str | None]) -> dict[str, Any]:
    """LogConfig overrides for a CreateTopics config list; ConfigError names the bad key."""
    out: dict[str, Any] = {}
    for name, value in configs.items():
        if name in MAPPED:
            if value is None:
                continue
            try:
                out[MAPPED[name]] = int(value)
            except ValueError:
                raise ConfigError(f"topic config {name} expects an integer, got {value!r}") from None
        elif name not in ACCEPTED:
            raise ConfigError(
                f"topic config {name!r} is not supported; expected one of "
                f"{sorted(MAPPED) + sorted(ACCEPTED)}"
            )
    return out


def describe(config: LogConfig, defaults: LogConfig) -> list[tuple[str, str, bool]]:
    """(name, value, is_default) for every Kafka name we report, in name order."""
    rows = [
        (name, str(getattr(config, field)), getattr(config, field) == getattr(defaults, field))
        for name, field in MAPPED.items()
    ]
    rows += [(name, value, True) for name, value in ACCEPTED.items()]
    return sorted(rows)
