"""Exact greedy success on FrozenLake (``policy_value``, ``--exact``) against independent derivations:
the real environment played many times, and the greedy episodes the evaluator plays.

Run: pytest tests/test_exact.py -q
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import LAKE3

from tinyzero.config import TaskConfig, load_config
from tinyzero.environments import make_task
from tinyzero.environments.frozenlake_env import ACTION_NAMES, optimal_policy, policy_value
from tinyzero.evaluation import exact_greedy_success
from tinyzero.models.io import load_model_dir
from tinyzero.pretrain import ensure_base_model
from tinyzero.rollout import SamplingSettings, run_episodes

ROOT = Path(__file__).resolve().parents[1]
STANDARD = ("SFFF", "FHFH", "FFFH", "HFFG")  # Gymnasium's "4x4" map


def _played(desc: tuple[str, ...], moves: list, turns: int, episodes: int) -> float:
    """Success rate of ``moves`` (a move per state) over many episodes of the real text environment."""
    task = make_task(TaskConfig(name="frozenlake", is_slippery=True, max_turns=turns, size=len(desc)))
    rng, wins = random.Random(0), 0
    for _ in range(episodes):
        ep = task.episode(desc, seed=rng.getrandbits(31))
        while True:
            a = moves[ep.env.state]
            res = ep.step("Jump" if a is None else ACTION_NAMES[a])
            if res.done:
                wins += res.info["success"]
                break
    return wins / episodes


def test_policy_value_counts_moves_and_turns() -> None:
    """Non-slippery: a shortest path is certain within its 6 moves and impossible in 5; a policy that
    never writes a valid move never arrives."""
    path = {0: 1, 4: 1, 8: 2, 9: 2, 10: 1, 14: 2}  # Down Down Right Right Down Right: each cell's move
    moves = [path.get(s, 0) for s in range(16)]
    assert policy_value(STANDARD, moves, False, 6) == 1.0
    assert policy_value(STANDARD, moves, False, 5) == 0.0
    assert policy_value(STANDARD, [None] * 16, False, 50) == 0.0


@pytest.mark.parametrize("name", ["value iteration", "always right", "invalid on the way"])
def test_policy_value_is_the_mean_of_many_slippery_episodes(name: str) -> None:
    """Slippery: the exact value lies within 4 standard errors of 3,000 episodes of the real environment
    (an invalid turn leaves the player where the policy writes it again)."""
    moves: list = [int(a) for a in optimal_policy(STANDARD, True, gamma=0.95)]
    if name == "always right":
        moves = [2] * 16
    elif name == "invalid on the way":
        moves[10] = None  # a cell most routes pass: a player who reaches it stays there for good
    exact = policy_value(STANDARD, moves, True, 20)
    played = _played(STANDARD, moves, 20, 3000)
    assert abs(exact - played) < 4 * np.sqrt(max(exact * (1 - exact), 1e-3) / 3000), (exact, played)


@pytest.fixture(scope="module")
def lake_model(cache_dir: Path):
    """A 3×3 base that solves about half its maps greedily (pre-trained in ~5 s on shortest paths)."""
    overrides = [f"pretrain.cache_dir={cache_dir}", *LAKE3, "pretrain.skill=0.9", "task.demos=optimal"]
    cfg = load_config(ROOT / "configs" / "smoke.yaml", overrides)
    path = ensure_base_model(cfg, "cpu", progress=False)
    model, tok = load_model_dir(path)
    return cfg, model.eval(), tok, path


def test_exact_equals_the_greedy_episode_on_every_non_slippery_map(lake_model) -> None:
    """Non-slippery dynamics are deterministic: map by map, the exact value is the greedy episode's 0/1
    (the maps' outcomes differ, so a constant answer cannot pass). 4 turns, the fewest any 3×3 map
    needs: one turn less or more in either count changes some outcome."""
    cfg, model, tok, _ = lake_model
    task = make_task(TaskConfig(**{**vars(cfg.task), "max_turns": 4}))
    maps = task.problems("train")[:16]
    greedy = SamplingSettings(cfg.rollout.max_new_tokens, 0, greedy=True)
    played = [float(e.success) for e in run_episodes(model, tok, task, maps, greedy)]
    exact = [exact_greedy_success(model, tok, task, m, cfg.rollout.max_new_tokens) for m in maps]
    assert 0 < sum(played) < len(maps), played
    assert exact == played


def test_exact_is_the_mean_of_many_slippery_greedy_episodes(lake_model) -> None:
    """Slippery: the exact value of the model's greedy policy against 400 greedy episodes per map."""
    cfg, model, tok, _ = lake_model
    task = make_task(TaskConfig(**{**vars(cfg.task), "is_slippery": True}))
    greedy = SamplingSettings(cfg.rollout.max_new_tokens, 0, greedy=True)
    for m in task.problems("train")[:3]:
        exact = exact_greedy_success(model, tok, task, m, cfg.rollout.max_new_tokens)
        eps = run_episodes(model, tok, task, [m] * 400, greedy, torch.Generator().manual_seed(0))
        played = np.mean([e.success for e in eps])
        assert abs(exact - played) < 4 * np.sqrt(max(exact * (1 - exact), 1e-3) / 400), (m, exact, played)


def test_exact_flag_refuses_a_policy_that_is_not_a_move_per_cell(lake_model) -> None:
    """--exact with the episode so far in the context: one line, exit 2, before any evaluation."""
    cfg, _, _, path = lake_model
    args = ["--checkpoint", str(path), "--config", str(ROOT / "configs" / "smoke.yaml"), *LAKE3]
    out = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *args, "rollout.history=-1", "--exact", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: --exact needs rollout.history=0 (the model sees only the grid): only then is the greedy "
        "policy a fixed move per cell"
    ]


def test_exact_flag_reports_each_group_in_the_json(lake_model, tmp_path: Path) -> None:
    """--exact --json: the key exact holds, per group, the mean of the per-map exact values of the maps
    evaluated (the held-out ones); without --exact the key is null."""
    cfg, model, tok, path = lake_model
    args = ["--checkpoint", str(path), "--config", str(ROOT / "configs" / "smoke.yaml"), *LAKE3]
    for flag, name in (["--exact"], "with.json"), ([], "without.json"):
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "evaluate.py"),
                *args,
                *flag,
                "--samples",
                "1",
                "--no-progress",
                "--json",
                str(tmp_path / name),
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    task = make_task(cfg.task)
    maps = task.problems("test", cfg.training.eval_problems)
    want = np.mean([exact_greedy_success(model, tok, task, m, cfg.rollout.max_new_tokens) for m in maps])
    [group] = json.loads((tmp_path / "with.json").read_text())["exact"]
    assert group["problems"] == len(maps) and group["exact_greedy_success"] == pytest.approx(want)
    assert json.loads((tmp_path / "without.json").read_text())["exact"] is None
