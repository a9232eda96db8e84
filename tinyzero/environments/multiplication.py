"""Multiplication: compute a × b for a, b with a configurable number of digits.

Prompt and answer (one turn)::

    47*89=
    <answer>4183</answer>

With ``task.scratchpad`` the base model's corpus writes long multiplication before the answer
(``long_multiplication``): one partial product per non-zero digit of b, then running sums::

    47*89=
    47*9=423
    47*80=3760
    423+3760=4183
    <answer>4183</answer>

Only the answer is scored; the steps are there because a character model that must emit the product
in one go (most-significant digit first) has to do all the carries "in its head", which the tiny
preset never learned (docs/results.md), while every step above is a short, local computation.

Score (docs/tasks.md): the LAST ``<answer>...</answer>`` must hold a plain integer (optional '-',
ASCII digits, at most ``MAX_ANSWER_DIGITS`` digits, surrounding whitespace ignored): 1.0 if it equals
a*b, 0.1 if it is another integer, 0.0 when there is no answer tag or its content is not a plain
integer.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tinyzero.environments.base import AnswerEpisode, Task, sample_problems
from tinyzero.environments.countdown import CLOSE, OPEN, extract_answer

MAX_ANSWER_DIGITS = 20
_INTEGER = re.compile(r"\s*(-?[0-9]{1,20})\s*")  # MAX_ANSWER_DIGITS


@dataclass(frozen=True)
class MultiplicationProblem:
    a: int
    b: int


def score_and_reason(solution: object, a: int, b: int) -> tuple[float, str]:
    """(score, reason) with reason in solved | no_answer | wrong_value. Never raises."""
    try:
        if not isinstance(solution, str):
            return 0.0, "no_answer"
        answer = extract_answer(solution)
        if answer is None or len(answer) > 100:
            return 0.0, "no_answer"
        m = _INTEGER.fullmatch(answer)
        if m is None:
            return 0.0, "no_answer"
        return (1.0, "solved") if int(m.group(1)) == int(a) * int(b) else (0.1, "wrong_value")
    except Exception:  # noqa: BLE001 - a reward function must never crash training on odd input
        return 0.0, "no_answer"


def compute_score(solution: str, a: int, b: int) -> float:
    """1.0 if the last answer is a*b, 0.1 for another plain integer, 0.0 otherwise. Never raises."""
    return score_and_reason(solution, a, b)[0]


def corrupt(n: int, rng: random.Random, errors: int) -> int:
    """``n`` with ``errors`` distinct digits replaced by different digits (never a leading zero)."""
    digits = list(str(n))
    for i in rng.sample(range(len(digits)), min(errors, len(digits))):
        lo = 1 if i == 0 and len(digits) > 1 else 0
        digits[i] = rng.choice([d for d in "0123456789"[lo:] if d != digits[i]])
    return int("".join(digits))


def long_multiplication(
    a: int, b: int, slip: int | None = None, rng: random.Random | None = None, shift: bool = True
) -> tuple[str, int]:
    """(the worked steps, their final result) for a × b, as in the module docstring.

    ``slip`` corrupts the result of that step (0-based over partial products then sums) and the
    later steps compute faithfully from the wrong value, so a noisy demonstration is a consistent
    computation with one mistake, not a random final number. ``shift=False`` is a habit instead of a
    slip: every partial product forgets its place value (``47*8=376`` for the tens digit 8, not
    ``47*80=3760``) and the sums add what was written, the schoolbook mistake of not indenting.
    """
    steps: list[str] = []
    results: list[int] = []

    def record(line: str, value: int) -> int:
        if slip == len(steps):
            value = corrupt(value, rng or random.Random(0), 1)
        steps.append(f"{line}={value}")
        return value

    for i, digit in enumerate(reversed(str(b))):
        if digit != "0":
            factor = int(digit) * 10**i if shift else int(digit)
            results.append(record(f"{a}*{factor}", a * factor))
    total = results[0]  # b >= 1 has a non-zero digit
    for part in results[1:]:
        total = record(f"{total}+{part}", total + part)
    return "".join(line + "\n" for line in steps), total


def num_steps(b: int) -> int:
    """How many lines ``long_multiplication`` writes for a second factor b."""
    return 2 * sum(d != "0" for d in str(b)) - 1  # one product per non-zero digit, then the sums


def make_prompt(problem: MultiplicationProblem) -> str:
    return f"{problem.a}*{problem.b}=\n"


class MultiplicationTask(Task):
    name = "multiplication"
    max_turns = 1

    def problems(self, split: str, n: int | None = None) -> list[MultiplicationProblem]:
        n = self._split_n(split, n)
        da, db = self.cfg.digits_a, self.cfg.digits_b
        if da < 1 or db < 1:
            raise ValueError("multiplication needs digits_a and digits_b >= 1")

        def draw(rng: random.Random) -> MultiplicationProblem:
            return MultiplicationProblem(
                rng.randint(10 ** (da - 1), 10**da - 1), rng.randint(10 ** (db - 1), 10**db - 1)
            )

        return sample_problems(
            split, n, self.cfg.seed, draw, canonical=_canonical, what=f"multiplication({da}x{db} digits)"
        )

    def episode(self, problem: MultiplicationProblem, seed: int | None = None) -> AnswerEpisode:
        """``seed`` is accepted for a uniform signature; a single-turn episode has no randomness."""
        return AnswerEpisode(
            problem, make_prompt(problem), lambda a: score_and_reason(a, problem.a, problem.b)
        )

    def behaviour_turns(
        self, problem: MultiplicationProblem, rng: random.Random, skill: float
    ) -> list[tuple[str, str]]:
        if self.cfg.scratchpad:
            skilled = rng.random() < skill
            if not skilled and self.cfg.scratchpad_errors == "shift":
                work, product = long_multiplication(problem.a, problem.b, shift=False)  # the habit
            else:
                slip = None if skilled else rng.randrange(num_steps(problem.b))
                work, product = long_multiplication(problem.a, problem.b, slip, rng)
            return [(make_prompt(problem), f"{work}{OPEN}{product}{CLOSE}")]
        product = problem.a * problem.b
        if rng.random() >= skill:
            product = corrupt(product, rng, rng.randint(1, 2))
        return [(make_prompt(problem), f"{OPEN}{product}{CLOSE}")]

    def optimum(self, problem: MultiplicationProblem) -> float:
        return 1.0

    def describe(self, problem: MultiplicationProblem) -> str:
        return f"{problem.a}*{problem.b}"


def _canonical(problem: MultiplicationProblem) -> str:
    # a*b and b*a are the same problem: they share a split.
    lo, hi = sorted((problem.a, problem.b))
    return f"multiplication:{lo}*{hi}"
