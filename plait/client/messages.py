"""What the SDK hands back: delivered messages, acknowledgements, columnar batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed event. ``offset`` is its position in ``topic[partition]``."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an acknowledged event was stored."""

    topic: str
    partition: int
    offset: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class PartitionAck:
    """Contiguous offsets ``base_offset .. base_offset + count - 1`` in one partition."""

    partition: int
    base_offset: int
    count: int


@dataclass(frozen=True, slots=True)
class BatchAck:
    """The acknowledgement of one ``send_batch``: a contiguous offset range per partition.

    Events of one partition keep their relative order from the call, so the i-th
    event sent to partition p is at ``base_offset + i`` of that partition's range.
    """

    topic: str
    ranges: tuple[PartitionAck, ...]

    @property
    def count(self) -> int:
        return sum(r.count for r in self.ranges)


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """Consecutive events of one partition as columns, for the batch (fast) path.

    ``offsets`` are strictly increasing; keys and values are Arrow binary arrays
    (a null key is a null entry).
    """

    topic: str
    partition: int
    offsets: np.ndarray
    timestamps: np.ndarray
    keys: pa.Array
    values: pa.Array
    headers: list[tuple[tuple[str, bytes | None], ...]] | None = None  # None: no event has any

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def next_offset(self) -> int:
        return int(self.offsets[-1]) + 1 if len(self.offsets) else -1

    def messages(self) -> list[Message]:
        keys = self.keys.to_pylist()
        values = self.values.to_pylist()
        headers = self.headers or [()] * len(keys)
        return [
            Message(self.topic, self.partition, int(o), int(t), k, v, h)
            for o, t, k, v, h in zip(
                self.offsets.tolist(), self.timestamps.tolist(), keys, values, headers
            )
        ]
