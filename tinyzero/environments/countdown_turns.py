"""Countdown in turns: the agent writes one operation a turn, the environment does the arithmetic.

The single-turn countdown asks for a whole expression in one answer. Here (RAGEN's multi-turn
setting) each turn the agent combines two of the numbers it has, and the environment answers with
the numbers left; the agent never has to compute, only to choose::

    13 14 2 -> 40        (observation: the numbers left, then the target)
    13*2                 (action: one operation on two of them)
    26 14 -> 40
    26+14                → 40, one number left and it is the target: solved

``CountdownTurnsEnv`` is a ``gymnasium.Env`` (``Text`` spaces, passes ``check_env``), registered as
``tinyzero/CountdownTurns-v0``; ``CountdownTurnsTask`` is the ``Task`` the trainer uses
(``task.name: countdown_turns``), with the same problems and splits as ``countdown``.

## Actions
``a op b`` with ``op`` in ``+ - * /`` and ``a``, ``b`` two of the current numbers (two different
positions; a number may appear twice), at most ``MAX_ACTION_CHARS`` characters. The rules are the
exhaustive solver's, so every generated problem is solvable in ``len(numbers) − 1`` turns: results are
integers (division only when exact), negative results are allowed, ``|result| ≤ arith.MAX_ABS``.
With ``restart`` on, the action ``restart`` puts the original numbers back (the agent can then search,
the environment keeping the arithmetic right). With ``show_tried`` as well, every observation ends with
the first moves tried so far (``13 14 2 -> 40 tried 13*2 14+2``): a policy that sees only the current
observation (``rollout.history: 0``) otherwise meets the same start after each restart and, played
greedily, repeats its first try.

## Rewards and episode end
1.0 when one number is left and it is the target (every given number used exactly once, as in
``countdown``): the episode ends, reason ``solved``. An invalid action ends it with 0.0
(``invalid_action``). One number left that is not the target: without ``restart`` the episode ends with
0.1 (``wrong_value``: well-formed, wrong, as ``countdown`` scores it); with ``restart`` the agent may
start over. After ``max_turns`` turns it ends with 0.1 (``out_of_turns``). Rewards are in {0, 0.1, 1}.

## Demonstrations (the base model's corpus)
``CountdownTurnsTask.behaviour_turns``: skilled or random moves (``pretrain.skill``), or with
``task.demos: search`` a search in a fixed order of first moves (``first_moves``, ``search_turns``).
"""

from __future__ import annotations

import random
import re
from typing import Any

import gymnasium
from gymnasium import spaces

from tinyzero.environments.arith import MAX_ABS
from tinyzero.environments.base import GymTextEpisode
from tinyzero.environments.countdown import CountdownProblem, CountdownTask, _reachable, reachable_targets

ENV_ID = "tinyzero/CountdownTurns-v0"
MAX_ACTION_CHARS = 40
RESTART = "restart"
SEARCH_SLIP = 0.25  # task.demos=search: share of dead ends where the demonstration writes a wrong move
TRIED = "tried"
OBS_CHARSET = "0123456789 ->+*/" + "".join(sorted(set(TRIED)))
ACTION_CHARSET = "0123456789+-*/ " + "".join(sorted(set(RESTART)))
_ACTION = re.compile(r"\s*(-?\d{1,13})\s*([-+*/])\s*(-?\d{1,13})\s*")


def render(numbers: list[int] | tuple[int, ...], target: int, tried: list[str] | tuple[str, ...] = ()) -> str:
    text = f"{' '.join(str(x) for x in numbers)} -> {target}"
    return f"{text} {TRIED} {' '.join(tried)}" if tried else text


def parse(action: str) -> tuple[int, str, int] | None:
    """``a op b`` read from the action text (spaces allowed), or None when it is not one operation."""
    m = _ACTION.fullmatch(action) if isinstance(action, str) and len(action) <= MAX_ACTION_CHARS else None
    return (int(m.group(1)), m.group(2), int(m.group(3))) if m else None


def apply(numbers: list[int], action: str) -> list[int] | None:
    """The numbers after ``action`` ("a op b" on two of them), or None if it is not a legal move."""
    parsed = parse(action)
    if parsed is None:
        return None
    a, op, b = parsed
    rest = list(numbers)
    for x in (a, b):  # two different positions, even when a == b
        if x not in rest:
            return None
        rest.remove(x)
    if op == "/":
        if b == 0 or a % b:
            return None
        value = a // b
    else:
        value = a + b if op == "+" else a - b if op == "-" else a * b
    return None if abs(value) > MAX_ABS else [*rest, value]


def legal_moves(numbers: list[int]) -> list[tuple[str, list[int]]]:
    """Every legal move from ``numbers`` and the numbers it leaves: (action text, numbers after)."""
    out = []
    for i in range(len(numbers)):
        for j in range(len(numbers)):
            if i != j:
                for op in "+-*/":
                    action = f"{numbers[i]}{op}{numbers[j]}"
                    after = apply(numbers, action)
                    if after is not None:
                        out.append((action, after))
    return out


def first_moves(numbers: list[int]) -> list[str]:
    """The first moves a search demonstration tries, in order: for each pair of positions in order
    ``a+b``, ``a*b`` and larger minus smaller; then, for each pair, larger over smaller where it divides
    exactly. A move text already listed is left out (with a repeated number, ``10+18`` and ``18+10``
    from two different pairs both stay).

    Why this order: every move before the divisions is legal whatever the numbers are, so the model
    never has to decide whether a division is exact before it may go on (with the earlier order,
    ``a/b`` and ``b/a`` after each pair, inexact divisions such as ``16/3`` were a common way for
    greedy episodes to end). No problem of 3 numbers up to 20 needs a negative first result, and a
    division first only rarely: with this order a working first move is among the first 6 / 9 / 10
    tries for 0.79 / 0.95 / 0.99 of problems.
    """
    out: list[str] = []
    pairs = [(a, b) for i, a in enumerate(numbers) for b in numbers[i + 1 :]]
    for a, b in pairs:
        for action in (f"{a}+{b}", f"{a}*{b}", f"{max(a, b)}-{min(a, b)}"):
            if action not in out and apply(numbers, action) is not None:
                out.append(action)
    for a, b in pairs:
        action = f"{max(a, b)}/{min(a, b)}"
        if action not in out and apply(numbers, action) is not None:
            out.append(action)
    return out


def solvable(numbers: list[int], target: int) -> bool:
    """Whether ``target`` can still be made using every one of ``numbers`` (the exhaustive solver)."""
    return target in _reachable(tuple(sorted(numbers)))


def solution_step(
    numbers: list[int], target: int, rng: random.Random, avoid: tuple[str, ...] = ()
) -> str | None:
    """A random move after which the target can still be made (None when no move keeps it reachable).

    Moves that keep every number non-negative are preferred: they read like the classic game
    (``17+16`` then ``33-13`` rather than ``13-16`` then ``17--3``). Moves in ``avoid`` (first moves
    already tried) are taken only when no other move keeps the target reachable.
    """
    good = [(a, after) for a, after in legal_moves(numbers) if solvable(after, target)]
    good = [(a, after) for a, after in good if a not in avoid] or good
    plain = [a for a, after in good if min(after) >= 0]
    choices = plain or [a for a, _ in good]
    return rng.choice(choices) if choices else None


def random_step(numbers: list[int], rng: random.Random, avoid: tuple[str, ...] = ()) -> str:
    """A random legal move: one not in ``avoid`` drawn from them all when ``avoid`` names moves, else
    pair and operation drawn until legal (a few draws; addition is always legal)."""
    fresh = [a for a, _ in legal_moves(numbers) if a not in avoid] if avoid else []
    if fresh:
        return rng.choice(fresh)
    for _ in range(10):
        i, j = rng.sample(range(len(numbers)), 2)
        action = f"{numbers[i]}{rng.choice('+-*/')}{numbers[j]}"
        if apply(numbers, action) is not None:
            return action
    return f"{numbers[0]}+{numbers[1]}"


class CountdownTurnsEnv(gymnasium.Env):
    """Multi-turn countdown with text observations and actions (see the module docstring for the MDP).

    Arguments: ``num_numbers=3``, ``max_number=20``, ``max_target=100`` (random problems per ``reset``,
    seeded from ``self.np_random``), ``max_turns=8``, ``restart=False``, ``show_tried=False`` (needs
    ``restart``). ``reset(options={"numbers": ..., "target": ...})`` plays the given problem.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        num_numbers: int = 3,
        max_number: int = 20,
        max_target: int = 100,
        max_turns: int = 8,
        restart: bool = False,
        show_tried: bool = False,
        render_mode: str | None = None,
    ):
        if num_numbers < 2 or max_number < 1 or max_target < 1 or max_turns < num_numbers - 1:
            raise ValueError(
                "need num_numbers >= 2, max_number, max_target >= 1, max_turns >= num_numbers - 1"
            )
        if show_tried and not restart:
            raise ValueError("show_tried needs restart (without it there is one try)")
        self.num_numbers, self.max_number, self.max_target = num_numbers, max_number, max_target
        self.max_turns, self.restart, self.render_mode = max_turns, restart, render_mode
        self.show_tried = show_tried
        width = num_numbers * 14 + 18  # every number within ±MAX_ABS, the arrow, the target
        if show_tried:  # " tried", then at most one first move a turn, each two given numbers and an op
            width += len(TRIED) + 1 + max_turns * (2 * len(str(max_number)) + 2)
        self.observation_space = spaces.Text(max_length=width, charset=OBS_CHARSET)
        self.action_space = spaces.Text(max_length=MAX_ACTION_CHARS, charset=ACTION_CHARSET)
        self.start: list[int] = []
        self.numbers: list[int] = []
        self.target = 0
        self.turn = 0
        self.tried: list[str] = []  # first moves made from the original numbers, in order, no repeats
        self._finished = True

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        if options and options.get("numbers") is not None:
            numbers, target = [int(x) for x in options["numbers"]], int(options["target"])
        else:
            numbers, targets = [], []
            while not targets:  # a random solvable problem
                numbers = [
                    int(self.np_random.integers(1, self.max_number + 1)) for _ in range(self.num_numbers)
                ]
                targets = reachable_targets(numbers, 1, self.max_target)
            target = int(targets[int(self.np_random.integers(len(targets)))])
        self.start, self.numbers, self.target = list(numbers), list(numbers), target
        self.turn, self._finished, self.tried = 0, False, []
        return self._observation(), {"numbers": tuple(numbers), "target": target}

    @property
    def at_start(self) -> bool:
        """Whether the agent stands on the original numbers (after reset, or after a restart)."""
        return len(self.numbers) == len(self.start)

    def _observation(self) -> str:
        return render(self.numbers, self.target, self.tried if self.show_tried else ())

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._finished:
            raise RuntimeError("the episode is over: call reset() before step()")
        self.turn += 1
        is_restart = self.restart and isinstance(action, str) and action.strip().lower() == RESTART
        after = list(self.start) if is_restart else apply(self.numbers, action)
        reward, terminated, reason = 0.0, False, "moving"
        if after is None:
            terminated, reason = True, "invalid_action"
        else:
            if not is_restart and self.at_start:
                a, op, b = parse(action)
                if f"{a}{op}{b}" not in self.tried:
                    self.tried.append(f"{a}{op}{b}")
            self.numbers = after
            if len(after) == 1 and after[0] == self.target:
                reward, terminated, reason = 1.0, True, "solved"
            elif len(after) == 1 and not self.restart:
                reward, terminated, reason = 0.1, True, "wrong_value"
        truncated = not terminated and self.turn >= self.max_turns
        if truncated:
            reward, reason = 0.1, "out_of_turns"
        self._finished = terminated or truncated
        info = {
            "success": reason == "solved",
            "format_ok": after is not None,
            "reason": reason,
            "turn": self.turn,
        }
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> str | None:
        return self._observation() if self.render_mode == "ansi" else None


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="tinyzero.environments.countdown_turns:CountdownTurnsEnv")


class CountdownTurnsTask(CountdownTask):
    """countdown's problems and splits, played one operation a turn."""

    name = "countdown_turns"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.max_turns = int(cfg.max_turns)

    def episode(self, problem: CountdownProblem, seed: int | None = None) -> GymTextEpisode:
        c = self.cfg
        env = CountdownTurnsEnv(
            c.num_numbers, c.max_number, c.max_target, c.max_turns, c.restart, c.show_tried
        )
        return GymTextEpisode(env, seed, {"numbers": problem.numbers, "target": problem.target})

    def behaviour_turns(
        self, problem: CountdownProblem, rng: random.Random, skill: float
    ) -> list[tuple[str, str]]:
        """Each move is, with probability ``skill``, a step of a solution from where the agent stands
        (``restart`` when none is left and restarting is allowed), else a random legal move. Where the
        observation lists the first moves tried (``show_tried``), a first move avoids them when it can:
        the demonstrations show what the list is for. ``task.demos: search``: ``search_turns``."""
        if self.cfg.demos == "search":
            # No draw at 0: the corpus of every search base built before drills stays bit for bit.
            if self.cfg.demo_checks and rng.random() < self.cfg.demo_checks:
                return self.check_drill(problem, rng)
            return self.search_turns(problem, rng, skill)
        episode = self.episode(problem)
        obs, turns = episode.prompt, []
        while True:
            env = episode.env
            avoid = tuple(env.tried) if env.show_tried and env.at_start else ()
            action = solution_step(env.numbers, env.target, rng, avoid) if rng.random() < skill else None
            if action is None:
                stuck = len(env.numbers) == 1 or solution_step(env.numbers, env.target, rng) is None
                action = RESTART if env.restart and stuck and rng.random() < skill else None
            if action is None:
                action = random_step(env.numbers, rng, avoid) if len(env.numbers) > 1 else RESTART
            turns.append((obs, action))
            result = episode.step(action)
            if result.done:
                return turns
            obs = result.observation

    def learns_turn(self, observation: str, action: str, rng: random.Random) -> bool:
        """Search demonstrations: a ``restart`` from two numbers is learned with probability
        ``task.demo_restarts``, a slip (``SEARCH_SLIP``) never, everything else always.

        Why: a search restarts after most first moves, so its corpus holds several restarts for every
        move that finishes, and a base trained on all of them writes ``restart`` where one operation
        would reach the target (greedy 0.03 with every restart learned, 0.29 with a quarter of them,
        docs/results.md). A slip is shown only for the state it leads to: one number that is not the
        target, from which the demonstration restarts (that restart is always learned). Every turn
        stays in the episode (and in any context of later turns)."""
        if self.cfg.demos != "search":
            return True
        left, target = observation.split(" -> ")
        numbers, target = [int(x) for x in left.split()], int(target.split()[0])
        if action == RESTART:
            return len(numbers) == 1 or rng.random() < self.cfg.demo_restarts
        return len(numbers) != 2 or apply(numbers, action) == [target]

    def check_drill(self, problem: CountdownProblem, rng: random.Random) -> list[tuple[str, str]]:
        """The two-number state after each first move of the search order, with the search's answer
        there: a move that reaches the target, or ``restart`` (``task.demo_checks``; thinned like any
        restart by ``learns_turn``). The pairs are separate states, not one episode: each is what the
        observation would be had the search got that far (three numbers and ``rollout.history`` 0, both
        checked in the config).

        Why: the check at two numbers is the skill the search base got wrong most (greedy episodes of
        a 4,000-step base finish from 53 % of the two-number states where one operation reaches the
        target). A search shows that check once or twice per problem, and only up to the first move
        that works; a drill shows it after every first move, including those a search never reaches.
        Measured (docs/results.md): half the demonstrations as drills, 4,000 steps: greedy 0.50 -> 0.555,
        finishes from 56 % of those states; twice the steps without drills did more (0.695, 67 %); the
        shipped config, 12,000 steps with 3 in 10 drills: 0.845, 92 %.
        """
        numbers, target = list(problem.numbers), problem.target
        order, turns = first_moves(numbers), []
        for k, move in enumerate(order):
            after = apply(numbers, move)  # two numbers: first moves are legal, and there are three
            observation = render(after, target, order[: k + 1]) + "\n"  # as GymTextEpisode shows it
            turns.append((observation, solution_step(after, target, rng) or RESTART))
        return turns

    def search_turns(
        self, problem: CountdownProblem, rng: random.Random, skill: float
    ) -> list[tuple[str, str]]:
        """A search the environment keeps honest (``task.demos: search``; needs ``restart`` and
        ``show_tried``): first moves in ``first_moves`` order, each followed by the moves that finish
        from there, or by ``restart`` the moment none does. With probability ``skill`` the first try is
        instead a move that keeps the target reachable (a guess that works). At a dead end of two
        numbers the demonstration slips with probability ``SEARCH_SLIP``: a wrong move, leaving one
        number that is not the target, then ``restart`` (``learns_turn`` learns the restart, not the
        slip: a base that never saw one number left did not know what to write there, and 84 of 200
        greedy episodes of such a base ended on an invalid move from one number left).

        Why this shape: with skilled moves only, the base must guess a good first move outright, and a
        tiny model does that for ~40 % of held-out problems (the capacity check). A fixed order makes
        the next try a function of the last one listed (not of the whole list, which a tiny model
        copies badly), and with 3 numbers the move after the first is a check of at most six
        operations on two numbers. What is left to learn by RL is which first move to try first.
        """
        episode = self.episode(problem)
        obs, turns = episode.prompt, []
        order = first_moves(list(problem.numbers))
        while True:
            env = episode.env
            if not env.at_start:
                action = solution_step(env.numbers, env.target, rng) or RESTART
                if action == RESTART and len(env.numbers) == 2 and rng.random() < SEARCH_SLIP:
                    action = random_step(env.numbers, rng)  # a wrong check: one number, not the target
            elif not env.tried and rng.random() < skill:
                action = solution_step(env.numbers, env.target, rng) or order[0]
            else:
                untried = [a for a in order if a not in env.tried]
                action = untried[0] if untried else order[0]
            turns.append((obs, action))
            result = episode.step(action)
            if result.done:
                return turns
            obs = result.observation
