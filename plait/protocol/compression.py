"""Compression codecs of Kafka RecordBatch v2, as the batch attributes number them.

A batch's records section is compressed as one unit; the header stays plain. Every
codec here wraps a well-kept library (stdlib ``gzip``, ``cramjam`` for snappy,
``lz4.frame``, ``zstandard``); the only hand-written part is the xerial framing
around snappy, because no library ships the xerial stream format and Kafka's Java
client writes it (xerial ``SnappyOutputStream``, 32 KiB blocks).

Contract: ``decompress(codec, compress(codec, data)) == data`` for every codec, and
``decompress`` accepts what the Java client and librdkafka write. Failures of the
underlying libraries are wrapped at this boundary: a codec number outside 0-4 raises
:class:`UnknownCodecError`, undecodable compressed bytes raise
:class:`DecompressionError`. Both derive from ``InvalidRecordBatchError`` so a batch
decoder can let them through unchanged.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Final

import cramjam
import lz4.frame
import zstandard

from plait.errors import ConfigError
from plait.protocol.errors import InvalidRecordBatchError

NONE: Final = 0
GZIP: Final = 1
SNAPPY: Final = 2
LZ4: Final = 3
ZSTD: Final = 4

CODEC_NAMES: Final[dict[int, str]] = {
    NONE: "none",
    GZIP: "gzip",
    SNAPPY: "snappy",
    LZ4: "lz4",
    ZSTD: "zstd",
}
CODECS_BY_NAME: Final[dict[str, int]] = {name: code for code, name in CODEC_NAMES.items()}

# xerial SnappyOutputStream header: magic "\x82SNAPPY\x00", then version 1 and the
# minimum compatible version 1 as big-endian int32.
_XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
_XERIAL_HEADER: Final = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK: Final = 32 * 1024
_BE_INT32 = struct.Struct(">i")
_CHUNK = 1 << 20

Buffer = bytes | bytearray | memoryview


class UnknownCodecError(InvalidRecordBatchError, ConfigError):
    """A codec number is not one of Kafka's 0 (none) to 4 (zstd).

    It is a corrupt batch when read from the wire and a bad setting when asked for by a
    caller, so it is both an ``InvalidRecordBatchError`` and a ``ConfigError``.
    """

    def __init__(self, codec: int, *, position: int | None = None) -> None:
        self.codec = codec
        super().__init__(
            f"compression codec {codec} is unknown, expected one of {sorted(CODEC_NAMES)}",
            where="record batch attributes" if position is not None else "",
            position=position,
        )


class DecompressionError(InvalidRecordBatchError):
    """The records section of a batch did not decompress with its declared codec."""

    def __init__(self, codec: int, reason: str, *, position: int | None = None) -> None:
        self.codec = codec
        super().__init__(
            f"{CODEC_NAMES.get(codec, codec)} records section does not decompress: {reason}",
            where="record batch" if position is not None else "",
            position=position,
        )


def codec_from_name(name: str) -> int:
    """Map a Kafka ``compression.type`` name ("none", "gzip", ...) to its number."""
    try:
        return CODECS_BY_NAME[name.lower()]
    except KeyError:
        raise ConfigError(
            f"compression type {name!r} is unknown, expected one of {sorted(CODECS_BY_NAME)}"
        ) from None


def compress(codec: int, data: Buffer) -> bytes:
    """Compress ``data`` the way the Java producer does for ``codec``."""
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        return gzip.compress(data, compresslevel=6, mtime=0)
    if codec == SNAPPY:
        return _xerial_snappy_compress(data)
    if codec == LZ4:
        # Kafka's Java client writes independent 64 KiB blocks and no content checksum.
        return lz4.frame.compress(
            data,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,
            content_checksum=False,
        )
    if codec == ZSTD:
        return zstandard.ZstdCompressor(level=3).compress(data)
    raise UnknownCodecError(codec)


def decompress(codec: int, data: Buffer, *, position: int | None = None) -> bytes:
    """Decompress a records section; ``position`` (of its batch) goes into any error."""
    try:
        if codec == NONE:
            return bytes(data)
        if codec == GZIP:
            return gzip.decompress(data)
        if codec == SNAPPY:
            return _snappy_decompress(data, position)
        if codec == LZ4:
            return _lz4_decompress(data)
        if codec == ZSTD:
            return _zstd_decompress(data)
    except (OSError, EOFError, zlib.error, RuntimeError, ValueError) as exc:
        # gzip raises OSError/EOFError/zlib.error, lz4 RuntimeError, our own checks ValueError.
        raise DecompressionError(codec, str(exc) or type(exc).__name__, position=position) from exc
    except (cramjam.DecompressionError, zstandard.ZstdError) as exc:
        raise DecompressionError(codec, str(exc), position=position) from exc
    raise UnknownCodecError(codec, position=position)


def _xerial_snappy_compress(data: Buffer) -> bytes:
    view = memoryview(data).cast("B")
    out = bytearray(_XERIAL_HEADER)
    for start in range(0, len(view), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK]))
        out += _BE_INT32.pack(len(block))
        out += block
    return bytes(out)


def _snappy_decompress(data: Buffer, position: int | None) -> bytes:
    view = memoryview(data).cast("B")
    if bytes(view[:8]) != _XERIAL_MAGIC:
        # librdkafka and old clients may send a bare snappy block.
        return _snappy_block(view)
    if len(view) < len(_XERIAL_HEADER):
        raise ValueError(f"xerial header needs {len(_XERIAL_HEADER)} bytes, got {len(view)}")
    out = bytearray()
    pos = len(_XERIAL_HEADER)
    while pos < len(view):
        if len(view) - pos < 4:
            raise ValueError(f"xerial block length truncated at byte {pos}")
        (size,) = _BE_INT32.unpack_from(view, pos)
        pos += 4
        if size < 0 or pos + size > len(view):
            raise ValueError(f"xerial block of {size} bytes at byte {pos} runs past {len(view)}")
        out += _snappy_block(view[pos : pos + size])
        pos += size
    return bytes(out)


def _snappy_block(block: memoryview) -> bytes:
    # A raw snappy block starts with its uncompressed length, and cramjam allocates that
    # much up front (aborting the process when it cannot). No snappy element expands
    # more than 64 bytes out of 3 in, so a larger claim is corrupt: reject it first.
    claimed = cramjam.snappy.decompress_raw_len(block)
    if claimed > 22 * len(block) + 32:
        raise ValueError(f"snappy block of {len(block)} bytes claims {claimed} bytes uncompressed")
    return bytes(cramjam.snappy.decompress_raw(block))


def _lz4_decompress(data: Buffer) -> bytes:
    # Streamed in bounded chunks: the one-shot lz4.frame.decompress allocates whatever
    # content size the frame header declares, so a forged header could ask for
    # gigabytes. Memory here grows only with output that really decompresses.
    dec = lz4.frame.LZ4FrameDecompressor()
    out = bytearray(dec.decompress(data, max_length=_CHUNK))
    while not dec.eof and not dec.needs_input:
        out += dec.decompress(b"", max_length=_CHUNK)
    if not dec.eof:
        raise ValueError(f"lz4 frame truncated after {len(out)} decompressed bytes")
    return bytes(out)


def _zstd_decompress(data: Buffer) -> bytes:
    # decompressobj, not ZstdDecompressor.decompress(): the Java client (zstd-jni streams)
    # omits the frame's content size, which the one-shot call insists on. Each frame must
    # reach its end, so a truncated section is an error rather than silently short.
    out = bytearray()
    rest = bytes(data)
    while True:
        dobj = zstandard.ZstdDecompressor().decompressobj()
        out += dobj.decompress(rest)
        if not dobj.eof:
            raise ValueError(f"zstd frame truncated after {len(out)} decompressed bytes")
        rest = dobj.unused_data
        if not rest:
            return bytes(out)
