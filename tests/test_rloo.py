"""RLOO (tinyzero/algorithms/rloo.py): the leave-one-out advantage by hand, the real loss's value and
gradient against an independent recomputation, and the importance ratio of a second update epoch. The
direction of one step: tests/test_algorithm_losses.py; learning: tests/test_learning.py.

Run: OMP_NUM_THREADS=1 pytest tests/test_rloo.py -q     (~10 s; smoke base model)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from handmade import (
    assert_same_loss_and_gradient,
    episode,
    loss_on,
    make_trainer,
    params_of,
    perturb,
    tokens,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.algorithms.rloo import leave_one_out_advantages
from tinyzero.trainer import TinyZeroTrainer

REWARDS = [[1.0, 0.0, 0.0, -0.1], [0.5, 0.5, 0.0, 1.0]]  # K = 4 (the smoke config's num_completions)
MOVES = ["Right", "Down", "Left", "Up", "Right Down", "RiDown", "Down Down", "Up Left"]


def by_hand(groups: list[list[float]]) -> list[float]:
    """A_k = r_k − (mean of the other K − 1 rewards), one reward at a time."""
    out = []
    for g in groups:
        for k, r in enumerate(g):
            others = [x for j, x in enumerate(g) if j != k]
            out.append(r - sum(others) / len(others))
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 6).flatmap(
        lambda k: st.lists(
            st.lists(st.floats(-5, 5, allow_nan=False), min_size=k, max_size=k), min_size=1, max_size=5
        )
    )
)
def test_leave_one_out_advantage_matches_the_definition(groups: list[list[float]]) -> None:
    k = len(groups[0])
    got = leave_one_out_advantages(torch.tensor(groups, dtype=torch.float64).flatten(), k)
    torch.testing.assert_close(got, torch.tensor(by_hand(groups), dtype=torch.float64), atol=1e-9, rtol=0)


def groups_of(tr: TinyZeroTrainer) -> list:
    """K episodes per prompt with REWARDS, distinct actions; one two-turn episode (two sequences)."""
    out = []
    for g, rewards in enumerate(REWARDS):
        p = tr.train_problems[g]
        out += [episode(tr, p, [MOVES[(4 * g + j) % len(MOVES)]], r) for j, r in enumerate(rewards)]
    out[1] = episode(tr, tr.train_problems[0], ["Down", "Right"], 0.0)
    return out


def test_rloo_loss_is_sequence_level_reinforce_with_the_leave_one_out_baseline(
    cache_dir: Path, tmp_path: Path
) -> None:
    """−mean_k A_k·log π_θ(τ_k) (in gradient; value −mean A_k since ρ = 1) − c_ent·H over agent tokens."""
    c_ent = 0.05
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=rloo", f"training.entropy_coef={c_ent}")
    perturb(tr.policy)
    episodes = groups_of(tr)
    loss, metrics = loss_on(tr, episodes)
    adv = torch.tensor(by_hand(REWARDS), dtype=torch.float64)
    pol = [tokens(tr.policy, tr, e) for e in episodes]
    totals = torch.stack([p.total for p in pol])
    ratio = torch.exp(totals - totals.detach())  # 1, with the gradient of log π_θ(τ)
    entropy = torch.cat([p.entropy for p in pol]).mean()
    expected = -(ratio * adv).mean() - c_ent * entropy
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["advantage/mean"] == pytest.approx(0.0, abs=1e-6)  # each group's A sums to 0
    assert metrics["advantage/std"] == pytest.approx(float(adv.std()), rel=1e-5)


def test_second_epoch_weights_each_trajectory_by_pi_theta_over_pi_old(
    cache_dir: Path, tmp_path: Path
) -> None:
    """With update_epochs = 2 the loss handed back is taken after one step: ρ_k = π_θ(τ_k)/π_old(τ_k),
    π_old the weights the episodes were scored with."""
    tr = make_trainer(
        cache_dir, tmp_path, "algorithm.name=rloo", "training.update_epochs=2", "training.lr=1e-3"
    )
    perturb(tr.policy)
    episodes = groups_of(tr)
    with torch.no_grad():
        old = torch.stack([tokens(tr.policy, tr, e).total for e in episodes])
    loss, _ = loss_on(tr, episodes)
    pol = [tokens(tr.policy, tr, e) for e in episodes]  # after the first step
    new = torch.stack([p.total for p in pol])
    assert (new - old).abs().max() > 1e-3  # the step moved π_θ: ρ ≠ 1
    adv = torch.tensor(by_hand(REWARDS), dtype=torch.float64)
    c_ent = tr.cfg.training.entropy_coef
    expected = -(torch.exp(new - old) * adv).mean() - c_ent * torch.cat([p.entropy for p in pol]).mean()
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
