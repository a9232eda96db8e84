"""The text-environment protocol every task implements, and the shared problem-split machinery.

A task turns problems into episodes of text: the policy reads ``episode.prompt``, writes an action, and
``episode.step(action)`` answers with a ``StepResult`` (next observation, reward, done, info). Single-turn
tasks (countdown, multiplication) are one-step episodes; FrozenLake runs several turns.

Train/test split: whether a problem is held out is a function of the problem itself (a stable CRC32 of its
canonical string, about 10% to test), never of the order it was drawn in. So the splits are disjoint for
any ``n`` and any seed, and ``problems(split, n)`` for a smaller ``n`` is a prefix of the larger one.
"""

from __future__ import annotations

import random
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tinyzero.errors import UserError


class ProblemSpaceTooSmall(UserError, ValueError):
    """The task's settings cannot produce the problems asked for (a ValueError for library callers, a
    one-line ``error:`` for the command line)."""


SPLITS = ("train", "test")
TEST_BUCKETS = 10  # 1 in TEST_BUCKETS problems (by hash) is held out
REASONS = (
    "solved",
    "no_answer",
    "wrong_numbers",
    "wrong_value",
    "hole",
    "out_of_turns",
    "invalid_action",
    "moving",
)


@dataclass
class StepResult:
    """What one ``step`` returns."""

    observation: str  # next observation text ("" when done)
    reward: float
    done: bool  # terminated or truncated
    info: dict[str, Any] = field(default_factory=dict)  # "success", "format_ok", "reason" (see REASONS)


class TextEpisode(Protocol):
    """One episode on one problem."""

    prompt: str  # first observation text

    def step(self, action: str) -> StepResult: ...


class GymTextEpisode:
    """A ``TextEpisode`` over a text ``gymnasium.Env``: the prompt is the first observation, every
    observation ends with "\\n" (the model's cue that its turn begins), and the last one is "" (done)."""

    def __init__(self, env: Any, seed: int | None = None, options: dict | None = None):
        self.env = env
        obs, _ = env.reset(seed=seed, options=options)
        self.prompt = obs + "\n"
        self.done = False

    def step(self, action: str) -> StepResult:
        if self.done:
            raise RuntimeError("step() called on a finished episode")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.done = terminated or truncated
        return StepResult("" if self.done else obs + "\n", float(reward), self.done, info)


class AnswerEpisode:
    """A one-turn ``TextEpisode``: the prompt, then one answer scored by ``score`` (the task's
    ``score_and_reason`` on this problem: (score, reason)); 1.0 is success, anything above 0 is
    well-formed. Shared by the single-turn tasks (countdown, multiplication, reverse)."""

    def __init__(self, problem: Any, prompt: str, score: Callable[[str], tuple[float, str]]):
        self.problem = problem
        self.prompt = prompt
        self.score = score
        self.done = False

    def step(self, action: str) -> StepResult:
        if self.done:
            raise RuntimeError("step() called on a finished episode")
        self.done = True
        score, reason = self.score(action)
        info = {"success": score == 1.0, "format_ok": score > 0.0, "reason": reason}
        return StepResult(observation="", reward=score, done=True, info=info)


class Task(ABC):
    """A family of problems with checkable rewards, as text episodes."""

    name: str
    max_turns: int = 1  # 1 for single-turn tasks

    def __init__(self, cfg: Any):
        self.cfg = cfg

    @abstractmethod
    def problems(self, split: str, n: int | None = None) -> list:
        """``n`` problems of ``split`` ("train" | "test"), deterministic given cfg.seed; splits disjoint."""

    @abstractmethod
    def episode(self, problem: Any, seed: int | None = None) -> TextEpisode:
        """A fresh episode on ``problem``; ``seed`` fixes any randomness of the dynamics (slippery ice)."""

    @abstractmethod
    def behaviour_turns(self, problem: Any, rng: random.Random, skill: float) -> list[tuple[str, str]]:
        """(observation, action text) per turn of one demonstration episode, for the base model's corpus.

        ``skill`` in [0, 1] is the probability of a skilled example (or move); the rest is random but
        well-formed, so the corpus teaches the format but only part of the skill.
        """

    def learns_turn(self, observation: str, action: str, rng: random.Random) -> bool:
        """Whether the base model learns from this demonstrated turn (its action in the loss). Every
        turn by default; a task may thin out a move its demonstrations hold far more often than the
        moves that decide the outcome, which greedy decoding would otherwise copy."""
        return True

    @abstractmethod
    def optimum(self, problem: Any) -> float:
        """Best achievable success probability on ``problem`` (the ceiling to report success against)."""

    @abstractmethod
    def describe(self, problem: Any) -> str:
        """Short human-readable id of ``problem``, for reports."""

    def _split_n(self, split: str, n: int | None) -> int:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        if n is None:
            n = self.cfg.num_train if split == "train" else self.cfg.num_test
        if n < 0:
            raise ValueError(f"number of problems must be >= 0, got {n}")
        return int(n)


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and Python version (unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


def split_of(canonical: str) -> str:
    """ "test" for about 1 in TEST_BUCKETS problems, "train" otherwise, as a function of the problem."""
    return "test" if stable_hash(canonical) % TEST_BUCKETS == 0 else "train"


def sample_problems(
    split: str,
    n: int,
    seed: int,
    draw: Callable[[random.Random], Any | None],
    canonical: Callable[[Any], str],
    what: str,
    key: Callable[[Any], Hashable] | None = None,
    patience: int = 5000,
) -> list:
    """The first ``n`` distinct problems of ``split`` in the stream ``draw(random.Random(seed))``.

    ``draw`` returns a problem or None (a rejected draw); ``canonical`` gives the string the split is
    hashed from (equivalent problems must share it); ``key`` identifies duplicates (default: the problem).
    Raises ProblemSpaceTooSmall (a ValueError) when ``patience`` draws in a row bring nothing new.
    """
    rng = random.Random(seed)
    key = key or (lambda p: p)
    seen: set = set()
    out: list = []
    stall = 0
    while len(out) < n:
        problem = draw(rng)
        stall += 1
        if problem is None:
            if stall > patience:
                break
            continue
        k = key(problem)
        if k not in seen:
            seen.add(k)
            if split_of(canonical(problem)) == split:
                out.append(problem)
                stall = 0
        if stall > patience:
            break
    if len(out) < n:
        raise ProblemSpaceTooSmall(
            f"only {len(out)} distinct {split} problems found for {what}, {n} requested: the problem space "
            f"is too small; ask for fewer problems (task.num_train / task.num_test) or widen the task"
        )
    return out
