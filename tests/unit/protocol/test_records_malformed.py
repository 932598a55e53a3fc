"""Malformed batches raise InvalidRecordBatchError with a position, never anything else.

Hand-built cases for each check, then hypothesis fuzzing of random bytes and of
mutated valid batches (with the CRC fixed up afterwards, so the record parser itself is
reached rather than only the CRC check).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait.protocol.batch_header import ATTRIBUTES, CRC_OFFSET, HEADER_SIZE, crc32c
from plait.protocol.errors import InvalidRecordBatchError
from plait.protocol.records import (
    decode_batch,
    decode_columns,
    encode_batch,
    iter_records,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RECORDS = [
    (b"key-1", b"value-1", 1_700_000_000_000, [("trace", b"abc"), ("n", None)]),
    (None, b"", 1_700_000_000_005, []),
    (b"", None, 1_699_999_999_990, [("h", b"")]),
]


def recrc(buf: bytearray) -> bytearray:
    struct.pack_into(">I", buf, CRC_OFFSET, crc32c(bytes(buf[ATTRIBUTES:])))
    return buf


def with_records_section(section: bytes, count: int) -> bytes:
    """A valid header around an arbitrary records section, CRC and length fixed up."""
    buf = bytearray(encode_batch([(None, b"x", 0, [])]))[:HEADER_SIZE] + section
    struct.pack_into(">i", buf, 8, len(buf) - 12)
    struct.pack_into(">i", buf, 57, count)
    return bytes(recrc(buf))


def decoders(pos: int = 0):
    return [
        lambda b: decode_batch(b, pos),
        lambda b: list(iter_records(b)),
        lambda b: decode_columns(b),
    ]


def assert_invalid(buf: bytes, fragment: str = "", pos: int = 0) -> list[InvalidRecordBatchError]:
    """Every decoder rejects ``buf`` (decode_batch reading the batch at ``pos``)."""
    errors = []
    for decode in decoders(pos):
        with pytest.raises(InvalidRecordBatchError) as info:
            decode(buf)
        assert info.value.position is not None
        assert 0 <= info.value.position <= len(buf)
        if fragment:
            assert fragment in str(info.value)
        errors.append(info.value)
    return errors


def test_crc_mismatch():
    buf = bytearray(encode_batch(RECORDS))
    buf[-1] ^= 0x01
    assert_invalid(bytes(buf), "CRC32C")
    # verify=False skips the CRC; the altered byte (last header's empty value) decodes.
    assert decode_batch(bytes(buf), verify=False)[1][0].value == b"value-1"
    assert decode_columns(bytes(buf), verify=False).values.to_pylist()[0] == b"value-1"


def test_truncated_everywhere():
    buf = encode_batch(RECORDS)
    for cut in range(len(buf)):
        assert_invalid(buf[:cut] if cut else b"\x00" * 5)


def test_partial_tail_allowed_only_on_request():
    one = encode_batch(RECORDS)
    two = one + encode_batch(RECORDS, base_offset=3)[:-4]
    for decode in (lambda b: list(iter_records(b)), decode_columns):
        with pytest.raises(InvalidRecordBatchError, match="truncated") as info:
            decode(two)
        assert info.value.position == len(one)
    with pytest.raises(InvalidRecordBatchError, match="truncated"):
        decode_batch(two, len(one))
    assert [r.offset for r in decode_batch(two)[1]] == [0, 1, 2]  # one batch, at 0
    assert [r.offset for r in iter_records(two, allow_partial_tail=True)] == [0, 1, 2]
    assert decode_columns(two, allow_partial_tail=True).offsets.tolist() == [0, 1, 2]


def test_varint_too_long():
    # record length as 6 continuation bytes: longer than a 5-byte varint may be
    errors = assert_invalid(with_records_section(b"\xff" * 6 + b"\x01", 1))
    assert all(e.position == HEADER_SIZE for e in errors)


def test_record_length_past_end():
    errors = assert_invalid(with_records_section(bytes([0x7E]) + b"\x00" * 10, 1))
    assert all(e.position == HEADER_SIZE for e in errors)


def test_key_length_past_record():
    # length 7: attrs, ts 0, offset 0, key len 50 (zigzag 100) with too few bytes after
    body = b"\x00\x00\x00" + bytes([100]) + b"\x00\x00\x00"
    assert_invalid(with_records_section(bytes([len(body) * 2]) + body, 1))


def test_key_length_below_minus_one():
    body = b"\x00\x00\x00" + bytes([3]) + b"\x00\x00"  # zigzag 3 = -2
    assert_invalid(with_records_section(bytes([len(body) * 2]) + body, 1))


def test_negative_header_count():
    body = b"\x00\x00\x00\x01\x00" + bytes([1])  # null key, empty value, count -1
    assert_invalid(with_records_section(bytes([len(body) * 2]) + body, 1), "header")


def test_null_header_key():
    body = b"\x00\x00\x00\x01\x00" + bytes([2]) + b"\x01\x00"  # one header, key len -1
    assert_invalid(with_records_section(bytes([len(body) * 2]) + body, 1), "header key")


def test_record_shorter_than_declared():
    body = b"\x00\x00\x00\x01\x00\x00" + b"\x00\x00"  # two stray bytes inside the record
    assert_invalid(with_records_section(bytes([len(body) * 2]) + body, 1))


def test_bytes_after_last_record():
    body = b"\x00\x00\x00\x01\x00\x00"
    assert_invalid(with_records_section(bytes([len(body) * 2]) + body + b"\x00", 1))


def test_record_count_larger_than_section():
    body = b"\x00\x00\x00\x01\x00\x00"
    assert_invalid(with_records_section(bytes([len(body) * 2]) + body, 2**31 - 1), "record count")


def test_corrupt_compressed_section_reports_batch_position():
    good = encode_batch(RECORDS)
    bad = bytearray(encode_batch(RECORDS, compression=3))
    bad[HEADER_SIZE + 8 :] = b"\x00" * (len(bad) - HEADER_SIZE - 8)
    errors = assert_invalid(good + bytes(recrc(bad)), "lz4", pos=len(good))
    assert all(e.position == len(good) for e in errors)


def test_bad_magic():
    buf = bytearray(encode_batch(RECORDS))
    buf[16] = 1
    assert_invalid(bytes(buf), "magic")


# fuzzing ---------------------------------------------------------------------------


def _decode_all(buf: bytes, verify: bool) -> dict[str, object]:
    """Run every decoder; each must succeed or raise InvalidRecordBatchError only."""
    outcomes: dict[str, object] = {}
    for name, call in (
        ("batch", lambda: decode_batch(buf, verify=verify)[1]),
        ("iter", lambda: list(iter_records(buf, verify=verify, include_control=True))),
        ("columns", lambda: decode_columns(buf, verify=verify)),
    ):
        try:
            outcomes[name] = call()
        except InvalidRecordBatchError as exc:
            assert exc.position is not None
            outcomes[name] = exc
    return outcomes


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(buf):
    _decode_all(buf, verify=False)
    _decode_all(buf, verify=True)


@FUZZ
@given(
    codec=st.sampled_from([0, 0, 0, 1, 2, 3, 4]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    cut=st.none() | st.integers(min_value=0, max_value=10_000),
    fix_crc=st.booleans(),
)
def test_fuzz_mutated_batches(codec, edits, cut, fix_crc):
    buf = bytearray(encode_batch(RECORDS, compression=codec))
    for at, byte in edits:
        # Mostly in the records section, where the parser lives; sometimes the header.
        buf[at % len(buf)] = byte
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    if fix_crc and len(buf) >= HEADER_SIZE:
        recrc(buf)
    out = _decode_all(bytes(buf), verify=not fix_crc)
    # The columnar decoder accepts whatever the reference accepts (single batch here),
    # and yields the same columns.
    ref, cols = out["batch"], out["columns"]
    if not isinstance(ref, Exception) and len(buf) == 12 + struct.unpack_from(">i", buf, 8)[0]:
        header_is_control = bool(buf[22] & 0x20) if len(buf) > 22 else False
        if not header_is_control:
            assert not isinstance(cols, Exception), cols
            assert cols.values.to_pylist() == [r.value for r in ref]
            assert cols.offsets.tolist() == [r.offset for r in ref]


@FUZZ
@given(st.binary(min_size=1, max_size=60), st.integers(min_value=0, max_value=40))
def test_fuzz_records_section(section, count):
    """Arbitrary bytes as the records section of a well-formed, CRC-valid batch."""
    buf = with_records_section(section, count)
    out = _decode_all(buf, verify=True)
    if not isinstance(out["batch"], Exception):
        assert not isinstance(out["columns"], Exception)
        assert out["columns"].keys.to_pylist() == [r.key for r in out["batch"]]


def test_five_byte_varint_keeps_low_32_bits_in_both_decoders():
    """Java's readVarint drops bits above 32; the reference and the kernel must agree."""
    # offsetDelta written as 5 bytes carrying bit 32: raw 2**32 + 2 -> low bits 2 -> 1
    body = b"\x00\x00" + b"\x82\x80\x80\x80\x10" + b"\x01\x00\x00"
    buf = with_records_section(bytes([len(body) * 2]) + body, 1)
    (record,) = decode_batch(buf)[1]
    assert record.offset == 1
    assert decode_columns(buf).offsets.tolist() == [1]
