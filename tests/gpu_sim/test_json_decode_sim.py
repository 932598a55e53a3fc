"""The GPU JSON decoder (plait.process.gpu.json_decode) on numba's CUDA simulator against
the CPU engine's decode_records: same rows (float sign bits included), same input indices,
same dead letters; and the GPU kernel flags exactly what the CPU kernel flags.

Batches are small: on the simulator every CUDA thread is a Python thread."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from plait.process.bench_data import SCHEMA as BENCH
from plait.process.bench_data import make_events
from plait.process.cpu import fast_json
from plait.process.cpu.decode import DecodeResult, _per_record, decode_records
from plait.process.gpu.device import Backend

try:
    from tests.gpu_sim.engines import backend_under_test
except ImportError:
    from gpu_sim.engines import backend_under_test  # type: ignore[no-redef]
from plait.process.gpu.json_decode import decode_device, scan_device, upload_records
from plait.process.schema import Schema

pytestmark = pytest.mark.gpu_sim

S = Schema.of({"i": "int", "f": "float", "s": "string", "b": "bool"})
Record = bytes | None


@pytest.fixture(scope="module")
def backend() -> Backend:
    return backend_under_test()


def exact_rows(res: DecodeResult) -> list[dict[str, Any]]:
    """Rows with every float paired with its sign, so -0.0 and 0.0 differ."""
    return [
        {
            k: (v, math.copysign(1.0, v)) if isinstance(v, float) else v
            for k, v in r.items()
        }
        for r in res.batch.to_pylist()
    ]


def assert_same(
    backend: Backend,
    values: list[Record],
    schema: Schema = S,
    arr: pa.Array | None = None,
) -> DecodeResult:
    """decode_device on ``arr`` (default: ``values`` as pa.binary()) equals decode_records."""
    got = decode_device(
        backend,
        pa.array(values, pa.binary()) if arr is None else arr,
        schema,
        _per_record,
    )
    ref = decode_records(values, schema, "json")  # type: ignore[arg-type]
    assert got is not None
    assert got.good.tolist() == ref.good.tolist()
    assert got.errors == ref.errors
    assert got.batch.schema == ref.batch.schema
    assert exact_rows(got) == exact_rows(ref)
    return got


def gpu_flags(
    backend: Backend, values: list[Record], schema: Schema = S
) -> list[int]:
    """Positions the GPU kernel flags (hands to the per-record reference)."""
    cells = scan_device(
        backend, *upload_records(backend, pa.array(values, pa.binary())), schema
    )
    return np.flatnonzero(backend.to_host(cells.flags)).tolist()


def cpu_flags(values: list[Record], schema: Schema = S) -> list[int]:
    got = fast_json.flagged_positions(values, schema)  # type: ignore[arg-type]
    assert got is not None
    return got


def check(
    backend: Backend, cases: list[tuple[Record, bool]], schema: Schema = S
) -> None:
    """One batch of (record, taken by the fast path): same result as the CPU engine, the
    expected records flagged, and the same flags as the CPU kernel."""
    values = [c for c, _ in cases]
    assert_same(backend, values, schema)
    expected = [k for k, (_, fast) in enumerate(cases) if not fast]
    assert gpu_flags(backend, values, schema) == expected
    assert cpu_flags(values, schema) == expected


def test_bench_events_decode_unflagged(backend: Backend) -> None:
    events: list[Record] = list(make_events(40))
    assert gpu_flags(backend, events, BENCH) == []
    res = assert_same(backend, events, BENCH)
    assert res.batch.num_rows == 40 and not res.errors


def test_shuffled_keys_unknown_fields_and_whitespace(backend: Backend) -> None:
    rnd = random.Random(5)
    values: list[Record] = []
    for raw in make_events(24, seed=3):
        assert raw is not None
        obj = json.loads(raw)
        if rnd.random() < 0.5:
            obj["meta"] = {
                "a": [1, {"b": None, "c": [[], {}]}],
                "d": "x\\y",
                "e": -1.5e300,
            }
        if rnd.random() < 0.3:
            obj["tags"] = ["t", 2, True, False, None]
        items = list(obj.items())
        rnd.shuffle(items)
        sep = rnd.choice([(",", ":"), (", ", ": "), (" ,\n\t", " :\r\n ")])
        text = json.dumps(dict(items), separators=sep)
        values.append(rnd.choice(["", " ", "\n\t"]).encode() + text.encode() + b" \n")
    assert gpu_flags(backend, values, BENCH) == []
    assert_same(backend, values, BENCH)


def test_escapes_and_unicode(backend: Backend) -> None:
    check(
        backend,
        [
            (b'{"s": "\\u00e9\\n\\"q\\\\ \\/ \\b\\f\\r\\t"}', True),
            (b'{"s": "\\ud83d\\ude00 and \\u20ac \\u0041\\u07ff\\u0800\\uffff"}', True),
            ('{"s": "é€😀 \U0010ffff"}'.encode(), True),
            (b'{"s": "a\x7fb", "i": 1}', True),
            (b'{"s": ""}', True),
            (b'{"s": "\\"", "x": "\\\\"}', True),
            (b'{"\\u0069": 5, "\\u00e9\\"\\ud83d\\ude00": 1, "\\u0073": "k"}', True),
            (b'{"s": "\\ud800"}', False),  # lone high surrogate
            (b'{"s": "\\ud800x"}', False),
            (b'{"s": "\\ud800\\u0041"}', False),  # high surrogate + not a low one
            (b'{"s": "\\udc00\\ud800"}', False),  # reversed pair
            (b'{"s": "\\u12"}', False),
            (b'{"s": "\\u12g4"}', False),
            (b'{"s": "\\x"}', False),
            (b'{"s": "\xff"}', False),
            (b'{"s": "\xed\xa0\x80"}', False),  # UTF-8 encoded surrogate
            (b'{"s": "\xc0\x80"}', False),  # overlong
            (b'{"s": "\xf4\x90\x80\x80"}', False),  # past U+10FFFF
            (b'{"s": "\xe2\x82"}', False),  # truncated sequence
            # the reference accepts: ignored strings are not checked
            (b'{"x": "\xff"}', False),
            (b'{"s": "a\x01b"}', False),
            (b'{"s": "a\nb"}', False),
        ],
    )


def test_wrong_types_missing_fields_and_nulls(backend: Backend) -> None:
    check(
        backend,
        [
            (b"{}", True),
            (b'{"i": null, "f": null, "s": null, "b": null}', True),
            (b'{"b": false}', True),
            (b'{"s": "only"}', True),
            (None, False),  # a null record
            (b'{"i": "1"}', False),
            (b'{"i": 1.0}', False),
            (b'{"i": 1e2}', False),
            (b'{"i": true}', False),
            (b'{"b": 1}', False),
            (b'{"b": "true"}', False),
            (b'{"s": 5}', False),
            (b'{"s": true}', False),
            (b'{"f": "1.5"}', False),
            (b'{"f": false}', False),
            (b'{"i": [1]}', False),
            (b'{"s": {"a": 1}}', False),
            (b'{"i": nul}', False),
            (None, False),
        ],
    )


def test_int_edges(backend: Backend) -> None:
    check(
        backend,
        [
            (b'{"i": 9223372036854775807}', True),
            (b'{"i": -9223372036854775808}', True),
            (b'{"i": 9223372036854775806}', True),
            (b'{"i": 1700000000000000000}', True),
            (b'{"i": 0, "f": -0}', True),  # -0 int literal: msgspec gives +0.0
            (b'{"i": -0}', True),
            (b'{"i": 9223372036854775808}', False),
            (b'{"i": -9223372036854775809}', False),
            (b'{"i": 9223372036854775810}', False),
            (b'{"i": 9999999999999999999}', False),
            (b'{"i": 123456789012345678901}', False),
            (b'{"f": 9007199254740992}', True),  # 2**53
            (b'{"f": 9007199254740993}', False),  # above 2**53: the reference rounds
            (b'{"f": 9223372036854775807}', False),
        ],
    )


def test_floats_fast_and_slow(backend: Backend) -> None:
    check(
        backend,
        [
            (b'{"f": 0.1}', True),
            (b'{"f": 123.456, "i": 1}', True),
            (b'{"f": -0.0}', True),
            (b'{"f": -0e5}', True),
            (b'{"f": 1e22}', True),
            (b'{"f": 1e-22}', True),
            (b'{"f": 1E+2}', True),
            (b'{"f": 0.001}', True),
            (b'{"f": 3.14159265358979}', True),
            (b'{"f": 1e23}', False),
            (b'{"f": 1e-23}', False),
            (b'{"f": 0.1234567890123456789}', False),
            (b'{"f": 1e400}', False),
            (b'{"f": 1e-400}', False),
            (b'{"f": 2.5e-300}', False),
            (b'{"f": 1.7976931348623157e308}', False),
            (b'{"f": 4.9e-324}', False),
        ],
    )


def test_duplicates_and_deep_nesting(backend: Backend) -> None:
    check(
        backend,
        [
            (b'{"i": 1, "i": 2}', False),  # the reference keeps the last
            (b'{"s": "a", "b": true, "s": null}', False),
            (
                b'{"x": 1, "x": {"y": [1, 2.5e300, "z", null, true, false, {}, []]}}',
                True,
            ),
            (b'{"x": 123456789012345678901234567890, "y": 1e400, "i": 3}', True),
            (b'{"x": ' + b"[" * 50 + b"]" * 50 + b', "i": 1}', True),
            (b'{"x": ' + b"[" * 70 + b"]" * 70 + b"}", False),  # past MAX_DEPTH
        ],
    )


def test_malformed(backend: Backend) -> None:
    bad = [
        b'{"i": 01}',
        b'{"f": 1.}',
        b'{"f": .5}',
        b'{"f": 1e}',
        b'{"f": -}',
        b'{"f": +1}',
        b'{"b": tru}',
        b'{"i": 1,}',
        b"{,}",
        b'{"i" 1}',
        b'{"i": 1 "f": 2}',
        b'{"i": 1}x',
        b'{"i": 1}{"i": 2}',
        b'{"i": 1',
        b'{"s": "abc',
        b'{"x": [1, 2}',
        b'{"x": {"a" 1}}',
        b'{"x": {1: 2}}',
        b"{i: 1}",
        b"[1]",
        b"null",
        b"5",
        b"",
        b"   ",
        b"{",
    ]
    check(backend, [(v, False) for v in bad])


def test_mutated_events_never_decode_wrongly(backend: Backend) -> None:
    # Random byte edits of real events: whatever the kernel does not flag must equal
    # the reference, and it flags exactly what the CPU kernel flags.
    rnd = random.Random(11)
    alphabet = b'{}[]":,\\ 0123456789.eE+-tfnul\xc3\xa9\xff'
    values: list[Record] = []
    for raw in make_events(40, seed=9):
        assert raw is not None
        b = bytearray(raw)
        for _ in range(rnd.randrange(1, 3)):
            k = rnd.randrange(len(b))
            op = rnd.randrange(3)
            if op == 0:
                b[k] = rnd.choice(alphabet)
            elif op == 1:
                del b[k]
            else:
                b.insert(k, rnd.choice(alphabet))
        values.append(bytes(b))
    assert_same(backend, values, BENCH)
    assert gpu_flags(backend, values, BENCH) == cpu_flags(values, BENCH)


def test_field_names_and_schema_shapes(backend: Backend) -> None:
    names = Schema.of({"ü": "string", "a_long_field_name": "int", 'q"x': "bool"})
    values: list[Record] = [
        json.dumps({"a_long_field_name": 5, "ü": "x", 'q"x': True}).encode(),
        json.dumps({"ü": "y", "a_long_field_name": 6}, ensure_ascii=False).encode(),
        b'{"\\u00fc": "z", "q\\"x": false, "a_long_field_nam": 1}',
    ]
    assert gpu_flags(backend, values, names) == []
    assert_same(backend, values, names)
    no_strings = Schema.of({"n": "int"})
    ints: list[Record] = [b'{"n": 1}', b'{"n": 2, "s": "x"}', b"{}"]
    assert gpu_flags(backend, ints, no_strings) == []
    assert_same(backend, ints, no_strings)
    only_strings = Schema.of({"a": "string", "b": "string"})
    strs: list[Record] = [b'{"a": "1", "b": "\\u00e9"}', b'{"b": ""}', None, b"{}"]
    assert_same(backend, strs, only_strings)


def test_empty_batch_and_unsupported_schema(backend: Backend) -> None:
    for t in (pa.binary(), pa.string(), pa.large_binary()):
        got = decode_device(backend, pa.array([], t), S, _per_record)
        ref = decode_records([], S, "json")
        assert got is not None
        assert (
            got.batch.equals(ref.batch) and got.good.tolist() == [] and not got.errors
        )
    binary = Schema.of({"raw": "binary"})
    assert decode_device(backend, pa.array([b"{}"]), binary, _per_record) is None


def test_sliced_large_and_string_inputs(backend: Backend) -> None:
    events: list[Record] = list(make_events(16, seed=4))
    events[3] = None
    events[6] = b'{"event_id": 1.5}'
    events[12] = None
    events[14] = b'{"note": "\\"quoted\\" \\u00e9"}'
    window = events[5:15]
    arr = pa.array(events, pa.binary()).slice(5, 10)
    assert_same(backend, window, BENCH, arr)
    texts = [None if v is None else v.decode() for v in events]
    assert_same(backend, window, BENCH, pa.array(texts, pa.string()).slice(5, 10))
    large = pa.array(events, pa.large_binary()).slice(5, 10)
    assert_same(backend, window, BENCH, large)
    chunked = pa.chunked_array([pa.array(events[5:9]), pa.array(events[9:15])])
    assert_same(backend, window, BENCH, chunked)
    nulls_only: list[Record] = [None, None]
    assert_same(backend, nulls_only, BENCH)
