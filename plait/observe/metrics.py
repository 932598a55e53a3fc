"""Prometheus metric definitions for the broker, on a registry of its own.

Each server gets its own CollectorRegistry so two brokers in one process (tests) do not
share counters. Log end offsets and consumer lag are computed when scraped, from the
log and the committed offsets, so they are never stale and cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# (topic, partition, log_end_offset) for every partition.
EndOffsets = Callable[[], Iterable[tuple[str, int, int]]]
# (group, topic, partition, committed_offset) for every committed offset.
Committed = Callable[[], Iterable[tuple[str, str, int, int]]]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _LogCollector(Collector):
    def __init__(self, end_offsets: EndOffsets, committed: Committed) -> None:
        self._end_offsets = end_offsets
        self._committed = committed

    def collect(self) -> Iterator[Metric]:
        ends = GaugeMetricFamily(
            "plait_log_end_offset", "Next offset to be written, per partition",
            labels=["topic", "partition"],
        )
        end_by_tp: dict[tuple[str, int], int] = {}
        for topic, part, end in self._end_offsets():
            end_by_tp[(topic, part)] = end
            ends.add_metric([topic, str(part)], end)
        yield ends
        lag = GaugeMetricFamily(
            "plait_group_lag", "Log end offset minus the group's committed offset",
            labels=["group", "topic", "partition"],
        )
        for group, topic, part, committed in self._committed():
            log_end = end_by_tp.get((topic, part))
            if log_end is not None:
                lag.add_metric([group, topic, str(part)], max(0, log_end - committed))
        yield lag


class BrokerMetrics:
    """The broker's counters and histograms; ``render`` gives the text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "plait_broker_requests", "Requests answered, by API and top-level error code",
            ["api", "error"], registry=r,
        )
        self.partition_errors = Counter(
            "plait_broker_partition_errors", "Per-partition error codes in Produce and Fetch answers",
            ["api", "error"], registry=r,
        )
        self.latency = Histogram(
            "plait_broker_request_seconds", "Time from request decoded to response queued",
            ["api"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.bytes_in = Counter("plait_broker_bytes_in", "Request bytes received", registry=r)
        self.bytes_out = Counter("plait_broker_bytes_out", "Response bytes sent", registry=r)
        self.records_bytes_in = Counter(
            "plait_broker_produced_bytes", "Record batch bytes appended, per topic", ["topic"],
            registry=r,
        )
        self.connections = Gauge("plait_broker_connections", "Open client connections", registry=r)
        self.rejected_connections = Counter(
            "plait_broker_rejected_connections", "Connections refused over the limit", registry=r,
        )
        self.malformed = Counter(
            "plait_broker_malformed_frames", "Frames that failed to decode or were oversized",
            registry=r,
        )

    def attach_log(self, end_offsets: EndOffsets, committed: Committed) -> None:
        self.registry.register(_LogCollector(end_offsets, committed))

    def render(self) -> bytes:
        return generate_latest(self.registry)
