"""Parser and type-checker errors name the position; a few semantics pinned by example."""

from __future__ import annotations

import pyarrow as pa
import pytest

from plait.errors import PlaitError
from plait.process.cpu.expr_compile import compile_expr
from plait.process.errors import (
    EvaluationError,
    ExpressionSyntaxError,
    ExpressionTypeError,
)
from plait.process.expr import Binary, Column, InList, Literal, parse, render

SCHEMA = pa.schema(
    [
        ("amount", pa.float64()),
        ("n", pa.int64()),
        ("country", pa.string()),
        ("ok", pa.bool_()),
    ]
)
BATCH = pa.RecordBatch.from_pylist(
    [
        {"amount": 150.0, "n": 7, "country": "DE", "ok": True},
        {"amount": 50.0, "n": -7, "country": "FR", "ok": None},
        {"amount": None, "n": None, "country": None, "ok": False},
    ],
    schema=SCHEMA,
)


@pytest.mark.parametrize(
    "text, column, fragment",
    [
        ("amount >", 8, "expected a value"),
        ("amount > 100 and", 16, "expected a value"),
        ("country in ('DE', n)", 18, "expected a literal"),
        ("'unterminated", 0, "unterminated string"),
        ("amount $ 3", 7, "unexpected character '$'"),
        ("(amount > 1", 11, "expected ')'"),
        ("n is nul", 5, "expected 'null'"),
        ("amount 100", 7, "expected an operator or end"),
        ("", 0, "expected an expression"),
    ],
)
def test_syntax_errors_point_at_the_column(
    text: str, column: int, fragment: str
) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        parse(text)
    err = info.value
    assert err.column == column
    assert fragment in str(err)
    lines = str(err).splitlines()
    assert lines[1].strip() == text.strip() or text == ""
    assert (
        lines[2].index("^") - 2 == column
    )  # caret under the column (two-space indent)
    assert isinstance(err, PlaitError)


@pytest.mark.parametrize(
    "text, column, fragment",
    [
        ("amount + country > 1", 9, "'+' expects numbers, got string"),
        ("nope > 1", 0, "unknown column 'nope'"),
        ("n and ok", 0, "'and' expects bool operands, got int"),
        ("country > 1", 8, "cannot compare string with int"),
        ("country contains n", 17, "string literal on the right"),
        ("n in ('a')", 6, "list item of type string"),
        ("n in (1, null)", 9, "null is not allowed"),
        ("not n", 0, "'not' expects a bool"),
    ],
)
def test_type_errors_point_at_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionTypeError) as info:
        compile_expr(text, SCHEMA)
    assert info.value.column == column
    assert fragment in str(info.value)


def test_filter_requires_bool() -> None:
    with pytest.raises(
        ExpressionTypeError, match="expected a bool expression, got float"
    ):
        compile_expr("amount * 2", SCHEMA, want="bool")


def test_precedence_and_keywords() -> None:
    tree = parse("NOT a = 1 OR b IN (1, -2) AND c")
    assert render(tree) == render(parse("(not (a = 1)) or ((b in (1, -2)) and c)"))
    assert isinstance(tree, Binary) and tree.op == "or"
    assert parse('"in" = 1') == Binary("=", Column("in", 0), Literal(1, 7), 5)
    assert parse("x not in ('it''s')") == InList(
        Column("x", 0), (Literal("it's", 10),), True, 2
    )
    assert render(parse("1 + 2 * 3 - 4 % 3")) == "((1 + (2 * 3)) - (4 % 3))"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("amount > 100 and country in ('DE', 'FR')", [True, False, None]),
        ("not ok", [False, None, True]),
        ("ok or amount > 100", [True, None, None]),  # false or null is null (Kleene)
        ("n % 4", [3, 1, None]),  # floored, like Python
        ("n % 0", [None, None, None]),
        ("n / 2", [3.5, -3.5, None]),
        ("amount is null", [False, False, True]),
        ("country is not null and country startswith 'D'", [True, False, False]),
        ("country endswith 'R' or country contains 'E'", [True, True, None]),
        ("country not in ('DE')", [False, True, None]),
        ("-n * 2", [-14, 14, None]),
        ("1 + 1", [2, 2, 2]),
    ],
)
def test_semantics_examples(text: str, expected: list[object]) -> None:
    assert compile_expr(text, SCHEMA)(BATCH).to_pylist() == expected


def test_integer_overflow_is_an_error_not_a_wrap() -> None:
    big = pa.RecordBatch.from_pylist(
        [{"n": 2**62}], schema=pa.schema([("n", pa.int64())])
    )
    with pytest.raises(EvaluationError, match="n \\* 4"):
        compile_expr("n * 4", big.schema)(big)


@pytest.mark.parametrize("text", ["f in (0.0)", "f in (-0.0)", "f in (0)", "f = 0.0"])
def test_minus_zero_is_in_a_list_holding_zero_as_it_equals_it(text: str) -> None:
    # Arrow's is_in hashes floats by their bits, where -0.0 and 0.0 differ; `in` is
    # "equal to some item", and -0.0 = 0.0 (the GPU engine compares that way too).
    batch = pa.record_batch({"f": pa.array([-0.0, 0.0, 1.0, None])})
    assert compile_expr(text, batch.schema, want="bool")(batch).to_pylist() == [
        True, True, False, None
    ]


def test_an_in_list_int_that_float64_cannot_hold_is_a_type_error_at_its_item() -> None:
    schema = pa.schema([("f", pa.float64())])
    with pytest.raises(ExpressionTypeError) as err:
        compile_expr("f in (1.5, 9007199254740993)", schema)
    assert err.value.column == 11 and "cannot be a float exactly" in str(err.value)
