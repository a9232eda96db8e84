"""A tiny, safe arithmetic parser for model-written expressions (never ``eval``).

Grammar (recursive descent, exact ``Fraction`` arithmetic)::

    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/') unary)*
    unary  := '-' unary | atom
    atom   := INTEGER | '(' expr ')'

``x``, ``X`` and ``×`` are accepted for ``*``, ``÷`` for ``/``; spaces, tabs and newlines between tokens are
ignored. Anything else (``**``, ``.``, ``=``, letters, ...) makes the whole text malformed.

Why caps: the text comes from a sampled policy and is untrusted, so every input is bounded before any work
is done: length (``MAX_LEN`` characters, checked first, so a 1 MB string costs nothing), nesting depth
(``MAX_DEPTH``), digits per integer literal (``MAX_DIGITS``) and the size of every intermediate result
(``MAX_ABS``, numerator and denominator). An input over any cap is treated as malformed (``None``). Public
functions never raise.

    >>> evaluate("25+3*7")
    Fraction(46, 1)
    >>> numbers_used("(25 - 3) x 7")
    [25, 3, 7]
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

MAX_LEN = 200  # characters of the whole expression
MAX_DEPTH = 32  # nested parentheses / unary minus (keeps the recursion far below Python's limit)
MAX_DIGITS = 12  # digits of one integer literal
MAX_ABS = 10**12  # bound on |numerator| and denominator of every intermediate result

_OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "x": "*", "X": "*", "\u00d7": "*", "\u00f7": "/"}
_SPACE = frozenset(" \t\n\r")
_DIGITS = frozenset("0123456789")  # ASCII only: str.isdigit() also accepts '²' and other scripts


@dataclass(frozen=True, slots=True)
class Num:
    value: int


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # one of + - * /
    left: Expr
    right: Expr


Expr = Num | Neg | BinOp


class _Malformed(Exception):
    """Internal: the text is not a well-formed expression within the caps."""


def _tokenize(text: str) -> list[str | int]:
    tokens: list[str | int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c in _DIGITS:
            j = i
            while j < n and text[j] in _DIGITS:
                j += 1
            if j - i > MAX_DIGITS:
                raise _Malformed
            tokens.append(int(text[i:j]))
            i = j
        elif c in _OPS:
            tokens.append(_OPS[c])
            i += 1
        elif c in "()":
            tokens.append(c)
            i += 1
        else:
            raise _Malformed
    return tokens


class _Parser:
    def __init__(self, tokens: list[str | int]):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | int | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | int | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Malformed

    def expr(self) -> Expr:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = BinOp(op, node, self.term())  # type: ignore[arg-type]
        return node

    def term(self) -> Expr:
        node = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            node = BinOp(op, node, self.unary())  # type: ignore[arg-type]
        return node

    def unary(self) -> Expr:
        if self.peek() == "-":
            self.take()
            self.enter()
            node = Neg(self.unary())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Expr:
        tok = self.take()
        if isinstance(tok, int):
            return Num(tok)
        if tok == "(":
            self.enter()
            node = self.expr()
            if self.take() != ")":
                raise _Malformed
            self.depth -= 1
            return node
        raise _Malformed


def parse_expression(text: object) -> Expr | None:
    """The syntax tree of ``text``, or None if it is not a well-formed expression within the caps."""
    if not isinstance(text, str) or len(text) > MAX_LEN:
        return None
    try:
        parser = _Parser(_tokenize(text))
        node = parser.expr()
        if parser.pos != len(parser.tokens):
            return None
        return node
    except (_Malformed, RecursionError, ValueError):
        return None


def _check(v: Fraction) -> Fraction:
    if abs(v.numerator) > MAX_ABS or v.denominator > MAX_ABS:
        raise _Malformed
    return v


def _eval(node: Expr) -> Fraction:
    if isinstance(node, Num):
        return _check(Fraction(node.value))
    if isinstance(node, Neg):
        return -_eval(node.operand)
    a, b = _eval(node.left), _eval(node.right)
    if node.op == "+":
        return _check(a + b)
    if node.op == "-":
        return _check(a - b)
    if node.op == "*":
        return _check(a * b)
    if b == 0:
        raise _Malformed  # division by zero
    return _check(a / b)


def evaluate_tree(node: Expr) -> Fraction | None:
    """Exact value of a parsed expression; None on division by zero or a result over the caps."""
    try:
        return _eval(node)
    except (_Malformed, RecursionError, ZeroDivisionError):
        return None


def evaluate(text: object) -> Fraction | None:
    """Exact value of ``text`` as a Fraction, or None (malformed, over a cap, or division by zero)."""
    node = parse_expression(text)
    return None if node is None else evaluate_tree(node)


def _literals(node: Expr, out: list[int]) -> None:
    if isinstance(node, Num):
        out.append(node.value)
    elif isinstance(node, Neg):
        _literals(node.operand, out)
    else:
        _literals(node.left, out)
        _literals(node.right, out)


def numbers_used(text: object) -> list[int]:
    """The integer literals of a well-formed expression, left to right ([] if ``text`` is malformed)."""
    node = parse_expression(text)
    if node is None:
        return []
    out: list[int] = []
    _literals(node, out)
    return out
