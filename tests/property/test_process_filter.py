"""The CPU expression engine against a per-record Python evaluator, on random expressions
(generated as typed trees, rendered to text, parsed back) and random batches with nulls."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.process.cpu.expr_compile import compile_expr
from plait.process.errors import EvaluationError
from plait.process.expr import (
    Binary,
    Column,
    InList,
    IsNull,
    Literal,
    Unary,
    parse,
    render,
)

SCHEMA = pa.schema(
    [
        ("i1", pa.int64()),
        ("i2", pa.int64()),
        ("f1", pa.float64()),
        ("s1", pa.string()),
        ("s2", pa.string()),
        ("b1", pa.bool_()),
    ]
)
COLS = {"int": ["i1", "i2"], "float": ["f1"], "string": ["s1", "s2"], "bool": ["b1"]}
INT64 = (-(2**63), 2**63 - 1)

small_int = st.integers(-60, 60)
small_float = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
short_text = st.text(alphabet=st.sampled_from("ab'é😀 Z"), max_size=4)


def literal(typ: str) -> st.SearchStrategy[Literal]:
    base = {
        "int": small_int,
        "float": small_float,
        "string": short_text,
        "bool": st.booleans(),
    }[typ]
    return base.map(Literal)


@st.composite
def expr(draw: Any, typ: str, depth: int = 3) -> Any:
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        choice = draw(st.integers(0, 4))
        if choice == 0:
            return Literal(None)
        if choice <= 2:
            return Column(draw(st.sampled_from(COLS[typ])))
        return draw(literal(typ))
    d = depth - 1
    if typ == "bool":
        kind = draw(
            st.sampled_from(
                ["and", "or", "not", "cmp", "scmp", "in", "isnull", "strop", "bcmp"]
            )
        )
        if kind in ("and", "or"):
            return Binary(kind, draw(expr("bool", d)), draw(expr("bool", d)))
        if kind == "not":
            return Unary("not", draw(expr("bool", d)))
        if kind == "cmp":
            op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
            return Binary(
                op,
                draw(expr(draw(st.sampled_from(["int", "float"])), d)),
                draw(expr(draw(st.sampled_from(["int", "float"])), d)),
            )
        if kind == "scmp":
            op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
            return Binary(op, draw(expr("string", d)), draw(expr("string", d)))
        if kind == "bcmp":
            return Binary(
                draw(st.sampled_from(["=", "!="])),
                draw(expr("bool", d)),
                draw(expr("bool", d)),
            )
        if kind == "in":
            t = draw(st.sampled_from(["int", "string", "float"]))
            items = tuple(draw(st.lists(literal(t), min_size=1, max_size=4)))
            return InList(draw(expr(t, d)), items, draw(st.booleans()))
        if kind == "isnull":
            t = draw(st.sampled_from(["int", "float", "string", "bool"]))
            return IsNull(draw(expr(t, d)), draw(st.booleans()))
        op = draw(st.sampled_from(["contains", "startswith", "endswith"]))
        return Binary(op, draw(expr("string", d)), draw(literal("string")))
    if typ == "int":
        kind = draw(st.sampled_from(["+", "-", "*", "%", "neg"]))
        if kind == "neg":
            return Unary("-", draw(expr("int", d)))
        return Binary(kind, draw(expr("int", d)), draw(expr("int", d)))
    if typ == "float":
        kind = draw(st.sampled_from(["+", "-", "*", "/", "%", "neg"]))
        if kind == "neg":
            return Unary("-", draw(expr("float", d)))
        a = draw(expr(draw(st.sampled_from(["int", "float"])), d))
        b = draw(
            expr("float" if kind != "/" else draw(st.sampled_from(["int", "float"])), d)
        )
        return Binary(kind, a, b)
    return (
        draw(literal("string"))
        if draw(st.booleans())
        else Column(draw(st.sampled_from(COLS["string"])))
    )


class Overflow(Exception):
    pass


def _fdiv(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _fmod(a: float, b: float) -> float:
    if b == 0 or math.isnan(a) or math.isnan(b) or math.isinf(a):
        return math.nan
    return a % b


def ev(node: Any, row: dict[str, Any]) -> Any:
    """The reference: SQL null semantics, Kleene logic, checked int64, IEEE floats."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Column):
        return row[node.name]
    if isinstance(node, Unary):
        v = ev(node.operand, row)
        if v is None:
            return None
        if node.op == "not":
            return not v
        return _int_checked(-v) if isinstance(v, int) else -v
    if isinstance(node, IsNull):
        v = ev(node.operand, row)
        return (v is not None) if node.negated else (v is None)
    if isinstance(node, InList):
        v = ev(node.operand, row)
        if v is None:
            return None
        hit = any(v == i.value for i in node.items)
        return (not hit) if node.negated else hit
    a, b = ev(node.left, row), ev(node.right, row)
    op = node.op
    if op == "and":
        if a is False or b is False:
            return False
        return None if a is None or b is None else True
    if op == "or":
        if a is True or b is True:
            return True
        return None if a is None or b is None else False
    if a is None or b is None:
        return None
    if op == "contains":
        return b in a
    if op == "startswith":
        return a.startswith(b)
    if op == "endswith":
        return a.endswith(b)
    if op in ("=", "!=", "<", "<=", ">", ">="):
        if isinstance(a, str):
            a, b = a.encode(), b.encode()  # Arrow orders strings by UTF-8 bytes
        return {
            "=": a == b,
            "!=": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    is_int = isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool)
    if op == "/":
        return _fdiv(float(a), float(b))
    if op == "%":
        if is_int:
            return None if b == 0 else a % b
        return _fmod(float(a), float(b))
    if is_int:
        return _int_checked({"+": a + b, "-": a - b, "*": a * b}[op])
    a, b = float(a), float(b)
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def _int_checked(v: int) -> int:
    if not INT64[0] <= v <= INT64[1]:
        raise Overflow
    return v


def same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or x == y
    return x == y and type(x) is type(y)


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "i1": st.none() | small_int,
            "i2": st.none() | st.integers(-3, 3),
            "f1": st.none() | small_float,
            "s1": st.none() | short_text,
            "s2": st.none() | short_text,
            "b1": st.none() | st.booleans(),
        }
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    tree=st.sampled_from(["bool", "int", "float", "string"]).flatmap(lambda t: expr(t)),
    rows=rows_strategy,
)
def test_engine_equals_reference(tree: Any, rows: list[dict[str, Any]]) -> None:
    text = render(tree)
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    compiled = compile_expr(text, SCHEMA)
    try:
        expected = [ev(parse(text), r) for r in rows]
    except Overflow:
        with pytest.raises(EvaluationError):
            compiled(batch)
        return
    got = compiled(batch).to_pylist()
    for g, e, r in zip(got, expected, rows):
        if compiled.type == "float" and isinstance(e, int):
            e = float(e)
        assert same(g, e), f"{text} on {r}: engine {g!r}, reference {e!r}"


@settings(max_examples=150, deadline=None)
@given(tree=expr("bool"), rows=rows_strategy)
def test_filter_keeps_exactly_true_rows(tree: Any, rows: list[dict[str, Any]]) -> None:
    text = render(tree)
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    compiled = compile_expr(text, SCHEMA, want="bool")
    try:
        keep = [ev(tree, r) is True for r in rows]
    except Overflow:
        return
    got = batch.filter(compiled(batch), null_selection_behavior="drop").to_pylist()
    assert got == [r for r, k in zip(rows, keep) if k]


@settings(max_examples=150, deadline=None)
@given(
    tree=st.sampled_from(["bool", "int", "float", "string"]).flatmap(lambda t: expr(t))
)
def test_render_parse_roundtrip_is_stable(tree: Any) -> None:
    text = render(tree)
    assert render(parse(text)) == render(parse(render(parse(text))))
