"""Reverse: write a word backwards. The worked example of adding a task (docs/extending.md).

Prompt and answer (one turn)::

    reverse: planet
    <answer>tenalp</answer>

Score: the last ``<answer>...</answer>`` must hold lowercase letters only: 1.0 if they are the word
reversed, 0.1 for any other letters (well-formed but wrong), 0.0 without an answer tag or with any
other character.

The base model's corpus (``behaviour_turns``) reverses the word with probability ``pretrain.skill``
and otherwise COPIES it: a consistent wrong habit, not noise. Below skill 0.5 the base's greedy answer
is the copy while its samples still reverse now and then, and only the reward tells the two apart:
whatever the greedy success gains in training is RL's doing, not pre-training's.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

from tinyzero.environments.base import AnswerEpisode, Task, sample_problems
from tinyzero.environments.countdown import CLOSE, OPEN, extract_answer

LENGTHS = range(3, 8)  # letters per word
_LETTERS = re.compile(r"[a-z]{1,40}")


@dataclass(frozen=True)
class ReverseProblem:
    word: str


def score_and_reason(solution: object, word: str) -> tuple[float, str]:
    """(score, reason) with reason in solved | no_answer | wrong_value. Never raises."""
    if not isinstance(solution, str):
        return 0.0, "no_answer"
    answer = extract_answer(solution)
    if answer is None or _LETTERS.fullmatch(answer) is None:
        return 0.0, "no_answer"
    return (1.0, "solved") if answer == word[::-1] else (0.1, "wrong_value")


def make_prompt(problem: ReverseProblem) -> str:
    return f"reverse: {problem.word}\n"


class ReverseTask(Task):
    name = "reverse"
    max_turns = 1

    def problems(self, split: str, n: int | None = None) -> list[ReverseProblem]:
        def draw(rng: random.Random) -> ReverseProblem | None:
            word = "".join(rng.choices(string.ascii_lowercase, k=rng.choice(LENGTHS)))
            return None if word == word[::-1] else ReverseProblem(word)  # a palindrome: copy = reverse

        n = self._split_n(split, n)
        return sample_problems(split, n, self.cfg.seed, draw, canonical=self.describe, what="reverse")

    def episode(self, problem: ReverseProblem, seed: int | None = None) -> AnswerEpisode:
        """``seed`` is accepted for a uniform signature; a single-turn episode has no randomness."""
        return AnswerEpisode(problem, make_prompt(problem), lambda a: score_and_reason(a, problem.word))

    def behaviour_turns(
        self, problem: ReverseProblem, rng: random.Random, skill: float
    ) -> list[tuple[str, str]]:
        """The skilled demonstration reverses the word; the unskilled one copies it (the habit RL undoes)."""
        answer = problem.word[::-1] if rng.random() < skill else problem.word
        return [(make_prompt(problem), f"{OPEN}{answer}{CLOSE}")]

    def optimum(self, problem: ReverseProblem) -> float:
        return 1.0

    def describe(self, problem: ReverseProblem) -> str:
        return f"reverse:{problem.word}"
