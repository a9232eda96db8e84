"""Units and edge paths the algorithm tests lean on: GRPO's advantages have unit std per group, StarPO-S
keeps ⌈keep·P⌉ groups, ``run_episodes`` ends episodes as ``context_full`` and ``out_of_turns``, what
``training.keep_last`` leaves on disk, the optimizer's skip path for a non-finite gradient norm, and the
evaluator's KL (computed, 0 for a base model against itself, and equal to a hand computation for a
checkpoint).

Run: OMP_NUM_THREADS=1 pytest tests/test_edge_paths.py -q     (~10 s; smoke base model)
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from handmade import SMOKE, make_trainer, tokens

from tinyzero import evaluation as E
from tinyzero.algorithms.grpo import group_advantages
from tinyzero.algorithms.ragen_astarpo import starpo_s_keep
from tinyzero.config import load_config
from tinyzero.environments import make_task
from tinyzero.models.io import build_model
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.rollout import SamplingSettings, run_episodes

# cache_dir (the smoke base model, built once per session) comes from tests/conftest.py


def test_group_advantages_have_zero_mean_and_unit_std_per_group() -> None:
    """(r − mean)/(std + 1e-4) with the sample std (n − 1): unit std up to the ε, 0 for a constant group."""
    g = torch.Generator().manual_seed(0)
    r = torch.cat([torch.rand(5, 6, generator=g) * 3, torch.full((1, 6), 0.7)]).flatten()
    adv = group_advantages(r, 6).view(6, 6)
    torch.testing.assert_close(adv[:5].mean(1), torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(adv[:5].std(1), torch.ones(5), atol=1e-3, rtol=0)
    assert torch.all(adv[5] == 0)
    by_hand = (0.0 - 0.5) / (math.sqrt(0.5) + 1e-4)  # [1, 0]: mean 0.5, sample std √0.5
    assert group_advantages(torch.tensor([1.0, 0.0]), 2)[1].item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize(
    ("keep", "groups", "kept"),
    [(0.5, 5, 3), (0.4, 5, 2), (0.7, 10, 7), (0.01, 5, 1), (1.0, 4, 4), (0.5, 2, 1), (0.25, 3, 1)],
)
def test_starpo_s_keeps_the_ceiling_of_keep_times_groups(keep: float, groups: int, kept: int) -> None:
    rewards = torch.arange(groups * 2, dtype=torch.float32).view(groups, 2) ** 2  # distinct stds
    idx = starpo_s_keep(rewards, keep)
    assert len(idx) == kept
    assert idx.tolist() == list(range(groups - 1, groups - 1 - kept, -1))  # the largest stds first


def lake_task(max_turns: int):  # noqa: ANN201
    cfg = load_config(SMOKE, [f"task.max_turns={max_turns}"])
    return make_task(cfg.task)


def test_run_episodes_ends_an_episode_whose_context_is_full() -> None:
    """history −1: the second turn's context (prompt, action, next grid) no longer fits: ``context_full``
    after one turn; a prompt that never fits gives an episode with no turn at all."""
    tok = CharTokenizer()
    task = lake_task(6)
    problem = task.problems("train", 1)[0]
    prompt = len(tok.encode(task.episode(problem).prompt)) + 1  # + BOS
    model = build_model("nano", tok.vocab_size, max_seq_len=prompt + 8).eval()  # 1 turn of ≤ 8 fits
    sampling = SamplingSettings(max_new_tokens=8, history=-1)
    eps = run_episodes(model, tok, task, [problem] * 8, sampling, torch.Generator().manual_seed(0))
    going = [e for e in eps if e.reason not in ("hole", "solved")]  # an untrained model rarely ends a map
    assert going and all(e.reason == "context_full" and len(e.turns) == 1 and e.done for e in going)
    tight = build_model("nano", tok.vocab_size, max_seq_len=prompt + 7).eval()
    (none,) = run_episodes(tight, tok, task, [problem], sampling, torch.Generator().manual_seed(0))
    assert none.reason == "context_full" and none.turns == [] and none.done


def test_run_episodes_ends_an_unfinished_episode_as_out_of_turns() -> None:
    """The environment's own truncation, and run_episodes' fallback when the task allows fewer turns than
    the environment (the episode is still going when the loop ends)."""
    tok = CharTokenizer()
    model = build_model("nano", tok.vocab_size, max_seq_len=64).eval()
    sampling = SamplingSettings(max_new_tokens=4, history=0)
    task = lake_task(2)
    problem = task.problems("train", 1)[0]
    eps = run_episodes(model, tok, task, [problem] * 6, sampling, torch.Generator().manual_seed(0))
    going = [e for e in eps if e.reason not in ("hole", "solved")]
    assert going and all(e.reason == "out_of_turns" and len(e.turns) == 2 for e in going)
    task.max_turns = 1  # the loop stops after one turn; the environment would allow two
    eps = run_episodes(model, tok, task, [problem] * 6, sampling, torch.Generator().manual_seed(0))
    going = [e for e in eps if e.reason not in ("hole", "solved")]
    assert going and all(e.reason == "out_of_turns" and len(e.turns) == 1 and e.done for e in going)


def test_keep_last_leaves_the_newest_checkpoints_and_latest(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(
        cache_dir,
        tmp_path,
        "algorithm.name=grpo",
        "training.total_iterations=4",
        "training.checkpoint_every=1",
        "training.keep_last=2",
    )
    tr.train()
    assert sorted(p.name for p in tr.ckpt_root.iterdir()) == ["iter_000003", "iter_000004", "latest"]
    assert (tr.ckpt_root / "latest").read_text().strip() == "iter_000004"


def test_a_non_finite_gradient_norm_skips_the_step(cache_dir: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """A finite loss whose gradient is infinite (√x at 0): no weight and no AdamW moment moves."""
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=grpo")
    w = tr.policy.tok_emb.weight
    before = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    loss = torch.sqrt(w[3, 5] - w[3, 5].detach())  # value 0, d/dw = +∞
    assert math.isfinite(loss.item())
    assert math.isnan(tr.optimize(loss))
    assert tr.bad_steps == 1 and tr.skipped_steps == 1
    assert all(torch.equal(before[k], v) for k, v in tr.policy.state_dict().items())
    assert not tr.optimizer.state  # AdamW never stepped: no moments
    assert all(p.grad is None for p in tr.policy.parameters())  # nothing left over for the next step
    assert "gradient norm is inf" in capsys.readouterr().err
    assert math.isfinite(tr.optimize(w[3, 5] ** 2))  # the next finite step is taken and resets the count
    assert tr.bad_steps == 0 and tr.skipped_steps == 1


# ----------------------------------------------------------------------------- evaluation's KL


def test_evaluated_kl_is_computed_zero_for_a_base_and_by_hand_for_a_checkpoint(
    cache_dir: Path, tmp_path: Path
) -> None:
    tr = make_trainer(
        cache_dir, tmp_path, "algorithm.name=grpo", "training.total_iterations=2", "training.lr=3e-3"
    )
    tr.train()
    over = [f"pretrain.cache_dir={cache_dir}", "run.device=cpu", "run.threads=1"]
    base = E.load_source(cache_dir / tr.base_key, "frozenlake", str(SMOKE), over, "cpu")
    assert base.kind == "base_model"
    ref, _, _ = E.load_reference(base)
    assert ref is base.model  # its own reference: the figure below is computed, not assigned
    assert E.evaluate_source(base, problems=3, samples=2).figures["kl"]["value"] == 0.0

    src = E.load_source(tr.run_dir, device="cpu")
    assert src.kind == "checkpoint"
    ev = E.evaluate_source(src, problems=3, samples=2)
    episodes = [e for r in ev.records for e in r.sampled]
    with torch.no_grad():
        diffs = [float(tokens(src.model, tr, e).total - tokens(tr.ref, tr, e).total) for e in episodes]
    by_hand = sum(diffs) / len(diffs)  # mean over sampled episodes of log π(τ) − log π_ref(τ)
    assert abs(by_hand) > 1e-3  # the checkpoint has moved away from its base
    assert ev.figures["kl"]["value"] == pytest.approx(by_hand, rel=1e-4)
