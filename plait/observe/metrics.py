"""Prometheus metric definitions for the broker, on a registry of its own.

Each server gets its own CollectorRegistry so two brokers in one process (tests) do not
share counters. Log end offsets and consumer lag are computed when scraped, from the
log and the committed offsets, so they are never stale and cost nothing between scrapes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
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


class _Buckets:
    """One API's latency histogram: per-bucket counts (the last is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0


class _LatencyCollector(Collector):
    def __init__(self, by_api: dict[str, _Buckets]) -> None:
        self._by_api = by_api

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "plait_broker_request_seconds", "Time from request decoded to response queued",
            labels=["api"],
        )
        for api, hist in self._by_api.items():
            cumulative, rows = 0, []
            for le, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), hist.counts, strict=True):
                cumulative += n
                rows.append((le, cumulative))
            family.add_metric([api], rows, hist.total)
        yield family


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

        # The hot path (every request) only adds to plain ints and lists; the counters
        # catch up when scraped (``render``). prometheus_client's inc/observe/labels take
        # a lock and a lookup each, a visible share of a request at 10k requests/s, and
        # every caller runs on the event loop thread, as the scrape does.
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Buckets] = {}
        self._partition_errors: dict[tuple[str, int], Any] = {}
        self._produced: dict[str, int] = {}
        self._bytes_in = 0
        self._bytes_out = 0
        r.register(_LatencyCollector(self._latency))

    def request_done(self, api: str, code: int, seconds: float) -> None:
        """Count one answered request and record its time from decode to queued answer."""
        key = (api, code)
        self._requests[key] = self._requests.get(key, 0) + 1
        hist = self._latency.get(api)
        if hist is None:
            hist = self._latency[api] = _Buckets()
        hist.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        hist.total += seconds

    def received(self, nbytes: int) -> None:
        self._bytes_in += nbytes

    def sent(self, nbytes: int) -> None:
        self._bytes_out += nbytes

    def partition_error(self, api: str, code: int) -> None:
        child = self._partition_errors.get((api, code))
        if child is None:
            child = self._partition_errors[(api, code)] = self.partition_errors.labels(api, str(code))
        child.inc()

    def produced(self, topic: str, nbytes: int) -> None:
        """Record bytes appended to ``topic`` (duplicates of idempotent retries excluded)."""
        self._produced[topic] = self._produced.get(topic, 0) + nbytes

    def _catch_up(self) -> None:
        """Move what the hot path counted into the prometheus counters."""
        for (api, code), n in self._requests.items():
            if n:
                self.requests.labels(api, str(code)).inc(n)
                self._requests[(api, code)] = 0
        for topic, n in self._produced.items():
            if n:
                self.records_bytes_in.labels(topic).inc(n)
                self._produced[topic] = 0
        if self._bytes_in:
            self.bytes_in.inc(self._bytes_in)
            self._bytes_in = 0
        if self._bytes_out:
            self.bytes_out.inc(self._bytes_out)
            self._bytes_out = 0

    def attach_log(self, end_offsets: EndOffsets, committed: Committed) -> None:
        self.registry.register(_LogCollector(end_offsets, committed))

    def render(self) -> bytes:
        """The text exposition; call on the event loop thread (as the hot path runs)."""
        self._catch_up()
        return generate_latest(self.registry)
