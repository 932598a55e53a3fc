"""Typed, frozen settings of ``plait serve``, validated at the edge."""

from __future__ import annotations

from dataclasses import dataclass

from plait.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """What the Kafka listener serves and the limits that keep one client from hurting others.

    ``max_request_bytes`` is checked against a frame's size prefix before the frame is
    read; ``max_inflight_per_connection`` bounds how many requests one connection may
    have decoded and not yet answered (Kafka clients pipeline up to 5 by default).
    """

    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    node_id: int = 0
    cluster_id: str = "plait-cluster"
    auto_create_topics: bool = True
    default_partitions: int = 1
    max_request_bytes: int = 100 * MIB
    max_connections: int = 1024
    max_inflight_per_connection: int = 32
    # Kafka's broker-side fetch.max.bytes default: a Fetch never reads more than this
    # into memory, whatever max_bytes the client asks for (one batch may exceed it).
    max_fetch_bytes: int = 55 * MIB
    group_initial_rebalance_delay_ms: int = 300

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"kafka port must be in 0-65535, got {self.port}")
        if self.default_partitions < 1:
            raise ConfigError(f"default partitions must be >= 1, got {self.default_partitions}")
        if self.max_request_bytes < 1024:
            raise ConfigError(f"max request bytes must be >= 1024, got {self.max_request_bytes}")
        if self.max_connections < 1 or self.max_inflight_per_connection < 1:
            raise ConfigError(
                "max connections and max in-flight requests must be >= 1, got "
                f"{self.max_connections} and {self.max_inflight_per_connection}"
            )
        if self.group_initial_rebalance_delay_ms < 0:
            raise ConfigError(
                f"initial rebalance delay must be >= 0 ms, got {self.group_initial_rebalance_delay_ms}"
            )
