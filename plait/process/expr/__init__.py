"""The safe expression language shared by filter, project and map (parser only; engines
compile the tree)."""

from plait.process.expr.ast import (
    Binary,
    Column,
    InList,
    IsNull,
    Literal,
    Node,
    Unary,
    render,
)
from plait.process.expr.parser import parse, tokenize

__all__ = [
    "Binary",
    "Column",
    "InList",
    "IsNull",
    "Literal",
    "Node",
    "Unary",
    "parse",
    "render",
    "tokenize",
]
