"""Base-model pre-training: the corpus teaches the format, the cache is reused, keys track settings.
Run: pytest tests/test_pretrain.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tinyzero.config import load_config
from tinyzero.environments import make_task
from tinyzero.models.io import build_model
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.pretrain import base_model_key, build_corpus, ensure_base_model, evaluate_base

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp: Path, *extra: str):
    return load_config(
        ROOT / "configs/smoke.yaml",
        [f"pretrain.cache_dir={tmp}", "pretrain.steps=200", "pretrain.eval_problems=8", *extra],
    )


def test_corpus_masks_only_actions() -> None:
    cfg = load_config(ROOT / "configs/smoke.yaml")
    task, tok = make_task(cfg.task), CharTokenizer()
    corpus = build_corpus(task, tok, task.problems("train"), 50, skill=0.5, history=0, seed=0)
    assert len(corpus) == 50
    for ids, mask in corpus:
        action = [i for i, m in zip(ids, mask) if m]
        assert action[-1] == tok.eos_id  # every demonstrated action ends its turn with EOS
        assert tok.decode(action) in {"Left", "Down", "Right", "Up"}


def test_pretraining_beats_random_init_and_is_cached(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = _cfg(tmp_path)
    task, tok = make_task(cfg.task), CharTokenizer()
    torch.manual_seed(0)
    random_model = build_model(cfg.model.preset, tok.vocab_size, cfg.model.max_seq_len).eval()
    random_report = evaluate_base(random_model, tok, task, cfg)

    path = ensure_base_model(cfg, progress=False)
    report = json.loads((path / "report.json").read_text())
    assert path.name == base_model_key(cfg)
    assert report["format_rate"] > random_report["format_rate"]
    assert report["format_rate"] > 0.5
    for key in ("greedy_success", "pass@1", "pass@8", "mean_optimum"):
        assert 0.0 <= report[key] <= 1.0
    assert report["pass@1"] <= report["pass@8"]

    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_base_model(cfg, progress=False) == path  # reused, not rebuilt
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("*.tmp*"))  # no half-written directories left behind


def test_key_tracks_settings_that_shape_the_model(tmp_path: Path) -> None:
    base = base_model_key(_cfg(tmp_path))
    assert base_model_key(_cfg(tmp_path, "pretrain.skill=0.9")) != base
    assert base_model_key(_cfg(tmp_path, "task.is_slippery=true")) != base
    assert base_model_key(_cfg(tmp_path, "training.lr=0.1")) == base  # RL settings don't touch the base
    assert base_model_key(_cfg(tmp_path, "task.num_test=99")) == base
