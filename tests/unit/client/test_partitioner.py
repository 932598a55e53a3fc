"""Kafka's murmur2 key partitioner, checked against published vectors and kafka-python."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from plait.client.partitioner import (
    SEED,
    M,
    murmur2,
    partition_for_key,
    partitions_for_keys,
    to_positive,
)
from plait.errors import ConfigError

# Kafka's own UtilsTest.testMurmur2 vectors (signed 32-bit, as Java returns them).
PUBLISHED = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), PUBLISHED.items())
def test_published_vectors(key, expected):
    assert murmur2(key) == expected


def test_abc_worked_by_hand():
    """murmur2(b"abc") step by step from the definition (no 4-byte blocks, 3-byte tail)."""
    mask = 0xFFFFFFFF
    assert (SEED, M) == (0x9747B28C, 0x5BD1E995)
    h = SEED ^ 3
    assert h == 0x9747B28F
    h ^= ord("c") << 16  # case 3
    h ^= ord("b") << 8  # case 2
    h ^= ord("a")  # case 1 ...
    assert h == 0x9724D0EE
    h = (h * M) & mask  # ... and only case 1 multiplies
    assert h == 0xA6E43886
    h ^= h >> 13
    h = (h * M) & mask
    h ^= h >> 15
    assert h == 0x1C94221B  # = 479470107, the published value
    assert murmur2(b"abc") == h


def test_signed_results_and_edge_lengths():
    assert murmur2(b"") == kafka_python_murmur2(b"") - (1 << 32) * (kafka_python_murmur2(b"") >> 31)
    for key in (b"", b"\x00", b"\xff" * 3, b"\x80" * 4, b"\xff" * 5, bytes(range(256))):
        value = murmur2(key)
        assert -(2**31) <= value < 2**31
        assert value & 0xFFFFFFFF == kafka_python_murmur2(key)


# Expected partitions derived from the published hashes: toPositive(h) % n.
PARTITIONS = [
    (b"21", 1, 0),
    (b"21", 3, (-973932308 & 0x7FFFFFFF) % 3),
    (b"foobar", 10, (-790332482 & 0x7FFFFFFF) % 10),
    (b"a-little-bit-long-string", 12, (-985981536 & 0x7FFFFFFF) % 12),
    (b"a-little-bit-longer-string", 7, (-1486304829 & 0x7FFFFFFF) % 7),
    (b"abc", 100, 479470107 % 100),
]


@pytest.mark.parametrize(("key", "n", "expected"), PARTITIONS)
def test_partition_for_key(key, n, expected):
    assert partition_for_key(key, n) == expected


def test_hand_checked_partitions():
    # -985981536 & 0x7fffffff = 2**31 - 985981536 = 1161502112;
    # 12 * 96791842 = 1161502104, so 1161502112 % 12 = 8
    assert partition_for_key(b"a-little-bit-long-string", 12) == 8
    # 479470107 % 100 = 7
    assert partition_for_key(b"abc", 100) == 7


def test_to_positive_is_not_abs():
    assert to_positive(-(2**31)) == 0
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(5) == 5


def test_bad_partition_counts():
    for n in (0, -3):
        with pytest.raises(ConfigError, match="positive"):
            partition_for_key(b"k", n)
        with pytest.raises(ConfigError, match="positive"):
            partitions_for_keys([b"k"], n)


@settings(max_examples=150, deadline=None)
@given(key=st.binary(max_size=64))
def test_matches_kafka_python(key):
    assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.none() | st.binary(max_size=40), max_size=50),
    n=st.integers(min_value=1, max_value=5000),
    form=st.sampled_from(["list", "binary", "large_binary", "sliced"]),
)
def test_vectorized_matches_scalar(keys, n, form):
    if form == "list":
        column = keys
    elif form == "sliced":
        column = pa.array([b"x"] + keys, type=pa.binary()).slice(1)
    else:
        column = pa.array(keys, type=pa.binary() if form == "binary" else pa.large_binary())
    out = partitions_for_keys(column, n)
    assert out.dtype == np.int32 and out.shape == (len(keys),)
    assert out.tolist() == [-1 if k is None else partition_for_key(k, n) for k in keys]


def test_vectorized_published_vectors():
    keys = list(PUBLISHED)
    out = partitions_for_keys(pa.array(keys, pa.binary()), 2**31 - 1)
    assert out.tolist() == [to_positive(h) % (2**31 - 1) for h in PUBLISHED.values()]


def test_falling_arrow_offsets_are_rejected():
    data = pa.py_buffer(b"abcdef")
    falling = pa.Array.from_buffers(
        pa.binary(), 2, [None, pa.py_buffer(np.array([0, 5, 2], np.int32)), data]
    )
    with pytest.raises(ConfigError, match="fall at key 1"):
        partitions_for_keys(falling, 3)
    del falling  # an invalid array: keep it out of any failure report's repr
