"""Wiring for ``plait serve``: open the log and metadata store, serve, shut down cleanly.

Shutdown order is the durability contract: stop accepting, answer in-flight requests,
then flush (fsync) the log and close it, then close the metadata store. Everything a
client saw acknowledged before the signal is on disk when the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plait.broker.config import BrokerConfig
from plait.broker.server import KafkaServer
from plait.broker.state import Broker
from plait.groups import GroupStore
from plait.log import Log
from plait.log.config import LogConfig
from plait.meta.interface import MetaStore
from plait.observe.http import HttpEndpoint
from plait.observe.metrics import BrokerMetrics

if TYPE_CHECKING:
    from plait.fastlane.interface import FastLane

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    data_dir: Path
    meta_url: str
    broker: BrokerConfig
    http_port: int = 8080
    log_config: LogConfig | None = None
    fastlane_url: str | None = None  # publish every append on this lane (nats://...)
    fastlane_wait_s: float = 5.0  # how long start-up waits for the lane's first connection
    # End markers on the lane for partitions quiet this long (plait.fastlane.publisher):
    # remote low-latency consumers then stop fetching on idle topics. They trust a marker
    # for LowLatencyConsumer's ``lane_end_ttl`` (1 s by default), a few heartbeats' worth.
    # 0: none (every idle remote consumer then fetches to be sure).
    lane_heartbeat_s: float = 0.2


def _open_meta(url: str) -> MetaStore:
    from plait.meta.url import open_meta

    return open_meta(url)


class BrokerApp:
    """One running broker: the Kafka listener and the HTTP endpoint over one log."""

    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        # The same layout as the embedded client, so `plait --data DIR ...` and
        # `plait serve --data DIR` share one data dir (never at once: it is locked).
        self.log = Log.open(opts.data_dir, opts.log_config)
        try:
            self.meta = _open_meta(opts.meta_url)
        except BaseException:
            self.log.close()
            raise
        self.lane: FastLane | None = None
        self._detach_lane: Callable[[], None] | None = None
        if opts.fastlane_url:
            try:
                self._open_lane(opts.fastlane_url, opts.fastlane_wait_s, opts.lane_heartbeat_s)
            except BaseException:
                self.log.close()
                self.meta.close()
                raise
        self.metrics = BrokerMetrics()
        self.broker = Broker(self.log, GroupStore(self.meta), opts.broker, self.metrics,
                             opts.log_config)
        self.metrics.attach_log(self._end_offsets, self._committed)
        self.kafka = KafkaServer(self.broker)
        self.http = HttpEndpoint(self.metrics.render, lambda: not self.kafka.closing)

    def _open_lane(self, url: str, wait_s: float, heartbeat_s: float) -> None:
        """Publish every append on the fast lane at ``url``. The lane is lossy by design
        (consumers fill gaps from the log), so an unreachable server delays nothing: it
        is waited for up to ``wait_s`` at start-up, then reconnected in the background."""
        from plait.fastlane.publisher import attach
        from plait.fastlane.url import open_fastlane

        self.lane = open_fastlane(url)
        wait = getattr(self.lane, "wait_connected", None)
        if wait is not None and not wait(wait_s):
            log.warning("fast lane %s not reachable yet; publishing once it is", url)
        self._detach_lane = attach(self.log, self.lane, heartbeat_s=heartbeat_s or None)

    def _close_lane(self) -> None:
        if self._detach_lane is not None:
            self._detach_lane()
            self._detach_lane = None
        if self.lane is not None:
            self.lane.close()
            self.lane = None

    def _end_offsets(self) -> Iterator[tuple[str, int, int]]:
        for topic in self.log.list_topics():
            for p in self.log.partitions(topic):
                yield topic, p.index, p.log_end_offset

    def _committed(self) -> Iterator[tuple[str, str, int, int]]:
        store = self.broker.coordinator.store
        for group in store.list_groups():
            for (topic, part), (offset, _meta) in store.fetch_offsets(group).items():
                yield group, topic, part, offset

    async def start(self) -> tuple[int, int]:
        kafka_port = await self.kafka.start()
        http_port = await self.http.start(self.opts.broker.host, self.opts.http_port)
        self.broker.coordinator.start()
        return kafka_port, http_port

    async def stop(self) -> None:
        await self.kafka.stop()
        await self.http.stop()
        await self.broker.coordinator.stop()
        self._close_lane()
        try:
            self.log.flush()
        finally:
            self.log.close()
            self.meta.close()

    async def run_until_signalled(self) -> None:
        """Serve until SIGINT or SIGTERM, printing the ready line once listening."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        try:
            kafka_port, http_port = await self.start()
        except BaseException:
            self._close_lane()
            self.log.close()
            self.meta.close()
            raise
        # Everything loaded at start-up (codecs, schemas, compiled kernels) lives for the
        # process: keep it out of the cyclic GC so full collections stay short pauses.
        gc.collect()
        gc.freeze()
        host = self.opts.broker.host
        print(f"plait serve: kafka on {host}:{kafka_port}, http on {host}:{http_port}",
              file=sys.stderr, flush=True)
        await done.wait()
        print("plait serve: stopping", file=sys.stderr, flush=True)
        await self.stop()


def run(opts: ServeOptions) -> None:
    """Run a broker in this thread until signalled; uses uvloop where installed."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop is optional (not on Windows)
        runner = asyncio.run  # type: ignore[assignment]
    app = BrokerApp(opts)
    runner(app.run_until_signalled())
