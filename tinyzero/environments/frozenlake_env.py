"""FrozenLake as text: Gymnasium's own ``FrozenLake-v1`` dynamics, a text grid in, move words out.

Three layers, each usable on its own:

- ``FrozenLakeTextEnv``: a ``gymnasium.Env`` with ``Text`` observation and action spaces, registered as
  ``tinyzero/FrozenLakeText-v0`` (``gymnasium.make("tinyzero/FrozenLakeText-v0", size=4)``).
- ``value_iteration``: the optimal probability of reaching the goal, computed from the inner env's
  transition table ``P`` (the ceiling to report success against).
- ``FrozenLakeTask``: the ``Task`` the trainer uses (seeded random maps, text episodes, demonstrations).
"""

from __future__ import annotations

import math
import random
import re
from functools import lru_cache
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.toy_text.frozen_lake import generate_random_map, is_valid

from tinyzero.environments.base import GymTextEpisode, ProblemSpaceTooSmall, Task, sample_problems

ENV_ID = "tinyzero/FrozenLakeText-v0"
ACTION_NAMES = ("Left", "Down", "Right", "Up")  # index = Gymnasium's action id
_ACTION_IDS = {name.lower(): i for i, name in enumerate(ACTION_NAMES)}
_DELTAS = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (row, col) change of each action
MAX_ACTION_CHARS = 100
_SEPARATORS = re.compile(r"[ ,\t\n\r]+")
OBS_CHARSET = "\nGOPWX_"
ACTION_CHARSET = "".join(sorted(set("".join(ACTION_NAMES) + "".join(ACTION_NAMES).upper() + " ,")))
_CELL = {"S": "_", "F": "_", "H": "O", "G": "G"}
_PLAYER_ON = {"S": "P", "F": "P", "H": "X", "G": "W"}


def parse_actions(text: object, max_actions: int) -> list[int] | None:
    """Gymnasium action ids of a turn's text, or None if the turn is invalid.

    Valid: 1..max_actions words from Left/Down/Right/Up (any case), separated by spaces or commas
    (surrounding whitespace ignored), at most MAX_ACTION_CHARS characters in all.
    """
    if not isinstance(text, str) or len(text) > MAX_ACTION_CHARS:
        return None
    words = [w for w in _SEPARATORS.split(text) if w]
    if not 1 <= len(words) <= max_actions:
        return None
    ids = [_ACTION_IDS.get(w.lower()) for w in words]
    return None if any(i is None for i in ids) else ids  # type: ignore[return-value]


def render_grid(desc: tuple[str, ...] | list[str], row: int, col: int) -> str:
    """Rows joined by "\\n": P player, _ frozen or start, O hole, G goal, X fell in a hole, W on goal."""
    lines = []
    for r, line in enumerate(desc):
        cells = [_CELL[ch] for ch in line]
        if r == row:
            cells[col] = _PLAYER_ON[line[col]]
        lines.append("".join(cells))
    return "\n".join(lines)


def check_desc(desc: Any, size: int | None = None) -> tuple[str, ...]:
    """``desc`` as a tuple of rows after checking it is a square map over S F H G with one S and a G."""
    rows = tuple(desc) if isinstance(desc, list | tuple) else ()
    ok = (
        len(rows) >= 2
        and all(isinstance(r, str) and len(r) == len(rows) and set(r) <= set("SFHG") for r in rows)
        and "".join(rows).count("S") == 1
        and "G" in "".join(rows)
    )
    if not ok:
        raise ValueError(
            f"invalid FrozenLake map {desc!r}: expected n >= 2 rows of n characters from S F H G, one S"
        )
    if size is not None and len(rows) != size:
        raise ValueError(f"map is {len(rows)}x{len(rows)} but this env was built with size={size}")
    return rows


def _make_inner(desc: tuple[str, ...], is_slippery: bool, max_steps: int = 100) -> gymnasium.Env:
    return gymnasium.make(
        "FrozenLake-v1",
        desc=list(desc),
        is_slippery=is_slippery,
        max_episode_steps=max(100, max_steps),
        disable_env_checker=True,
    )


class FrozenLakeTextEnv(gymnasium.Env):
    """FrozenLake with a text grid as observation and move words as action (Gymnasium's dynamics).

    ## Dynamics
    Each turn's moves are applied one by one to an inner ``gymnasium.make("FrozenLake-v1", desc=...,
    is_slippery=...)``: on ice a move goes where intended (non-slippery) or, slippery, in the intended
    direction or either perpendicular one with probability 1/3 each; moving into the border leaves the
    player in place. The map is ``desc`` if given, else a fresh solvable random map per ``reset``
    (``generate_random_map(size, p_frozen)``, seeded from ``self.np_random``).

    ## Action Space
    ``Text(max_length=100)``: one turn is 1..``max_actions_per_turn`` words from ``Left Down Right Up``
    (case-insensitive), separated by spaces or commas. Anything else (empty, too many moves, other words,
    over 100 characters, unicode) is an invalid turn: no move, the turn still counts.

    ## Observation Space
    ``Text``: the ``size`` x ``size`` grid, rows joined by "\\n": ``P`` player, ``_`` frozen (the start too
    when the player is elsewhere), ``O`` hole, ``G`` goal, ``X`` player fell in a hole, ``W`` player on the
    goal. Example (start of the standard 4x4 map)::

        P___
        _O_O
        ___O
        O__G

    ## Rewards
    +1 for reaching the goal, ``-invalid_penalty`` for an invalid turn, 0 otherwise.

    ## Episode End
    Terminated when the player reaches the goal or falls in a hole (moves left in that turn are dropped).
    Truncated after ``max_turns`` turns (invalid turns included).

    ## Information
    ``step`` info: ``success`` (reached the goal), ``format_ok`` (the turn parsed), ``reason`` (``solved``,
    ``hole``, ``out_of_turns``, ``invalid_action``, ``moving``), ``turn``, ``moves`` (moves applied this
    turn). ``reset`` info: ``desc`` (the map, a tuple of rows of S F H G).

    ## Arguments
    ``size=4`` (side of random maps), ``is_slippery=False``, ``p_frozen=0.8`` (probability that a random
    cell is frozen), ``max_turns=8``, ``max_actions_per_turn=1``, ``invalid_penalty=0.1``, ``desc=None``
    (fixed map; then ``size`` is its side), ``render_mode=None | "ansi"``. ``reset(options={"desc": rows})``
    plays one episode on the given map (same side as ``size``).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        size: int = 4,
        is_slippery: bool = False,
        p_frozen: float = 0.8,
        max_turns: int = 8,
        max_actions_per_turn: int = 1,
        invalid_penalty: float = 0.1,
        desc: list[str] | tuple[str, ...] | None = None,
        render_mode: str | None = None,
    ):
        if desc is not None:
            desc = check_desc(desc)
            size = len(desc)
        if size < 2 or max_turns < 1 or max_actions_per_turn < 1 or not 0.0 < p_frozen <= 1.0:
            raise ValueError("need size >= 2, max_turns >= 1, max_actions_per_turn >= 1, 0 < p_frozen <= 1")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.size = int(size)
        self.is_slippery = bool(is_slippery)
        self.p_frozen = float(p_frozen)
        self.max_turns = int(max_turns)
        self.max_actions_per_turn = int(max_actions_per_turn)
        self.invalid_penalty = float(invalid_penalty)
        self.fixed_desc: tuple[str, ...] | None = desc
        self.render_mode = render_mode
        obs_len = self.size * (self.size + 1) - 1
        self.observation_space = spaces.Text(max_length=obs_len, min_length=obs_len, charset=OBS_CHARSET)
        self.action_space = spaces.Text(max_length=MAX_ACTION_CHARS, charset=ACTION_CHARSET)
        self._inner_cache: dict[tuple[str, ...], gymnasium.Env] = {}
        self._inner: gymnasium.Env | None = None
        self.desc: tuple[str, ...] = ()
        self.state = 0
        self.turn = 0
        self._finished = True

    # --- helpers -------------------------------------------------------------------------------------
    def _inner_for(self, desc: tuple[str, ...]) -> gymnasium.Env:
        inner = self._inner_cache.get(desc)
        if inner is None:
            if len(self._inner_cache) >= 32:  # random maps: keep the cache small
                for env in self._inner_cache.values():
                    env.close()
                self._inner_cache.clear()
            inner = _make_inner(desc, self.is_slippery, self.max_turns * self.max_actions_per_turn + 1)
            self._inner_cache[desc] = inner
        return inner

    def _obs(self) -> str:
        return render_grid(self.desc, self.state // self.size, self.state % self.size)

    def _tile(self) -> str:
        return self.desc[self.state // self.size][self.state % self.size]

    # --- Gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        if options and options.get("desc") is not None:
            desc = check_desc(options["desc"], self.size)
        elif self.fixed_desc is not None:
            desc = self.fixed_desc
        else:
            map_seed = int(self.np_random.integers(2**31 - 1))
            desc = tuple(generate_random_map(size=self.size, p=self.p_frozen, seed=map_seed))
        self.desc = desc
        self._inner = self._inner_for(desc)
        state, _ = self._inner.reset(seed=int(self.np_random.integers(2**31 - 1)))
        self.state = int(state)
        self.turn = 0
        self._finished = False
        return self._obs(), {"desc": self.desc}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._finished or self._inner is None:
            raise RuntimeError("the episode is over: call reset() before step()")
        self.turn += 1
        moves = parse_actions(action, self.max_actions_per_turn)
        reward, terminated, applied = 0.0, False, 0
        if moves is None:
            reward = -self.invalid_penalty
            reason = "invalid_action"
        else:
            for move in moves:
                state, r, terminated, _, _ = self._inner.step(move)
                self.state = int(state)
                reward += float(r)
                applied += 1
                if terminated:
                    break
            reason = "moving"
            if terminated:
                reason = "solved" if self._tile() == "G" else "hole"
        truncated = not terminated and self.turn >= self.max_turns
        if truncated:
            reason = "out_of_turns"
        self._finished = terminated or truncated
        info = {
            "success": bool(terminated and self._tile() == "G"),
            "format_ok": moves is not None,
            "reason": reason,
            "turn": self.turn,
            "moves": applied,
        }
        return self._obs(), reward, bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._obs() if self.desc else ""
        return None

    def close(self) -> None:
        for env in self._inner_cache.values():
            env.close()
        self._inner_cache.clear()
        self._inner = None


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="tinyzero.environments.frozenlake_env:FrozenLakeTextEnv")


# --- value iteration -----------------------------------------------------------------------------------
def _tables(desc: tuple[str, ...], is_slippery: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """From the inner env's ``P``: T[s, a, s'] (non-terminal continuation), R[s, a] expected reward, start."""
    env = _make_inner(desc, is_slippery)
    inner = env.unwrapped
    n_s, n_a = inner.observation_space.n, inner.action_space.n
    T = np.zeros((n_s, n_a, n_s))
    R = np.zeros((n_s, n_a))
    for s, by_action in inner.P.items():
        for a, transitions in by_action.items():
            for p, s2, r, terminated in transitions:
                R[s, a] += p * r
                if not terminated:
                    T[s, a, s2] += p
    start = int(np.argmax(inner.initial_state_distrib))
    env.close()
    return T, R, start


@lru_cache(maxsize=4096)
def _values(
    desc: tuple[str, ...], is_slippery: bool, gamma: float, horizon: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    T, R, start = _tables(desc, is_slippery)
    V = np.zeros(T.shape[0])
    Q = R.copy()
    steps = horizon if horizon is not None else 1_000_000
    for _ in range(steps):
        Q = R + gamma * (T @ V)  # Q(s,a) = Σ p·(r + γ·[not terminal]·V(s'))
        V_new = Q.max(axis=1)
        delta = np.abs(V_new - V).max()
        V = V_new
        if horizon is None and delta < 1e-13:
            break
    return V, Q, start


def value_iteration(
    desc: list[str] | tuple[str, ...], is_slippery: bool, gamma: float = 1.0, horizon: int | None = None
) -> float:
    """Optimal probability (γ = 1) of reaching the goal from the start, from Gymnasium's transition table.

    ``horizon``: at most this many primitive moves (finite-horizon backups); None: iterate to convergence
    (the infinite-horizon value). With several moves a turn on a slippery map the policy commits to a turn's
    moves before seeing where it slid, so there this is an upper bound (the "ceiling").
    """
    if horizon is not None and horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    V, _, start = _values(check_desc(desc), bool(is_slippery), float(gamma), horizon)
    return float(V[start])


def policy_value(
    desc: list[str] | tuple[str, ...], moves: list[int | None], is_slippery: bool, horizon: int
) -> float:
    """Exact probability that the stationary policy ``moves`` (a move per state, None = an invalid turn)
    reaches the goal from the start within ``horizon`` turns of one move. An invalid turn leaves the
    player where it is, where the same policy writes it again: such a state is worth 0."""
    T, R, start = _tables(check_desc(desc), bool(is_slippery))
    stuck = np.array([a is None for a in moves])
    a = np.array([0 if m is None else m for m in moves])
    rows = np.arange(T.shape[0])
    V = np.zeros(T.shape[0])
    for _ in range(horizon):  # V_{t+1}(s) = R(s, π(s)) + Σ_s' T(s, π(s), s')·V_t(s')
        V = np.where(stuck, 0.0, R[rows, a] + T[rows, a] @ V)
    return float(V[start])


def optimal_policy(desc: list[str] | tuple[str, ...], is_slippery: bool, gamma: float = 1.0) -> np.ndarray:
    """Greedy action id per state w.r.t. the converged (infinite-horizon) values."""
    _, Q, _ = _values(check_desc(desc), bool(is_slippery), float(gamma), None)
    return Q.argmax(axis=1)


# --- the Task ------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def check_map_density(size: int, p: float, tries: int = 1000) -> None:
    """Raise ProblemSpaceTooSmall unless boards drawn as Gymnasium draws them are solvable often enough.

    Why: ``generate_random_map`` retries until a board has a path, with no limit, so a low ``p_frozen`` on
    a large map (e.g. 0.05 on 12x12) would hang the run. A bounded trial run turns that into an error.
    """
    rng = np.random.default_rng(0)
    for _ in range(tries):
        board = rng.choice(["F", "H"], (size, size), p=[p, 1 - p])
        board[0][0], board[-1][-1] = "S", "G"
        if is_valid(board.tolist(), size):
            return
    raise ProblemSpaceTooSmall(
        f"task.p_frozen={p} is too low for {size}x{size} maps: none of {tries} random boards had a path "
        f"to the goal; raise task.p_frozen (default 0.8) or use a smaller task.size"
    )


@lru_cache(maxsize=16)
def _random_maps(split: str, n: int, seed: int, size: int, p: float) -> tuple[tuple[str, ...], ...]:
    """Distinct solvable random maps of ``split`` (cached: small maps repeat a lot, so drawing is slow)."""
    check_map_density(size, p)

    def draw(rng: random.Random) -> tuple[str, ...]:
        return tuple(generate_random_map(size=size, p=p, seed=rng.getrandbits(31)))

    maps = sample_problems(
        split,
        n,
        seed,
        draw,
        canonical=lambda desc: "frozenlake:" + "/".join(desc),
        what=f"frozenlake({size}x{size}, p_frozen={p})",
        patience=2000,
    )
    return tuple(maps)


def scaled_max_turns(max_turns: int, trained_size: int, size: int) -> int:
    """The turn limit for ``size``×``size`` maps: the limit set for ``trained_size`` scaled like the
    corner-to-corner path (2·(size − 1) moves), never below it.

    Why: keeping a 4×4 limit of 8 turns on 6×6 maps (whose shortest path is 10 moves or more) makes
    every goal unreachable and the optimum 0 by construction; scaled, 6×6 gets 14 turns, the same
    slack over the corner path (8/6) as the 4×4 maps.
    """
    return max(max_turns, math.ceil(max_turns * (size - 1) / (trained_size - 1)))


class FrozenLakeTask(Task):
    """Random solvable maps (Gymnasium's generator), one text episode per map, several turns.

    ``task.sizes`` (e.g. [3, 4, 5, 6]) mixes map sizes: each split holds maps of every size in equal
    shares, interleaved, and a map of side n gets ``scaled_max_turns(task.max_turns, task.size, n)``
    turns (``task.max_turns`` is the limit for ``task.size``).
    """

    name = "frozenlake"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.sizes = [int(n) for n in cfg.sizes or [cfg.size]]
        self.max_turns = max(self.turns_for(n) for n in self.sizes)  # the longest episode of any size

    def turns_for(self, size: int) -> int:
        """The turn limit of a size × size map."""
        return scaled_max_turns(int(self.cfg.max_turns), int(self.cfg.size), size)

    def _env(self, size: int) -> FrozenLakeTextEnv:
        c = self.cfg
        return FrozenLakeTextEnv(
            size=size,
            is_slippery=c.is_slippery,
            p_frozen=c.p_frozen,
            max_turns=self.turns_for(size),
            max_actions_per_turn=c.max_actions_per_turn,
            invalid_penalty=c.invalid_penalty,
        )

    def problems(self, split: str, n: int | None = None) -> list[tuple[str, ...]]:
        n = self._split_n(split, n)
        if len(self.sizes) == 1:
            return list(_random_maps(split, n, self.cfg.seed, self.sizes[0], self.cfg.p_frozen))
        # Equal shares (the first sizes take the remainder), interleaved: any prefix stays mixed.
        shares = [n // len(self.sizes) + (i < n % len(self.sizes)) for i in range(len(self.sizes))]
        groups = [
            list(_random_maps(split, k, self.cfg.seed, size, self.cfg.p_frozen))
            for size, k in zip(self.sizes, shares, strict=True)
        ]
        return [g[i] for i in range(max(shares)) for g in groups if i < len(g)]

    def episode(self, problem: tuple[str, ...], seed: int | None = None) -> GymTextEpisode:
        """``seed`` fixes the slippery dynamics (irrelevant on non-slippery maps)."""
        desc = check_desc(problem)
        return GymTextEpisode(self._env(len(desc)), seed, {"desc": desc})

    def behaviour_turns(
        self, problem: tuple[str, ...], rng: random.Random, skill: float
    ) -> list[tuple[str, str]]:
        """Roll out: each move is, with probability ``skill``, the skilled move, else a uniformly random
        move that stays on the grid. The skilled move is the naive "toward the goal, ignore holes"
        heuristic (``task.demos: heuristic``), so RL has hole avoidance left to learn; or value
        iteration's action (``optimal``). On slippery ice the heuristic is no skill at all (followed on
        every move it reaches the goal in 30 turns on 0.064 of the held-out 4×4 maps, where the optimum
        is 0.41: a good slippery policy walks along walls and away from holes, rarely toward the goal)."""
        desc = check_desc(problem)
        n = len(desc)
        goal = "".join(desc).index("G")
        gr, gc = divmod(goal, n)
        # γ < 1 breaks value iteration's ties toward the faster route (γ = 1 lets the policy dawdle on
        # slippery ice: 0.394 success in 30 turns vs 0.410 with γ = 0.95, optimum 0.413).
        optimal = self.cfg.demos == "optimal"
        best = optimal_policy(desc, self.cfg.is_slippery, gamma=0.95) if optimal else None
        episode = self.episode(desc, seed=rng.getrandbits(31))
        obs, turns = episode.prompt, []
        k_max = self.cfg.max_actions_per_turn
        while True:
            r, c = divmod(episode.env.state, n)
            words = []
            for _ in range(1 if k_max == 1 else rng.randint(1, k_max)):
                legal = [a for a, (dr, dc) in enumerate(_DELTAS) if 0 <= r + dr < n and 0 <= c + dc < n]
                if best is not None:
                    a = int(best[r * n + c]) if rng.random() < skill else rng.choice(legal)
                else:
                    closer = [
                        a
                        for a in legal
                        if abs(r + _DELTAS[a][0] - gr) + abs(c + _DELTAS[a][1] - gc)
                        < abs(r - gr) + abs(c - gc)
                    ]
                    a = rng.choice(closer) if closer and rng.random() < skill else rng.choice(legal)
                words.append(ACTION_NAMES[a])
                # intended position (ignores slipping; a move into the wall stays, as on the ice)
                r, c = min(max(r + _DELTAS[a][0], 0), n - 1), min(max(c + _DELTAS[a][1], 0), n - 1)
                if best is not None and desc[r][c] in "GH":
                    break  # the episode would end there: later moves of the turn would teach junk
            action = " ".join(words)
            turns.append((obs, action))
            result = episode.step(action)
            if result.done:
                return turns
            obs = result.observation

    def optimum(self, problem: tuple[str, ...]) -> float:
        horizon = self.turns_for(len(problem)) * self.cfg.max_actions_per_turn
        return value_iteration(problem, self.cfg.is_slippery, horizon=horizon)

    def describe(self, problem: tuple[str, ...]) -> str:
        return "/".join(problem)
