"""Base-model pre-training: the corpus teaches the format, the cache is reused, keys track settings.
Run: pytest tests/test_pretrain.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tinyzero.config import load_config
from tinyzero.environments import make_task
from tinyzero.errors import UserError
from tinyzero.models.io import build_model
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.pretrain import (
    MEMORISED_GAP,
    base_model_key,
    build_corpus,
    corpus_problems,
    ensure_base_model,
    evaluate_base,
    format_report,
    memorisation_warning,
)

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp: Path, *extra: str):
    return load_config(
        ROOT / "configs/smoke.yaml",
        [f"pretrain.cache_dir={tmp}", "pretrain.steps=200", "pretrain.eval_problems=4", *extra],
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
    assert base_model_key(_cfg(tmp_path, "task.demos=optimal")) != base
    assert base_model_key(_cfg(tmp_path, "training.lr=0.1")) == base  # RL settings don't touch the base
    assert base_model_key(_cfg(tmp_path, "task.num_test=99")) == base
    assert base_model_key(_cfg(tmp_path, "training.num_problems=10")) == base  # RL's prompt pool
    search = ("task.name=countdown_turns", "task.restart=true", "task.show_tried=true", "task.demos=search")
    thinned = base_model_key(_cfg(tmp_path, *search))
    assert base_model_key(_cfg(tmp_path, *search, "task.demo_restarts=1.0")) != thinned
    assert base_model_key(_cfg(tmp_path, *search, "task.demo_checks=0.5")) != thinned
    assert base_model_key(_cfg(tmp_path, *search, "task.demo_checks=0")) == thinned


def test_corpus_can_be_limited_to_a_prefix_of_the_training_problems(tmp_path: Path) -> None:
    """pretrain.num_problems=N: every demonstration is of one of the first N training problems, the
    first N are the same problems whatever task.num_train is, and the cache key tracks N."""
    cfg = load_config(
        ROOT / "configs/multiplication.yaml", ["task.num_train=300", "pretrain.num_problems=20"]
    )
    task, tok = make_task(cfg.task), CharTokenizer()
    subset = corpus_problems(cfg, task)
    assert subset == task.problems("train", 20) == task.problems("train")[:20]
    corpus = build_corpus(task, tok, subset, 400, skill=0.9, history=0, seed=0)
    prompts = {
        tok.decode([i for i, m in zip(ids, mask) if not m and i != tok.pad_id]) for ids, mask in corpus
    }
    allowed = {f"{p.a}*{p.b}=\n" for p in subset}
    assert prompts <= allowed and len(prompts) > 10  # drawn from the subset, and from much of it
    everything = load_config(
        ROOT / "configs/multiplication.yaml", ["task.num_train=300", "pretrain.num_problems=0"]
    )
    assert len(corpus_problems(everything, task)) == 300
    assert base_model_key(cfg) != base_model_key(everything)
    # 0 = all, the default: the key is the one bases had before the option existed (cached ones stay valid)
    assert base_model_key(load_config(ROOT / "configs/smoke.yaml")) == "frozenlake-nano-6a75de63adb5"


def test_pool_sets_how_many_sequences_the_base_is_trained_on(tmp_path: Path) -> None:
    """pretrain.pool=N: the corpus holds N sequences (the default: the steps' worth, at most 40,000),
    and the key changes with N but not when the option is left at 0."""
    torch.set_num_threads(1)
    short = ("pretrain.steps=3", "pretrain.batch_size=4")
    default = _cfg(tmp_path, *short)
    pooled = _cfg(tmp_path, *short, "pretrain.pool=37")
    assert base_model_key(_cfg(tmp_path, *short, "pretrain.pool=0")) == base_model_key(default)
    assert base_model_key(pooled) != base_model_key(default)
    for cfg, size in ((default, 3 * 4), (pooled, 37)):
        report = json.loads((ensure_base_model(cfg, progress=False) / "report.json").read_text())
        assert report["corpus_sequences"] == size


def test_corpus_subset_larger_than_the_pool_is_a_config_error() -> None:
    with pytest.raises(
        UserError, match=r"pretrain.num_problems=7000 is out of range: expected 0..task.num_train=6000"
    ):
        load_config(ROOT / "configs/multiplication.yaml", ["pretrain.num_problems=7000"])


def test_base_report_exposes_a_memorised_corpus(tmp_path: Path) -> None:
    """A base drilled on 4 countdown problems answers those and not new ones: the report's corpus
    figure is far above its held-out one, and the console line says what to change."""
    torch.set_num_threads(1)
    cfg = load_config(
        ROOT / "configs/smoke.yaml",
        [
            f"pretrain.cache_dir={tmp_path}",
            "task.name=countdown",
            "task.num_train=4",
            "task.num_test=32",
            "pretrain.skill=1.0",
            "pretrain.steps=150",
            "pretrain.lr=3e-3",
            "pretrain.eval_problems=4",
            "rollout.max_new_tokens=32",
        ],
    )
    report = json.loads((ensure_base_model(cfg, progress=False) / "report.json").read_text())
    assert report["train_greedy_success"] >= 0.75
    assert report["train_greedy_success"] - report["greedy_success"] >= MEMORISED_GAP
    assert "memorised its corpus" in format_report(report)
    assert memorisation_warning({**report, "train_greedy_success": report["greedy_success"]}) == ""
