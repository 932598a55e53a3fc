"""The log side of the two-path consumer on a Kafka-protocol broker, via confluent-kafka.

``plait.connect("kafka://h:p", fastlane="nats://...").low_latency_consumer(...)`` reads
the lane that ``plait serve --fastlane`` publishes and fills from the broker's log
through this :class:`KafkaLogSource`: one librdkafka consumer for all the partitions
of one low-latency consumer, assigned by hand (no group: positions are the
reconciler's; plait's group wrapper commits them).

How it keeps "no event twice, none lost" cheap:

- While the lane serves a partition the partition is paused, so no Fetch carries its
  data: nothing flows twice. ``read(offset)``, which the reconciler only calls when it
  needs the log (a gap; the lane down, lossy or silent), resumes the partition and
  seeks it to ``offset``; ``rest()`` pauses it again and drops what was prefetched.
- Fetched messages become :class:`plait.client.messages.ColumnBatch` chunks with
  :func:`plait.client.kafka.column_batches`, each labelled with the offset range it
  covers: from the seek offset (or the previous chunk's end) to its last event + 1.
  Offsets a Kafka fetch skips (control records, compaction, retention) are thereby
  covered by the chunk after them, exactly like a read of the embedded log. One
  difference remains: control records at the very end of the log (a transaction
  marker with nothing after it) are stepped over only once a later event is fetched,
  since a Kafka fetch returns no trace of them; ``positions()`` lags by them until then.
- A silent lane: the broker's log end is not free to know (a ListOffsets round trip
  per partition, on the reconciler's thread, every time the lane is quiet). So
  ``known_end()`` is None, and the lane's end markers (``plait serve`` sends one for
  each partition quiet for 0.2 s) tell the reconciler where the log ends: an idle
  consumer then fetches nothing. Without a fresh marker (a publisher that sends none,
  or none for ``lane_end_ttl``) the reconciler, after ``fallback_after`` seconds of
  lane silence, simply reads, which here resumes fetching. If the log did move, its data
  arrives at fetch latency; if it did not, the cost is one empty long-poll Fetch per
  ``fetch_wait_ms`` for the whole consumer, until the lane speaks again and the
  partition is paused. The fetch both detects the movement and delivers the data,
  where a watermark query would still need a fetch after it.

Threads: one fetcher thread alone drives the librdkafka consumer (assign, pause,
resume, seek, poll). librdkafka promises that once ``seek`` returns no message fetched
from the old position is handed out, but a poll running at the same time on another
thread could already hold one, and a stale message above the seek offset would be
taken for the start of the new range (a silent skip). The reconciler's thread only
posts wishes (fetch from an offset / rest) and takes ready chunks under a lock; the
fetcher applies wishes between polls of ``_POLL_SLICE_S`` and calls the consumer's
``wake`` when a chunk is ready. Lane messages never wait on this thread.

Measured with librdkafka 2.12 against ``plait serve`` (why the settings are so):

- librdkafka keeps one Fetch outstanding per broker. A partition resumed while a
  long-poll Fetch is parked at the broker starts only when that one returns: up to
  ``fetch.wait.max.ms`` (500 ms by default). ``fetch_wait_ms`` defaults to 10, which
  bounds the switch from lane to log. The price is paid only while some partition is
  being fetched with nothing new in the log (the lane down, or silent without end
  markers): one consumer then cost ``plait serve`` about 4% of a core at 10 ms
  against about 1% at 100 ms or more (its idle baseline), and nothing while every
  partition is paused (an idle consumer on a lane with end markers: 0 fetches a
  second, 0.8% of a core). Raise ``fetch_wait_ms`` where many consumers idle on a
  lane that is down.
- Seeking a paused partition and then resuming it delayed the first fetch by about a
  second; resuming first and then seeking starts at once (seek's barrier discards
  anything fetched from the old position in between).

Memory is bounded: ready chunks up to ``max_buffer_bytes`` (past that the fetcher
stops polling until the reconciler takes some), librdkafka's own queue up to
``queued.max.messages.kbytes`` (set from the same figure).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plait.client.kafka import KafkaBackendError, column_batches, data_messages
from plait.client.messages import ColumnBatch
from plait.fastlane.logsource import LogRead, Wake

if TYPE_CHECKING:
    from plait.client.kafka import KafkaClient

logger = logging.getLogger("plait.fastlane")

TopicPartition = tuple[str, int]
# How long the fetcher blocks in librdkafka before it looks at new wishes; a wish
# posted meanwhile (resume another partition, pause one) waits at most this long.
_POLL_SLICE_S = 0.01
_TIMEOUT_S = 30.0


@dataclass
class KafkaLogStats:
    """What the log side did: ``follows`` (fetching resumed from an offset), ``rests``
    (paused because the lane serves), events fetched, and fetched events thrown away
    because the reconciler had moved on (``stale_events``)."""

    follows: int = 0
    rests: int = 0
    fetched_events: int = 0
    stale_events: int = 0


@dataclass(eq=False, slots=True)
class _Chunk:
    start: int  # the log holds no event in [start, end) other than those in cols
    end: int
    cols: ColumnBatch
    nbytes: int


class KafkaPartitionLog:
    """One partition's handle (see :class:`plait.fastlane.logsource.PartitionLog`)."""

    def __init__(self, source: KafkaLogSource, tp: TopicPartition, wake: Wake) -> None:
        self._source = source
        self.tp = tp
        self.wake = wake
        # The reconciler's wish, guarded by the source's lock: fetch from ``want`` on,
        # or rest (None). ``gen`` counts wishes, so the fetcher can tell stale data.
        self.want: int | None = None
        self.gen = 0
        self.chunks: deque[_Chunk] = deque()
        # The fetcher thread's own view of librdkafka's state.
        self.assigned = False
        self.paused = False
        self.applied_gen = 0
        self.chain_next: int | None = None  # where the next fetched chunk starts

    def bounds(self) -> tuple[int, int]:
        return self._source._bounds(self.tp)

    def known_end(self) -> None:
        return None  # see the module docstring: the end costs a round trip

    def read(self, offset: int) -> LogRead | None:
        return self._source._read(self, offset)

    def rest(self) -> None:
        if self.want is not None:  # unlocked peek: the common case costs nothing
            self._source._rest(self)

    def close(self) -> None:
        self._source._rest(self)


class KafkaLogSource:
    """Partitions of a Kafka-protocol cluster for a low-latency consumer.

    ``config``: extra librdkafka settings for this consumer (they win over the
    client's and over the ones chosen here).
    """

    def __init__(
        self,
        client: KafkaClient,
        *,
        max_buffer_bytes: int = 32 << 20,
        max_poll_records: int = 10_000,
        fetch_wait_ms: int = 10,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._ck = client._ck
        self._max_buffer = max_buffer_bytes
        self._max_records = max(1, max_poll_records)
        self._consumer = self._ck.Consumer({
            **client._config,
            # librdkafka wants a group id even for assign(); it never joins or commits.
            "group.id": "plait-low-latency",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            # A seek below the log start (retention) resumes at the start.
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": fetch_wait_ms,
            "queued.max.messages.kbytes": max(1024, max_buffer_bytes >> 10),
            **(config or {}),
        })
        self.stats = KafkaLogStats()
        self._lock = threading.Condition()
        self._parts: dict[TopicPartition, KafkaPartitionLog] = {}
        self._dirty: dict[TopicPartition, KafkaPartitionLog] = {}  # wishes to apply
        self._buffered = 0  # bytes in ready chunks
        self._error: BaseException | None = None
        self._said: set[int] = set()  # error codes already logged
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="plait-lowlatency-fetch",
                                        daemon=True)
        self._thread.start()

    def open(self, topic: str, partition: int, wake: Wake) -> KafkaPartitionLog:
        part = KafkaPartitionLog(self, (topic, partition), wake)
        with self._lock:
            self._parts[part.tp] = part
        return part

    # -- the reconciler's thread ---------------------------------------------------

    def _bounds(self, tp: TopicPartition) -> tuple[int, int]:
        # Called while the consumer starts, before any read: the fetcher is idle then
        # (and librdkafka's watermark query is thread-safe in any case).
        try:
            low, high = self._consumer.get_watermark_offsets(
                self._ck.TopicPartition(*tp), timeout=_TIMEOUT_S, cached=False)
        except self._ck.KafkaException as exc:
            raise KafkaBackendError(f"log offsets of {tp[0]}[{tp[1]}]", exc.args[0]) from None
        return int(low), int(high)

    def _read(self, part: KafkaPartitionLog, offset: int) -> LogRead | None:
        with self._lock:
            if self._error is not None:
                raise self._error
            chunks = part.chunks
            freed = False
            while chunks and chunks[0].end <= offset:
                self._buffered -= chunks.popleft().nbytes
                freed = True
            if freed:
                self._lock.notify_all()  # room for the fetcher again
            if chunks and chunks[0].start <= offset:
                return LogRead(chunks[0].cols, chunks[0].end, chunks[0].cols.headers)
            if part.want is not None and part.want <= offset and not chunks:
                return None  # fetching a range that reaches ``offset``: wait for it
            # Not fetching, or (never expected) data that does not reach back to
            # ``offset``: fetch from exactly there.
            self._wish(part, offset)
            self.stats.follows += 1
            return None

    def _rest(self, part: KafkaPartitionLog) -> None:
        with self._lock:
            if part.want is None:
                return
            self._wish(part, None)
            self.stats.rests += 1

    def _wish(self, part: KafkaPartitionLog, want: int | None) -> None:
        """Post a new wish for the fetcher (fetch from ``want``, or rest); lock held.
        What was fetched for the old one is dropped."""
        self._drop(part)
        part.want = want
        part.gen += 1
        self._dirty[part.tp] = part
        self._lock.notify_all()

    def _drop(self, part: KafkaPartitionLog) -> None:
        self._buffered -= sum(c.nbytes for c in part.chunks)
        part.chunks.clear()

    # -- the fetcher thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._closed and not self._dirty and not (
                        self._fetching() and self._buffered < self._max_buffer
                    ):
                        self._lock.wait()
                    if self._closed:
                        return
                    wishes = [(p, p.want, p.gen) for p in self._dirty.values()]
                    self._dirty.clear()
                    room = self._buffered < self._max_buffer
                for part, want, gen in wishes:
                    self._apply(part, want, gen)
                if not room or not self._fetching():
                    continue
                msg = self._consumer.poll(_POLL_SLICE_S)
                if msg is None:
                    continue
                raw = [msg]
                if self._max_records > 1:
                    raw += self._consumer.consume(self._max_records - 1, 0)
                self._deliver(raw)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            failure = exc if isinstance(exc, KafkaBackendError) else KafkaBackendError(
                "low-latency fetch", exc)
            with self._lock:
                self._error = failure
                parts = list(self._parts.values())
            for part in parts:
                part.wake()

    def _fetching(self) -> bool:
        return any(p.chain_next is not None for p in self._parts.values())

    def _apply(self, part: KafkaPartitionLog, want: int | None, gen: int) -> None:
        """Make librdkafka match one wish (fetcher thread only)."""
        tp = self._ck.TopicPartition(*part.tp)
        if want is None:
            if part.assigned and not part.paused:
                self._consumer.pause([tp])
                part.paused = True
            part.chain_next = None
        elif not part.assigned:
            self._consumer.incremental_assign([self._ck.TopicPartition(*part.tp, want)])
            part.assigned, part.paused = True, False
            part.chain_next = want
        else:
            if part.paused:
                self._consumer.resume([tp])  # resume, then seek: see the module docstring
                part.paused = False
            self._consumer.seek(self._ck.TopicPartition(*part.tp, want))
            part.chain_next = want
        part.applied_gen = gen

    def _deliver(self, raw: list[Any]) -> None:
        events = []
        for msg in raw:
            err = msg.error()
            if err is not None and not err.fatal():
                # Broker restarts, leader moves: librdkafka retries on its own. Said
                # once per kind, since a lasting one (a deleted topic) repeats.
                if err.code() not in self._said:
                    self._said.add(err.code())
                    logger.warning("low-latency fetch: %s (librdkafka retries)", err.str())
                continue
            events.append(msg)
        woken: set[KafkaPartitionLog] = set()
        batches = column_batches(data_messages(events, self._ck))  # raises a fatal error
        with self._lock:
            for cols in batches:
                part = self._parts.get((cols.topic, cols.partition))
                if part is None:
                    continue
                self.stats.fetched_events += len(cols)
                start = part.chain_next
                if start is None or part.want is None or part.gen != part.applied_gen:
                    # Fetched for a wish that has changed since: the new wish (a rest,
                    # or a fetch from another offset) is applied before the next poll.
                    self.stats.stale_events += len(cols)
                    continue
                kept = cols if int(cols.offsets[0]) >= start else _from_offset(cols, start)
                if kept is None:
                    # Never expected after a seek; kept exact regardless.
                    self.stats.stale_events += len(cols)
                    continue
                end = int(kept.offsets[-1]) + 1
                nbytes = kept.keys.nbytes + kept.values.nbytes + 16 * len(kept)
                part.chunks.append(_Chunk(start, end, kept, nbytes))
                self._buffered += nbytes
                part.chain_next = end
                woken.add(part)
        for part in woken:
            part.wake()

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Stop the fetcher and close the librdkafka consumer; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout=_TIMEOUT_S)
        if self._thread.is_alive():
            # Closing librdkafka's handle under a thread still inside it could crash
            # the process; leave both to exit with it instead.
            logger.warning("low-latency fetcher did not stop within %s s", _TIMEOUT_S)
            return
        self._consumer.close()


def _from_offset(cols: ColumnBatch, start: int) -> ColumnBatch | None:
    keep = cols.offsets >= start
    if not keep.any():
        return None
    first = int(keep.argmax())
    n = len(cols) - first
    return ColumnBatch(cols.topic, cols.partition, cols.offsets[first:], cols.timestamps[first:],
                       cols.keys.slice(first, n), cols.values.slice(first, n),
                       None if cols.headers is None else cols.headers[first:])
