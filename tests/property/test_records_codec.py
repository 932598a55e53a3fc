"""Property tests of the RecordBatch v2 codec.

(a) the reference round-trips any records under every codec; (b) the columnar twin is
byte-identical to the reference and decodes to the same columns; (c) batches built by
real Kafka client codecs (aiokafka, kafka-python) decode identically with ours, and ours
decode identically with theirs.
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
from aiokafka.record.default_records import DefaultRecordBatch as AioBatch
from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch as KpBatch
from kafka.record.default_records import DefaultRecordBatchBuilder as KpBuilder

from plait.protocol import compression as codecs
from plait.protocol.batch_header import parse_header
from plait.protocol.records import (
    Record,
    decode_batch,
    decode_columns,
    encode_batch,
    encode_columns,
    iter_records,
)

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

blobs = st.binary(max_size=120)
maybe_blob = st.none() | blobs
headers_st = st.lists(
    st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=16)), max_size=3
)
timestamps_st = st.integers(min_value=-1, max_value=2**45) | st.integers(
    min_value=-(2**61), max_value=2**61
)
record_st = st.tuples(maybe_blob, maybe_blob, timestamps_st, headers_st)
records_st = st.lists(record_st, min_size=1, max_size=25)
codec_st = st.sampled_from(sorted(codecs.CODEC_NAMES))
base_offset_st = st.integers(min_value=0, max_value=2**62)


def expected(records: list, base_offset: int) -> list[Record]:
    return [
        Record(base_offset + i, ts, key, value, list(headers))
        for i, (key, value, ts, headers) in enumerate(records)
    ]


def as_tuples(batch_iter) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch_iter]


# (a) reference round trip ------------------------------------------------------


@SETTINGS
@given(records=records_st, codec=codec_st, base_offset=base_offset_st)
def test_reference_round_trip(records, codec, base_offset):
    buf = encode_batch(
        records,
        base_offset=base_offset,
        compression=codec,
        producer_id=7,
        producer_epoch=1,
        base_sequence=3,
    )
    header, decoded = decode_batch(buf)
    assert decoded == expected(records, base_offset)
    assert header.compression == codec
    assert header.record_count == len(records)
    assert header.size == len(buf)
    assert header.base_timestamp == records[0][2]
    assert header.max_timestamp == max(r[2] for r in records)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (
        7,
        1,
        3,
    )
    assert list(iter_records(buf)) == decoded


@SETTINGS
@given(batches=st.lists(st.tuples(records_st, codec_st), min_size=1, max_size=4))
def test_many_batches_in_one_buffer(batches):
    buf = bytearray()
    want: list[Record] = []
    next_offset = 0
    for records, codec in batches:
        buf += encode_batch(records, base_offset=next_offset, compression=codec)
        want += expected(records, next_offset)
        next_offset += len(records)
    assert list(iter_records(bytes(buf))) == want
    cols = decode_columns(bytes(buf))
    assert cols.offsets.tolist() == [r.offset for r in want]
    assert cols.timestamps.tolist() == [r.timestamp for r in want]
    assert cols.keys.to_pylist() == [r.key for r in want]
    assert cols.values.to_pylist() == [r.value for r in want]
    assert cols.records_with_headers == sum(1 for r in want if r.headers)


# (b) columnar twin ---------------------------------------------------------------

plain_record_st = st.tuples(maybe_blob, maybe_blob, timestamps_st)


@SETTINGS
@given(
    rows=st.lists(plain_record_st, min_size=1, max_size=40),
    keyless=st.booleans(),
    form=st.sampled_from(["list", "binary", "large_binary", "numpy", "sliced"]),
    base_offset=base_offset_st,
)
def test_columnar_encoder_matches_reference(rows, keyless, form, base_offset):
    if form == "numpy":  # (data, offsets) carries no nulls
        rows = [(k, b"" if v is None else v, ts) for k, v, ts in rows]
    keys = [None] * len(rows) if keyless else [r[0] for r in rows]
    values = [r[1] for r in rows]
    timestamps = np.array([r[2] for r in rows], dtype=np.int64)
    ref = encode_batch(
        [(k, v, int(ts), []) for k, v, ts in zip(keys, values, timestamps)],
        base_offset=base_offset,
        producer_id=5,
        producer_epoch=2,
        base_sequence=9,
    )
    cols = encode_columns(
        _column(values, form),
        None if keyless else _column(keys, "binary" if form == "numpy" else form),
        timestamps,
        base_offset=base_offset,
        producer_id=5,
        producer_epoch=2,
        base_sequence=9,
    )
    assert bytes(cols) == ref
    decoded = decode_columns(ref)
    _, records = decode_batch(ref)
    assert decoded.offsets.dtype == np.int64 and decoded.timestamps.dtype == np.int64
    assert decoded.offsets.tolist() == [r.offset for r in records]
    assert decoded.timestamps.tolist() == [r.timestamp for r in records]
    assert decoded.keys.to_pylist() == [r.key for r in records]
    assert decoded.values.to_pylist() == [r.value for r in records]
    assert decoded.records_with_headers == 0


def _column(items: list, form: str):
    if form == "list":
        return items
    if form == "binary":
        return pa.array(items, type=pa.binary())
    if form == "large_binary":
        return pa.array(items, type=pa.large_binary())
    if form == "sliced":  # a non-zero array offset must be honoured
        return pa.array([b"pad"] + items + [b"pad"], type=pa.binary()).slice(1, len(items))
    data = np.frombuffer(b"".join(x or b"" for x in items), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(x or b"") for x in items])])
    return data, offsets.astype(np.int64)


@SETTINGS
@given(
    batches=st.lists(st.tuples(records_st, codec_st), min_size=1, max_size=3),
    control=st.booleans(),
)
def test_decode_columns_equals_decode_batch(batches, control):
    buf = bytearray()
    for i, (records, codec) in enumerate(batches):
        buf += encode_batch(
            records,
            base_offset=1000 * i,
            compression=codec,
            is_control=control and i == 0,
        )
    cols = decode_columns(bytes(buf))
    want = list(iter_records(bytes(buf)))  # both skip the control batch
    assert len(cols) == len(want)
    assert cols.offsets.tolist() == [r.offset for r in want]
    assert cols.timestamps.tolist() == [r.timestamp for r in want]
    assert cols.keys.to_pylist() == [r.key for r in want]
    assert cols.values.to_pylist() == [r.value for r in want]


# (c) real client codecs as oracles ------------------------------------------------

AIO_CODECS = [0, 1, 2, 3, 4]
KP_CODECS = [0, 1, 3, 4]  # kafka-python needs python-snappy for snappy, not installed


def _build_with(builder_cls, records, codec):
    builder = builder_cls(2, codec, False, -1, -1, -1, 2**30)
    for i, (key, value, ts, headers) in enumerate(records):
        meta = builder.append(i, timestamp=ts, key=key, value=value, headers=list(headers))
        assert meta is not None
    return bytes(builder.build())


client_records_st = st.lists(
    st.tuples(
        maybe_blob,
        maybe_blob,
        st.integers(min_value=0, max_value=2**45),
        headers_st,
    ),
    min_size=1,
    max_size=20,
)


@SETTINGS
@given(
    records=client_records_st,
    client=st.sampled_from(["aiokafka", "kafka-python"]),
    data=st.data(),
)
def test_client_built_batches_decode_identically(records, client, data):
    builder, reader, supported = (
        (AioBuilder, AioBatch, AIO_CODECS)
        if client == "aiokafka"
        else (KpBuilder, KpBatch, KP_CODECS)
    )
    codec = data.draw(st.sampled_from(supported))
    theirs = _build_with(builder, records, codec)
    _, ours = decode_batch(theirs)
    assert as_tuples(ours) == as_tuples(expected(records, 0))
    assert as_tuples(reader(theirs)) == as_tuples(ours)
    cols = decode_columns(theirs)
    assert cols.values.to_pylist() == [r[1] for r in records]
    # The other direction: their reader on our bytes.
    mine = encode_batch(records, compression=codec)
    assert as_tuples(reader(mine)) == as_tuples(expected(records, 0))
    assert reader(mine).validate_crc()


@SETTINGS
@given(records=client_records_st)
def test_uncompressed_bytes_identical_to_clients(records):
    """Same bytes as both clients, bar the leader epoch kafka-python writes as 0."""
    assert encode_batch(records) == _build_with(AioBuilder, records, 0)
    kp = bytearray(_build_with(KpBuilder, records, 0))
    struct.pack_into(">i", kp, 12, -1)
    assert encode_batch(records) == bytes(kp)


def test_clients_really_compress():
    """Large repetitive values so kafka-python keeps the codec (it drops one that grows data)."""
    records = [(b"k%d" % i, b"abcdefgh" * 200, 1_700_000_000_000 + i, []) for i in range(50)]
    for builder, codecs_ in ((AioBuilder, AIO_CODECS), (KpBuilder, KP_CODECS)):
        for codec in codecs_[1:]:
            theirs = _build_with(builder, records, codec)
            assert parse_header(theirs).compression == codec
            assert len(theirs) < 50 * 1600 // 4
            assert as_tuples(decode_batch(theirs)[1]) == as_tuples(expected(records, 0))
            cols = decode_columns(theirs)
            assert cols.keys.to_pylist() == [r[0] for r in records]
