"""CPU decode: JSON documents or msgpack maps -> typed Arrow columns under a Schema.

The per-record contract is msgspec's typed decoding (strict: ``1.0`` is not an int, ``1``
is not a bool, ints must fit in int64, unknown fields are ignored, duplicate keys keep the
last value, a number out of float range or an unpaired UTF-16 surrogate escape
rejects the record). A record that does not fit is reported with msgspec's reason and its
position.

Fast path (JSON): :mod:`plait.process.cpu.fast_json` decodes the whole batch with numba
kernels and re-decodes, one by one on the per-record path, only the records it cannot prove
it decoded exactly as msgspec would; so results and dead letters are the per-record path's
(tests/property/test_process_fast_json.py checks this). msgpack and schemas with binary
fields take the per-record path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from plait.process.cpu.decode_where import cell_filter_for, decode_json_where
from plait.process.cpu.fast_json import decode_json_fast
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

# Decode + filter in one pass pays on small batches (decode -> filter -> enrich -> match
# on 1k events: ~305 against ~525 µs here); at 64k the two were even, and past it the
# plain path's thread-parallel scan and string build win (256k: 42 against 48 ms, 1M:
# 152-175 against 190-200 ms), since the filter program and gather run on one thread.
FUSED_MAX_ROWS = 65_536


def decode_records(
    values: Sequence[bytes], schema: Schema, fmt: str = "json"
) -> DecodeResult:
    """Decode ``values`` (one JSON document or msgpack map each) into ``schema``'s columns."""
    if fmt == "json":
        fast = decode_json_fast(values, schema, _per_record)
        if fast is not None:
            return DecodeResult(*fast)
    return _per_record(values, schema, fmt)


def decode_records_where(
    values: Sequence[bytes], schema: Schema, fmt: str, where: str
) -> tuple[DecodeResult, bool]:
    """Decode ``values``, keeping only the rows where filter ``where`` is true when that can
    be done on the decoder's cells (then True); otherwise every row (False), and the caller
    filters. ``where`` must already have compiled against the decoded batch's schema."""
    fits = fmt == "json" and len(values) <= FUSED_MAX_ROWS
    program = cell_filter_for(schema, where) if fits else None
    if program is not None:
        fused = decode_json_where(values, schema, program, _per_record)
        if fused is not None:
            return DecodeResult(*fused[0]), fused[1]
    return decode_records(values, schema, fmt), False


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
        except TypeError:  # msgspec takes bytes-likes (and text, for JSON) only
            what = "bytes or text" if fmt == "json" else "bytes"
            errors.append((i, f"record is not {what}: got {type(raw).__name__}"))
    arrow = schema.arrow()
    cols = list(zip(*rows)) if rows else [() for _ in schema.fields]
    arrays = [pa.array(list(c), type=f.type) for c, f in zip(cols, arrow)]
    batch = pa.RecordBatch.from_arrays(arrays, schema=arrow)
    return DecodeResult(batch, np.asarray(good, dtype=np.int64), errors)
