"""Shared fixtures: the smoke base model is pre-trained once per test session (per xdist worker)."""

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
