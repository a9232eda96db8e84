"""A*PO math against hand-computed values. Run: pytest tests/test_astarpo_math.py -q"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.algorithms import ppo
from tinyzero.algorithms.astarpo import astarpo_loss, estimate_v_star
from tinyzero.algorithms.common import token_kl
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


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 5.0))
def test_token_kl_is_the_exact_kl(seed: int, spread: float) -> None:
    g = torch.Generator().manual_seed(seed)
    p = torch.log_softmax(spread * torch.randn(3, 4, 7, generator=g, dtype=torch.float64), -1)
    q = torch.log_softmax(spread * torch.randn(3, 4, 7, generator=g, dtype=torch.float64), -1)
    kl = token_kl(p, q)
    assert kl.shape == (3, 4) and (kl >= -1e-12).all()
    expected = torch.nn.functional.kl_div(q, p, log_target=True, reduction="none").sum(-1)  # KL(p ‖ q)
    torch.testing.assert_close(kl, expected)
    assert token_kl(p, p).abs().max() < 1e-12


def test_token_kl_charges_mass_on_characters_the_reference_rules_out() -> None:
    # π_ref after "Ri": g with 1 − 1e-6; a policy that moved 1 % onto "D" pays ≈ 0.01·log(0.01/1e-6)
    ref = torch.log(torch.tensor([1 - 1e-6, 1e-6], dtype=torch.float64))
    pol = torch.log(torch.tensor([0.99, 0.01], dtype=torch.float64))
    expected = 0.99 * math.log(0.99 / (1 - 1e-6)) + 0.01 * math.log(0.01 / 1e-6)
    assert token_kl(pol, ref).item() == pytest.approx(expected, rel=1e-9)
    assert token_kl(pol, ref).item() > 0.08  # ≫ the sampled-token estimate when "g" is sampled (≈ 0.0001)


def test_huber_residual_matches_squares_inside_delta_and_caps_the_pull_outside() -> None:
    ref = torch.zeros(4, dtype=torch.float64)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    v = torch.full((4,), 0.5, dtype=torch.float64)
    small = torch.tensor([2.0, -1.0, -3.0, 1.0], dtype=torch.float64)  # β2 = 0.1: |residuals| ≤ 0.3
    assert astarpo_loss(small, ref, rewards, v, 0.1, huber_delta=1.0).item() == pytest.approx(
        astarpo_loss(small, ref, rewards, v, 0.1).item(), rel=1e-12
    )
    # one outlier trajectory: log-ratio +40 nats, residual 0.1·40 − 0.5 = 3.5 (by hand: 2·1·3.5 − 1 = 6)
    logp = torch.tensor([40.0, -1.0, -3.0, 1.0], dtype=torch.float64, requires_grad=True)
    huber = astarpo_loss(logp, ref, rewards, v, 0.1, huber_delta=1.0)
    expected = (6.0 + 0.4**2 + 0.2**2 + 0.4**2) / 4
    assert huber.item() == pytest.approx(expected, rel=1e-12)
    (grad,) = torch.autograd.grad(huber, logp)
    assert grad[0].item() == pytest.approx(0.1 * 2 * 1.0 / 4)  # capped at β2·2δ/N ...
    logp2 = logp.detach().clone().requires_grad_(True)
    (grad_sq,) = torch.autograd.grad(astarpo_loss(logp2, ref, rewards, v, 0.1), logp2)
    assert grad_sq[0].item() == pytest.approx(0.1 * 2 * 3.5 / 4)  # ... where the square pulls 3.5x harder
    torch.testing.assert_close(grad[1:], grad_sq[1:])  # the ordinary trajectories are untouched
