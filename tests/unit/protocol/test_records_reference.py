"""The reference RecordBatch v2 codec against canned bytes laid out from the spec."""

from __future__ import annotations

import struct

import pytest

from plait.errors import ConfigError
from plait.protocol.batch_header import (
    CONTROL_BIT,
    TRANSACTIONAL_BIT,
    crc32c,
    parse_header,
    set_base_offset,
    set_max_timestamp_and_recrc,
)
from plait.protocol.compression import UnknownCodecError
from plait.protocol.errors import InvalidRecordBatchError
from plait.protocol.records import (
    Record,
    decode_batch,
    encode_batch,
    iter_records,
    read_varint,
    write_varint,
)


def canned_batch() -> bytes:
    """One record (key b"k", value b"hello", header ("h", b"v")) at offset 42, ts 1000,
    written field by field from Kafka's DefaultRecordBatch/DefaultRecord layout."""
    record_body = (
        b"\x00"  # attributes
        + b"\x00"  # timestampDelta 0
        + b"\x00"  # offsetDelta 0
        + b"\x02k"  # key length 1 (zigzag 2)
        + b"\x0ahello"  # value length 5 (zigzag 10)
        + b"\x02"  # one header
        + b"\x02h"  # header key length 1
        + b"\x02v"  # header value length 1
    )
    records = bytes([len(record_body) * 2]) + record_body
    after_crc = (
        struct.pack(">hiqqqhii", 0, 0, 1000, 1000, -1, -1, -1, 1)  # attrs .. count
        + records
    )
    crc = crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 42, length, -1, 2, crc) + after_crc


def test_encode_matches_canned_bytes():
    assert encode_batch([(b"k", b"hello", 1000, [("h", b"v")])], base_offset=42) == canned_batch()


def test_decode_canned_bytes():
    header, records = decode_batch(canned_batch())
    assert records == [Record(42, 1000, b"k", b"hello", [("h", b"v")])]
    assert (header.base_offset, header.record_count, header.last_offset_delta) == (
        42,
        1,
        0,
    )


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (-1, b"\x01"),
        (1, b"\x02"),
        (63, b"\x7e"),
        (-64, b"\x7f"),
        (64, b"\x80\x01"),
        (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
        (-(2**31), b"\xff\xff\xff\xff\x0f"),
        (2**63 - 1, b"\xfe" + b"\xff" * 8 + b"\x01"),
        (-(2**63), b"\xff" * 9 + b"\x01"),
    ],
)
def test_zigzag_varints(value, encoded):
    out = bytearray()
    write_varint(out, value)
    assert bytes(out) == encoded
    assert read_varint(encoded, 0, len(encoded), long=True) == (value, len(encoded))
    if len(encoded) <= 5:
        assert read_varint(encoded, 0, len(encoded)) == (value, len(encoded))


def test_varint_limits():
    with pytest.raises(InvalidRecordBatchError, match="more than 5 bytes") as info:
        read_varint(b"\x00\x80\x80\x80\x80\x80\x01", 1, 7)
    assert info.value.position == 1
    with pytest.raises(InvalidRecordBatchError, match="runs past"):
        read_varint(b"\x80\x80", 0, 2)
    # A 5-byte varint keeps its low 32 bits, as Java's readVarint does.
    assert read_varint(b"\xfe\xff\xff\xff\x7f", 0, 5) == (2**31 - 1, 5)


def test_offsets_timestamps_and_producer_fields():
    records = [(None, b"a", 5000, []), (b"k", None, 4000, []), (b"", b"", 7000, [])]
    buf = encode_batch(
        records,
        base_offset=100,
        producer_id=9,
        producer_epoch=3,
        base_sequence=77,
        partition_leader_epoch=4,
        is_transactional=True,
    )
    header, decoded = decode_batch(buf)
    assert [r.offset for r in decoded] == [100, 101, 102]
    assert [r.timestamp for r in decoded] == [5000, 4000, 7000]
    assert (header.base_timestamp, header.max_timestamp) == (5000, 7000)
    assert header.attributes == TRANSACTIONAL_BIT
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (
        9,
        3,
        77,
    )
    assert header.partition_leader_epoch == 4
    assert header.last_sequence == 79


def test_rewritten_base_offset_moves_every_record():
    buf = bytearray(encode_batch([(None, b"a", 1, []), (None, b"b", 2, [])]))
    set_base_offset(buf, 0, 5000)
    assert [r.offset for r in decode_batch(bytes(buf))[1]] == [5000, 5001]


def test_log_append_time_replaces_record_timestamps():
    buf = bytearray(encode_batch([(None, b"a", 1, []), (None, b"b", 2, [])]))
    set_max_timestamp_and_recrc(buf, 0, parse_header(buf), 99_000)
    assert [r.timestamp for r in decode_batch(bytes(buf))[1]] == [99_000, 99_000]


def test_record_objects_keep_offset_gaps():
    """A compacted batch: offsets 10 and 13 survive re-encoding."""
    kept = [Record(10, 1, b"a", b"1", []), Record(13, 2, b"b", b"2", [("x", None)])]
    buf = encode_batch(kept, base_offset=10)
    header, decoded = decode_batch(buf)
    assert decoded == kept
    assert (header.last_offset_delta, header.record_count) == (3, 2)
    with pytest.raises(ConfigError, match="offset 9"):
        encode_batch([Record(9, 1, None, b"", [])], base_offset=10)


def test_control_batches_skipped_unless_asked():
    marker = encode_batch(
        [(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", 5, [])], is_control=True
    )
    data = encode_batch([(None, b"x", 5, [])], base_offset=1)
    assert parse_header(marker).attributes & CONTROL_BIT
    assert [r.value for r in iter_records(marker + data)] == [b"x"]
    assert [r.offset for r in iter_records(marker + data, include_control=True)] == [
        0,
        1,
    ]


def test_encoder_rejects_bad_input():
    with pytest.raises(ConfigError, match="at least one record"):
        encode_batch([])
    with pytest.raises(ConfigError, match="record 1: value must be bytes"):
        encode_batch([(None, b"", 1, []), (None, "text", 1, [])])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="header key must be str"):
        encode_batch([(None, b"", 1, [(b"k", b"v")])])  # type: ignore[list-item]
    with pytest.raises(UnknownCodecError):
        encode_batch([(None, b"", 1, [])], compression=9)
    with pytest.raises(ConfigError, match="64-bit"):
        encode_batch([(None, b"", 2**62, []), (None, b"", -(2**62) - 10, [])])
    with pytest.raises(ConfigError, match="record 0: timestamp must be a 64-bit int"):
        encode_batch([(None, b"", 1.5, [])])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="record 0: timestamp must be a 64-bit int"):
        encode_batch([(None, b"", 2**63, [])])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_offset", 2**63),
        ("producer_id", -(2**63) - 1),
        ("producer_epoch", 2**15),
        ("base_sequence", 2**31),
        ("partition_leader_epoch", -(2**31) - 1),
    ],
)
def test_header_fields_out_of_range_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"{field} must be a"):
        encode_batch([(None, b"", 1, [])], **{field: value})


def test_none_timestamp_means_now():
    import time

    before = int(time.time() * 1000)
    (record,) = decode_batch(encode_batch([(None, b"", None, [])]))[1]
    assert before <= record.timestamp <= int(time.time() * 1000)


def test_non_utf8_header_key_is_rejected():
    buf = bytearray(encode_batch([(None, b"", 1, [("k", b"v")])]))
    at = buf.index(b"\x02k\x02v") + 1
    buf[at] = 0xFF
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    with pytest.raises(InvalidRecordBatchError, match="UTF-8") as info:
        decode_batch(bytes(buf))
    assert info.value.position == at - 1
