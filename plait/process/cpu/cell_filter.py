"""A filter expression as a program over the JSON decoder's cells, so that a decode followed
by a filter builds Arrow columns for the rows that pass only.

Why: on a small batch, building every decoded column and then filtering it with
pyarrow.compute costs more than the decode's scan itself (on a 1k-event batch, ~180 µs of
Arrow calls against a ~155 µs scan; see BENCHMARKS.md). The program runs in one numba call
(:mod:`plait.process.cpu._cell_filter_numba`) on the cells the scan wrote.

Only the part of the language whose Arrow semantics are plain to restate is compiled:
comparisons of columns and literals, ``in`` lists, string tests, null checks, ``not``,
``and``, ``or``; :func:`compile_cell_filter` returns None for anything else (arithmetic, a
literal compared with a literal, an int column against float list items), and the pipeline
then decodes and filters with Arrow as before. Results are the Arrow path's exactly
(tests/property/test_process_cell_filter.py): SQL three-valued logic, ints compared with
floats as float64, strings compared as UTF-8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plait.process.cpu import _cell_filter_numba as V
from plait.process.cpu.fast_json import Plan
from plait.process.expr.ast import Binary, Column, InList, IsNull, Literal, Node, Unary
from plait.process.expr.parser import parse

_CMP = {"=": V.EQ, "!=": V.NE, "<": V.LT, "<=": V.LE, ">": V.GT, ">=": V.GE}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_STR_TESTS = {"contains": V.CONTAINS, "startswith": V.STARTS, "endswith": V.ENDS}
_KIND_NAMES = {0: "int", 1: "float", 2: "bool", 3: "string"}
_EXACT_FLOAT_INT = 2**53  # an int list item beyond this may not convert to float exactly


class _Unsupported(Exception):
    """The expression uses something the cell program does not restate."""


@dataclass(frozen=True)
class CellFilter:
    """A compiled program over the cells of ``plan``: ``code`` rows are (op, a, b, c, d, e);
    literals live in the int, float and string tables; ``depth`` is the most truth
    vectors live at once."""

    text: str
    plan: Plan
    code: np.ndarray
    ints: np.ndarray
    floats: np.ndarray
    string_bytes: np.ndarray
    string_offsets: np.ndarray
    depth: int


def compile_cell_filter(text: str, plan: Plan) -> CellFilter | None:
    """The program for filter ``text`` over ``plan``'s fields, or None when some part of it
    is outside what cell programs cover (the caller then filters with Arrow). The text must
    already have compiled with :func:`plait.process.cpu.expr_compile.compile_expr`, which
    reports syntax and type errors."""
    try:
        return _Builder(text, plan).build()
    except _Unsupported:
        return None


class _Builder:
    def __init__(self, text: str, plan: Plan) -> None:
        self.text = text
        self.plan = plan
        self.fields = {name: j for j, name in enumerate(plan.arrow.names)}
        self.kinds = [_KIND_NAMES[int(k)] for k in plan.kinds]
        self.slots = [int(s) for s in plan.slots]
        self.code: list[tuple[int, int, int, int, int, int]] = []
        self.ints: list[int] = []
        self.floats: list[float] = []
        self.strings: list[bytes] = []
        self.live = 0
        self.depth = 0

    def build(self) -> CellFilter:
        self.truth(parse(self.text))
        offsets = np.cumsum([0] + [len(s) for s in self.strings], dtype=np.int64)
        return CellFilter(
            self.text,
            self.plan,
            np.array(self.code, dtype=np.int64).reshape(-1, 6),
            np.array(self.ints, dtype=np.int64),
            np.array(self.floats, dtype=np.float64),
            np.frombuffer(b"".join(self.strings) or b"\0", dtype=np.uint8).copy(),
            offsets,
            self.depth,
        )

    # -- emitting -----------------------------------------------------------------------
    def emit(self, op: int, *args: int, pops: int = 0) -> None:
        self.code.append((op, *args, *([0] * (5 - len(args)))))  # type: ignore[arg-type]
        self.live += 1 - pops
        self.depth = max(self.depth, self.live)

    def column(self, node: Node) -> tuple[int, str]:
        if not isinstance(node, Column) or node.name not in self.fields:
            raise _Unsupported
        j = self.fields[node.name]
        return j, self.kinds[j]

    def int_lit(self, v: int) -> int:
        self.ints.append(v)
        return len(self.ints) - 1

    def float_lit(self, v: float) -> int:
        self.floats.append(v)
        return len(self.floats) - 1

    def string_lit(self, v: str) -> int:
        self.strings.append(v.encode("utf-8"))
        return len(self.strings) - 1

    # -- the tree -----------------------------------------------------------------------
    def truth(self, node: Node) -> None:
        """Emit code that leaves the node's truth vector (false, true or null) on the stack."""
        if isinstance(node, Literal):
            if node.value is None:
                self.emit(V.CONST, V.NULL)
            elif isinstance(node.value, bool):
                self.emit(V.CONST, int(node.value))
            else:
                raise _Unsupported
        elif isinstance(node, Column):
            j, kind = self.column(node)
            if kind != "bool":
                raise _Unsupported
            self.emit(V.BOOL_COLUMN, j, self.slots[j])
        elif isinstance(node, Unary):
            if node.op != "not":
                raise _Unsupported
            self.truth(node.operand)
            self.emit(V.NOT, pops=1)
        elif isinstance(node, IsNull):
            if isinstance(node.operand, Literal) and node.operand.value is None:
                self.emit(V.CONST, 0 if node.negated else 1)
                return
            j, _ = self.column(node.operand)
            self.emit(V.IS_NULL, j, int(node.negated))
        elif isinstance(node, InList):
            self.in_list(node)
        elif isinstance(node, Binary):
            if node.op in ("and", "or"):
                self.truth(node.left)
                self.truth(node.right)
                self.emit(V.AND if node.op == "and" else V.OR, pops=2)
            elif node.op in _STR_TESTS:
                self.string_test(node)
            elif node.op in _CMP:
                self.compare(node)
            else:
                raise _Unsupported
        else:
            raise _Unsupported

    def compare(self, node: Binary) -> None:
        left, right, op = node.left, node.right, node.op
        if _is_null(left) or _is_null(right):
            self.emit(V.CONST, V.NULL)  # a comparison with null is null
            return
        if isinstance(left, Literal):  # column on the left: 5 < x is x > 5
            left, right, op = right, left, _FLIP[op]
        j, kind = self.column(left)
        cmp = _CMP[op]
        if isinstance(right, Column):
            k, other = self.column(right)
            numeric = ("int", "float")
            if kind in numeric and other in numeric:
                self.emit(V.CMP_NUMBERS, j, k, cmp)
            elif kind == other == "string":
                self.emit(V.CMP_STRINGS, j, k, cmp)
            elif kind == other == "bool":
                self.emit(V.CMP_BOOLS, j, k, cmp)
            else:
                raise _Unsupported
            return
        if not isinstance(right, Literal):
            raise _Unsupported
        v = right.value
        slot = self.slots[j]
        if kind == "bool" and isinstance(v, bool):
            self.emit(V.CMP_BOOL_LITERAL, j, slot, cmp, int(v))
        elif kind == "string" and isinstance(v, str):
            self.emit(V.CMP_STRING_LITERAL, j, slot, cmp, self.string_lit(v))
        elif kind == "int" and type(v) is int:
            self.emit(V.CMP_INT_LITERAL, j, slot, cmp, self.int_lit(v))
        elif kind in ("int", "float") and type(v) in (int, float):
            # Arrow compares an int column with a float as float64; an int literal against a
            # float column is cast once (expr_compile._float_literal): both round to nearest
            self.emit(V.CMP_FLOAT_LITERAL, j, slot, cmp, self.float_lit(float(v)))  # type: ignore[arg-type]
        else:
            raise _Unsupported

    def in_list(self, node: InList) -> None:
        j, kind = self.column(node.operand)
        values = [item.value for item in node.items]
        slot, neg = self.slots[j], int(node.negated)
        if kind == "int" and all(type(v) is int for v in values):
            start = len(self.ints)
            for v in values:
                self.int_lit(v)  # type: ignore[arg-type]
            self.emit(V.IN_INTS, j, slot, neg, start, len(self.ints))
        elif kind == "float" and all(
            type(v) is float or (type(v) is int and abs(v) <= _EXACT_FLOAT_INT)
            for v in values
        ):
            start = len(self.floats)
            for v in values:
                self.float_lit(float(v))  # type: ignore[arg-type]
            self.emit(V.IN_FLOATS, j, slot, neg, start, len(self.floats))
        elif kind == "string" and all(isinstance(v, str) for v in values):
            start = len(self.strings)
            for v in values:
                self.string_lit(v)  # type: ignore[arg-type]
            self.emit(V.IN_STRINGS, j, slot, neg, start, len(self.strings))
        elif kind == "bool" and all(isinstance(v, bool) for v in values):
            wanted = (1 if False in values else 0) | (2 if True in values else 0)
            self.emit(V.IN_BOOLS, j, slot, neg, wanted)
        else:
            raise _Unsupported

    def string_test(self, node: Binary) -> None:
        if _is_null(node.left):
            self.emit(V.CONST, V.NULL)
            return
        j, kind = self.column(node.left)
        right = node.right
        if kind != "string" or not isinstance(right, Literal) or not isinstance(right.value, str):
            raise _Unsupported
        self.emit(V.STRING_TEST, j, self.slots[j], _STR_TESTS[node.op], self.string_lit(right.value))


def _is_null(node: Node) -> bool:
    return isinstance(node, Literal) and node.value is None
