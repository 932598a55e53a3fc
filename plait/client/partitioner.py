"""Key -> partition exactly as Kafka's Java client maps keyed records.

The Java producer (``BuiltInPartitioner.partitionForKey``, formerly
``DefaultPartitioner``) sends a record with a key to
``toPositive(murmur2(key)) % numPartitions`` where ``toPositive(x) = x & 0x7fffffff``.
Using the same function is what lets plait promise that one key always lands on one
partition whichever client (Java, librdkafka with ``partitioner=murmur2_random``,
kafka-python, plait) produced it.

``murmur2`` is hand-written (and the vectorized kernel with it) because the one Python
copy in a well-kept library, ``kafka.partitioner.default.murmur2``, is per key and
pure Python; we check ours against it in the tests. Records without a key are not
placed here: Kafka spreads them with its sticky partitioner, and plait's router picks
the least-loaded partition, so ``partitions_for_keys`` returns -1 for a null key.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from plait.errors import ConfigError
from plait.protocol._records_numba import _kernel
from plait.protocol.records import binary_parts

SEED = 0x9747B28C
M = 0x5BD1E995
R = 24
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes | bytearray | memoryview) -> int:
    """MurmurHash2 of ``data`` as Kafka's ``Utils.murmur2`` returns it: a signed 32-bit int.

    Java computes in wrapping ``int`` arithmetic; here every product is masked to 32
    bits and the result converted to signed at the end, which is the same value.
    """
    buf = bytes(data)
    length = len(buf)
    h = (SEED ^ length) & _MASK32
    body = length & ~3
    for i in range(0, body, 4):
        k = int.from_bytes(buf[i : i + 4], "little")
        k = (k * M) & _MASK32
        k ^= k >> R
        k = (k * M) & _MASK32
        h = (h * M) & _MASK32
        h ^= k
    tail = length & 3
    # Java's switch falls through from case 3 to 2 to 1; only case 1 multiplies.
    if tail == 3:
        h ^= buf[body + 2] << 16
    if tail >= 2:
        h ^= buf[body + 1] << 8
    if tail >= 1:
        h ^= buf[body]
        h = (h * M) & _MASK32
    h ^= h >> 13
    h = (h * M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(value: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not ``abs``, which fails on MIN_VALUE)."""
    return value & 0x7FFFFFFF


def partition_for_key(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    """The partition the Java producer picks for ``key`` among ``num_partitions``."""
    if num_partitions <= 0:
        raise ConfigError(f"num_partitions must be positive, got {num_partitions}")
    return to_positive(murmur2(key)) % num_partitions


@_kernel
def _partitions_kernel(
    data: np.ndarray,
    offsets: np.ndarray,
    valid: np.ndarray,
    n_parts: int,
    out: np.ndarray,
) -> int:
    """Fill ``out``; returns -1, or the index of a key whose offsets fall."""
    # uint64 holding 32-bit values, masked after every multiply, so the interpreter
    # fallback and the compiled kernel agree exactly with the scalar murmur2 above.
    mask = np.uint64(0xFFFFFFFF)
    m = np.uint64(M)
    for i in range(out.shape[0]):
        if valid.shape[0] > 0 and not valid[i]:
            out[i] = -1
            continue
        start = offsets[i]
        length = offsets[i + 1] - start
        if length < 0:  # falling offsets: reading on would leave the data buffer
            return i
        h = (np.uint64(SEED) ^ np.uint64(length)) & mask
        body = length - (length % 4)
        for j in range(0, body, 4):
            p = start + j
            k = (
                np.uint64(data[p])
                | (np.uint64(data[p + 1]) << np.uint64(8))
                | (np.uint64(data[p + 2]) << np.uint64(16))
                | (np.uint64(data[p + 3]) << np.uint64(24))
            )
            k = (k * m) & mask
            k ^= k >> np.uint64(R)
            k = (k * m) & mask
            h = (h * m) & mask
            h ^= k
        tail = length % 4
        p = start + body
        if tail == 3:
            h ^= np.uint64(data[p + 2]) << np.uint64(16)
        if tail >= 2:
            h ^= np.uint64(data[p + 1]) << np.uint64(8)
        if tail >= 1:
            h ^= np.uint64(data[p])
            h = (h * m) & mask
        h ^= h >> np.uint64(13)
        h = (h * m) & mask
        h ^= h >> np.uint64(15)
        out[i] = np.int32((h & np.uint64(0x7FFFFFFF)) % np.uint64(n_parts))
    return -1


def partitions_for_keys(
    keys: pa.Array | pa.ChunkedArray | Sequence[bytes | None], num_partitions: int
) -> np.ndarray:
    """Partition of every key (int32), as :func:`partition_for_key` would give; -1 for null."""
    if num_partitions <= 0:
        raise ConfigError(f"num_partitions must be positive, got {num_partitions}")
    if not isinstance(keys, (pa.Array, pa.ChunkedArray)):
        keys = pa.array(keys, type=pa.binary())  # a tuple would read as (data, offsets)
    data, offsets, valid = binary_parts(keys, "keys")
    n = len(offsets) - 1
    out = np.empty(n, np.int32)
    bad = _partitions_kernel(data, offsets, valid, int(num_partitions), out)
    if bad >= 0:
        raise ConfigError(f"key offsets fall at key {bad}")
    return out
