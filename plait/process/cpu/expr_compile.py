"""Compile an expression tree to eager pyarrow.compute calls, checking types first.

Semantics (the contract the property tests check against a per-record Python evaluator):

* SQL three-valued logic: a comparison, arithmetic or string test with a null operand is
  null; ``and``/``or`` are Kleene (``false and null`` is false); a filter keeps only rows
  whose predicate is true.
* ``/`` is true division in float64 (IEEE: ``x/0`` is ±inf or nan). ``%`` is floored like
  Python's; an integer ``x % 0`` is null, a float one nan. ``+ - *`` on integers raise
  :class:`EvaluationError` on int64 overflow instead of wrapping.
* ``x in (...)`` is null when ``x`` is null, else whether ``x = item`` for some item (so
  -0.0 is in ``(0.0)``); list items must be literals of ``x``'s type.
* ``contains``/``startswith``/``endswith`` take a string literal on the right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from plait.process.errors import EvaluationError, ExpressionTypeError
from plait.process.expr.ast import Binary, Column, InList, IsNull, Literal, Node, Unary
from plait.process.expr.parser import parse

Value: TypeAlias = "pa.Array | pa.ChunkedArray | pa.Scalar"
Fn = Callable[[pa.RecordBatch], Value]

_NUMERIC = ("int", "float")
_ARROW_OF = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "null": pa.null(),
}


def lang_type(t: pa.DataType) -> str | None:
    """The expression-language type of an Arrow type, or None where it has none."""
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    return None


@dataclass(frozen=True)
class CompiledExpr:
    """A checked expression: ``type`` is its language type, calling it evaluates a batch."""

    text: str
    type: str
    fn: Fn

    def __call__(self, batch: pa.RecordBatch) -> pa.Array:
        try:
            out = self.fn(batch)
        except pa.ArrowInvalid as exc:  # overflow from *_checked kernels
            raise EvaluationError(f"evaluating {self.text!r} failed: {exc}") from exc
        if isinstance(out, pa.Scalar):
            target = _ARROW_OF[self.type]
            return pa.array([out.as_py()] * batch.num_rows, type=target)
        if isinstance(out, pa.ChunkedArray):
            out = out.combine_chunks()
        return out


def compile_expr(
    text: str, schema: pa.Schema, *, want: str | None = None
) -> CompiledExpr:
    """Parse and type-check ``text`` against ``schema``; ``want`` requires a result type
    (``"bool"`` for filters). Raises :class:`ExpressionSyntaxError` or
    :class:`ExpressionTypeError` naming the column in the text."""
    tree = parse(text)
    typ, fn = _Compiler(text, schema).node(tree)
    if want is not None and typ not in (want, "null"):
        raise ExpressionTypeError(f"expected a {want} expression, got {typ}", text, 0)
    return CompiledExpr(text, want if typ == "null" and want else typ, fn)


class _Compiler:
    def __init__(self, text: str, schema: pa.Schema) -> None:
        self.text = text
        self.schema = schema

    def err(self, message: str, pos: int) -> ExpressionTypeError:
        return ExpressionTypeError(message, self.text, pos)

    def node(self, n: Node) -> tuple[str, Fn]:
        if isinstance(n, Literal):
            return self.literal(n)
        if isinstance(n, Column):
            return self.column(n)
        if isinstance(n, Unary):
            return self.unary(n)
        if isinstance(n, Binary):
            return self.binary(n)
        if isinstance(n, InList):
            return self.in_list(n)
        return self.is_null(n)

    def literal(self, n: Literal) -> tuple[str, Fn]:
        v = n.value
        typ = literal_type(v)
        if typ == "int" and not -(2**63) <= int(v) < 2**63:  # type: ignore[arg-type]
            raise self.err(f"integer literal {v} does not fit in int64", n.pos)
        scalar = pa.scalar(v, type=_ARROW_OF[typ])
        return typ, lambda b: scalar

    def column(self, n: Column) -> tuple[str, Fn]:
        idx = self.schema.get_field_index(n.name)
        if idx < 0:
            raise self.err(
                f"unknown column {n.name!r} (columns: {', '.join(self.schema.names)})",
                n.pos,
            )
        t = self.schema.field(idx).type
        typ = lang_type(t)
        if typ is None:
            raise self.err(
                f"column {n.name!r} has type {t}, not usable in expressions", n.pos
            )
        target = _ARROW_OF[typ]
        name = n.name
        if t == target:
            return typ, lambda b: b.column(name)
        return typ, lambda b: pc.cast(b.column(name), target)

    def unary(self, n: Unary) -> tuple[str, Fn]:
        typ, f = self.node(n.operand)
        if n.op == "not":
            if typ not in ("bool", "null"):
                raise self.err(f"'not' expects a bool operand, got {typ}", n.pos)
            return "bool", lambda b: pc.invert(_as(f(b), pa.bool_()))
        if typ not in (*_NUMERIC, "null"):
            raise self.err(f"'-' expects a number, got {typ}", n.pos)
        typ = "int" if typ == "null" else typ
        return typ, lambda b: pc.negate_checked(_as(f(b), _ARROW_OF[typ]))

    def binary(self, n: Binary) -> tuple[str, Fn]:
        lt, lf = self.node(n.left)
        rt, rf = self.node(n.right)
        op = n.op
        if op in ("and", "or"):
            for t, side in ((lt, n.left), (rt, n.right)):
                if t not in ("bool", "null"):
                    raise self.err(f"'{op}' expects bool operands, got {t}", _pos(side))
            kern = pc.and_kleene if op == "and" else pc.or_kleene
            return "bool", lambda b: kern(
                _as(lf(b), pa.bool_()), _as(rf(b), pa.bool_())
            )
        if op in ("contains", "startswith", "endswith"):
            if lt not in ("string", "null"):
                raise self.err(
                    f"'{op}' expects a string on the left, got {lt}", _pos(n.left)
                )
            if not isinstance(n.right, Literal) or not isinstance(n.right.value, str):
                raise self.err(
                    f"'{op}' expects a string literal on the right", _pos(n.right)
                )
            pat = n.right.value
            kern = {
                "contains": pc.match_substring,
                "startswith": pc.starts_with,
                "endswith": pc.ends_with,
            }[op]
            return "bool", lambda b: kern(_as(lf(b), pa.string()), pattern=pat)
        if op in ("=", "!=", "<", "<=", ">", ">="):
            if not _comparable(lt, rt):
                raise self.err(f"cannot compare {lt} with {rt} using '{op}'", n.pos)
            kern = {
                "=": pc.equal,
                "!=": pc.not_equal,
                "<": pc.less,
                "<=": pc.less_equal,
                ">": pc.greater,
                ">=": pc.greater_equal,
            }[op]
            if "null" in (lt, rt):
                return "bool", lambda b: pa.scalar(None, pa.bool_())
            lf, rf = _float_literal(lt, rt, n.left, lf), _float_literal(rt, lt, n.right, rf)
            return "bool", lambda b: kern(lf(b), rf(b))
        # arithmetic
        for t, side in ((lt, n.left), (rt, n.right)):
            if t not in (*_NUMERIC, "null"):
                raise self.err(f"'{op}' expects numbers, got {t}", _pos(side))
        out = "float" if "float" in (lt, rt) or op == "/" else "int"
        at = _ARROW_OF[out]
        if op == "/":
            return out, lambda b: pc.divide(_as(lf(b), at), _as(rf(b), at))
        if op == "%":
            if out == "int":

                def mod(b: pa.RecordBatch) -> Value:
                    x, y = _as(lf(b), at), _as(rf(b), at)
                    zero = pc.equal(y, 0)
                    safe = pc.if_else(zero, pa.scalar(1, at), y)
                    return pc.if_else(zero, pa.scalar(None, at), pc.modulo(x, safe))

                return out, mod
            return out, lambda b: pc.modulo(_as(lf(b), at), _as(rf(b), at))
        kern = {
            "+": pc.add_checked,
            "-": pc.subtract_checked,
            "*": pc.multiply_checked,
        }[op]
        if out == "float":
            kern = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[op]
        return out, lambda b: kern(_as(lf(b), at), _as(rf(b), at))

    def in_list(self, n: InList) -> tuple[str, Fn]:
        typ, f = self.node(n.operand)
        items = [i.value for i in n.items]
        kinds = set()
        for item in n.items:
            it, _ = self.literal(item)
            if it == "null":
                raise self.err(
                    "null is not allowed in an 'in' list; use 'is null'", item.pos
                )
            if not _comparable(typ, it):
                raise self.err(
                    f"list item of type {it} cannot match a {typ} value", item.pos
                )
            kinds.add(it)
        set_type = "float" if typ == "float" or "float" in kinds else typ
        if set_type == "null":
            set_type = next(iter(kinds))
        at = _ARROW_OF[set_type]
        for item in n.items:  # Arrow refuses ints that float64 cannot hold exactly
            try:
                pa.scalar(item.value, type=at)
            except (pa.ArrowInvalid, OverflowError) as exc:
                raise self.err(
                    f"list item {item.value!r} cannot be a {set_type} exactly", item.pos
                ) from exc
        floats = set_type == "float"
        if floats:  # is_in hashes floats by their bits: -0.0 would miss 0.0, which it equals
            items = [0.0 if v == 0 else v for v in items]
        values = pa.array(items, type=at)
        negated = n.negated

        def run(b: pa.RecordBatch) -> Value:
            x = _as(f(b), at)
            hit = pc.is_in(pc.add(x, 0.0) if floats else x, value_set=values)  # -0.0 + 0.0 is 0.0
            if negated:
                hit = pc.invert(hit)
            if not isinstance(x, pa.Scalar) and x.null_count == 0:
                return hit  # nothing to turn null (saves two kernel calls per batch)
            return pc.if_else(pc.is_null(x), pa.scalar(None, pa.bool_()), hit)

        return "bool", run

    def is_null(self, n: IsNull) -> tuple[str, Fn]:
        _, f = self.node(n.operand)
        kern = pc.is_valid if n.negated else pc.is_null
        return "bool", lambda b: kern(f(b))


def literal_type(v: object) -> str:
    """The expression-language type of a literal's value (bool before int: True is an int)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "string"


def _float_literal(typ: str, other: str, node: Node, fn: Fn) -> Fn:
    """An int literal compared with a float operand, cast to float64 once at compile time.

    Arrow casts it the same way (int64 -> float64, round to nearest) on every call, which
    costs as much as the comparison itself on a small batch."""
    if typ == "int" and other == "float" and isinstance(node, Literal):
        scalar = pa.scalar(float(node.value), type=pa.float64())  # type: ignore[arg-type]
        return lambda b: scalar
    return fn


def _as(v: Value, t: pa.DataType) -> Value:
    return v if v.type == t else pc.cast(v, t)


def _comparable(a: str, b: str) -> bool:
    if "null" in (a, b):
        return True
    if a in _NUMERIC and b in _NUMERIC:
        return True
    return a == b


def _pos(n: Node) -> int:
    return n.pos
