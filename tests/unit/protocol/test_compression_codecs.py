"""Kafka compression codecs, checked against the clients' own codec modules."""

from __future__ import annotations

import gzip
import os
import struct

import aiokafka.codec as aio_codec
import cramjam
import kafka.codec as kp_codec
import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.errors import ConfigError
from plait.protocol import compression as c
from plait.protocol.errors import InvalidRecordBatchError

PAYLOADS = [
    b"",
    b"a",
    b"hello kafka " * 10,
    os.urandom(1000),
    (b"0123456789abcdef" * 4096) + os.urandom(70_000),  # crosses xerial's 32 KiB blocks
]


@pytest.mark.parametrize("codec", sorted(c.CODEC_NAMES))
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{len(p)}B")
def test_round_trip(codec, payload):
    packed = c.compress(codec, payload)
    assert c.decompress(codec, packed) == payload
    if codec == c.NONE:
        assert packed == payload


def test_repetitive_data_really_shrinks():
    data = b"event-" * 10_000
    for codec in (c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD):
        assert len(c.compress(codec, data)) < len(data) // 10


def test_snappy_is_xerial_framed_in_32k_blocks():
    data = os.urandom(80_000)
    packed = c.compress(c.SNAPPY, data)
    assert packed[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    pos, blocks = 16, []
    while pos < len(packed):
        (size,) = struct.unpack_from(">i", packed, pos)
        blocks.append(bytes(cramjam.snappy.decompress_raw(packed[pos + 4 : pos + 4 + size])))
        pos += 4 + size
    assert [len(b) for b in blocks] == [32768, 32768, 80_000 - 65536]
    assert b"".join(blocks) == data


def test_snappy_reads_raw_blocks_and_the_clients_stream():
    data = b"librdkafka " * 500
    assert c.decompress(c.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data
    assert c.decompress(c.SNAPPY, aio_codec.snappy_encode(data)) == data
    assert aio_codec.snappy_decode(c.compress(c.SNAPPY, data)) == data


def test_clients_decode_ours_and_we_decode_theirs():
    data = b"kafka-python " * 3000
    assert kp_codec.gzip_decode(c.compress(c.GZIP, data)) == data
    assert c.decompress(c.GZIP, kp_codec.gzip_encode(data)) == data
    assert kp_codec.lz4_decode(c.compress(c.LZ4, data)) == data
    assert c.decompress(c.LZ4, kp_codec.lz4_encode(data)) == data
    assert kp_codec.zstd_decode(c.compress(c.ZSTD, data)) == data
    assert c.decompress(c.ZSTD, kp_codec.zstd_encode(data)) == data
    assert aio_codec.lz4_decode(c.compress(c.LZ4, data)) == data
    assert c.decompress(c.LZ4, aio_codec.lz4_encode(data)) == data
    assert aio_codec.zstd_decode(c.compress(c.ZSTD, data)) == data
    assert c.decompress(c.ZSTD, aio_codec.zstd_encode(data)) == data


def test_zstd_without_content_size_and_several_frames():
    """zstd-jni streams (the Java client) omit the frame content size."""
    data = os.urandom(5000)
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert c.decompress(c.ZSTD, streamed) == data
    assert c.decompress(c.ZSTD, streamed + streamed) == data + data


def test_lz4_linked_blocks_and_gzip_multi_member():
    data = os.urandom(200_000)
    assert c.decompress(c.LZ4, lz4.frame.compress(data, block_linked=True)) == data
    assert c.decompress(c.GZIP, gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"


def test_unknown_codec_is_typed():
    for call in (
        lambda: c.compress(5, b"x"),
        lambda: c.decompress(7, b"x", position=40),
    ):
        with pytest.raises(c.UnknownCodecError) as info:
            call()
        assert isinstance(info.value, InvalidRecordBatchError)
        assert isinstance(info.value, ConfigError)
        assert "expected one of [0, 1, 2, 3, 4]" in str(info.value)
    with pytest.raises(c.UnknownCodecError) as info:
        c.decompress(7, b"x", position=40)
    assert info.value.position == 40 and info.value.codec == 7


def test_codec_names():
    assert [c.codec_from_name(n) for n in ("none", "GZIP", "snappy", "lz4", "zstd")] == [
        0,
        1,
        2,
        3,
        4,
    ]
    with pytest.raises(ConfigError, match="brotli"):
        c.codec_from_name("brotli")


@pytest.mark.parametrize("codec", [c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD])
def test_truncated_input_is_an_error_not_short_output(codec):
    packed = c.compress(codec, os.urandom(100_000))
    for cut in (1, 7, len(packed) // 2, len(packed) - 1):
        with pytest.raises(c.DecompressionError) as info:
            c.decompress(codec, packed[:cut], position=123)
        assert info.value.position == 123
        assert c.CODEC_NAMES[codec] in str(info.value)


def test_forged_sizes_do_not_allocate():
    """Headers claiming gigabytes are rejected before anything that size is allocated."""
    raw_claim = b"\xff\xff\xff\xff\x0f\x00"  # raw snappy block claiming 4 GiB
    with pytest.raises(c.DecompressionError, match="claims 4294967295"):
        c.decompress(c.SNAPPY, raw_claim)
    xerial = c.compress(c.SNAPPY, b"x")[:16] + struct.pack(">i", len(raw_claim)) + raw_claim
    with pytest.raises(c.DecompressionError, match="claims"):
        c.decompress(c.SNAPPY, xerial)
    frame = bytearray(c.compress(c.LZ4, b"x" * 1000))
    frame[6:14] = struct.pack("<Q", 2**62)  # declared content size
    for checksum in range(256):  # find the header checksum the forged descriptor needs
        frame[14] = checksum
        try:
            c.decompress(c.LZ4, bytes(frame))
        except c.DecompressionError as exc:
            if "headerChecksum" not in str(exc):
                break
    else:
        pytest.fail("no header checksum accepted the forged lz4 descriptor")


@settings(max_examples=200, deadline=None)
@given(codec=st.sampled_from([1, 2, 3, 4]), data=st.binary(max_size=200))
def test_fuzz_random_input(codec, data):
    try:
        c.decompress(codec, data)
    except c.DecompressionError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    codec=st.sampled_from([1, 2, 3, 4]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_fuzz_mutated_input(codec, edits):
    packed = bytearray(c.compress(codec, b"some records " * 40))
    for at, byte in edits:
        packed[at % len(packed)] = byte
    try:
        c.decompress(codec, bytes(packed))
    except c.DecompressionError:
        pass
