"""FrozenLake as text: Gymnasium compliance, dynamics, value iteration, the Task wrapper.

Run: pytest tests/test_frozenlake.py -q
"""

from __future__ import annotations

import random
import time
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tinyzero.config import TaskConfig
from tinyzero.environments import make_task
from tinyzero.environments.frozenlake_env import (
    ENV_ID,
    FrozenLakeTextEnv,
    optimal_policy,
    parse_actions,
    render_grid,
    value_iteration,
)

STANDARD = ("SFFF", "FHFH", "FFFH", "HFFG")  # Gymnasium's "4x4" map
SHORTEST = ["Down", "Down", "Right", "Right", "Down", "Right"]  # a 6-move path on STANDARD
ALLOWED = {chr(c) for c in range(32, 127)} | {"\n"}


def _env(**kw) -> FrozenLakeTextEnv:
    env = FrozenLakeTextEnv(desc=STANDARD, **kw)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"is_slippery": True, "max_actions_per_turn": 3}, {"desc": STANDARD, "size": 9}, {"size": 6}],
)
def test_check_env_passes(kwargs: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # only the "no spec, cannot test render modes" notice
        check_env(FrozenLakeTextEnv(**kwargs))
    check_env(gymnasium.make(ENV_ID, render_mode="ansi", **kwargs).unwrapped)


def test_registered_and_seeded() -> None:
    env = gymnasium.make(ENV_ID, size=5, render_mode="ansi")
    obs, info = env.reset(seed=7)
    assert len(info["desc"]) == 5 and obs.count("\n") == 4 and obs[0] == "P"
    assert env.render() == obs
    assert env.reset(seed=7)[0] == obs  # the random map comes from the seed
    assert {env.reset(seed=s)[0] for s in range(20)} != {obs}
    result = env.step(env.action_space.sample())
    assert len(result) == 5
    env.close()


def test_render_grid() -> None:
    assert render_grid(STANDARD, 0, 0) == "P___\n_O_O\n___O\nO__G"
    assert render_grid(STANDARD, 1, 1) == "____\n_X_O\n___O\nO__G"
    assert render_grid(STANDARD, 3, 3) == "____\n_O_O\n___O\nO__W"


@pytest.mark.parametrize(
    ("text", "k", "expected"),
    [
        ("Left", 1, [0]),
        ("down", 1, [1]),
        (" RIGHT\n", 1, [2]),
        ("Up", 1, [3]),
        ("Left Down", 2, [0, 1]),
        ("left,down, right", 3, [0, 1, 2]),
        ("Left Down", 1, None),  # too many for this env
        ("", 1, None),
        ("   ", 1, None),
        ("Forward", 1, None),
        ("Lef", 1, None),
        ("Left.", 1, None),
        ("<answer>Left</answer>", 1, None),
        ("\uff2ceft", 1, None),  # fullwidth L
        ("L\u00e9ft", 1, None),
        ("Left " * 30, 40, None),  # over 100 characters
        (None, 1, None),
        (3, 1, None),
    ],
)
def test_parse_actions(text: object, k: int, expected: list[int] | None) -> None:
    assert parse_actions(text, k) == expected


def test_goal_gives_plus_one_and_ends() -> None:
    env = _env(max_turns=10)
    for i, move in enumerate(SHORTEST):
        obs, reward, terminated, truncated, info = env.step(move)
        last = i == len(SHORTEST) - 1
        assert (reward, terminated, truncated) == ((1.0, True, False) if last else (0.0, False, False))
        assert info["success"] is last and info["format_ok"] is True
        assert info["reason"] == ("solved" if last else "moving")
    assert obs.endswith("W") and "P" not in obs
    with pytest.raises(RuntimeError):
        env.step("Left")


def test_several_moves_per_turn_stop_at_termination() -> None:
    env = _env(max_actions_per_turn=6)
    obs, reward, terminated, _, info = env.step(" ".join(SHORTEST))
    assert (reward, terminated, info["reason"], info["moves"]) == (1.0, True, "solved", 6)
    env = _env(max_actions_per_turn=3)
    obs, reward, terminated, _, info = env.step("Down, Right, Right")  # hole after the second move
    assert (reward, terminated, info["reason"], info["moves"], info["success"]) == (
        0.0,
        True,
        "hole",
        2,
        False,
    )
    assert obs.split("\n")[1] == "_X_O"


def test_hole_ends_episode() -> None:
    env = _env()
    env.step("Right")
    obs, reward, terminated, truncated, info = env.step("Down")
    assert (reward, terminated, truncated, info["reason"], info["success"]) == (
        0.0,
        True,
        False,
        "hole",
        False,
    )
    assert "X" in obs


def test_invalid_action_penalty_no_move_and_counts() -> None:
    env = _env(max_turns=3, invalid_penalty=0.25)
    start = env.reset(seed=0)[0]
    obs, reward, terminated, truncated, info = env.step("Jump!")
    assert obs == start and reward == -0.25 and not terminated and not truncated
    assert info == {"success": False, "format_ok": False, "reason": "invalid_action", "turn": 1, "moves": 0}
    env.step("Left")  # into the border: no move, a valid turn
    obs, reward, terminated, truncated, info = env.step("nonsense")
    assert obs == start and reward == -0.25 and truncated and not terminated
    assert info["reason"] == "out_of_turns" and info["format_ok"] is False


def test_truncation_at_max_turns() -> None:
    env = _env(max_turns=4)
    for turn in range(1, 5):
        _, reward, terminated, truncated, info = env.step("Up")
        assert reward == 0.0 and not terminated
        assert truncated is (turn == 4) and info["turn"] == turn
    assert info["reason"] == "out_of_turns" and info["success"] is False


@pytest.mark.parametrize(
    "action", ["Left" * 250_000, "\U0001f600" * 100_000, "Left " * 200_000, "\x00" * 10**6, ""]
)
def test_hostile_actions_are_invalid_and_fast(action: str) -> None:
    env = _env()
    t0 = time.perf_counter()
    _, reward, terminated, _, info = env.step(action)
    assert time.perf_counter() - t0 < 0.5
    assert reward == -0.1 and not terminated and info["reason"] == "invalid_action"


def test_reset_options_desc() -> None:
    env = FrozenLakeTextEnv(size=4)
    obs, info = env.reset(seed=1, options={"desc": list(STANDARD)})
    assert info["desc"] == STANDARD and obs == render_grid(STANDARD, 0, 0)
    with pytest.raises(ValueError, match="size=4"):
        env.reset(options={"desc": ["SF", "FG"]})
    with pytest.raises(ValueError, match="invalid FrozenLake map"):
        env.reset(options={"desc": ["SFF", "FFF", "FFQ"][:2]})


# --- value iteration ---------------------------------------------------------------------------------
def test_value_iteration_non_slippery() -> None:
    assert value_iteration(STANDARD, False) == 1.0
    assert value_iteration(STANDARD, False, horizon=6) == 1.0
    assert value_iteration(STANDARD, False, horizon=5) == 0.0  # shorter than the shortest path
    assert value_iteration(["SH", "HG"], False) == 0.0  # goal walled off
    assert value_iteration(["SF", "FG"], False, horizon=2) == 1.0


def test_value_iteration_slippery_standard_map() -> None:
    v = value_iteration(STANDARD, True)
    assert v == pytest.approx(14 / 17, abs=1e-6)  # 0.8235..., the known optimum of the 4x4 map with γ = 1
    assert value_iteration(STANDARD, True, horizon=2000) == pytest.approx(v, abs=1e-6)
    assert value_iteration(STANDARD, True, horizon=10) < v
    assert value_iteration(STANDARD, True, horizon=5) == 0.0

    # Independent check: play the greedy policy in the text env (Gymnasium's sampled dynamics).
    policy = optimal_policy(STANDARD, True)
    env = FrozenLakeTextEnv(desc=STANDARD, is_slippery=True, max_turns=1000)
    wins, episodes = 0, 800
    for seed in range(episodes):
        env.reset(seed=seed)
        while True:
            _, reward, terminated, truncated, info = env.step(
                ["Left", "Down", "Right", "Up"][policy[env.state]]
            )
            if terminated or truncated:
                wins += info["success"]
                break
    assert wins / episodes == pytest.approx(v, abs=0.06)


def test_slippery_dynamics_are_seeded() -> None:
    def trajectory(seed: int) -> list[str]:
        env = FrozenLakeTextEnv(desc=STANDARD, is_slippery=True, max_turns=30)
        obs = [env.reset(seed=seed)[0]]
        for _ in range(30):
            o, _, terminated, truncated, _ = env.step("Down")
            obs.append(o)
            if terminated or truncated:
                break
        return obs

    assert trajectory(3) == trajectory(3)
    assert len({tuple(trajectory(s)) for s in range(10)}) > 1


# --- the Task ----------------------------------------------------------------------------------------
def _task(**kw):
    return make_task(TaskConfig(**{"name": "frozenlake", "num_train": 300, "num_test": 30, **kw}))


def test_problems_disjoint_deterministic_solvable() -> None:
    task = _task()
    train, test = task.problems("train"), task.problems("test")
    assert len(train) == 300 and len(test) == 30
    assert not set(train) & set(test) and len(set(train)) == 300
    assert train == _task().problems("train") and task.problems("train", 40) == train[:40]
    assert _task(seed=1).problems("train", 40) != train[:40]
    assert not set(_task(seed=1).problems("test", 30)) & set(train)
    for desc in train[:50] + test:
        assert len(desc) == 4 and desc[0][0] == "S" and desc[-1][-1] == "G"
        assert value_iteration(desc, False) == 1.0
        assert 0.0 <= task.optimum(desc) <= 1.0
    with pytest.raises(ValueError, match="too small"):
        _task(size=2).problems("train", 10)


def test_task_episode_text() -> None:
    task = _task(max_turns=10)
    assert task.max_turns == 10 and task.describe(STANDARD) == "SFFF/FHFH/FFFH/HFFG"
    assert task.optimum(STANDARD) == 1.0
    assert _task(max_turns=5).optimum(STANDARD) == 0.0
    ep = task.episode(STANDARD)
    assert ep.prompt == "P___\n_O_O\n___O\nO__G\n"
    res = ep.step("Down")
    assert res.observation == "____\nPO_O\n___O\nO__G\n" and res.reward == 0.0 and not res.done
    assert res.info["reason"] == "moving"
    for move in SHORTEST[1:]:
        res = ep.step(move)
    assert (res.observation, res.reward, res.done, res.info["success"]) == ("", 1.0, True, True)
    with pytest.raises(RuntimeError):
        ep.step("Down")


@pytest.mark.parametrize("kw", [{}, {"max_actions_per_turn": 3}, {"is_slippery": True}])
def test_behaviour_turns(kw: dict) -> None:
    task = _task(**kw)
    k = task.cfg.max_actions_per_turn
    rng = random.Random(0)
    outcomes = {}
    for skill in (0.0, 1.0):
        success = []
        for desc in task.problems("train", 60):
            turns = task.behaviour_turns(desc, rng, skill)
            assert 1 <= len(turns) <= task.max_turns
            assert turns[0][0] == task.episode(desc).prompt
            ep = task.episode(desc, seed=0)
            for obs, action in turns:
                assert set(obs + action) <= ALLOWED
                moves = parse_actions(action, k)
                assert moves is not None and 1 <= len(moves) <= k
            # Replaying a non-slippery demonstration reproduces its observations.
            if not task.cfg.is_slippery:
                assert ep.prompt == turns[0][0]
                for i, (_, action) in enumerate(turns):
                    res = ep.step(action)
                    if i + 1 < len(turns):
                        assert res.observation == turns[i + 1][0]
                assert res.done
                success.append(res.info["success"])
        outcomes[skill] = np.mean(success) if success else None
    if not task.cfg.is_slippery:
        assert outcomes[1.0] > outcomes[0.0]  # the naive heuristic beats random walks


def _shortest_moves(desc: tuple[str, ...]) -> int | None:
    """Breadth-first search over frozen cells: fewest moves from S to G (None if unreachable)."""
    n = len(desc)
    start, goal = divmod("".join(desc).index("S"), n), divmod("".join(desc).index("G"), n)
    dist, frontier = {start: 0}, [start]
    while frontier:
        nxt = []
        for r, c in frontier:
            for r2, c2 in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= r2 < n and 0 <= c2 < n and desc[r2][c2] != "H" and (r2, c2) not in dist:
                    dist[r2, c2] = dist[r, c] + 1
                    nxt.append((r2, c2))
        frontier = nxt
    return dist.get(goal)


def _demo_outcome(task, desc: tuple[str, ...], seed: int) -> tuple[bool, int]:
    """Replays the demonstration that ``behaviour_turns(desc, Random(seed), 1.0)`` writes in a fresh
    episode with the same dynamics seed (its first draw): (reached the goal, primitive moves)."""
    turns = task.behaviour_turns(desc, random.Random(seed), 1.0)
    ep = task.episode(desc, seed=random.Random(seed).getrandbits(31))
    seen = ep.prompt
    for obs, action in turns:
        assert obs == seen  # the same dynamics seed replays the demonstration's slips
        res = ep.step(action)
        seen = res.observation
    assert res.done
    return bool(res.info["success"]), sum(len(a.split()) for _, a in turns)


@pytest.mark.parametrize("k", [1, 3])
def test_optimal_demos_take_a_shortest_path(k: int) -> None:
    """task.demos=optimal, non-slippery, skill 1: every demonstration reaches the goal in exactly as
    many moves as a breadth-first search finds (value iteration's ties, broken by γ < 1, pick a fastest
    route; several moves a turn are tracked through walls)."""
    task = _task(demos="optimal", max_actions_per_turn=k, max_turns=20)
    for i, desc in enumerate(task.problems("train", 80)):
        assert _demo_outcome(task, desc, i) == (True, _shortest_moves(desc))


def test_optimal_demos_know_the_ice() -> None:
    """On slippery ice "toward the goal" is no skill; value iteration's action is. Followed on every move
    for 30 turns, it reaches the goal on ~0.41 of these maps (the optimum), the heuristic on ~0.06."""
    rates = {}
    for demos in ("heuristic", "optimal"):
        task = _task(demos=demos, is_slippery=True, max_turns=30)
        maps = task.problems("train", 200)
        rates[demos] = np.mean([_demo_outcome(task, d, i)[0] for i, d in enumerate(maps)])
    assert rates["heuristic"] < 0.15 and rates["optimal"] > 0.3, rates


def test_mixed_sizes_share_the_splits_and_scale_the_turns() -> None:
    """task.sizes: every size in equal, interleaved shares; a map of side n gets max_turns scaled from
    task.size (8 turns at 4×4 → 11 at 5×5, 14 at 6×6), and its optimum uses that horizon (1 on every
    solvable non-slippery map, where 8 turns would make most 6×6 maps unsolvable)."""
    t = _task(sizes=[4, 5, 6], max_turns=8, num_train=30, num_test=9)
    test, train = t.problems("test"), t.problems("train")
    assert [len(p) for p in test] == [4, 5, 6] * 3  # interleaved: any prefix is mixed
    assert sorted(len(p) for p in train) == [4] * 10 + [5] * 10 + [6] * 10
    assert not set(test) & set(train) and len(set(train)) == 30
    assert t.problems("test") == test  # deterministic
    assert [t.turns_for(n) for n in (4, 5, 6)] == [8, 11, 14] and t.max_turns == 14
    for p in test:
        assert t.episode(p, seed=0).env.max_turns == t.turns_for(len(p))
        assert t.optimum(p) == 1.0
    assert _task(sizes=[4], num_test=5).problems("test") == _task(num_test=5).problems("test")
    eight = _task(size=6, max_turns=8, num_test=9)  # the fixed horizon it replaces
    assert sum(eight.optimum(p) == 0.0 for p in eight.problems("test")) > 0
