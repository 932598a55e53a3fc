"""Filter and projection expressions evaluated on the device, with the CPU engine's
semantics (:mod:`plait.process.cpu.expr_compile` is the contract: SQL three-valued logic,
Kleene and/or, checked int64 arithmetic, floored ``%`` with integer ``x % 0`` null, true
division in float64, ``in`` null on a null operand).

The tree is the one the CPU compiler checked; this module walks it again over device
columns, as whole-array operations of the array module (CuPy on a GPU, NumPy on the
simulator) plus the match kernel for string tests. Each value is data plus a validity
mask (None: no nulls). What has no device form (ordering comparisons of strings, a string
column compared with another column) raises :class:`DeviceUnsupported`, and the caller
evaluates that expression on the CPU instead: the choice is per expression, made before
any work, so results never mix engines within one expression.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from plait.process.cpu.expr_compile import literal_type
from plait.process.errors import EvaluationError
from plait.process.expr.ast import Binary, Column, InList, IsNull, Literal, Node, Unary
from plait.process.expr.parser import parse
from plait.process.gpu.device import Backend, DeviceStrings
from plait.process.gpu.match_kernel import ANYWHERE, PREFIX, SUFFIX, match_device

_I64_MIN = np.iinfo(np.int64).min


class DeviceUnsupported(Exception):
    """The expression has a part with no device form; evaluate it on the CPU."""


@dataclass
class DVal:
    """A column-shaped value: ``kind`` int/float/bool/string, ``data`` a device array
    (DeviceStrings for strings), ``valid`` a device bool array or None (no nulls)."""

    kind: str
    data: Any
    valid: Any


@dataclass
class DScalar:
    """A literal: ``value`` None for null."""

    kind: str
    value: Any


Value = DVal | DScalar
Fn = Callable[[Mapping[str, DVal]], Value]


class DeviceExpr:
    """A checked expression compiled for device columns; call it with name -> DVal."""

    def __init__(self, text: str, kinds: Mapping[str, str], backend: Backend) -> None:
        self.text = text
        self.backend = backend
        self.xp = backend.xp
        self.kinds = dict(kinds)
        self.columns: set[str] = set()
        self._live: Any = None
        self.kind, self._fn = self._node(parse(text))

    def __call__(self, cols: Mapping[str, DVal], n: int, live: Any = None) -> DVal:
        """The expression over ``n`` rows (literal-only expressions broadcast). ``live``
        (device bool, optional) marks the rows that exist: an earlier filter dropped the
        others, so an overflow there is no error (the CPU never evaluates them)."""
        self._live = live
        try:
            return self._broadcast(self._fn(cols), n)
        finally:
            self._live = None

    def mask(self, cols: Mapping[str, DVal], n: int, live: Any = None) -> Any:
        """Device bool array: rows where the (bool) expression is true (null drops)."""
        v = self(cols, n, live)
        return v.data if v.valid is None else v.data & v.valid

    def _overflowed(self, bad: Any, valid: Any) -> bool:
        """Whether any existing, non-null row is marked ``bad``."""
        if valid is not None:
            bad = bad & valid
        if self._live is not None:
            bad = bad & self._live
        return bool(self.xp.asarray(bad).any())

    # -- helpers --------------------------------------------------------------------

    def _broadcast(self, v: Value, n: int) -> DVal:
        xp = self.xp
        if isinstance(v, DVal):
            return v
        kind = "bool" if v.kind == "null" else v.kind
        if kind == "string":
            raise DeviceUnsupported("a string-valued expression")
        dtype = {"int": np.int64, "float": np.float64, "bool": np.bool_}[kind]
        if v.value is None:
            return DVal(kind, xp.zeros(n, dtype=dtype), xp.zeros(n, dtype=np.bool_))
        return DVal(kind, xp.full(n, v.value, dtype=dtype), None)

    def _valid(self, *vals: Value) -> Any:
        """Combined validity of operands (None: all valid). A null scalar makes all null."""
        out = None
        for v in vals:
            if isinstance(v, DScalar):
                if v.value is None:
                    return False
                continue
            if v.valid is not None:
                out = v.valid if out is None else out & v.valid
        return out

    @staticmethod
    def _data(v: Value) -> Any:
        return v.data if isinstance(v, DVal) else v.value

    def _as_float(self, v: Value) -> Value:
        if v.kind == "float":
            return v
        if isinstance(v, DScalar):
            return DScalar("float", None if v.value is None else float(v.value))
        return DVal("float", v.data.astype(np.float64), v.valid)

    def _result(self, kind: str, data: Any, valid: Any) -> Value:
        if valid is False:
            return DScalar(kind, None)
        if not hasattr(data, "shape") or getattr(data, "ndim", 1) == 0:
            value = data.item() if hasattr(data, "item") else data
            return DScalar(kind, value)
        return DVal(kind, data, valid)

    # -- the tree -------------------------------------------------------------------

    def _node(self, n: Node) -> tuple[str, Fn]:
        if isinstance(n, Literal):
            s = DScalar(literal_type(n.value), n.value)
            return s.kind, lambda c: s
        if isinstance(n, Column):
            kind = self.kinds[n.name]
            self.columns.add(n.name)
            name = n.name
            return kind, lambda c: c[name]
        if isinstance(n, Unary):
            return self._unary(n)
        if isinstance(n, Binary):
            return self._binary(n)
        if isinstance(n, InList):
            return self._in_list(n)
        return self._is_null(n)

    def _unary(self, n: Unary) -> tuple[str, Fn]:
        kind, f = self._node(n.operand)
        if n.op == "not":

            def not_(c: Mapping[str, DVal]) -> Value:
                v = f(c)
                if isinstance(v, DScalar):
                    return DScalar("bool", None if v.value is None else not v.value)
                return DVal("bool", ~v.data, v.valid)

            return "bool", not_
        out = "int" if kind == "null" else kind

        def neg(c: Mapping[str, DVal]) -> Value:
            v = f(c)
            if isinstance(v, DScalar):
                if v.value is None:
                    return DScalar(out, None)
                if out == "int" and v.value == _I64_MIN:
                    raise EvaluationError(f"evaluating {self.text!r} failed: overflow")
                return DScalar(out, -v.value)
            if out == "int" and self._overflowed(v.data == _I64_MIN, v.valid):
                raise EvaluationError(f"evaluating {self.text!r} failed: overflow")
            return DVal(out, -v.data, v.valid)

        return out, neg

    def _binary(self, n: Binary) -> tuple[str, Fn]:
        op = n.op
        if op in ("and", "or"):
            return self._logic(n)
        if op in ("contains", "startswith", "endswith"):
            return self._string_test(n)
        if op in ("=", "!=", "<", "<=", ">", ">="):
            return self._compare(n)
        return self._arith(n)

    def _logic(self, n: Binary) -> tuple[str, Fn]:
        _, lf = self._node(n.left)
        _, rf = self._node(n.right)
        is_and = n.op == "and"
        xp = self.xp

        def run(c: Mapping[str, DVal]) -> Value:
            a, b = lf(c), rf(c)
            if isinstance(a, DScalar) and isinstance(b, DScalar):
                return DScalar("bool", _kleene(a.value, b.value, is_and))
            n_rows = (a if isinstance(a, DVal) else b).data.shape[0]  # type: ignore[union-attr]
            a, b = self._broadcast(a, n_rows), self._broadcast(b, n_rows)
            ones = xp.ones(n_rows, dtype=np.bool_)
            av = ones if a.valid is None else a.valid
            bv = ones if b.valid is None else b.valid
            a_true, b_true = a.data & av, b.data & bv
            a_false, b_false = ~a.data & av, ~b.data & bv
            if is_and:
                data = a_true & b_true
                known = a_false | b_false | data
            else:
                data = a_true | b_true
                known = data | (a_false & b_false)
            return DVal("bool", data, None if bool(known.all()) else known)

        return "bool", run

    def _string_test(self, n: Binary) -> tuple[str, Fn]:
        _, lf = self._node(n.left)
        assert isinstance(n.right, Literal) and isinstance(n.right.value, str)
        text: str = n.right.value
        pat = text.encode("utf-8")
        anchor = {"contains": ANYWHERE, "startswith": PREFIX, "endswith": SUFFIX}[n.op]

        def run(c: Mapping[str, DVal]) -> Value:
            v = lf(c)
            if isinstance(v, DScalar):
                if v.value is None:
                    return DScalar("bool", None)
                s = str(v.value)
                test = {ANYWHERE: s.__contains__, PREFIX: s.startswith, SUFFIX: s.endswith}
                return DScalar("bool", test[anchor](text))
            hits = match_device(self.backend, v.data.data, v.data.offsets, v.data.valid,
                                (pat,), False, anchor)
            return DVal("bool", (hits[:, 0] & 1) != 0, v.valid)

        return "bool", run

    def _string_equal_any(self, v: DVal, items: list[str]) -> Any:
        """Device bool array: the (valid) string equals one of ``items``."""
        xp = self.xp
        s: DeviceStrings = v.data
        pats = tuple(i.encode("utf-8") for i in items)
        lengths = s.offsets[1:] - s.offsets[:-1]
        hits = match_device(self.backend, s.data, s.offsets, s.valid, pats, False, PREFIX)
        out = xp.zeros(len(s), dtype=np.bool_)
        for p, b in enumerate(pats):
            bit = (hits[:, p >> 5] >> np.uint32(p & 31)) & np.uint32(1)
            out |= (bit != 0) & (lengths == len(b))
        return out

    def _compare(self, n: Binary) -> tuple[str, Fn]:
        lk, lf = self._node(n.left)
        rk, rf = self._node(n.right)
        op = n.op
        if "null" in (lk, rk):
            return "bool", lambda c: DScalar("bool", None)
        if "string" in (lk, rk):
            if op not in ("=", "!="):
                raise DeviceUnsupported(f"string comparison '{op}'")
            if isinstance(n.left, Literal) == isinstance(n.right, Literal):
                raise DeviceUnsupported("a string compared with a non-literal")
        numeric_mix = lk != rk and {lk, rk} <= {"int", "float"}

        def run(c: Mapping[str, DVal]) -> Value:
            a, b = lf(c), rf(c)
            if self._valid(a, b) is False:
                return DScalar("bool", None)
            if "string" in (lk, rk):
                col, lit = (a, b) if isinstance(a, DVal) else (b, a)
                assert isinstance(col, DVal) and isinstance(lit, DScalar)
                eq = self._string_equal_any(col, [lit.value])
                return DVal("bool", eq if op == "=" else ~eq, col.valid)
            if numeric_mix:
                a, b = self._as_float(a), self._as_float(b)
            x, y = self._data(a), self._data(b)
            data = _CMP[op](x, y)
            return self._result("bool", data, self._valid(a, b))

        return "bool", run

    def _arith(self, n: Binary) -> tuple[str, Fn]:
        lk, lf = self._node(n.left)
        rk, rf = self._node(n.right)
        op = n.op
        out = "float" if "float" in (lk, rk) or op == "/" else "int"
        xp = self.xp

        def run(c: Mapping[str, DVal]) -> Value:
            a, b = lf(c), rf(c)
            valid = self._valid(a, b)
            if valid is False:
                return DScalar(out, None)
            if isinstance(a, DScalar) and isinstance(b, DScalar):
                return DScalar(out, self._scalar_arith(op, out, a.value, b.value))
            if out == "float":
                a, b = self._as_float(a), self._as_float(b)
            x, y = self._data(a), self._data(b)
            with np.errstate(all="ignore"):
                if op == "/":
                    data = xp.true_divide(x, y)
                elif op == "%":
                    if out == "int":
                        zero = xp.asarray(y == 0)
                        safe = xp.where(zero, 1, y)
                        data = xp.mod(x, safe)
                        if bool(zero.any()):
                            valid = ~zero if valid is None else valid & ~zero
                    else:
                        data = xp.mod(x, y)
                else:
                    data = _ARITH[op](xp.asarray(x, dtype=np.int64 if out == "int" else None),
                                      y)
                    if out == "int":
                        self._check_overflow(op, x, y, data, valid)
            return self._result(out, data, valid)

        return out, run

    def _scalar_arith(self, op: str, out: str, x: Any, y: Any) -> Any:
        """Two literals, with the array semantics (Python ints do not overflow)."""
        if out == "float":
            with np.errstate(all="ignore"):
                fx, fy = np.float64(x), np.float64(y)
                r = {"/": np.true_divide, "%": np.mod, "+": np.add, "-": np.subtract,
                     "*": np.multiply}[op](fx, fy)
            return float(r)
        if op == "%":
            return None if y == 0 else x % y
        r = {"+": x + y, "-": x - y, "*": x * y}[op]
        if not -(2**63) <= r < 2**63:
            raise EvaluationError(f"evaluating {self.text!r} failed: int64 overflow")
        return r

    def _check_overflow(self, op: str, x: Any, y: Any, r: Any, valid: Any) -> None:
        xp = self.xp
        x = xp.asarray(x, dtype=np.int64)
        y = xp.asarray(y, dtype=np.int64)
        if op == "+":
            bad = ((x ^ r) & (y ^ r)) < 0
        elif op == "-":
            bad = ((x ^ y) & (x ^ r)) < 0
        else:
            nz = x != 0
            safe_x = xp.where(nz, x, 1)
            with np.errstate(all="ignore"):
                back = xp.where(nz, r // safe_x, y)
            bad = (back != y) | ((x == -1) & (y == _I64_MIN)) | ((y == -1) & (x == _I64_MIN))
        if self._overflowed(bad, valid):
            raise EvaluationError(f"evaluating {self.text!r} failed: int64 overflow")

    def _in_list(self, n: InList) -> tuple[str, Fn]:
        kind, f = self._node(n.operand)
        items = [i.value for i in n.items]
        kinds = {literal_type(v) for v in items}
        negated = n.negated
        as_float = kind == "float" or "float" in kinds
        xp = self.xp

        def run(c: Mapping[str, DVal]) -> Value:
            v = f(c)
            if isinstance(v, DScalar):
                if v.value is None:
                    return DScalar("bool", None)
                hit = v.value in items
                return DScalar("bool", hit != negated)
            if kind == "string":
                hit = self._string_equal_any(v, [str(i) for i in items])
            else:
                x = v.data.astype(np.float64) if as_float and kind != "float" else v.data
                hit = xp.zeros(x.shape[0], dtype=np.bool_)
                for item in items:
                    hit |= x == (float(item) if as_float else item)  # type: ignore[arg-type]
            return DVal("bool", ~hit if negated else hit, v.valid)

        return "bool", run

    def _is_null(self, n: IsNull) -> tuple[str, Fn]:
        _, f = self._node(n.operand)
        negated = n.negated
        xp = self.xp

        def run(c: Mapping[str, DVal]) -> Value:
            v = f(c)
            if isinstance(v, DScalar):
                return DScalar("bool", (v.value is None) != negated)
            if v.valid is None:
                n_rows = len(v.data) if isinstance(v.data, DeviceStrings) else v.data.shape[0]
                return DVal("bool", xp.full(n_rows, negated, dtype=np.bool_), None)
            return DVal("bool", v.valid.copy() if negated else ~v.valid, None)

        return "bool", run


def _kleene(a: bool | None, b: bool | None, is_and: bool) -> bool | None:
    if is_and:
        if a is False or b is False:
            return False
        return None if a is None or b is None else True
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
}
