"""Turning many events into RecordBatch bytes without a Python step per event.

The batch path takes values (and keys) as one Arrow binary array, picks partitions
with vectorized murmur2, and cuts each partition's events into RecordBatches no
larger than the log accepts. Order inside a partition is the order of the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from plait.client.partitioner import partitions_for_keys
from plait.log.errors import RecordTooLargeError

# Bytes a record adds beyond its key and value: length, attributes, timestamp and
# offset deltas, key/value lengths and header count are varints of at most 5 or 10
# bytes each; 32 is a safe upper bound for sizing batches before encoding.
RECORD_OVERHEAD = 32
BATCH_HEADER = 61

BinaryLike: TypeAlias = "pa.Array | Sequence[bytes | str | None] | np.ndarray[Any, Any]"


def to_binary_array(items: BinaryLike, *, what: str = "values") -> pa.Array:
    """Accept an Arrow array, a 2-D uint8 NumPy array (one row per event) or a list."""
    if isinstance(items, pa.ChunkedArray):
        items = items.combine_chunks()
    if isinstance(items, pa.Array):
        if pa.types.is_binary(items.type) or pa.types.is_large_binary(items.type):
            return items
        if pa.types.is_string(items.type) or pa.types.is_large_string(items.type):
            return items.cast(pa.large_binary() if pa.types.is_large_string(items.type) else pa.binary())
        if pa.types.is_fixed_size_binary(items.type):
            return items.cast(pa.binary())
        raise TypeError(f"{what} must be binary or string, not Arrow {items.type}")
    if isinstance(items, np.ndarray):
        if items.ndim != 2 or items.dtype != np.uint8:
            raise TypeError(f"{what} as NumPy must be a 2-D uint8 array, got {items.dtype}{items.shape}")
        rows, width = items.shape
        data = np.ascontiguousarray(items)
        offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
        return pa.Array.from_buffers(
            pa.binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
    converted = [x.encode() if isinstance(x, str) else x for x in items]
    return pa.array(converted, type=pa.binary())


def byte_lengths(arr: pa.Array) -> np.ndarray:
    """Per-element byte length (0 for null) as int64, straight from the offsets buffer."""
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    off_type = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=off_type, count=arr.offset + n + 1)
    lengths = np.diff(offsets[arr.offset : arr.offset + n + 1]).astype(np.int64)
    return lengths


@dataclass(frozen=True, slots=True)
class Slice:
    """Events ``indices`` (positions in the caller's arrays) bound for ``partition``."""

    partition: int
    indices: np.ndarray | None  # None: the contiguous run start..stop
    start: int
    stop: int


def plan_partitions(
    n: int,
    num_partitions: int,
    keys: pa.Array | None,
    partition: int | None,
    first_unkeyed: int,
) -> list[Slice]:
    """Decide each event's partition.

    Keyed events follow murmur2 like Kafka's Java client; unkeyed ones are cut into
    one contiguous run per partition (starting at ``first_unkeyed``) so each
    partition gets a large batch, the batch-level twin of Kafka's sticky partitioner.
    Null keys inside a keyed batch are spread like unkeyed events.
    """
    if partition is not None:
        return [Slice(partition, None, 0, n)]
    if keys is None or keys.null_count == len(keys):
        bounds = np.linspace(0, n, num_partitions + 1).astype(np.int64)
        return [
            Slice((first_unkeyed + i) % num_partitions, None, int(bounds[i]), int(bounds[i + 1]))
            for i in range(num_partitions)
            if bounds[i + 1] > bounds[i]
        ]
    chosen = partitions_for_keys(keys, num_partitions).astype(np.int64)
    if keys.null_count:
        nulls = np.flatnonzero(keys.is_null().to_numpy(zero_copy_only=False))
        chosen[nulls] = (first_unkeyed + np.arange(len(nulls))) % num_partitions
    order = np.argsort(chosen, kind="stable")
    sorted_parts = chosen[order]
    cuts = np.flatnonzero(np.diff(sorted_parts)) + 1
    groups = np.split(order, cuts)
    return [Slice(int(chosen[g[0]]), g, 0, len(g)) for g in groups if len(g)]


def chunk_bounds(sizes: np.ndarray, max_batch_bytes: int, where: str = "") -> list[tuple[int, int]]:
    """Cut events (with byte ``sizes``) into runs whose encoded batch fits the limit."""
    budget = max_batch_bytes - BATCH_HEADER
    record_sizes = sizes + RECORD_OVERHEAD
    too_big = np.flatnonzero(record_sizes > budget)
    if len(too_big):
        raise RecordTooLargeError(
            f"{where} (event #{int(too_big[0])} of the batch)",
            int(record_sizes[too_big[0]]) + BATCH_HEADER,
            max_batch_bytes,
        )
    bounds: list[tuple[int, int]] = []
    cum = np.cumsum(record_sizes)
    start, base = 0, 0
    n = len(sizes)
    while start < n:
        stop = int(np.searchsorted(cum, base + budget, side="right"))
        stop = max(stop, start + 1)
        bounds.append((start, stop))
        base = int(cum[stop - 1])
        start = stop
    return bounds
