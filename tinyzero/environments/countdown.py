"""Countdown: combine the given numbers, each exactly once, with + - * / and parentheses to hit the target.

Prompt and answer (one turn)::

    Use 3 7 25 to make 46
    <answer>25+3*7</answer>

Score (TinyZero's rule; docs/tasks.md): 1.0 for a correct expression inside the LAST ``<answer>...</answer>``;
0.1 for a well-formed expression that uses the wrong numbers or has the wrong value (division by zero and
results over the parser's caps count as a wrong value); 0.0 when there is no answer tag or its content is
not an arithmetic expression. The expression is read by ``arith``'s safe parser, never ``eval``.

With ``task.scratchpad`` (3 numbers) the base model's corpus searches before it answers
(``search_trace``): one attempt per line, combine two numbers, then the result with the third, until an
attempt hits the target (at most ``MAX_ATTEMPTS``), then the answer of the last attempt::

    Use 3 7 25 to make 46
    25-7=18,18*3=54
    7*3=21,25+21=46
    <answer>25+7*3</answer>

Only the answer is scored. Why: the tiny model cannot choose among ~40 ways to combine 3 numbers in one
forward pass (direct answers: pass@8 0.375), but it can learn to write an attempt, compute it and check
it against the target, one short local step at a time, and RL could then learn which attempts to try
first. Measured (docs/results.md, "Countdown"): the lines are computed right 99 % of the time, but the
base repeats attempts and is not better than direct answers yet (greedy 0.09 vs 0.13, pass@8 0.445).

With ``task.trace: backward`` the search is complete instead (``backward_trace``): one line for each
number taken as the one used last, listing what the other two can make, then the last operations that
would give the target until one uses a value they made (``yes``). The lines follow the prompt's order,
so there is nothing to repeat, and ``pretrain.skill`` sets how many demonstrations search at all (the
others guess at once).

Problems: ``num_numbers`` numbers drawn uniformly from 1..max_number, then a target drawn uniformly among
the integers in 1..max_target that the exhaustive solver can reach with all of them, so every problem is
solvable. The solver follows the classic Countdown rule of exact division: every intermediate result is an
integer (negative intermediates are allowed). The scorer is more lenient and accepts any expression whose
exact rational value is the target.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from tinyzero.environments.arith import MAX_ABS, evaluate_tree, numbers_used, parse_expression
from tinyzero.environments.base import AnswerEpisode, Task, sample_problems

OPEN, CLOSE = "<answer>", "</answer>"

# An expression tree: an int leaf (one of the given numbers) or (op, left, right).
Tree = int | tuple


@dataclass(frozen=True)
class CountdownProblem:
    numbers: tuple[int, ...]
    target: int


def extract_answer(solution: str) -> str | None:
    """Content of the last complete ``<answer>...</answer>`` (linear time even on hostile text)."""
    end = solution.rfind(CLOSE)
    if end < 0:
        return None
    start = solution.rfind(OPEN, 0, end)
    if start < 0:
        return None
    return solution[start + len(OPEN) : end]


def score_and_reason(
    solution: object, target: int, numbers: list[int] | tuple[int, ...]
) -> tuple[float, str]:
    """(score, reason) with reason in solved | no_answer | wrong_numbers | wrong_value. Never raises."""
    try:
        if not isinstance(solution, str):
            return 0.0, "no_answer"
        answer = extract_answer(solution)
        node = None if answer is None else parse_expression(answer)
        if node is None:
            return 0.0, "no_answer"
        if Counter(numbers_used(answer)) != Counter(int(x) for x in numbers):
            return 0.1, "wrong_numbers"
        value = evaluate_tree(node)
        if value is None or value != target:
            return 0.1, "wrong_value"
        return 1.0, "solved"
    except Exception:  # noqa: BLE001 - a reward function must never crash training on odd input
        return 0.0, "no_answer"


def compute_score(solution: str, target: int, numbers: list[int]) -> float:
    """1.0 correct, 0.1 well-formed but wrong (numbers or value), 0.0 no parsable answer. Never raises."""
    return score_and_reason(solution, target, numbers)[0]


@lru_cache(maxsize=4096)
def _reachable(numbers: tuple[int, ...]) -> dict[int, Tree]:
    """Every integer reachable using all ``numbers`` exactly once → one expression tree for it.

    Bitmask dynamic programme over subsets: the values of a subset are those of its two-way splits combined
    with + - * / (both orders for - and /; division only when exact). |values| are capped at arith.MAX_ABS.
    """
    n = len(numbers)
    vals: list[dict[int, Tree]] = [{} for _ in range(1 << n)]
    for i, x in enumerate(numbers):
        vals[1 << i] = {x: x}
    for mask in range(1, 1 << n):
        if mask & (mask - 1) == 0:
            continue
        table: dict[int, Tree] = {}
        sub = (mask - 1) & mask
        while sub:
            other = mask ^ sub
            if sub < other:  # each unordered split once
                for va, ta in vals[sub].items():
                    for vb, tb in vals[other].items():
                        for v, t in (
                            (va + vb, ("+", ta, tb)),
                            (va * vb, ("*", ta, tb)),
                            (va - vb, ("-", ta, tb)),
                            (vb - va, ("-", tb, ta)),
                        ):
                            if v not in table and -MAX_ABS <= v <= MAX_ABS:
                                table[v] = t
                        if vb != 0 and va % vb == 0 and va // vb not in table:
                            table[va // vb] = ("/", ta, tb)
                        if va != 0 and vb % va == 0 and vb // va not in table:
                            table[vb // va] = ("/", tb, ta)
            sub = (sub - 1) & mask
        vals[mask] = table
    return vals[-1]


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def render(tree: Tree, rng: random.Random | None = None) -> str:
    """Expression text with minimal parentheses; with ``rng``, operands of + and * are randomly swapped."""
    if isinstance(tree, int):
        return str(tree)
    op, left, right = tree
    if rng is not None and op in "+*" and rng.random() < 0.5:
        left, right = right, left
    ls, rs = render(left, rng), render(right, rng)
    p = _PREC[op]
    if not isinstance(left, int) and _PREC[left[0]] < p:
        ls = f"({ls})"
    if not isinstance(right, int) and (_PREC[right[0]] < p or (_PREC[right[0]] == p and op in "-/")):
        rs = f"({rs})"
    return f"{ls}{op}{rs}"


def reachable_targets(numbers: list[int] | tuple[int, ...], lo: int, hi: int) -> list[int]:
    """Sorted integers in lo..hi reachable using all ``numbers`` exactly once."""
    return sorted(v for v in _reachable(tuple(sorted(numbers))) if lo <= v <= hi)


def solve(numbers: list[int] | tuple[int, ...], target: int, rng: random.Random | None = None) -> str | None:
    """An expression using every number once that equals ``target`` (integer intermediates), or None."""
    tree = _reachable(tuple(sorted(int(x) for x in numbers))).get(target)
    return None if tree is None else render(tree, rng)


def random_expression(numbers: list[int] | tuple[int, ...], rng: random.Random) -> str:
    """A random well-formed expression using each number exactly once (random order, operators, brackets).

    Retries until the value is defined (no division by zero, within the caps); falls back to a plain sum.
    """
    for _ in range(20):
        order = list(numbers)
        rng.shuffle(order)
        text = render(_random_tree(order, rng))
        node = parse_expression(text)
        if node is not None and evaluate_tree(node) is not None:
            return text
    return "+".join(str(x) for x in numbers)


def _random_tree(leaves: list[int], rng: random.Random) -> Tree:
    if len(leaves) == 1:
        return leaves[0]
    cut = rng.randint(1, len(leaves) - 1)
    return (rng.choice("+-*/"), _random_tree(leaves[:cut], rng), _random_tree(leaves[cut:], rng))


MAX_ATTEMPTS = 6  # attempts a search trace shows before it gives up (~16 characters each)


@dataclass(frozen=True)
class Attempt:
    """Two numbers combined, then the result with the third: one line of a search trace."""

    text: str  # "25-7=18,18*3=54"
    tree: Tree  # the expression, for the answer
    value: int


def _combine(a: int, b: int) -> list[tuple[str, int, int, int]]:
    """(op, left, right, value) for every way to combine a and b with integer results (both orders for -
    and /; division only when exact; a/a once)."""
    out = [("+", a, b, a + b), ("*", a, b, a * b), ("-", a, b, a - b), ("-", b, a, b - a)]
    if b != 0 and a % b == 0:
        out.append(("/", a, b, a // b))
    if a != 0 and b % a == 0 and a != b:
        out.append(("/", b, a, b // a))
    return out


def attempts(numbers: tuple[int, ...] | list[int]) -> list[Attempt]:
    """Every distinct two-step attempt over exactly 3 numbers (each pair first, then the third).

    A negative first result is skipped: with it a positive target is only reached as c − (a − b), which
    is c + (b − a), an attempt that stays non-negative (and reads better than ``14--11``).
    """
    if len(numbers) != 3:
        raise ValueError("countdown's search trace is defined for 3 numbers (task.num_numbers=3)")
    seen: dict[str, Attempt] = {}
    for i, j, k in ((0, 1, 2), (0, 2, 1), (1, 2, 0)):
        c = numbers[k]
        for op1, x1, y1, x in _combine(numbers[i], numbers[j]):
            if x < 0:
                continue
            for op2, x2, y2, y in _combine(x, c):
                first = (op1, x1, y1)
                tree = (op2, first, y2) if x2 == x else (op2, x2, first)
                text = f"{x1}{op1}{y1}={x},{x2}{op2}{y2}={y}"
                seen.setdefault(text, Attempt(text, tree, y))
    return list(seen.values())


def search_trace(problem: CountdownProblem, rng: random.Random, skill: float) -> str:
    """A demonstration of search: random attempts, stopping at the first that hits the target.

    With probability ``skill`` a hitting attempt is placed at a random position among the first
    ``MAX_ATTEMPTS`` (a search that finds the answer); otherwise the attempts are a plain random search,
    which may hit by chance or give up after ``MAX_ATTEMPTS`` and answer its last attempt (a well-formed,
    wrong answer). Every line is computed correctly; only the choice of attempts is noisy.
    """
    pool = attempts(problem.numbers)
    rng.shuffle(pool)
    hits = [a for a in pool if a.value == problem.target]
    misses = [a for a in pool if a.value != problem.target]
    if hits and rng.random() < skill:
        at = rng.randrange(min(MAX_ATTEMPTS, len(misses) + 1))
        pool = [*misses[:at], hits[0]]
    shown: list[Attempt] = []
    for a in pool[:MAX_ATTEMPTS]:
        shown.append(a)
        if a.value == problem.target:
            break
    lines = "".join(f"{a.text}\n" for a in shown)
    return f"{lines}{OPEN}{render(shown[-1].tree, rng)}{CLOSE}"


PAIR_CAP = 400  # needs are listed up to this value, or up to the pair's largest value if higher


@dataclass(frozen=True)
class Need:
    """A value ``p`` the other two numbers must make so that one last operation with ``z`` gives the
    target: ``p op z`` (``33+16``, ``7*12``) or, with ``z_first``, ``z op p`` (``16-4``, ``20/5``)."""

    value: int
    op: str
    z: int
    z_first: bool = False

    @property
    def text(self) -> str:
        return f"{self.z}{self.op}{self.value}" if self.z_first else f"{self.value}{self.op}{self.z}"

    def answer(self, pair: str) -> str:
        """The whole expression: the pair's expression, in brackets, in place of the value."""
        return f"{self.z}{self.op}({pair})" if self.z_first else f"({pair}){self.op}{self.z}"


def needs(target: int, z: int, cap: int = PAIR_CAP) -> list[Need]:
    """Every p with ``p op z = target`` or ``z op p = target`` that two numbers can make, in a fixed order.

    Why these six: the last operation of any 3-number solution combines z with a pair's value p, and
    a pair's value can be taken non-negative (c - (a - b) is c + (b - a)), so p is target - z, target + z,
    z - target, target / z, target * z or z / target: whichever of them is a non-negative integer
    a pair can reach (target * z only up to ``cap``).
    """
    t = target
    out = []
    if t - z >= 0:
        out.append(Need(t - z, "+", z))
    out.append(Need(t + z, "-", z))
    if z - t >= 0:
        out.append(Need(z - t, "-", z, z_first=True))
    if t * z <= cap:
        out.append(Need(t * z, "/", z))
    if z and t % z == 0:
        out.append(Need(t // z, "*", z))
    if t and z % t == 0:
        out.append(Need(z // t, "/", z, z_first=True))
    return out


def pair_values(x: int, y: int) -> list[tuple[str, int]]:
    """(expression, value) of x+y, x*y, larger-smaller and larger/smaller (when exact), in that order."""
    hi, lo = max(x, y), min(x, y)
    out = [(f"{x}+{y}", x + y), (f"{x}*{y}", x * y), (f"{hi}-{lo}", hi - lo)]
    if lo and hi % lo == 0:
        out.append((f"{hi}/{lo}", hi // lo))
    return out


def backward_trace(problem: CountdownProblem) -> str:
    """The whole search written out, one line per choice of the number used last, then the answer::

        Use 13 14 2 to make 40
        13: 14+2=16 14*2=28 14-2=12 14/2=7 | 27+13 53-13 no
        14: 13+2=15 13*2=26 13-2=11 | 26+14 yes
        <answer>(13*2)+14</answer>

    A line takes one of the numbers as ``z``, writes what the other two can make (``pair_values``), then
    the last operations with ``z`` that would give the target (``needs``), one by one, until one of them
    uses a value the pair made (``yes``) or none is left (``no``). Every step is one small computation or
    a look-up of one number a few characters back; the answer copies the pair's expression into the
    last operation. The lines come in the order of the prompt's numbers (nothing to remember about what
    was tried) and the search is complete: every solvable 3-number problem has a ``yes`` line (at most 3).
    """
    numbers, target = problem.numbers, problem.target
    if len(numbers) != 3:
        raise ValueError("countdown's search trace is defined for 3 numbers (task.num_numbers=3)")
    lines, tried = [], set()
    for k, z in enumerate(numbers):
        if z in tried:  # the same z leaves the same pair: the same line
            continue
        tried.add(z)
        x, y = (numbers[i] for i in range(3) if i != k)
        made = pair_values(x, y)
        by_value = {v: e for e, v in reversed(made)}  # the first expression of each value
        head = f"{z}: {' '.join(f'{e}={v}' for e, v in made)} |"
        written = []
        for need in needs(target, z, max(PAIR_CAP, *by_value)):
            written.append(need.text)
            if need.value in by_value:
                lines.append(f"{head} {' '.join(written)} yes\n")
                return f"{''.join(lines)}{OPEN}{need.answer(by_value[need.value])}{CLOSE}"
        lines.append(f"{head} {' '.join(written)} no\n")
    raise ValueError(f"no solution for {problem}: countdown only generates solvable problems")


def make_prompt(problem: CountdownProblem) -> str:
    return f"Use {' '.join(str(x) for x in problem.numbers)} to make {problem.target}\n"


class CountdownTask(Task):
    name = "countdown"
    max_turns = 1

    def problems(self, split: str, n: int | None = None) -> list[CountdownProblem]:
        n = self._split_n(split, n)
        cfg = self.cfg
        if cfg.num_numbers < 1 or cfg.max_number < 1 or cfg.max_target < 1:
            raise ValueError("countdown needs num_numbers, max_number and max_target >= 1")

        def draw(rng: random.Random) -> CountdownProblem | None:
            numbers = tuple(rng.randint(1, cfg.max_number) for _ in range(cfg.num_numbers))
            targets = reachable_targets(numbers, 1, cfg.max_target)
            return CountdownProblem(numbers, rng.choice(targets)) if targets else None

        return sample_problems(
            split,
            n,
            cfg.seed,
            draw,
            canonical=_canonical,
            key=_canonical,
            what=f"countdown({cfg.num_numbers} numbers <= {cfg.max_number}, targets <= {cfg.max_target})",
        )

    def episode(self, problem: CountdownProblem, seed: int | None = None) -> AnswerEpisode:
        """``seed`` is accepted for a uniform signature; a single-turn episode has no randomness."""
        return AnswerEpisode(
            problem, make_prompt(problem), lambda a: score_and_reason(a, problem.target, problem.numbers)
        )

    def behaviour_turns(
        self, problem: CountdownProblem, rng: random.Random, skill: float
    ) -> list[tuple[str, str]]:
        if self.cfg.scratchpad and self.cfg.trace == "backward":
            # the whole search (skill) or a guess without one: RL has to learn that searching pays. The
            # guess is drawn either way, so the corpus' random stream does not depend on the coin.
            answer = backward_trace(problem) if rng.random() < skill else None
            guess = f"{OPEN}{random_expression(problem.numbers, rng)}{CLOSE}"
            return [(make_prompt(problem), answer or guess)]
        if self.cfg.scratchpad:
            return [(make_prompt(problem), search_trace(problem, rng, skill))]
        expr = solve(problem.numbers, problem.target, rng) if rng.random() < skill else None
        if expr is None:
            expr = random_expression(problem.numbers, rng)
        return [(make_prompt(problem), f"{OPEN}{expr}{CLOSE}")]

    def optimum(self, problem: CountdownProblem) -> float:
        return 1.0

    def describe(self, problem: CountdownProblem) -> str:
        return f"{' '.join(str(x) for x in problem.numbers)} -> {problem.target}"


def _canonical(problem: CountdownProblem) -> str:
    # Orderings of the same numbers are the same problem: they share a split.
    return f"countdown:{','.join(str(x) for x in sorted(problem.numbers))}:{problem.target}"
