"""Decode (JSON and msgpack) against a per-record Python reference: typed fields, nulls,
missing fields, unicode, wrong types, malformed records; and the fast path against the
per-record path."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.process.cpu.decode import _per_record, decode_records
from plait.process.schema import Schema

SCHEMA = Schema.of({"i": "int", "f": "float", "s": "string", "b": "bool"})
MP_SCHEMA = Schema.of(
    {"i": "int", "f": "float", "s": "string", "b": "bool", "raw": "binary"}
)

scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)
record = st.dictionaries(
    st.sampled_from(["i", "f", "s", "b", "x", "é"]), value, max_size=5
)


def json_line(draw_record: Any, ensure_ascii: bool) -> bytes:
    return json.dumps(draw_record, ensure_ascii=ensure_ascii).encode()


json_value = st.one_of(
    st.tuples(record, st.booleans()).map(lambda t: json_line(*t)),
    st.sampled_from(
        [
            b"null",
            b"[1]",
            b"5",
            b"",
            b"{",
            b'{"i":1}{"i":2}',
            b'{"i":1,"i":2.5}',
            b'{"i":1, "i":2}',
            b' {"s":"x"} ',
            b'{"s":"a\nb"}',
            b"\xff",
            b'{"s":"\xc3\xa9"}',
            b'{"f":1e400}',
            b'{"\\u0069": 5}',
            b'{"i": 5, "s": "\\x"}',
            b'{"i": 1.0e0}',
            b'{"i": -0.0}',
            b'{"b": tru}',
            b'{"f": 1E5, "s": "a\\/b"}',
            b'{"i": 9223372036854775808}',
            b'{"i": -9223372036854775808}',
            b'{"s": "\\ud800"}',
        ]
    ),
    st.binary(max_size=8),
)


def fits(name_type: str, v: Any) -> tuple[bool, Any]:
    if v is None:
        return True, None
    if name_type == "int":
        return (type(v) is int and -(2**63) <= v < 2**63), v
    if name_type == "float":
        return (type(v) in (int, float)), (
            float(v) if type(v) in (int, float) else None
        )
    if name_type == "string":
        return type(v) is str, v
    if name_type == "bool":
        return type(v) is bool, v
    return type(v) is bytes, v


def reference(raw: bytes, schema: Schema, fmt: str) -> dict[str, Any] | None:
    """The record as a row, or None when it must be a dead letter."""
    try:
        if fmt == "json":
            doc = json.loads(
                raw.decode("utf-8"), parse_constant=_reject, parse_float=_finite
            )
        else:
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception:  # noqa: BLE001 - any failure of the reference decoders marks the record invalid
        return None
    if not isinstance(doc, dict) or _has_lone_surrogate(doc):
        return None
    row = {}
    for name, typ in schema.fields:
        ok, v = fits(typ, doc.get(name))
        if not ok:
            return None
        row[name] = v
    return row


def _has_lone_surrogate(v: Any) -> bool:
    """A ``\\udXXX`` escape without its pair cannot become UTF-8: the contract rejects it."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(v, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_lone_surrogate(x) for x in v)
    return False


def _finite(text: str) -> float:
    v = float(text)
    if math.isinf(v):
        raise ValueError(
            "number out of range"
        )  # the contract: non-finite numbers are rejected
    return v


def _reject(_: str) -> None:
    raise ValueError("non-standard constant")


def check(values: list[bytes], schema: Schema, fmt: str) -> None:
    res = decode_records(values, schema, fmt)
    expected = [reference(v, schema, fmt) for v in values]
    good = [i for i, e in enumerate(expected) if e is not None]
    assert res.good.tolist() == good
    assert [p for p, _ in res.errors] == [
        i for i, e in enumerate(expected) if e is None
    ]
    assert all(reason for _, reason in res.errors)
    assert res.batch.to_pylist() == [expected[i] for i in good]


@settings(max_examples=200, deadline=None)
@given(st.lists(json_value, max_size=10))
def test_json_decode_equals_reference(values: list[bytes]) -> None:
    check(values, SCHEMA, "json")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(record, st.booleans()).map(lambda t: json_line(*t)),
        min_size=1,
        max_size=10,
    )
)
def test_fast_path_equals_per_record_path(values: list[bytes]) -> None:
    fast = decode_records(values, SCHEMA, "json")
    slow = _per_record(values, SCHEMA, "json")
    assert fast.good.tolist() == slow.good.tolist()
    assert fast.batch.to_pylist() == slow.batch.to_pylist()
    assert fast.batch.schema == slow.batch.schema


mp_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # msgpack's integer range
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.binary(max_size=4)
)
mp_record = st.dictionaries(
    st.sampled_from(["i", "f", "s", "b", "raw", "x"]), mp_scalar, max_size=5
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        mp_record.map(lambda d: msgpack.packb(d, use_bin_type=True))
        | st.binary(max_size=6),
        max_size=10,
    )
)
def test_msgpack_decode_equals_reference(values: list[bytes]) -> None:
    check(values, MP_SCHEMA, "msgpack")
