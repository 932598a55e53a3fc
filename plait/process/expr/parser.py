"""Tokenizer and Pratt parser for the expression language (never ``eval``).

Grammar, loosest binding first::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := add [ ("="|"=="|"!="|"<>"|"<"|"<="|">"|">=") add
                   | ["not"] "in" "(" literal ("," literal)* ")"
                   | "is" ["not"] "null"
                   | ("contains"|"startswith"|"endswith") add ]
    add     := mul (("+"|"-") mul)*
    mul     := unary (("*"|"/"|"%") unary)*
    unary   := "-" unary | primary
    primary := INT | FLOAT | 'string' | true | false | null | IDENT | "(" expr ")"

Strings use single quotes; a quote inside is doubled (``'it''s'``). Identifiers are
``[A-Za-z_][A-Za-z0-9_.]*``; a name that clashes with a keyword can be written in double
quotes (``"in"``). Keywords are case-insensitive. Comparisons do not chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plait.process.errors import ExpressionSyntaxError
from plait.process.expr.ast import Binary, Column, InList, IsNull, Literal, Node, Unary

KEYWORDS = frozenset(
    {
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "true",
        "false",
        "contains",
        "startswith",
        "endswith",
    }
)

# One alternation, tried at each position; the group name is the token kind.
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"[^"]+")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|!=|<>|==|[-+*/%=<>(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # int, float, string, ident, kw, op, end
    text: str
    pos: int
    value: object = None


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; an unknown character or an unclosed string is a syntax error."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            if text[pos] == "'":
                raise ExpressionSyntaxError("unterminated string literal", text, pos)
            raise ExpressionSyntaxError(
                f"unexpected character {text[pos]!r}", text, pos
            )
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "int":
            tokens.append(Token("int", raw, pos, int(raw)))
        elif kind == "float":
            tokens.append(Token("float", raw, pos, float(raw)))
        elif kind == "string":
            tokens.append(Token("string", raw, pos, raw[1:-1].replace("''", "'")))
        elif kind == "qident":
            tokens.append(Token("ident", raw, pos, raw[1:-1]))
        elif kind == "ident":
            low = raw.lower()
            if low in KEYWORDS:
                tokens.append(Token("kw", low, pos))
            else:
                tokens.append(Token("ident", raw, pos, raw))
        elif kind == "op":
            tokens.append(
                Token("op", "=" if raw == "==" else "!=" if raw == "<>" else raw, pos)
            )
        pos = m.end()
    tokens.append(Token("end", "end of expression", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (text is None or tok.text == text)

    def expect(self, kind: str, text: str, what: str) -> Token:
        if not self.at(kind, text):
            self.fail(f"expected {what}")
        return self.take()

    def fail(self, expected: str) -> None:
        tok = self.peek()
        got = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise ExpressionSyntaxError(f"{expected}, got {got}", self.text, tok.pos)

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Node:
        if self.at("end"):
            self.fail("expected an expression")
        node = self.or_()
        if not self.at("end"):
            self.fail("expected an operator or end of expression")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.at("kw", "or"):
            tok = self.take()
            node = Binary("or", node, self.and_(), tok.pos)
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.at("kw", "and"):
            tok = self.take()
            node = Binary("and", node, self.not_(), tok.pos)
        return node

    def not_(self) -> Node:
        if self.at("kw", "not"):
            tok = self.take()
            return Unary("not", self.not_(), tok.pos)
        return self.cmp()

    def cmp(self) -> Node:
        left = self.add()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("=", "!=", "<", "<=", ">", ">="):
            self.take()
            return Binary(tok.text, left, self.add(), tok.pos)
        if tok.kind == "kw" and tok.text in ("contains", "startswith", "endswith"):
            self.take()
            return Binary(tok.text, left, self.add(), tok.pos)
        if tok.kind == "kw" and tok.text == "is":
            self.take()
            negated = False
            if self.at("kw", "not"):
                self.take()
                negated = True
            self.expect("kw", "null", "'null' after 'is'")
            return IsNull(left, negated, tok.pos)
        if tok.kind == "kw" and tok.text in ("in", "not"):
            negated = tok.text == "not"
            self.take()
            if negated:
                self.expect("kw", "in", "'in' after 'not'")
            self.expect("op", "(", "'(' to open the list")
            items = [self.list_item()]
            while self.at("op", ","):
                self.take()
                items.append(self.list_item())
            self.expect("op", ")", "',' or ')' in the list")
            return InList(left, tuple(items), negated, tok.pos)
        return left

    def list_item(self) -> Literal:
        tok = self.peek()
        sign = 1
        if tok.kind == "op" and tok.text == "-":
            self.take()
            sign = -1
            if self.peek().kind not in ("int", "float"):
                self.fail("expected a number after '-' in the list")
        node = self.primary()
        if not isinstance(node, Literal):
            raise ExpressionSyntaxError(
                f"expected a literal in the list, got {self.text[tok.pos : self.peek().pos].strip()!r}",
                self.text,
                tok.pos,
            )
        if sign < 0:
            assert isinstance(node.value, (int, float))
            return Literal(-node.value, tok.pos)
        return node

    def add(self) -> Node:
        node = self.mul()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            tok = self.take()
            node = Binary(tok.text, node, self.mul(), tok.pos)
        return node

    def mul(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "%"):
            tok = self.take()
            node = Binary(tok.text, node, self.unary(), tok.pos)
        return node

    def unary(self) -> Node:
        if self.at("op", "-"):
            tok = self.take()
            return Unary("-", self.unary(), tok.pos)
        return self.primary()

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind in ("int", "float", "string"):
            self.take()
            return Literal(tok.value, tok.pos)  # type: ignore[arg-type]
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            self.take()
            return Literal(
                {"true": True, "false": False, "null": None}[tok.text], tok.pos
            )
        if tok.kind == "ident":
            self.take()
            return Column(str(tok.value), tok.pos)
        if self.at("op", "("):
            self.take()
            node = self.or_()
            self.expect("op", ")", "')' to close the parenthesis")
            return node
        self.fail("expected a value, a column name or '('")
        raise AssertionError("unreachable")


def parse(text: str) -> Node:
    """Parse ``text`` into a tree; raises :class:`ExpressionSyntaxError` with the column."""
    return _Parser(text).parse()
