"""CPU decode: JSON documents or msgpack maps -> typed Arrow columns under a Schema.

The per-record contract is msgspec's typed decoding (strict: ``1.0`` is not an int, ``1``
is not a bool, ints must fit in int64, unknown fields are ignored, duplicate keys keep the
last value, a number out of float range or an unpaired UTF-16 surrogate escape
rejects the record). A record that does not fit is reported with msgspec's reason and its
position.

Fast path (why two paths): pyarrow's multi-threaded C++ JSON reader decodes a whole batch
several times faster than a per-record decoder. It is used only under conditions where its
result matches the per-record contract (tests/property/test_process_decode.py checks this): every record is one line starting with ``{``, the reader
returns exactly one row per record and accepts the batch as a whole, and strings are valid
UTF-8. Otherwise (any bad record, a duplicate key, ...) the batch takes the per-record
path, whose result is the reference.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from plait.process.schema import Schema


@dataclass
class DecodeResult:
    """Rows that decoded (in input order), their input indices, and the failures."""

    batch: pa.RecordBatch
    good: np.ndarray  # int64 indices into the input of the rows in ``batch``
    errors: list[tuple[int, str]] = field(default_factory=list)


class _Decoders:
    """msgspec decoders cached per schema (building a Struct type is not free)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Schema, str], Any] = {}

    def get(self, schema: Schema, fmt: str) -> Any:
        key = (schema, fmt)
        dec = self._cache.get(key)
        if dec is None:
            st = schema.struct_type()
            dec = (
                msgspec.json.Decoder(st)
                if fmt == "json"
                else msgspec.msgpack.Decoder(st)
            )
            self._cache[key] = dec
        return dec


_DECODERS = _Decoders()


def decode_records(
    values: Sequence[bytes], schema: Schema, fmt: str = "json"
) -> DecodeResult:
    """Decode ``values`` (one JSON document or msgpack map each) into ``schema``'s columns."""
    if fmt == "json" and "binary" not in {k for _, k in schema.fields}:
        fast = _fast_json(values, schema)
        if fast is not None:
            return fast
    return _per_record(values, schema, fmt)


def _fast_json(values: Sequence[bytes], schema: Schema) -> DecodeResult | None:
    n = len(values)
    if n == 0:
        return None
    buf = b"\n".join(values)
    # Each record must be exactly one line opening an object, else alignment is not provable
    # (and pyarrow crashes on a top-level ``null`` line in some versions).
    if (
        buf.count(b"\n") != n - 1
        or buf.count(b"\n{") != n - 1
        or not buf.startswith(b"{")
        or b"\r" in buf
    ):
        return None
    try:
        table = pajson.read_json(
            io.BytesIO(buf),
            # ~1 MiB blocks measured fastest: larger blocks fall out of cache
            read_options=pajson.ReadOptions(block_size=1 << 20),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema.arrow(), unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != n:
        return None
    table = table.select(schema.names).combine_chunks()
    try:
        for col in table.columns:
            col.validate(full=True)  # rejects invalid UTF-8 the reader let through
    except pa.ArrowInvalid:
        return None
    batches = table.to_batches()
    batch = (
        batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema.arrow())
    )
    return DecodeResult(batch, np.arange(n, dtype=np.int64))


def _per_record(values: Sequence[bytes], schema: Schema, fmt: str) -> DecodeResult:
    dec = _DECODERS.get(schema, fmt)
    rows: list[tuple[Any, ...]] = []
    good: list[int] = []
    errors: list[tuple[int, str]] = []
    astuple = msgspec.structs.astuple
    for i, raw in enumerate(values):
        if raw is None:
            errors.append((i, "record has no value (null)"))
            continue
        try:
            rows.append(astuple(dec.decode(raw)))
            good.append(i)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            errors.append((i, f"record does not fit the schema: {exc}"))
    arrow = schema.arrow()
    cols = list(zip(*rows)) if rows else [() for _ in schema.fields]
    arrays = [pa.array(list(c), type=f.type) for c, f in zip(cols, arrow)]
    batch = pa.RecordBatch.from_arrays(arrays, schema=arrow)
    return DecodeResult(batch, np.asarray(good, dtype=np.int64), errors)
