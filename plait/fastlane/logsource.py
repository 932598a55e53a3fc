"""Where the two-path consumer reads the log: a per-partition interface, two backends.

The reconciler (:class:`plait.fastlane.consumer.LowLatencyConsumer`) owns every
decision about order and duplicates; a log source only answers "what does the log
hold from offset N on". It is kept this small so that one reconciler serves both
the embedded segment log (:class:`EmbeddedLogSource`, here) and a Kafka-protocol
broker reached with confluent-kafka (:class:`plait.fastlane.kafka_log.KafkaLogSource`).

Contract of :class:`PartitionLog`, per partition:

- ``bounds()`` is ``(log_start_offset, log_end_offset)`` now; it may do I/O and is
  only called when the consumer starts.
- ``known_end()`` is the log end if it can be known without I/O, else None. The
  reconciler uses it to tell "the lane has not delivered yet" from "there is
  nothing to deliver"; a source that returns None makes it judge the lane by how
  long it has been silent instead.
- ``read(offset)`` returns what the log holds at ``offset`` and after, or None when
  nothing is ready *now*. A remote source treats the call as a request: it starts
  fetching from ``offset`` and calls ``wake`` when data is ready. Reads are for
  offsets that never go backwards, except after ``rest()``.
- ``rest()`` says the lane serves this partition: a remote source stops fetching and
  drops what it prefetched, so that no event flows twice while the lane is healthy.
- Nothing here returns an event twice by itself or skips one: a :class:`LogRead`
  says exactly which offset range it covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from plait.log.errors import OffsetOutOfRangeError
from plait.protocol.batch_header import iter_batches
from plait.protocol.records import decode_columns, headers_at

if TYPE_CHECKING:
    from plait.log import Log, Partition

Wake = Callable[[], None]


class Columns(Protocol):
    """Events as columns in offset order (plait.protocol.records.ColumnBatch and
    plait.client.messages.ColumnBatch both fit)."""

    @property
    def offsets(self) -> np.ndarray: ...

    @property
    def timestamps(self) -> np.ndarray: ...

    @property
    def keys(self) -> pa.Array: ...

    @property
    def values(self) -> pa.Array: ...


@dataclass(frozen=True, slots=True)
class LogRead:
    """What the log holds from the offset asked for (call it ``offset``) up to ``end``.

    ``columns`` holds every event at offsets in ``[offset, end)``, in offset order, and
    may also hold events below ``offset`` (a stored batch starts where it starts), which
    callers skip. None means the range has no events at all: control records, a
    compaction gap, or events that retention removed. ``end > offset`` for a
    well-formed log; a caller never moves backwards on a smaller one. ``headers``, when
    some event has any, holds each row's record headers (``()`` for none).
    """

    columns: Columns | None
    end: int
    headers: list[tuple[tuple[str, bytes | None], ...]] | None = None


@runtime_checkable
class PartitionLog(Protocol):
    """One partition's log as the reconciler sees it (see the module docstring)."""

    def bounds(self) -> tuple[int, int]: ...

    def known_end(self) -> int | None: ...

    def read(self, offset: int) -> LogRead | None: ...

    def rest(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class LogSource(Protocol):
    """Opens :class:`PartitionLog` handles; ``wake()`` is called (from any thread, so
    it must only signal) whenever a partition may have new data to read."""

    def open(self, topic: str, partition: int, wake: Wake) -> PartitionLog: ...

    def close(self) -> None:
        """Release what the source holds; the partitions' handles are closed first."""
        ...


class EmbeddedLogSource:
    """Partitions of an in-process :class:`plait.log.Log`: reads are local and cheap.

    ``known_end`` is exact (the partition's log end), ``rest`` costs nothing, and an
    append wakes the consumer through the partition's append listener. Closing the
    source leaves the log open: it belongs to the client.
    """

    def __init__(self, log: Log, *, fetch_max_bytes: int = 4 << 20) -> None:
        self._log = log
        self._fetch_max_bytes = fetch_max_bytes

    def open(self, topic: str, partition: int, wake: Wake) -> EmbeddedPartitionLog:
        return EmbeddedPartitionLog(self._log.partition(topic, partition), wake,
                                    self._fetch_max_bytes)

    def close(self) -> None:
        pass


class EmbeddedPartitionLog:
    def __init__(self, part: Partition, wake: Wake, fetch_max_bytes: int) -> None:
        self._part = part
        self._wake = wake
        self._max_bytes = fetch_max_bytes
        part.add_listener(self._on_append)

    def _on_append(self, *_: object) -> None:
        self._wake()

    def bounds(self) -> tuple[int, int]:
        return self._part.log_start_offset, self._part.log_end_offset

    def known_end(self) -> int:
        return self._part.log_end_offset

    def read(self, offset: int) -> LogRead | None:
        try:
            data = self._part.read(offset, self._max_bytes)
        except OffsetOutOfRangeError:
            # Retention removed what was about to be read: resume at the log start, as
            # auto.offset.reset=earliest does; nothing still stored is skipped.
            return LogRead(None, self._part.log_start_offset)
        if not data:
            return None
        cols = decode_columns(data)
        offsets = cols.offsets
        if len(offsets) and int(offsets[-1]) >= offset:
            headers = headers_at(data, offsets.tolist()) if cols.records_with_headers else None
            return LogRead(cols, int(offsets[-1]) + 1, headers)
        # No event at or past ``offset``: only control records or a compaction gap.
        # Step past the batches read, by their headers (control records are not decoded).
        end = max((h.next_offset for _, h in iter_batches(data)), default=offset)
        return LogRead(None, end)

    def rest(self) -> None:
        pass

    def close(self) -> None:
        self._part.remove_listener(self._on_append)
