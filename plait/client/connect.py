"""Open a plait deployment by URL: ``embedded:DIR`` today, a broker address later."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from plait.client.errors import InvalidUrlError
from plait.log import FsyncPolicy, Log, LogConfig, TopicInfo
from plait.meta.interface import MetaStore

if TYPE_CHECKING:
    from plait.client.consumer import Consumer
    from plait.client.producer import Producer
    from plait.fastlane.consumer import LowLatencyConsumer
    from plait.fastlane.interface import FastLane

DEFAULT_DATA_DIR = "./plait-data"


@dataclass(frozen=True, slots=True)
class PartitionDescription:
    partition: int
    log_start_offset: int
    log_end_offset: int


@dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    partitions: tuple[PartitionDescription, ...]


def _open_meta(url: str) -> MetaStore:
    # Imported late: the etcd backend pulls in an HTTP client nobody else needs.
    from plait.meta.url import open_meta

    return open_meta(url)


class EmbeddedClient:
    """Everything in this process: the segment log in ``path`` and its metadata store.

    The data dir is locked while the client is open (DataDirLockedError for a
    second process). Offsets and group generations live in the metadata store,
    SQLite in ``path/meta.sqlite`` unless ``meta`` names another one (for example
    ``etcd://host:2379``). With ``fastlane`` ("inproc", "nats://host:4222" or a
    FastLane object) every append is also pushed on the fast lane, and
    ``low_latency_consumer`` reads it, reconciled with the log by offset.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        meta: str | None = None,
        fsync: str | FsyncPolicy | None = None,
        log_config: LogConfig | None = None,
        fastlane: str | FastLane | None = None,
    ) -> None:
        self.path = Path(path)
        config = log_config or LogConfig()
        if fsync is not None:
            policy = fsync if isinstance(fsync, FsyncPolicy) else FsyncPolicy.parse(fsync)
            config = _with_fsync(config, policy)
        self.log_config = config
        self.log = Log.open(self.path, config)
        try:
            self.meta = _open_meta(meta or f"sqlite:{self.path / 'meta.sqlite'}")
        except BaseException:
            self.log.close()
            raise
        self.fastlane: FastLane | None = None
        self._detach_lane: Callable[[], None] | None = None
        if fastlane is not None:
            try:
                self._attach_fastlane(fastlane)
            except BaseException:
                self.meta.close()
                self.log.close()
                raise
        from plait.client.coordinator import CoordinatorRegistry

        self.coordinators = CoordinatorRegistry(self)
        self._closed = False

    def _attach_fastlane(self, fastlane: str | FastLane) -> None:
        from plait.fastlane.publisher import attach
        from plait.fastlane.url import open_fastlane

        self.fastlane = open_fastlane(fastlane) if isinstance(fastlane, str) else fastlane
        self._detach_lane = attach(self.log, self.fastlane)

    # Topics -------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1) -> TopicInfo:
        return self.log.create_topic(name, partitions)

    def delete_topic(self, name: str) -> None:
        self.log.delete_topic(name)

    def list_topics(self) -> list[str]:
        return self.log.list_topics()

    def describe_topic(self, name: str) -> TopicDescription:
        info = self.log.describe(name)
        parts = tuple(
            PartitionDescription(p.index, p.log_start_offset, p.log_end_offset)
            for p in self.log.partitions(info.name)
        )
        return TopicDescription(info.name, parts)

    # Clients ------------------------------------------------------------------------
    def producer(self, **options: object) -> Producer:
        from plait.client.producer import Producer

        return Producer(self, **options)  # type: ignore[arg-type]

    def consumer(self, topics: list[str] | None = None, **options: object) -> Consumer:
        from plait.client.consumer import Consumer

        consumer = Consumer(self, **options)  # type: ignore[arg-type]
        if topics:
            consumer.subscribe(topics)
        return consumer

    def low_latency_consumer(
        self,
        topics: list[str] | None = None,
        *,
        partitions: list[tuple[str, int]] | None = None,
        start: object = "latest",
        **options: object,
    ) -> LowLatencyConsumer:
        """A consumer that takes the fast lane and fills any gap from the log.

        Delivers every event of its partitions once, in offset order, whether the
        lane is up, lossy or down. Needs ``fastlane=`` at connect time.
        """
        from plait.client.errors import ClientError
        from plait.fastlane.consumer import LowLatencyConsumer

        if self.fastlane is None:
            raise ClientError("low_latency_consumer needs plait.connect(..., fastlane='inproc' or 'nats://...')")
        chosen = list(partitions or [])
        for topic in topics or []:
            chosen += [(topic, p) for p in range(self.log.describe(topic).partitions)]
        return LowLatencyConsumer(self, chosen, self.fastlane, start=start, **options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close every coordinator, the fast lane, the metadata store and the log (flushing it)."""
        if self._closed:
            return
        self._closed = True
        if self._detach_lane is not None:
            self._detach_lane()
        if self.fastlane is not None:
            self.fastlane.close()
        self.coordinators.close()
        try:
            self.meta.close()
        finally:
            self.log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_fsync(config: LogConfig, policy: FsyncPolicy) -> LogConfig:
    from dataclasses import replace

    return replace(config, fsync=policy)


def connect(url: str = f"embedded:{DEFAULT_DATA_DIR}", **options: object) -> EmbeddedClient:
    """Open plait at ``url``.

    ``embedded:DIR`` (or ``embedded://DIR``) runs everything in this process on the
    data dir DIR; keyword options go to the client (``meta=``, ``fsync=``).
    ``kafka://HOST:PORT[,HOST:PORT]`` uses a Kafka-protocol cluster (``plait serve``,
    Kafka, Redpanda) through confluent-kafka; keyword options are librdkafka settings,
    besides ``meta=`` and ``fastlane=`` (the lane ``plait serve --fastlane`` publishes
    on, for ``low_latency_consumer``).
    """
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise InvalidUrlError(url, "expected 'embedded:DIR'")
    if scheme == "embedded":
        path = rest.removeprefix("//")
        if not path:
            raise InvalidUrlError(url, "the embedded URL names no data dir")
        return EmbeddedClient(path, **options)  # type: ignore[arg-type]
    if scheme == "kafka":
        bootstrap = rest.removeprefix("//")
        if not bootstrap:
            raise InvalidUrlError(url, "the kafka URL names no bootstrap address")
        from plait.client.kafka import KafkaClient

        return KafkaClient(bootstrap, **options)  # type: ignore[return-value, arg-type]
    raise InvalidUrlError(url, f"unknown scheme {scheme!r}; plait understands 'embedded:' and 'kafka://'")

