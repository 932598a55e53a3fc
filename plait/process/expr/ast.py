"""Syntax tree of the filter/projection expression language.

Nodes are frozen dataclasses carrying ``pos`` (0-based column in the source text) so that
type errors found after parsing can still point at the right place.
"""

from __future__ import annotations

from dataclasses import dataclass

LiteralValue = int | float | str | bool | None


@dataclass(frozen=True)
class Literal:
    value: LiteralValue
    pos: int = 0


@dataclass(frozen=True)
class Column:
    name: str
    pos: int = 0


@dataclass(frozen=True)
class Unary:
    op: str  # "not" or "-"
    operand: Node
    pos: int = 0


@dataclass(frozen=True)
class Binary:
    """Arithmetic (+ - * / %), comparison (= != < <= > >=), logic (and, or), string ops
    (contains, startswith, endswith)."""

    op: str
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True)
class InList:
    operand: Node
    items: tuple[Literal, ...]
    negated: bool = False
    pos: int = 0


@dataclass(frozen=True)
class IsNull:
    operand: Node
    negated: bool = False
    pos: int = 0


Node = Literal | Column | Unary | Binary | InList | IsNull

ARITHMETIC = frozenset({"+", "-", "*", "/", "%"})
COMPARISON = frozenset({"=", "!=", "<", "<=", ">", ">="})
LOGICAL = frozenset({"and", "or"})
STRING_OPS = frozenset({"contains", "startswith", "endswith"})


def render(node: Node) -> str:
    """Render a tree back to source text, fully parenthesised (used by property tests)."""
    if isinstance(node, Literal):
        v = node.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        if isinstance(v, float):
            return repr(v) if "e" in repr(v) or "." in repr(v) else repr(v) + ".0"
        return str(v)
    if isinstance(node, Column):
        return node.name
    if isinstance(node, Unary):
        return (
            f"({node.op} {render(node.operand)})"
            if node.op == "not"
            else f"(-{render(node.operand)})"
        )
    if isinstance(node, Binary):
        return f"({render(node.left)} {node.op} {render(node.right)})"
    if isinstance(node, InList):
        kw = "not in" if node.negated else "in"
        return f"({render(node.operand)} {kw} ({', '.join(render(i) for i in node.items)}))"
    kw = "is not null" if node.negated else "is null"
    return f"({render(node.operand)} {kw})"
