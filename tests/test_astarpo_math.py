"""A*PO math against hand-computed values. Run: pytest tests/test_astarpo_math.py -q"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.algorithms import ppo
from tinyzero.algorithms.astarpo import astarpo_loss, estimate_v_star
from tinyzero.algorithms.grpo import group_advantages
from tinyzero.algorithms.ragen_astarpo import starpo_s_keep


def test_v_star_for_binary_rewards_by_hand() -> None:
    # 2 successes out of 8, β = 0.5: V* = 0.5·log((2e² + 6)/8)
    r = torch.tensor([1.0, 1, 0, 0, 0, 0, 0, 0])
    expected = 0.5 * math.log((2 * math.exp(2) + 6) / 8)
    assert estimate_v_star(r, 0.5).item() == pytest.approx(expected, rel=1e-6)
    # a soft max: between the mean and the max
    assert r.mean() < estimate_v_star(r, 0.5) < r.max()


def test_limits_beta_to_zero_and_infinity() -> None:
    r = torch.tensor([[0.2, 0.9, -0.4, 0.1]])
    assert estimate_v_star(r, 1e-6).item() == pytest.approx(0.9, abs=1e-5)  # β → 0: max
    assert estimate_v_star(r, 1e7).item() == pytest.approx(r.mean().item(), abs=1e-6)  # β → ∞: mean
    assert torch.isfinite(estimate_v_star(torch.tensor([1e4, -1e4]), 1e-8)).all()


def test_reduces_last_dim_and_rejects_bad_beta() -> None:
    assert estimate_v_star(torch.zeros(3, 5), 0.5).shape == (3,)
    for beta in (0.0, -1.0):
        with pytest.raises(ValueError):
            estimate_v_star(torch.zeros(4), beta)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=1, max_size=10),
    st.floats(0.01, 10),
    st.floats(-20, 20),
)
def test_equal_importance_weights_equal_plain_estimate(rewards: list[float], beta: float, w: float) -> None:
    r = torch.tensor(rewards, dtype=torch.float64)
    plain = estimate_v_star(r, beta)
    weighted = estimate_v_star(r, beta, torch.full_like(r, w))
    assert weighted.item() == pytest.approx(plain.item(), rel=1e-9, abs=1e-9)


def test_importance_weights_match_explicit_formula() -> None:
    r = torch.tensor([1.0, 0.0, 0.0])
    lw = torch.log(torch.tensor([3.0, 1.0, 1.0]))
    expected = 0.5 * math.log((3 * math.exp(2) + 2) / 5)
    assert estimate_v_star(r, 0.5, lw).item() == pytest.approx(expected, rel=1e-6)


def test_loss_value_and_gradient_sign() -> None:
    logp = torch.tensor([-3.0, -4.0], requires_grad=True)
    ref = torch.tensor([-3.0, -4.0])
    rewards, v = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])
    loss = astarpo_loss(logp, ref, rewards, v, beta2=0.1)
    assert loss.item() == pytest.approx(0.25)  # both residuals are ∓0.5
    loss.backward()
    # positive advantage → gradient descent raises log π of that sample; negative → lowers it
    assert logp.grad[0] < 0 < logp.grad[1]
    # at the optimum β2·log(π/π_ref) = A*, the loss and its gradient vanish
    logp_star = (ref + (rewards - v) / 0.1).requires_grad_(True)
    loss_star = astarpo_loss(logp_star, ref, rewards, v, 0.1)
    loss_star.backward()
    assert loss_star.item() == pytest.approx(0.0, abs=1e-10)
    assert torch.allclose(logp_star.grad, torch.zeros(2))


def test_group_advantages_and_starpo_s() -> None:
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    adv = group_advantages(r, 4).view(3, 4)
    assert torch.allclose(adv.mean(dim=1), torch.zeros(3), atol=1e-6)
    assert torch.all(adv[1] == 0)  # no signal in a group where every sample scored the same
    keep = starpo_s_keep(r.view(3, 4), 2 / 3)
    assert sorted(keep.tolist()) == [0, 2]  # the constant group is dropped first


def test_ppo_whitening_is_zero_mean_unit_std_on_agent_tokens_only() -> None:
    adv = torch.tensor([[0.0, 1.0, -1.0, 5.0], [2.0, 0.5, 7.0, 3.0]])
    mask = torch.tensor([[False, True, True, False], [True, True, False, True]])
    w = ppo.whiten(adv, mask)
    kept = w[mask]
    assert torch.allclose(kept.mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(kept.pow(2).mean().sqrt(), torch.tensor(1.0), atol=1e-4)
    assert torch.all(w[~mask] == 0)
    # ordering of the advantages is kept: the best token stays the best
    assert torch.equal(kept.argsort(), adv[mask].argsort())
