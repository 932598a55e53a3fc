"""Decode + filter in one pass over the JSON cells equals decoding every row and filtering
with Arrow: random filters (the part of the language cell programs cover, and some they do
not), random records with nulls, missing fields, unicode, escapes and malformed ones."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.pipeline import RawBatch, pipeline
from plait.process.cpu.cell_filter import compile_cell_filter
from plait.process.cpu.decode import decode_records, decode_records_where
from plait.process.cpu.expr_compile import compile_expr
from plait.process.cpu.fast_json import flagged_positions, plan_for
from plait.process.errors import EvaluationError, ExpressionTypeError
from plait.process.expr import Binary, Column, InList, IsNull, Literal, Unary, render
from plait.process.schema import Schema

SCHEMA = Schema.of(
    {"i1": "int", "i2": "int", "f1": "float", "s1": "string", "s2": "string", "b1": "bool"}
)
COLS = {"int": ["i1", "i2"], "float": ["f1"], "string": ["s1", "s2"], "bool": ["b1"]}
BIG = 2**53 + 1  # an int that float64 rounds: int-vs-float comparisons must round alike

ints = st.sampled_from([0, 1, -1, 7, BIG, -BIG, 2**63 - 1]) | st.integers(-20, 20)
floats = st.sampled_from([0.0, -0.0, 0.5, 7.0, float(BIG), 1e300]) | st.floats(
    -30, 30, allow_nan=False, allow_infinity=False
)
plain_texts = st.text(alphabet=st.sampled_from("abé😀 "), max_size=4)
texts = st.one_of(plain_texts, plain_texts, plain_texts, st.text(alphabet='a"\\\n', max_size=2))
literals = {"int": ints, "float": floats, "string": texts, "bool": st.booleans()}


def column(kind: str) -> st.SearchStrategy[Column]:
    return st.sampled_from(COLS[kind]).map(Column)


@st.composite
def predicate(draw: Any, depth: int = 3) -> Any:
    """A bool expression tree; mostly what cell programs cover, sometimes arithmetic."""
    if depth > 0 and draw(st.integers(0, 2)) == 0:
        kind = draw(st.sampled_from(["and", "or", "not"]))
        if kind == "not":
            return Unary("not", draw(predicate(depth - 1)))
        return Binary(kind, draw(predicate(depth - 1)), draw(predicate(depth - 1)))
    leaf = draw(
        st.sampled_from(
            ["cmp", "cmp_cols", "in", "strop", "isnull", "bool", "const", "null_cmp", "arith"]
        )
    )
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    if leaf == "cmp":
        kind = draw(st.sampled_from(["int", "float", "string", "bool"]))
        lit_kind = draw(st.sampled_from(["int", "float"])) if kind in ("int", "float") else kind
        col, lit = draw(column(kind)), Literal(draw(literals[lit_kind]))
        return Binary(op, col, lit) if draw(st.booleans()) else Binary(op, lit, col)
    if leaf == "cmp_cols":
        kinds = draw(st.sampled_from([("int", "int"), ("int", "float"), ("float", "int"),
                                      ("string", "string"), ("bool", "bool")]))  # fmt: skip
        return Binary(op, draw(column(kinds[0])), draw(column(kinds[1])))
    if leaf == "in":
        kind = draw(st.sampled_from(["int", "float", "string", "bool"]))
        item_kinds = [kind] if kind != "float" else ["float", "int"]
        items = draw(
            st.lists(st.sampled_from(item_kinds).flatmap(lambda k: literals[k]), min_size=1, max_size=4)
        )
        return InList(draw(column(kind)), tuple(Literal(v) for v in items), draw(st.booleans()))
    if leaf == "strop":
        which = draw(st.sampled_from(["contains", "startswith", "endswith"]))
        return Binary(which, draw(column("string")), Literal(draw(texts)))
    if leaf == "isnull":
        kind = draw(st.sampled_from(list(COLS)))
        return IsNull(draw(column(kind)), draw(st.booleans()))
    if leaf == "bool":
        return draw(column("bool"))
    if leaf == "const":
        return Literal(draw(st.sampled_from([True, False, None])))
    if leaf == "null_cmp":
        return Binary(op, draw(column("int")), Literal(None))
    return Binary(op, Binary("+", draw(column("int")), Literal(1)), Literal(draw(ints)))


def _value(kind: str) -> st.SearchStrategy[Any]:
    return st.none() | literals[kind]


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {},
        optional={c: _value(kind) for kind, cols in COLS.items() for c in cols},
    ),
    min_size=1,
    max_size=25,
)
# one batch in four holds a record for the per-record path (malformed, or a wrong type),
# one in four is written with non-ASCII as \u escapes
records = st.tuples(
    rows_strategy,
    st.sampled_from([False, False, False, True]),
    st.sampled_from(["ok", "ok", "ok", "malformed", "wrong_type"]),
    st.integers(0, 24),
).map(lambda t: [(r, t[1], t[2] if k == t[3] % len(t[0]) else "ok") for k, r in enumerate(t[0])])


def _encode(row: dict[str, Any], ascii_only: bool, how: str) -> bytes:
    if how == "malformed":
        return b'{"i1": 1,'
    if how == "wrong_type":
        row = {**row, "i1": "x"}
    return json.dumps(row, ensure_ascii=ascii_only).encode()


def _arrow_path(values: list[bytes], text: str) -> tuple[pa.RecordBatch, list[int]]:
    res = decode_records(values, SCHEMA)
    mask = compile_expr(text, res.batch.schema, want="bool")(res.batch)
    keep = mask.fill_null(False).to_numpy(zero_copy_only=False)
    return res.batch.filter(mask, null_selection_behavior="drop"), res.good[keep].tolist()


@settings(max_examples=400, deadline=None)
@given(tree=predicate(), rows=records)
def test_one_pass_equals_decode_then_arrow_filter(tree: Any, rows: list[Any]) -> None:
    text = render(tree)
    values = [_encode(dict(r), a, how) for r, a, how in rows]
    try:
        expected, expected_good = _arrow_path(values, text)
    except (EvaluationError, ExpressionTypeError) as exc:  # so must the one-pass path
        with pytest.raises(type(exc)):
            res, filtered = decode_records_where(values, SCHEMA, "json", text)
            assert not filtered  # it filters nothing it cannot decide: Arrow raises
            _truth(text, res.batch)
        return
    res, filtered = decode_records_where(values, SCHEMA, "json", text)
    got = res.batch
    if not filtered:  # the caller filters: do as the pipeline does
        keep = _truth(text, got)
        got = got.filter(pa.array(keep, type=pa.bool_()))
        good = [g for g, k in zip(res.good.tolist(), keep) if k]
    else:
        good = res.good.tolist()
        assert not res.errors
    assert got.equals(expected), f"{text}\n{got.to_pylist()}\n!=\n{expected.to_pylist()}"
    assert good == expected_good
    # the one-pass path is taken whenever it can be: a program, every record scanned
    # clean, no escaped string, no int past 2**53 against a float
    clean = flagged_positions(values, SCHEMA) == [] and not any(
        "\\" in json.dumps(r.get(c), ensure_ascii=a) for r, a, _ in rows for c in ("s1", "s2")
    ) and all(abs(r.get(c) or 0) <= 2**53 for r, _, _ in rows for c in ("i1", "i2"))
    if compile_cell_filter(text, plan_for(SCHEMA)) is not None and clean:
        assert filtered, text


def _truth(text: str, batch: pa.RecordBatch) -> list[bool]:
    mask = compile_expr(text, batch.schema, want="bool")(batch)
    return [v is True for v in mask.to_pylist()]


def test_programs_cover_common_filters_and_refuse_arithmetic() -> None:
    plan = plan_for(SCHEMA)
    for text in ("i1 > 5 and s1 in ('a', 'b')", "not (f1 <= 2) or b1", "s2 contains 'é'",
                 "i1 is not null and 3 < i2", "f1 in (1, 2.5)", "b1 = true"):  # fmt: skip
        assert compile_cell_filter(text, plan) is not None, text
    for text in ("i1 + 1 > 5", "i1 in (1.5, 2)", "1 < 2", "-i1 > 0"):
        assert compile_cell_filter(text, plan) is None, text


@pytest.mark.parametrize("text", ["i1 > 2 and s1 = 'a'", "i1 * 2 > 4"])
def test_pipeline_decode_filter_keeps_offsets_and_dead_letters(text: str) -> None:
    values = [
        json.dumps({"i1": i, "s1": "a" if i % 2 else "b"}).encode() for i in range(8)
    ] + [b"not json"]
    p = pipeline(engine="cpu").decode(SCHEMA).filter(text)
    out = p.process(RawBatch(values, pa.array(range(100, 109)).to_numpy()))
    rows = pa.Table.from_batches(out).to_pylist()
    want = [i for i in range(8) if (i > 2 and i % 2 == 1) or (text.startswith("i1 *") and i > 2)]
    assert [r["i1"] for r in rows] == want
    assert [r["_offset"] for r in rows] == [100 + i for i in want]
    assert [(d.offset, d.stage) for d in p.dead_letters] == [(108, "decode")]


def test_gathered_batch_memory_lives_as_long_as_any_column_and_no_longer() -> None:
    """The one-pass batch is handed to Arrow through the C data interface: its memory must
    outlive the batch while a column (or a slice of one) is held, then be freed."""
    import gc

    from plait.process.cpu import decode_where

    values = [json.dumps({"i1": i, "s1": f"text {i}"}).encode() for i in range(50)]
    gc.collect()
    live = len(decode_where._LIVE)
    res, filtered = decode_records_where(values, SCHEMA, "json", "i1 >= 10")
    assert filtered and res.batch.num_rows == 40
    column = res.batch.column("s1").slice(5, 2)
    del res
    gc.collect()
    assert len(decode_where._LIVE) == live + 1
    assert column.to_pylist() == ["text 15", "text 16"]
    del column
    gc.collect()
    assert len(decode_where._LIVE) == live


def test_gathered_batches_released_on_other_threads_free_their_memory() -> None:
    """Arrow calls the release callback on whichever thread drops the last reference."""
    import gc
    import queue
    import threading

    from plait.process.cpu import decode_where

    values = [json.dumps({"i1": i, "s1": "x" * (i % 7)}).encode() for i in range(300)]
    gc.collect()
    live = len(decode_where._LIVE)
    inbox: queue.Queue[Any] = queue.Queue()
    seen: list[int] = []

    def worker() -> None:
        while (item := inbox.get()) is not None:
            seen.append(sum(len(s or "") for s in item.column("s1").to_pylist()))
            del item

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(60):
        res, filtered = decode_records_where(values, SCHEMA, "json", "i1 > 5")
        assert filtered
        inbox.put(res.batch)
        del res
    for _ in threads:
        inbox.put(None)
    for t in threads:
        t.join()
    gc.collect()
    want = sum(i % 7 for i in range(6, 300))
    assert seen == [want] * 60
    assert len(decode_where._LIVE) == live


KIND_VALUES = {
    "int": st.none() | st.integers(-(2**63), 2**63 - 1),
    "float": st.none() | st.floats(allow_nan=False, allow_infinity=False),
    "string": st.none() | st.text(alphabet=st.sampled_from("xyé😀 "), max_size=6),
    "bool": st.none() | st.booleans(),
}


@st.composite
def schema_and_rows(draw: Any) -> tuple[Schema, list[dict[str, Any]]]:
    kinds = draw(st.lists(st.sampled_from(list(KIND_VALUES)), min_size=1, max_size=9))
    names = [f"f{j}" for j in range(len(kinds))]
    rows = draw(st.lists(
        st.fixed_dictionaries({}, optional={n: KIND_VALUES[k] for n, k in zip(names, kinds)}),
        max_size=30,
    ))  # fmt: skip
    return Schema.of(dict(zip(names, kinds))), rows


@settings(max_examples=150, deadline=None)
@given(case=schema_and_rows(), which=st.sampled_from(["is not null", "is null", "all"]))
def test_one_pass_gathers_every_kind_and_slot_like_the_arrow_path(
    case: tuple[Schema, list[dict[str, Any]]], which: str
) -> None:
    """Any mix of kinds (several fields of one kind use several slots of its cells) comes
    out of the one-pass gather as the plain decode + Arrow filter builds it."""
    schema, rows = case
    text = "true" if which == "all" else f"f0 {which}"
    values = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    plain = decode_records(values, schema)
    mask = compile_expr(text, plain.batch.schema, want="bool")(plain.batch)
    expected = plain.batch.filter(mask, null_selection_behavior="drop")
    res, filtered = decode_records_where(values, schema, "json", text)
    if rows and flagged_positions(values, schema) == []:
        assert filtered
    got = res.batch if filtered else res.batch.filter(
        compile_expr(text, res.batch.schema, want="bool")(res.batch), null_selection_behavior="drop"
    )
    assert got.equals(expected), f"{text}: {got.to_pylist()} != {expected.to_pylist()}"
