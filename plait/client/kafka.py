"""The distributed log backend: any Kafka-protocol cluster, through confluent-kafka.

``plait.connect("kafka://host:port[,host:port]")`` gives the same client surface as
the embedded one (topics, a producer with ``send``/``send_batch``/``flush``, a
consumer with ``poll``/``poll_batch``/``commit``/``seek``), so moving from the
embedded log to ``plait serve``, Kafka or Redpanda is a change of URL. librdkafka
does the protocol work; this module only adapts shapes and maps errors to plait's.

Contract differences from the embedded client, all inherited from Kafka:
- ``send_batch`` returns once every event is acknowledged (acks=all, idempotent
  producer), but the offsets of a batch spread over partitions are per event.
- Without ``meta=``, group rebalancing is Kafka's (range assignor by default) and
  commits are fenced by the broker's generation check.
- With ``meta=URL`` (``plait.connect("kafka://h:p", meta="etcd://...")``), groups are
  plait's own (plait.groups.membership, leased members in that metadata store): the
  consumer ``assign()``s the partitions plait's coordinator gives it and commits
  offsets to the metadata store, fenced by plait's generation. The metadata store is
  then the single source of truth for offsets; Kafka's group offsets are not used.
- With ``fastlane=URL`` (``plait.connect("kafka://h:p", fastlane="nats://...")``, the
  lane that ``plait serve --fastlane`` publishes on), ``low_latency_consumer`` takes
  the lane and fills every gap from the broker, with the embedded two-path
  consumer's contract (plait.fastlane.consumer, plait.fastlane.kafka_log).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import pyarrow as pa

from plait.client.batching import BinaryLike, to_binary_array
from plait.client.connect import PartitionDescription, TopicDescription
from plait.client.errors import ClientClosedError, ClientError, NotAssignedError
from plait.client.messages import (
    BatchAck,
    ColumnBatch,
    Message,
    PartitionAck,
    RecordMetadata,
)
from plait.log.errors import InvalidTopicError, TopicExistsError, UnknownTopicError

if TYPE_CHECKING:
    from plait.fastlane.consumer import LowLatencyConsumer, LowLatencyStats, Start
    from plait.fastlane.interface import FastLane

TopicPartition = tuple[str, int]
TIMEOUT = 30.0


def _ck() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:  # pragma: no cover - a dependency, reported clearly
        raise ClientError("the Kafka backend needs confluent-kafka: pip install confluent-kafka") from exc
    return confluent_kafka


class KafkaBackendError(ClientError):
    """librdkafka reported an error; ``code`` is the Kafka error name."""

    def __init__(self, what: str, error: Any) -> None:
        self.code = error.name() if hasattr(error, "name") else str(error)
        super().__init__(f"{what}: {error.str() if hasattr(error, 'str') else error}")


def data_messages(raw: Iterable[Any], ck: Any) -> list[Any]:
    """The events among librdkafka's messages: end-of-partition notices are skipped,
    any other error event raises KafkaBackendError."""
    out = []
    for msg in raw:
        err = msg.error()
        if err is None:
            out.append(msg)
        elif err.code() != ck.KafkaError._PARTITION_EOF:
            raise KafkaBackendError("consume", err)
    return out


def column_batches(messages: Iterable[Any]) -> list[ColumnBatch]:
    """librdkafka's messages (events only) as one ColumnBatch per partition.

    Each batch keeps its partition's events in the order they were consumed (offset
    order); partitions come in the order of their first event. Record headers are
    carried when some event of the batch has any, as the embedded consumer does.
    """
    by_partition: dict[TopicPartition, list[Any]] = {}
    for m in messages:
        by_partition.setdefault((m.topic(), m.partition()), []).append(m)
    out = []
    for (t, p), ms in by_partition.items():
        raw_headers = [m.headers() for m in ms]  # None for most events
        headers = [tuple(h or ()) for h in raw_headers] if any(raw_headers) else None
        out.append(ColumnBatch(
            t,
            p,
            np.array([m.offset() for m in ms], dtype=np.int64),
            np.array([m.timestamp()[1] for m in ms], dtype=np.int64),
            pa.array([m.key() for m in ms], type=pa.binary()),
            pa.array([m.value() for m in ms], type=pa.binary()),
            headers,
        ))
    return out


class KafkaClient:
    """Topics, producers and consumers on a Kafka-protocol cluster at ``bootstrap``."""

    def __init__(
        self,
        bootstrap: str,
        *,
        meta: str | None = None,
        fastlane: str | FastLane | None = None,
        **config: Any,
    ) -> None:
        ck = _ck()
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self._config = {"bootstrap.servers": bootstrap, **config}
        self._admin = AdminClient(dict(self._config))
        self._closed = False
        self._ck = ck
        self.meta: Any = None
        self.coordinators: Any = None
        self.fastlane: FastLane | None = None
        if meta is not None:
            from plait.client.coordinator import CoordinatorRegistry
            from plait.meta.url import open_meta

            self.meta = open_meta(meta)
            self.coordinators = CoordinatorRegistry(self)
        if fastlane is not None:
            from plait.fastlane.url import open_fastlane

            try:
                # Only subscribed to: the broker (plait serve --fastlane) publishes.
                self.fastlane = open_fastlane(fastlane) if isinstance(fastlane, str) else fastlane
            except BaseException:
                self.close()
                raise

    def create_topic(self, name: str, partitions: int = 1) -> TopicDescription:
        from confluent_kafka.admin import NewTopic

        future = self._admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=TIMEOUT)[name]
        try:
            future.result(timeout=TIMEOUT)
        except self._ck.KafkaException as exc:
            err = exc.args[0]
            if err.code() == self._ck.KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicExistsError(name) from None
            if err.code() == self._ck.KafkaError.INVALID_TOPIC_EXCEPTION:
                raise InvalidTopicError(f"invalid topic name {name!r}: {err.str()}") from None
            raise KafkaBackendError(f"create topic {name!r}", err) from None
        return self.describe_topic(name)

    def list_topics(self) -> list[str]:
        meta = self._admin.list_topics(timeout=TIMEOUT)
        return sorted(t for t in meta.topics if not t.startswith("__"))

    def partition_count(self, name: str) -> int:
        meta = self._admin.list_topics(topic=name, timeout=TIMEOUT)
        topic = meta.topics.get(name)
        if topic is None or topic.error is not None and topic.error.code() == self._ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise UnknownTopicError(name)
        if topic.error is not None:
            raise KafkaBackendError(f"describe topic {name!r}", topic.error)
        return len(topic.partitions)

    def describe_topic(self, name: str) -> TopicDescription:
        count = self.partition_count(name)
        probe = self._ck.Consumer({**self._config, "group.id": "plait-describe", "enable.auto.commit": False})
        try:
            parts = []
            for p in range(count):
                low, high = probe.get_watermark_offsets(self._ck.TopicPartition(name, p), timeout=TIMEOUT)
                parts.append(PartitionDescription(p, low, high))
        finally:
            probe.close()
        return TopicDescription(name, tuple(parts))

    def producer(self, **options: Any) -> KafkaProducer:
        return KafkaProducer(self, **options)

    def consumer(self, topics: list[str] | None = None, **options: Any) -> KafkaConsumer:
        coordinated = self.coordinators is not None and options.get("group") is not None
        if not coordinated and options.pop("low_latency", False):
            raise ClientError(
                "low_latency=True on kafka:// is for plait-coordinated groups "
                "(plait.connect(..., meta=URL, fastlane=...), group=...); without a group "
                "use low_latency_consumer()"
            )
        cls = CoordinatedKafkaConsumer if coordinated else KafkaConsumer
        consumer = cls(self, **options)
        if topics:
            consumer.subscribe(topics)
        return consumer

    def low_latency_consumer(
        self,
        topics: list[str] | None = None,
        *,
        partitions: list[TopicPartition] | None = None,
        start: Start = "latest",
        fetch_wait_ms: int = 10,
        kafka_config: dict[str, Any] | None = None,
        **options: Any,
    ) -> LowLatencyConsumer:
        """A consumer that takes the fast lane and fills any gap from the broker.

        The embedded one's contract (plait.fastlane.consumer): every event of its
        partitions once, in offset order per partition, whether the lane is up, lossy
        or down. ``options`` are LowLatencyConsumer's (``fallback_after``,
        ``lane_end_ttl``, ``max_buffer_bytes``, ``max_poll_records``); ``fetch_wait_ms`` bounds how long
        a switch from the lane to the log waits for librdkafka's parked fetch, and
        ``kafka_config`` adds librdkafka settings for the log side (see
        plait.fastlane.kafka_log). Needs ``fastlane=`` at connect time.
        """
        from plait.fastlane.consumer import LowLatencyConsumer
        from plait.fastlane.kafka_log import KafkaLogSource

        if self.fastlane is None:
            raise ClientError("low_latency_consumer needs plait.connect('kafka://...', fastlane='nats://...')")
        chosen = list(partitions or [])
        for topic in topics or []:
            chosen += [(topic, p) for p in range(self.partition_count(topic))]
        source = KafkaLogSource(
            self,
            max_buffer_bytes=options.get("max_buffer_bytes", 32 << 20),
            max_poll_records=options.get("max_poll_records", 10_000),
            fetch_wait_ms=fetch_wait_ms,
            config=kafka_config,
        )
        try:
            return LowLatencyConsumer(source, chosen, self.fastlane, start=start, **options)
        except BaseException:
            source.close()  # idempotent: the consumer closes it too once it owns it
            raise

    def close(self) -> None:
        """Leave every plait-coordinated group, then close the fast lane and the metadata store."""
        if self._closed:
            return
        self._closed = True
        if self.coordinators is not None:
            self.coordinators.close()
        if self.fastlane is not None:
            self.fastlane.close()
        if self.meta is not None:
            self.meta.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KafkaProducer:
    """An idempotent (acks=all) librdkafka producer with plait's send/send_batch."""

    def __init__(self, client: KafkaClient, *, linger_ms: float = 2.0, **config: Any) -> None:
        self._client = client
        self._ck = client._ck
        self._producer = self._ck.Producer(
            {
                **client._config,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": linger_ms,
                "queue.buffering.max.messages": 1_000_000,
                **config,
            }
        )
        self._closed = False
        self._lock = threading.Lock()
        self._known_topics: set[str] = set()

    def send(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes | None]] = (),
        on_delivery: Any = None,
    ) -> Future[RecordMetadata]:
        if self._closed:
            raise ClientClosedError("producer is closed")
        future: Future[RecordMetadata] = Future()

        def done(err: Any, msg: Any) -> None:
            if err is not None:
                exc = KafkaBackendError(f"delivery to {topic}", err)
                future.set_exception(exc)
                if on_delivery:
                    on_delivery(exc, None)
                return
            meta = RecordMetadata(msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1])
            future.set_result(meta)
            if on_delivery:
                on_delivery(None, meta)

        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": done}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        if headers:
            kwargs["headers"] = list(headers)
        self._produce(topic, kwargs)
        return future

    def _produce(self, topic: str, kwargs: dict[str, Any]) -> None:
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                self._producer.poll(0)
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain

    def send_batch(
        self,
        topic: str,
        values: BinaryLike,
        keys: BinaryLike | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> BatchAck:
        """Send many events and wait until all are acknowledged (or raise the first error)."""
        if self._closed:
            raise ClientClosedError("producer is closed")
        if topic not in self._known_topics:
            # UnknownTopicError before anything is queued; a metadata round trip, so once
            # per topic (a topic deleted later fails at delivery, as librdkafka reports it)
            self._client.partition_count(topic)
            self._known_topics.add(topic)
        vals = to_binary_array(values).to_pylist()
        ks = to_binary_array(keys, what="keys").to_pylist() if keys is not None else [None] * len(vals)
        errors: list[BaseException] = []
        offsets: dict[int, list[int]] = {}

        def done(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(KafkaBackendError(f"delivery to {topic}", err))
            else:
                offsets.setdefault(msg.partition(), []).append(msg.offset())

        messages = [{"value": v, "key": k} for v, k in zip(vals, ks)]
        if timestamp_ms is not None:
            for m in messages:
                m["timestamp"] = timestamp_ms
        kwargs: dict[str, Any] = {"on_delivery": done}
        if partition is not None:
            kwargs["partition"] = partition
        start = 0
        if timestamp_ms is not None:
            # confluent-kafka's produce_batch cannot carry timestamps (it raises
            # NotImplementedError): these go one by one, still acked all together below.
            for m in messages:
                self._produce(topic, {**m, **kwargs})
            start = len(messages)
        while start < len(messages):
            chunk = messages[start : start + 50_000]
            try:
                queued = self._producer.produce_batch(topic, chunk, **kwargs)
            except BufferError:
                queued = 0
            start += queued
            if queued < len(chunk):
                self._producer.poll(0.05)
        self._producer.flush()
        if errors:
            raise errors[0]
        ranges = tuple(
            PartitionAck(p, min(offs), len(offs)) for p, offs in sorted(offsets.items())
        )
        return BatchAck(topic, ranges)

    def flush(self, timeout: float | None = None) -> None:
        remaining = self._producer.flush(-1 if timeout is None else timeout)
        if remaining:
            raise ClientError(f"{remaining} events still unacknowledged after {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        if not self._closed:
            self.flush(timeout)
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KafkaConsumer:
    """A librdkafka consumer with plait's poll/poll_batch/commit; commits are explicit."""

    def __init__(
        self,
        client: KafkaClient,
        *,
        group: str | None = None,
        auto_offset_reset: Literal["earliest", "latest"] = "latest",
        from_beginning: bool = False,
        max_poll_records: int = 10_000,
        member_id: str | None = None,
        **config: Any,
    ) -> None:
        """``member_id``: static group membership (Kafka's ``group.instance.id``): a
        restarted member with the same id takes its partitions back at once instead of
        after its previous incarnation's session times out."""
        self._client = client
        self._ck = client._ck
        self.group = group
        self._reset = "earliest" if from_beginning else auto_offset_reset
        self._max_records = max_poll_records
        static = {"group.instance.id": member_id} if member_id else {}
        self._consumer = self._ck.Consumer(
            {
                **client._config,
                "group.id": group or "plait-standalone",
                "enable.auto.commit": False,
                "auto.offset.reset": self._reset,
                **static,
                **config,
            }
        )
        self._positions: dict[TopicPartition, int] = {}
        self._closed = False

    def subscribe(self, topics: Iterable[str]) -> None:
        topics = list(topics)
        counts = {t: self._client.partition_count(t) for t in topics}
        if self.group is not None:
            self._consumer.subscribe(topics)
            return
        start = self._ck.OFFSET_BEGINNING if self._reset == "earliest" else self._ck.OFFSET_END
        self._consumer.assign(
            [self._ck.TopicPartition(t, p, start) for t, n in counts.items() for p in range(n)]
        )

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        start = self._ck.OFFSET_BEGINNING if self._reset == "earliest" else self._ck.OFFSET_END
        self._consumer.assign([self._ck.TopicPartition(t, p, start) for t, p in partitions])

    def assignment(self) -> list[TopicPartition]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def _consume(self, timeout: float, max_records: int | None) -> list[Any]:
        """librdkafka's messages, error events removed (EOF skipped, others raised);
        positions move past what is returned."""
        if self._closed:
            raise ClientClosedError("consumer is closed")
        # Not consume(n, timeout): librdkafka waits out the whole timeout unless n messages
        # are ready, so a quiet topic would add the timeout to every event's latency.
        # poll() returns at the first message; consume(n - 1, 0) takes what is queued.
        first = self._consumer.poll(max(0.0, timeout))
        raw = [] if first is None else [first]
        limit = max_records or self._max_records
        if first is not None and limit > 1:
            raw += self._consumer.consume(num_messages=limit - 1, timeout=0)
        out = data_messages(raw, self._ck)
        for msg in out:
            self._positions[(msg.topic(), msg.partition())] = msg.offset() + 1
        return out

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Message]:
        return [
            Message(
                msg.topic(),
                msg.partition(),
                msg.offset(),
                msg.timestamp()[1],
                msg.key(),
                msg.value(),
                tuple(msg.headers() or ()),
            )
            for msg in self._consume(timeout, max_records)
        ]

    def poll_batch(self, timeout: float = 1.0, max_records: int | None = None) -> list[ColumnBatch]:
        return column_batches(self._consume(timeout, max_records))

    def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit positions (default: next offset after what poll returned) synchronously."""
        chosen = self._positions if offsets is None else offsets
        if not chosen:
            return
        tps = [self._ck.TopicPartition(t, p, o) for (t, p), o in chosen.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except self._ck.KafkaException as exc:
            raise KafkaBackendError("commit", exc.args[0]) from None

    def seek(self, topic: str, partition: int, offset: int) -> None:
        if (topic, partition) not in self.assignment():
            raise NotAssignedError(topic, partition)
        self._consumer.seek(self._ck.TopicPartition(topic, partition, offset))
        self._positions[(topic, partition)] = offset

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CoordinatedKafkaConsumer(KafkaConsumer):
    """A group member coordinated by plait over the metadata store, reading via assign().

    Same contract as the embedded consumer's groups: the partitions come from plait's
    coordinator (leased members, CAS-stored generations); a newly owned partition starts
    at the offset committed in the metadata store, else at ``auto_offset_reset``; a
    commit is one metadata transaction fenced by this member's generation
    (FencedCommitError when the group moved on). The new assignment is adopted at the
    next ``poll``, which drops revoked partitions before reading anything else.

    ``low_latency=True`` (with ``fastlane=`` at connect time) reads the owned partitions
    through the remote two-path consumer (``KafkaClient.low_latency_consumer``), made
    anew from the positions at each rebalance and seek.
    """

    def __init__(
        self,
        client: KafkaClient,
        *,
        group: str,
        session_timeout_s: float | None = None,
        member_id: str | None = None,
        low_latency: bool = False,
        **options: Any,
    ) -> None:
        if low_latency and client.fastlane is None:
            raise ClientError(
                "low_latency=True needs plait.connect('kafka://...', fastlane='nats://...')"
            )
        self._low_latency = low_latency
        self._lane_reader: LowLatencyConsumer | None = None
        # librdkafka needs a group.id even for assign(); it never joins or commits with it.
        options.setdefault("group.id", f"plait-assign.{group}")
        super().__init__(client, group=group, **options)
        self._coordinator = client.coordinators.get(group, session_timeout_s=session_timeout_s)
        self._static_id = member_id
        self._member_id: str | None = None
        self._generation = -1
        self._owned: list[TopicPartition] = []

    @property
    def generation(self) -> int:
        return self._generation

    def subscribe(self, topics: Iterable[str]) -> None:
        topics = list(topics)
        for t in topics:
            self._client.partition_count(t)  # UnknownTopicError now, not at the first poll
        if self._member_id is None:
            self._member_id = self._coordinator.join(topics, self._static_id)
        else:
            self._coordinator.update(self._member_id, topics)
        self._adopt()

    def _adopt(self) -> None:
        assert self._member_id is not None
        generation, parts = self._coordinator.current(self._member_id)
        self._generation = generation
        new = sorted(parts)
        added = [tp for tp in new if tp not in self._positions]
        committed = self._coordinator.store.fetch_offsets(self.group, added) if added else {}
        default = self._ck.OFFSET_BEGINNING if self._reset == "earliest" else self._ck.OFFSET_END
        for tp in list(self._positions):
            if tp not in new:
                del self._positions[tp]  # revoked: forget it before anything else is read
        starts = []
        for tp in new:
            if tp in self._positions:
                start = self._positions[tp]
            elif tp in committed:
                start = committed[tp][0]
                self._positions[tp] = start
            else:
                start = default
            starts.append(self._ck.TopicPartition(tp[0], tp[1], start))
        self._owned = new
        if self._low_latency:
            self._restart_lane_reader()
        else:
            self._consumer.assign(starts)

    def _restart_lane_reader(self) -> None:
        """A remote two-path reader over the owned partitions, from their positions; a
        partition with none starts at ``auto_offset_reset`` (0 is clamped up to the
        log start, a missing entry means the log end)."""
        if self._lane_reader is not None:
            self._lane_reader.close()
            self._lane_reader = None
        if not self._owned:
            return
        start = {tp: self._positions.get(tp, 0) for tp in self._owned
                 if tp in self._positions or self._reset == "earliest"}
        self._lane_reader = self._client.low_latency_consumer(
            partitions=list(self._owned), start=start, max_poll_records=self._max_records)
        self._positions.update(self._lane_reader.positions())

    @property
    def lane_stats(self) -> LowLatencyStats | None:
        """What the fast lane and the broker each delivered (``low_latency=True`` only)."""
        return None if self._lane_reader is None else self._lane_reader.stats

    def poll_batch(self, timeout: float = 1.0, max_records: int | None = None) -> list[ColumnBatch]:
        if not self._low_latency:
            return super().poll_batch(timeout, max_records)
        if self._closed:
            raise ClientClosedError("consumer is closed")
        from plait.fastlane.consumer import poll_as_member

        def current_reader() -> LowLatencyConsumer | None:
            self._maybe_rebalance()
            return self._lane_reader

        return poll_as_member(current_reader, time.sleep, self._positions, timeout, max_records)

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Message]:
        if not self._low_latency:
            return super().poll(timeout, max_records)
        return [m for b in self.poll_batch(timeout, max_records) for m in b.messages()]

    def seek(self, topic: str, partition: int, offset: int) -> None:
        if not self._low_latency:
            super().seek(topic, partition, offset)
            return
        if (topic, partition) not in self.assignment():
            raise NotAssignedError(topic, partition)
        self._positions[(topic, partition)] = offset
        self._restart_lane_reader()

    def assignment(self) -> list[TopicPartition]:
        self._maybe_rebalance()
        return list(self._owned)

    def _maybe_rebalance(self) -> None:
        if self._member_id is not None and self._coordinator.generation != self._generation:
            self._adopt()

    def _consume(self, timeout: float, max_records: int | None) -> list[Any]:
        self._maybe_rebalance()
        owned = set(self._owned)
        got = super()._consume(timeout, max_records)
        # librdkafka may still hold a fetched message of a partition revoked this instant:
        # drop it, and its position, so a later commit cannot touch the new owner's offset
        for tp in [tp for tp in self._positions if tp not in owned]:
            del self._positions[tp]
        return [m for m in got if (m.topic(), m.partition()) in owned]

    def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit positions to the metadata store in one transaction, fenced by generation."""
        assert self.group is not None
        chosen = dict(self._positions) if offsets is None else dict(offsets)
        self._coordinator.store.commit_offsets(
            self.group, self._generation, {tp: (off, "") for tp, off in chosen.items()}
        )

    def committed(self, topic: str, partition: int) -> int | None:
        assert self.group is not None
        found = self._coordinator.store.fetch_offsets(self.group, [(topic, partition)])
        return found[(topic, partition)][0] if found else None

    def close(self) -> None:
        if self._lane_reader is not None:
            self._lane_reader.close()
            self._lane_reader = None
        if not self._closed and self._member_id is not None:
            self._coordinator.leave(self._member_id)
        super().close()
