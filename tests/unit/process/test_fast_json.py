"""The numba JSON fast path against the per-record msgspec reference: exact values (float
sign bits included), dead letters, and which records the fast path must hand over."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from plait.process.bench_data import SCHEMA as BENCH_SCHEMA
from plait.process.bench_data import make_events
from plait.process.cpu import fast_json
from plait.process.cpu.decode import DecodeResult, _per_record, decode_records
from plait.process.schema import Schema

S = Schema.of({"i": "int", "f": "float", "s": "string", "b": "bool"})


def exact_rows(res: DecodeResult) -> list[dict[str, Any]]:
    """Rows with every float paired with its sign, so -0.0 and 0.0 differ."""
    return [
        {
            k: (v, math.copysign(1.0, v)) if isinstance(v, float) else v
            for k, v in r.items()
        }
        for r in res.batch.to_pylist()
    ]


def assert_same_as_reference(values: list[Any], schema: Schema = S) -> DecodeResult:
    fast = decode_records(values, schema, "json")
    ref = _per_record(values, schema, "json")
    assert fast.good.tolist() == ref.good.tolist()
    assert fast.errors == ref.errors
    assert fast.batch.schema == ref.batch.schema
    assert exact_rows(fast) == exact_rows(ref)
    return fast


# (record, taken by the fast path)
CASES: list[tuple[Any, bool]] = [
    (b"{}", True),
    (b' \t\r\n{ "i" : 1 ,\n"b":true }\n ', True),
    (b'{"i": null, "f": null, "s": null, "b": null}', True),
    (b'{"b": false, "s": "x", "f": 2.5, "i": -7}', True),  # any key order
    (b'{"s": "\\u00e9\\n\\"q\\\\ \\/ \\b\\f\\r\\t"}', True),
    (b'{"s": "\\ud83d\\ude00 and \\u20ac"}', True),  # surrogate pair
    ('{"s": "é€😀"}'.encode(), True),
    (b'{"s": "a\x7fb"}', True),
    (b'{"f": -0}', True),  # an int literal: msgspec gives +0.0
    (b'{"f": -0.0}', True),
    (b'{"f": -0e5}', True),
    (b'{"f": 1e5, "i": 0}', True),
    (b'{"f": 1E+2}', True),
    (b'{"f": 0.001}', True),
    (b'{"f": 123456789012345}', True),
    (b'{"f": 9007199254740993}', False),  # above 2**53: the reference rounds
    (b'{"f": 0.1234567890123456789}', False),
    (b'{"f": 1e23}', False),
    (b'{"f": 1e400}', False),
    (b'{"f": 1e-400}', False),
    (b'{"i": 9223372036854775807}', True),
    (b'{"i": -9223372036854775808}', True),
    (b'{"i": 1700000000000000000}', True),
    (b'{"i": 9223372036854775808}', False),
    (b'{"i": -9223372036854775809}', False),
    (b'{"i": 123456789012345678901}', False),
    (b'{"i": 1.0}', False),
    (b'{"i": 1e2}', False),
    (b'{"i": "1"}', False),
    (b'{"i": true}', False),
    (b'{"b": 1}', False),
    (b'{"s": 5}', False),
    (b'{"i": [1]}', False),
    (b'{"s": {"a": 1}}', False),
    (
        b'{"i": 1, "i": 2}',
        False,
    ),  # duplicate declared key: the reference keeps the last
    (
        b'{"x": 1, "x": {"y": [1, 2.5e300, "z", null, true, false, {}, []]}, "i": 3}',
        True,
    ),
    (
        b'{"x": 123456789012345678901234567890, "y": 1e400}',
        True,
    ),  # ignored: grammar only
    (b'{"x": ' + b"[" * 70 + b"]" * 70 + b"}", False),  # deeper than the kernel's stack
    (b'{"\\u0069": 5, "\\u00e9\\"\\ud83d\\ude00": 1}', True),  # escaped keys
    (b'{"s": "\\ud800"}', False),  # lone surrogate
    (b'{"s": "\\udc00\\ud800"}', False),
    (b'{"s": "\\x"}', False),
    (b'{"s": "\xff"}', False),
    (b'{"s": "\xed\xa0\x80"}', False),  # UTF-8 encoded surrogate
    (b'{"s": "\xc0\x80"}', False),  # overlong
    (b'{"x": "\xff"}', False),  # the reference accepts: ignored strings are not checked
    (b'{"s": "a\x01b"}', False),
    (b'{"s": "a\nb"}', False),
    (b'{"i": 01}', False),
    (b'{"f": 1.}', False),
    (b'{"f": .5}', False),
    (b'{"f": -}', False),
    (b'{"b": tru}', False),
    (b'{"i": 1,}', False),
    (b"{,}", False),
    (b'{"i": 1}x', False),
    (b'{"i": 1}{"i": 2}', False),
    (b'{"i": 1', False),
    (b'{"s": "abc', False),
    (b"[1]", False),
    (b"null", False),
    (b"5", False),
    (b"", False),
    (None, False),
    ('{"i": 4}', False),  # str, not bytes: the reference decodes it
    (bytearray(b'{"i": 4}'), False),
    (memoryview(b'{"i": 4}'), False),
]


@pytest.mark.parametrize(
    ("record", "fast"), CASES, ids=[repr(c[0])[:40] for c in CASES]
)
def test_each_case_matches_reference_and_takes_the_expected_path(
    record: Any, fast: bool
) -> None:
    assert_same_as_reference([record])
    assert fast_json.flagged_positions([record], S) == ([] if fast else [0])


def test_all_cases_in_one_batch_keep_positions() -> None:
    values = [c for c, _ in CASES]
    res = assert_same_as_reference(values)
    assert fast_json.flagged_positions(values, S) == [
        k for k, (_, f) in enumerate(CASES) if not f
    ]
    assert res.errors  # some cases are dead letters, at their input positions


def test_decoded_values() -> None:
    res = decode_records(
        [
            b'{"s": "\\u00e9\\ud83d\\ude00\\n", "f": -0, "i": -9223372036854775808, "b": true}'
        ],
        S,
    )
    assert res.batch.to_pylist() == [
        {"i": -(2**63), "f": 0.0, "s": "é\U0001f600\n", "b": True}
    ]
    assert math.copysign(1.0, res.batch.column("f")[0].as_py()) == 1.0


def test_bench_events_take_the_fast_path_on_threads() -> None:
    # Past 2 * MIN_ROWS_PER_THREAD the batch is split over threads; a few bad records,
    # one near each range boundary, must land at their own positions.
    n = 2 * fast_json.MIN_ROWS_PER_THREAD + 5
    events = make_events(n)
    bad = [0, n // 2 - 1, n // 2, n - 1]
    for k in bad:
        events[k] = b'{"event_id": 1.5}'
    events[7] = events[7].replace(b'"note": "', b'"note": "\\"quoted\\" ')
    assert fast_json.flagged_positions(events, BENCH_SCHEMA) == bad
    res = assert_same_as_reference(events, BENCH_SCHEMA)
    assert [p for p, _ in res.errors] == bad
    row = res.good.tolist().index(7)
    assert res.batch.column("note")[row].as_py().startswith('"quoted" ')


def test_schema_order_and_unicode_names() -> None:
    schema = Schema.of({"ü": "string", "a_long_field_name": "int", "q": "bool"})
    values = [
        json.dumps({"a_long_field_name": 5, "ü": "x", "q": True}).encode(),  # "\u00fc"
        json.dumps({"ü": "y", "a_long_field_name": 6}, ensure_ascii=False).encode(),
    ]
    res = assert_same_as_reference(values, schema)
    assert fast_json.flagged_positions(values, schema) == []
    assert res.batch.to_pylist() == [
        {"ü": "x", "a_long_field_name": 5, "q": True},
        {"ü": "y", "a_long_field_name": 6, "q": None},
    ]


def test_batches_the_fast_path_refuses() -> None:
    assert fast_json.flagged_positions([], S) is None
    binary = Schema.of({"raw": "binary"})
    assert fast_json.flagged_positions([b"{}"], binary) is None
    assert_same_as_reference([b'{"raw": "AAE="}'], binary)


def test_bytes_layout_is_probed() -> None:
    layout = fast_json.bytes_layout()
    assert layout is not None and layout.bytes_type == id(bytes)
    rec = b"{}"
    assert layout.payload == np.frombuffer(rec, dtype=np.uint8).ctypes.data - id(rec)
    assert layout.tuple_items > 0


def test_scratch_reused_across_batches_leaves_no_stale_cells() -> None:
    # Working arrays are kept per thread between calls; a later, smaller batch with
    # missing fields and bad records must not see the cells of an earlier one.
    full = [b'{"i": 1, "f": 1.5, "s": "old", "b": true}'] * 50
    assert_same_as_reference(full)
    later = [b"{}", b'{"s": "\\u00e9"}', b'{"i": 1.5}', b'{"b": false}']
    res = assert_same_as_reference(later)
    assert res.batch.to_pylist() == [
        {"i": None, "f": None, "s": None, "b": None},
        {"i": None, "f": None, "s": "é", "b": None},
        {"i": None, "f": None, "s": None, "b": False},
    ]
