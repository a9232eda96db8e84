"""The safe arithmetic parser: exact values, precedence, caps, hostile input.

Run: pytest tests/test_arith.py -q
"""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.environments.arith import MAX_ABS, evaluate, numbers_used, parse_expression


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("25+3*7", 46),
        ("(25+3)*7", 196),
        ("2*3+4*5", 26),
        ("10-4-3", 3),  # left-associative
        ("100/10/5", 2),
        ("2-3", -1),
        ("-3+5", 2),
        ("--3", 3),
        ("-(2+3)*4", -20),
        ("7/2", Fraction(7, 2)),
        ("1/3+2/3", 1),
        ("(1/3+3)*3", 10),
        (" 6 x 7 ", 42),
        ("6X7", 42),
        ("6\u00d77", 42),
        ("84\u00f72", 42),
        ("((((42))))", 42),
        ("007", 7),
        ("999999999999*1", 999999999999),
    ],
)
def test_known_values(text: str, value: Fraction | int) -> None:
    assert evaluate(text) == value
    assert isinstance(evaluate(text), Fraction)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "1+",
        "+1",
        "(1",
        "1)",
        "()",
        "1 2",
        "2**3",
        "9**9**9",
        "1.5",
        "1e3",
        "3=3",
        "1/0",
        "5/(2-2)",
        "1000000000000*2",  # result over the cap
        "1234567890123",  # 13-digit literal
        "__import__('os').system('ls')",
        "abs(-1)",
        "x",
        "1x",
        "\u00b2",  # superscript two: isdigit() but not an ASCII digit
        "\u0661+1",  # Arabic-Indic digit one
        "\uff11+1",  # fullwidth digit one
        "1;2",
        "[1]",
    ],
)
def test_malformed_or_undefined_is_none(text: str) -> None:
    assert evaluate(text) is None


def test_division_is_exact() -> None:
    assert evaluate("1/3*3") == 1
    assert evaluate("2/4") == Fraction(1, 2)
    assert evaluate("10/4*2") == 5


def test_caps() -> None:
    assert evaluate("999999*999999") == 999999 * 999999  # < 10**12
    assert evaluate("1000000*1000001") is None  # > 10**12
    assert evaluate("1/1000000/1000001") is None  # denominator over the cap
    assert evaluate("(" * 32 + "1" + ")" * 32) == 1
    assert evaluate("(" * 33 + "1" + ")" * 33) is None
    assert evaluate("-" * 33 + "1") is None
    assert evaluate("1+" * 99 + "1") == 100  # 199 characters
    assert evaluate("1+" * 100 + "1") is None  # 201 characters


def test_numbers_used() -> None:
    assert numbers_used("(25 - 3) x 7") == [25, 3, 7]
    assert numbers_used("-3+3") == [3, 3]
    assert numbers_used("1/0") == [1, 0]  # well-formed, even though undefined
    assert numbers_used("2**3") == []
    assert numbers_used(None) == []  # type: ignore[arg-type]
    assert parse_expression(12) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "1" * 10**6,
        "(" * 10_000,
        "(" * 10_000 + "1" + ")" * 10_000,
        "-" * 10**6 + "1",
        "9**9**9**9",
        "\U0001f600" * 1000,
        "1+" * 500_000,
        "\x00\x01\x02",
    ],
)
def test_hostile_input_is_none_and_fast(text: str) -> None:
    t0 = time.perf_counter()
    assert evaluate(text) is None
    assert numbers_used(text) == []
    assert time.perf_counter() - t0 < 0.5


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(alphabet="0123456789+-*/()x \u00d7\u00f7.", max_size=60)))
def test_never_raises(text: str) -> None:
    value = evaluate(text)
    assert value is None or isinstance(value, Fraction)
    assert isinstance(numbers_used(text), list)


# --- generated well-formed expressions, with the expected value built alongside -------------------------
_ALIASES = {"+": ["+"], "-": ["-"], "*": ["*", "x", "\u00d7"], "/": ["/", "\u00f7"]}


def _capped(v: Fraction | None) -> Fraction | None:
    if v is None or abs(v.numerator) > MAX_ABS or v.denominator > MAX_ABS:
        return None
    return v


def _apply(op: str, a: Fraction | None, b: Fraction | None) -> Fraction | None:
    if a is None or b is None:
        return None
    if op == "+":
        return _capped(a + b)
    if op == "-":
        return _capped(a - b)
    if op == "*":
        return _capped(a * b)
    return None if b == 0 else _capped(a / b)


@st.composite
def parenthesized(draw: st.DrawFn, depth: int = 0) -> tuple[str, Fraction | None]:
    """A fully parenthesized expression (random spaces, aliases, unary minus) and its expected value."""
    if depth >= 4 or draw(st.booleans()):
        n = draw(st.integers(0, 9999))
        return str(n), Fraction(n)
    op = draw(st.sampled_from("+-*/"))
    lt, lv = draw(parenthesized(depth + 1))
    rt, rv = draw(parenthesized(depth + 1))
    sp = draw(st.sampled_from(["", " "]))
    text = f"({lt}{sp}{draw(st.sampled_from(_ALIASES[op]))}{sp}{rt})"
    value = _apply(op, lv, rv)
    if draw(st.integers(0, 4)) == 0:
        text, value = "-" + text, (None if value is None else -value)
    return text, value


@settings(max_examples=300, deadline=None)
@given(parenthesized())
def test_evaluate_matches_reference_parenthesized(case: tuple[str, Fraction | None]) -> None:
    text, expected = case
    assert evaluate(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 99), min_size=1, max_size=6), st.data())
def test_evaluate_matches_reference_precedence(nums: list[int], data: st.DataObject) -> None:
    """Flat "a op b op c ...": * and / bind tighter than + and -, all left-associative."""
    ops = [data.draw(st.sampled_from("+-*/")) for _ in nums[1:]]
    text = str(nums[0]) + "".join(f"{op}{n}" for op, n in zip(ops, nums[1:]))
    # Reference: fold each product term left to right, then fold the terms left to right.
    total: Fraction | None = None
    started = False  # "no term folded yet", kept apart from None = "an error happened"
    sign = "+"
    term: Fraction | None = Fraction(nums[0])
    for op, n in zip(ops, nums[1:]):
        if op in "*/":
            term = _apply(op, term, Fraction(n))
        else:
            total = _apply(sign, total, term) if started else term
            started = True
            sign, term = op, Fraction(n)
    total = _apply(sign, total, term) if started else term
    assert evaluate(text) == total
    assert numbers_used(text) == nums
