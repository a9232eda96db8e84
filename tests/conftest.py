"""Shared fixtures: the smoke base model (and, for the learning and V* tests, a 3×3 FrozenLake base) is
pre-trained once per test session (per xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinyzero.config import load_config
from tinyzero.pretrain import ensure_base_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke base model, pre-trained once for the whole session (V* tables land beside it)."""
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and immune to a busy machine
    root = tmp_path_factory.mktemp("tinyzero_cache") / "base_models"
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        [
            f"run.out_dir={root.parent / 'runs'}",
            f"pretrain.cache_dir={root}",
            "run.device=cpu",
            "run.threads=1",
        ],
    )
    ensure_base_model(cfg, "cpu", progress=False)
    return root


# A 3×3 FrozenLake base that solves its maps now and then (~0.3 on the hole-free one): small enough to
# pre-train in ~10 s, good enough that RL learns in 20 iterations and that V* rows differ from each other.
LAKE3 = (
    "task.size=3",
    "task.num_train=16",
    "task.num_test=4",
    "task.max_turns=6",
    "pretrain.steps=150",
    "pretrain.skill=0.5",
    "rollout.max_new_tokens=6",
    "model.max_seq_len=64",
    "astarpo.num_trajectories=16",
    "training.eval_problems=4",
)


@pytest.fixture(scope="session")
def lake_cache(cache_dir: Path) -> Path:
    """``cache_dir`` with the LAKE3 base model in it too (pre-trained once per session)."""
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        [f"pretrain.cache_dir={cache_dir}", "run.device=cpu", "run.threads=1", *LAKE3],
    )
    ensure_base_model(cfg, "cpu", progress=False)
    return cache_dir
