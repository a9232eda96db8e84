"""The reward hook's fingerprint, and A*PO's stage-1 cache following it: editing ``compute_reward`` (same
name, new code) must never reuse a V* table computed with the old reward.

Run: pytest tests/test_reward.py -q        (a few seconds: one small stage 1 twice)
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tinyzero.algorithms import astarpo
from tinyzero.config import load_config
from tinyzero.reward import default_reward, reward_fingerprint
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]
SCALE = 1.0


def env_reward(task, episode):
    """The environment's reward."""
    return episode.reward


def env_reward_other_doc(task, episode):
    # a comment and another docstring change nothing the function computes
    """Another docstring."""
    return episode.reward


def shifted(task, episode):
    return episode.reward + 10.0


def scaled(task, episode):
    return episode.reward * SCALE


def _bonus(episode):
    return 0.5 * episode.success


def with_helper(task, episode):
    return episode.reward + _bonus(episode)


for fn in (env_reward_other_doc, shifted, scaled, with_helper):
    fn.__qualname__ = fn.__name__ = "env_reward"  # what an in-place edit of train.py's hook looks like


def test_same_code_same_fingerprint_across_docstrings_and_comments() -> None:
    assert reward_fingerprint(env_reward) == reward_fingerprint(env_reward_other_doc)


def test_changed_code_changes_the_fingerprint() -> None:
    prints = {reward_fingerprint(f) for f in (env_reward, shifted, scaled, with_helper)}
    assert len(prints) == 4


def test_globals_helpers_closures_and_partials_are_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    before = reward_fingerprint(scaled)
    monkeypatch.setattr(__import__(__name__), "SCALE", 2.0)
    assert reward_fingerprint(scaled) != before  # a module constant it reads

    h_before = reward_fingerprint(with_helper)

    def other_bonus(episode):
        return 0.7 * episode.success

    monkeypatch.setattr(__import__(__name__), "_bonus", other_bonus)
    assert reward_fingerprint(with_helper) != h_before  # a helper it calls

    def make(shift: float):
        def r(task, episode):
            return episode.reward + shift

        return r

    assert reward_fingerprint(make(1.0)) != reward_fingerprint(make(2.0))  # a closed-over value

    def add(task, episode, bonus):
        return episode.reward + bonus

    a, b = functools.partial(add, bonus=1.0), functools.partial(add, bonus=2.0)
    assert reward_fingerprint(a) != reward_fingerprint(b)


def test_fingerprint_is_stable_across_processes() -> None:
    """The cache is shared by later runs: the key must not depend on hash randomisation."""
    import subprocess
    import sys

    code = (
        "from tinyzero.reward import reward_fingerprint\n"
        "def r(task, episode):\n    return episode.reward if episode.reason in {'a', 'b', 'c'} else 0.0\n"
        "print(reward_fingerprint(r))\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1


def test_an_edited_reward_never_reuses_the_old_v_star_table(cache_dir: Path, tmp_path: Path) -> None:
    """Two runs sharing the base model and the V* cache; the second's reward is the first's + 10 under the
    same name. Its table must be recomputed: V* = β·log mean exp((r + 10)/β) = old V* + 10 on every row."""

    def trainer(reward, name: str) -> TinyZeroTrainer:
        cfg = load_config(
            ROOT / "configs" / "smoke.yaml",
            [
                f"run.out_dir={tmp_path}",
                f"pretrain.cache_dir={cache_dir}",
                "run.threads=1",
                "algorithm.name=astarpo",
                f"run.name={name}",
            ],
        )
        return TinyZeroTrainer(cfg, reward_fn=reward, progress=False)

    def cache_key(tr: TinyZeroTrainer) -> str:
        return astarpo.v_star_cache_key(tr.cfg, tr.preparation())

    first = trainer(env_reward, "first")
    table = astarpo.build_v_star_table(first.cfg, first.preparation())[0]
    second = trainer(shifted, "second")
    assert cache_key(second) != cache_key(first)
    again = astarpo.build_v_star_table(second.cfg, second.preparation())[0]
    assert table.keys() == again.keys()
    for key, row in table.items():
        assert again[key]["v"] == pytest.approx(row["v"] + 10.0, abs=1e-4)
    # and the unchanged reward does reuse it (the cache still works)
    assert cache_key(trainer(env_reward_other_doc, "third")) == cache_key(first)
    assert reward_fingerprint(default_reward) != reward_fingerprint(shifted)
