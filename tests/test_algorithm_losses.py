"""Each algorithm's real loss (the trainer's ``loss_on``, what ``update()`` runs after its rollouts) on
hand-made episodes, against the formula in docs/algorithms.md recomputed here from rewards, V* and
log-probs of one plain forward per turn (tests/handmade.py): same value and same gradient. Then the
direction of one real optimizer step: log π rises on trajectories with positive advantage, falls on
negative ones.

Why values and gradients: at π_old = π_θ the clipped surrogate is Σ A·1 whatever the policy, so only
the gradient shows a swapped or dropped term; and π_θ is perturbed away from π_ref so that swapping
them in the A*PO regression changes the numbers.

Run: OMP_NUM_THREADS=1 pytest tests/test_algorithm_losses.py -q     (~15 s; smoke base model)
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from handmade import (
    assert_same_loss_and_gradient,
    episode,
    huber,
    loss_on,
    make_trainer,
    params_of,
    perturb,
    tokens,
)

from tinyzero.algorithms.grpo import clipped_surrogate
from tinyzero.algorithms.interface import Prepared
from tinyzero.trainer import TinyZeroTrainer

# cache_dir (the smoke base model, built once per session) comes from tests/conftest.py


def mean_over_tokens(per_traj: list[torch.Tensor]) -> torch.Tensor:
    """Token-level mean over every agent token of the batch (longer trajectories weigh more)."""
    return torch.cat(per_traj).mean()


def exact_kl(pol: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """KL(π_θ ‖ π_ref) at each position, from its definition Σ_v p(v)·log(p(v)/q(v))."""
    p = pol.exp()
    return (p * (pol - ref)).sum(-1)


def v_star_by_hand(rewards: list[float], beta: float, weights: list[float] | None = None) -> float:
    """β·log(Σ w_k e^{r_k/β} / Σ w_k), in plain float arithmetic (not estimate_v_star)."""
    w = weights or [1.0] * len(rewards)
    return beta * math.log(sum(wk * math.exp(r / beta) for wk, r in zip(w, rewards)) / sum(w))


# ----------------------------------------------------------------------------- A*PO


def astarpo_setup(cache_dir: Path, tmp_path: Path, *overrides: str) -> tuple[TinyZeroTrainer, list, dict]:
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=astarpo", *overrides)
    p0, p1, p2 = tr.train_problems[:3]
    # a distinct V* per prompt: reading another prompt's row changes the loss
    table = {tr.task.describe(p): {"v": v, "success": True} for p, v in ((p0, 0.2), (p1, 0.6), (p2, -0.1))}
    tr.prepared = Prepared(state=table)
    episodes = [  # prompts interleaved, one and two turns, one rare spelling (a large log-ratio)
        episode(tr, p1, ["Right"], 1.0),
        episode(tr, p0, ["Down", "Right"], 0.0),
        episode(tr, p2, ["RiDown"], -0.1),
        episode(tr, p0, ["Right"], 1.0),
        episode(tr, p1, ["Left", "Up"], -0.2),
    ]
    return tr, episodes, table


def test_astarpo_loss_is_the_documented_regression(cache_dir: Path, tmp_path: Path) -> None:
    """mean Huber_δ(β2·(log π_θ − log π_ref) − (r − V*(x))) − c_ent·H + c_kl·mean_t KL_t(π_θ ‖ π_ref)."""
    beta2, delta, c_ent, c_kl = 0.5, 0.3, 0.05, 0.2
    tr, episodes, table = astarpo_setup(
        cache_dir,
        tmp_path,
        f"astarpo.beta2={beta2}",
        f"astarpo.huber_delta={delta}",
        f"training.entropy_coef={c_ent}",
        f"astarpo.kl_coef={c_kl}",
    )
    perturb(tr.policy)
    loss, metrics = loss_on(tr, episodes)

    pol = [tokens(tr.policy, tr, e) for e in episodes]
    with torch.no_grad():
        ref = [tokens(tr.ref, tr, e) for e in episodes]
    v = torch.tensor([table[tr.task.describe(e.problem)]["v"] for e in episodes], dtype=torch.float64)
    r = torch.tensor([e.reward for e in episodes], dtype=torch.float64)
    residual = beta2 * (torch.stack([p.total for p in pol]) - torch.stack([q.total for q in ref])) - (r - v)
    assert (residual.abs() > delta).any() and (residual.abs() <= delta).any()  # both Huber branches used
    entropy = mean_over_tokens([p.entropy for p in pol])
    kl = mean_over_tokens([exact_kl(p.dist, q.dist) for p, q in zip(pol, ref)])
    assert kl > 1e-3  # π_θ ≠ π_ref: a swapped π_θ/π_ref or a dropped KL term shows
    expected = huber(residual, delta).mean() - c_ent * entropy + c_kl * kl
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["v_star/mean"] == pytest.approx(float(v.mean()), rel=1e-6)
    assert metrics["entropy"] == pytest.approx(float(entropy.detach()), rel=1e-4)


def test_astarpo_plain_square_without_huber_or_kl(cache_dir: Path, tmp_path: Path) -> None:
    """Loss (3) itself with the defaults of the paper's form: square, no KL term, small entropy bonus."""
    tr, episodes, table = astarpo_setup(
        cache_dir, tmp_path, "astarpo.beta2=0.2", "training.entropy_coef=0.01"
    )
    perturb(tr.policy)
    loss, _ = loss_on(tr, episodes)
    pol = [tokens(tr.policy, tr, e) for e in episodes]
    with torch.no_grad():
        ref = [tokens(tr.ref, tr, e) for e in episodes]
    v = torch.tensor([table[tr.task.describe(e.problem)]["v"] for e in episodes], dtype=torch.float64)
    r = torch.tensor([e.reward for e in episodes], dtype=torch.float64)
    residual = 0.2 * (torch.stack([p.total for p in pol]) - torch.stack([q.total for q in ref])) - (r - v)
    expected = (residual**2).mean() - 0.01 * mean_over_tokens([p.entropy for p in pol])
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))


# ----------------------------------------------------------------------------- RAGEN over A*PO


def ragen_groups(tr: TinyZeroTrainer, rewards: list[list[float]]) -> list:
    """K = num_completions episodes per prompt with the given rewards, distinct actions in a group."""
    moves = ["Right", "Down", "Left", "Up", "Right Down", "RiDown"]
    out = []
    for g, group in enumerate(rewards):
        p = tr.train_problems[g]
        out += [episode(tr, p, [moves[(g + j) % len(moves)]], r) for j, r in enumerate(group)]
    return out


def ragen_expected(
    tr: TinyZeroTrainer, episodes: list, v_star: list[float], kept: list[int], c_ent: float, c_kl: float
) -> tuple[torch.Tensor, list, list]:
    """The A*PO regression over the kept trajectories (entropy over every trajectory's tokens)."""
    cfg = tr.cfg
    k = cfg.num_completions
    pol = [tokens(tr.policy, tr, e) for e in episodes]
    with torch.no_grad():
        ref = [tokens(tr.ref, tr, e) for e in episodes]
    res = []
    for i in kept:
        a_star = episodes[i].reward - v_star[i // k]
        res.append(cfg.astarpo.beta2 * (pol[i].total - ref[i].total) - a_star)
    expected = huber(torch.stack(res), cfg.astarpo.huber_delta).mean()
    # The entropy bonus covers every trajectory's tokens, StarPO-S's dropped groups included (as coded).
    expected = expected - c_ent * mean_over_tokens([p.entropy for p in pol])
    if c_kl > 0:
        expected = expected + c_kl * mean_over_tokens([exact_kl(pol[i].dist, ref[i].dist) for i in kept])
    return expected, pol, ref


def test_ragen_v_star_is_importance_weighted_toward_pi_ref(cache_dir: Path, tmp_path: Path) -> None:
    """V*(x) = β·log(Σ_k w_k e^{r_k/β} / Σ_k w_k), w_k = π_ref(τ_k)/π_θ(τ_k), with π_θ ≠ π_ref."""
    c_ent, c_kl = 0.05, 0.3
    tr = make_trainer(
        cache_dir,
        tmp_path,
        "algorithm.name=ragen",
        "astarpo.beta2=0.5",
        "astarpo.huber_delta=0.4",
        f"astarpo.kl_coef={c_kl}",
        f"training.entropy_coef={c_ent}",
    )
    perturb(tr.policy, 0.08)
    rewards = [[1.0, 0.0, 0.0, -0.1], [1.0, 1.0, 0.0, -0.1]]
    episodes = ragen_groups(tr, rewards)
    loss, metrics = loss_on(tr, episodes)

    k, beta = tr.cfg.num_completions, tr.cfg.astarpo.beta
    with torch.no_grad():
        lw = [float(tokens(tr.ref, tr, e).total - tokens(tr.policy, tr, e).total) for e in episodes]
    v_star = [
        v_star_by_hand(group, beta, [math.exp(x) for x in lw[g * k : (g + 1) * k]])
        for g, group in enumerate(rewards)
    ]
    plain = [v_star_by_hand(group, beta) for group in rewards]
    assert max(abs(a - b) for a, b in zip(v_star, plain)) > 0.02  # the weights matter in this batch
    expected, _, _ = ragen_expected(tr, episodes, v_star, list(range(len(episodes))), c_ent, c_kl)
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["v_star/mean"] == pytest.approx(sum(v_star) / len(v_star), rel=1e-4)
    assert metrics["kept_groups"] == 2


def test_ragen_reference_source_uses_the_reference_rewards(cache_dir: Path, tmp_path: Path) -> None:
    """``v_star_source: reference``: V*(x) = β·log mean_k e^{r_k/β} over the K π_ref trajectories."""
    tr = make_trainer(
        cache_dir,
        tmp_path,
        "algorithm.name=ragen",
        "astarpo.v_star_source=reference",
        "training.entropy_coef=0.02",
    )
    perturb(tr.policy)
    episodes = ragen_groups(tr, [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -0.1]])
    ref_rewards = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]]  # not the policy's: a mix-up shows
    ref_episodes = ragen_groups(tr, ref_rewards)
    loss, metrics = loss_on(tr, episodes, ref_episodes)
    v_star = [v_star_by_hand(g, tr.cfg.astarpo.beta) for g in ref_rewards]
    expected, _, _ = ragen_expected(tr, episodes, v_star, list(range(8)), 0.02, 0.0)
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["v_star/mean"] == pytest.approx(sum(v_star) / 2, rel=1e-5)


def test_ragen_reference_source_samples_from_pi_ref(cache_dir: Path, tmp_path: Path) -> None:
    """The real collection (``collect()``) draws the reference trajectories from π_ref, not π_θ (replayed)."""
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=ragen", "astarpo.v_star_source=reference")
    perturb(tr.policy, 0.5)  # π_θ now writes mostly invalid moves: its rewards differ from π_ref's
    state = tr.gen.get_state()
    _, metrics = tr.loss_on(tr.collect())
    tr.gen.set_state(state)  # replay the step's draws: its prompts, π_θ's rollout, then π_ref's
    k = tr.cfg.num_completions
    problems = tr.sample_problems(tr.cfg.astarpo.num_trajectories // k)
    own = tr.rollout([p for p in problems for _ in range(k)], tr.policy)
    from_ref = tr.rollout([p for p in problems for _ in range(k)], tr.ref)
    beta = tr.cfg.astarpo.beta

    def v_mean(eps: list) -> float:
        return sum(v_star_by_hand([e.reward for e in eps[g * k : (g + 1) * k]], beta) for g in range(2)) / 2

    assert abs(v_mean(own) - v_mean(from_ref)) > 0.01  # the two sources differ on this batch
    assert metrics["v_star/mean"] == pytest.approx(v_mean(from_ref), rel=1e-5)


def test_ragen_table_source_reads_v_star_per_prompt(cache_dir: Path, tmp_path: Path) -> None:
    """``v_star_source: table``: V*(x) is the stage-1 table's entry for the group's prompt; neither the
    group's own rewards nor their importance weights enter (the table values disagree with both)."""
    tr = make_trainer(
        cache_dir,
        tmp_path,
        "algorithm.name=ragen",
        "astarpo.v_star_source=table",
        "training.entropy_coef=0.02",
    )
    perturb(tr.policy)
    episodes = ragen_groups(tr, [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -0.1]])
    p0, p1 = tr.train_problems[0], tr.train_problems[1]
    table = {
        tr.task.describe(p0): {"v": 0.05, "success": True},
        tr.task.describe(p1): {"v": 0.7, "success": True},
    }
    tr.prepared = Prepared(state=table)
    loss, metrics = loss_on(tr, episodes)
    expected, _, _ = ragen_expected(tr, episodes, [0.05, 0.7], list(range(8)), 0.02, 0.0)
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["v_star/mean"] == pytest.approx(0.375, rel=1e-6)


def test_ragen_table_source_builds_a_stage1_table(cache_dir: Path, tmp_path: Path) -> None:
    """The real first update of ``ragen`` with ``v_star_source: table`` runs A*PO's stage 1: a V* for
    every training prompt, from N π_ref samples (the same table A*PO builds for these settings), and
    the iteration's V* are that table's values for its prompts."""
    tr = make_trainer(cache_dir, tmp_path / "ragen", "algorithm.name=ragen", "astarpo.v_star_source=table")
    tr.prepare()
    table = tr.prepared.state
    assert set(table) == {tr.task.describe(p) for p in tr.train_problems}
    astar = make_trainer(cache_dir, tmp_path / "astarpo", "algorithm.name=astarpo")
    astar.prepare()
    assert astar.prepared.state == table  # one table for both (cached once: same base and settings)
    state = tr.gen.get_state()
    _, metrics = tr.loss_on(tr.collect())
    tr.gen.set_state(state)  # replay the draws: the same prompts
    k = tr.cfg.num_completions
    problems = tr.sample_problems(tr.cfg.astarpo.num_trajectories // k)
    expected = sum(table[tr.task.describe(p)]["v"] for p in problems) / len(problems)
    assert metrics["v_star/mean"] == pytest.approx(expected, rel=1e-5)


def test_ragen_starpo_s_trains_only_the_highest_variance_groups(cache_dir: Path, tmp_path: Path) -> None:
    """keep = 0.5 of 3 groups keeps ⌈1.5⌉ = 2: the two with the highest reward std; the constant one is
    out of the regression and the KL term."""
    c_ent, c_kl = 0.02, 0.5
    tr = make_trainer(
        cache_dir,
        tmp_path,
        "algorithm.name=ragen",
        "algorithm.starpo_s_keep=0.5",
        f"astarpo.kl_coef={c_kl}",
        f"training.entropy_coef={c_ent}",
        "astarpo.num_trajectories=12",
    )
    perturb(tr.policy)
    rewards = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]  # std: 0.5, 0, 0.58
    episodes = ragen_groups(tr, rewards)
    loss, metrics = loss_on(tr, episodes)
    with torch.no_grad():
        lw = [float(tokens(tr.ref, tr, e).total - tokens(tr.policy, tr, e).total) for e in episodes]
    beta = tr.cfg.astarpo.beta
    v_star = [
        v_star_by_hand(g, beta, [math.exp(x) for x in lw[i * 4 : i * 4 + 4]]) for i, g in enumerate(rewards)
    ]
    kept = [0, 1, 2, 3, 8, 9, 10, 11]
    expected, _, _ = ragen_expected(tr, episodes, v_star, kept, c_ent, c_kl)
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["kept_groups"] == 2


# ----------------------------------------------------------------------------- GRPO


def test_grpo_loss_is_the_group_normalised_clipped_surrogate_with_k3(cache_dir: Path, tmp_path: Path) -> None:
    """A_k = (r_k − mean r)/(std r + 1e-4) per group (sample std, n − 1), −mean_t min(ρA, clip(ρ)A) with
    ρ = π_θ/π_old (π_old = the sampling policy = π_θ at the step), + c·mean_t k3, − c_ent·H."""
    c_kl, c_ent = 0.2, 0.05
    tr = make_trainer(
        cache_dir, tmp_path, "algorithm.name=grpo", f"grpo.kl_coef={c_kl}", f"training.entropy_coef={c_ent}"
    )
    perturb(tr.policy)
    rewards = [[1.0, 0.0, 0.0, -0.1], [0.5, 0.5, 0.0, 1.0]]
    episodes = ragen_groups(tr, rewards)
    # two turns = two sequences (history 0): every sequence must get its own trajectory's advantage
    episodes[1] = episode(tr, tr.train_problems[0], ["Down", "Right"], 0.0)
    loss, metrics = loss_on(tr, episodes)

    adv = []
    for g in rewards:
        m = sum(g) / len(g)
        s = math.sqrt(sum((x - m) ** 2 for x in g) / (len(g) - 1))
        adv += [(x - m) / (s + 1e-4) for x in g]
    pol = [tokens(tr.policy, tr, e) for e in episodes]
    with torch.no_grad():
        ref = [tokens(tr.ref, tr, e) for e in episodes]
    surrogate, k3 = [], []
    for a, p, q in zip(adv, pol, ref):
        ratio = torch.exp(p.logp - p.logp.detach())  # 1, with the gradient of log π_θ
        surrogate.append(torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a))
        x = q.logp - p.logp  # log(π_ref/π_θ): k3 = e^x − x − 1
        k3.append(torch.exp(x) - x - 1)
    assert mean_over_tokens(k3) > 1e-4
    expected = (
        -mean_over_tokens(surrogate)
        + c_kl * mean_over_tokens(k3)
        - c_ent * mean_over_tokens([p.entropy for p in pol])
    )
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["advantage/mean"] == pytest.approx(0.0, abs=1e-6)


def test_clipped_surrogate_with_ratios_outside_the_trust_interval() -> None:
    """Ratios 0.5, 0.9, 1.1, 1.5 with A = ±1 and ε = 0.2, by hand: min(ρA, clip(ρ, 0.8, 1.2)A); the
    gradient vanishes exactly where the clip is the minimum (ρ > 1.2 with A > 0, ρ < 0.8 with A < 0)."""
    ratios = torch.tensor([0.5, 0.9, 1.1, 1.5, 0.5, 0.9, 1.1, 1.5], dtype=torch.float64)
    adv = torch.tensor([1.0, 1, 1, 1, -1, -1, -1, -1], dtype=torch.float64)
    old = torch.full((8,), -2.0, dtype=torch.float64)
    logp = (old + ratios.log()).requires_grad_(True)
    mask = torch.ones(8, dtype=torch.bool)
    loss = clipped_surrogate(logp[None], old[None], adv[None], mask[None], 0.2)
    # A > 0: min(0.5, 0.8)=0.5, min(0.9, 0.9)=0.9, 1.1, min(1.5, 1.2)=1.2
    # A < 0: min(-0.5, -0.8)=-0.8, -0.9, -1.1, min(-1.5, -1.2)=-1.5
    by_hand = -(0.5 + 0.9 + 1.1 + 1.2 - 0.8 - 0.9 - 1.1 - 1.5) / 8
    assert loss.item() == pytest.approx(by_hand, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, logp)
    # d/dlogp of −ρA/8 is −ρA/8 where unclipped, 0 where clipped
    expected = torch.tensor([-0.5, -0.9, -1.1, 0.0, 0.0, 0.9, 1.1, 1.5], dtype=torch.float64) / 8
    torch.testing.assert_close(grad, expected)


# ----------------------------------------------------------------------------- PPO


@pytest.mark.parametrize("whiten", [True, False], ids=["whitened", "raw"])
def test_ppo_loss_reads_each_tokens_value_before_it(cache_dir: Path, tmp_path: Path, whiten: bool) -> None:
    """A_t = R − V(s_t) with V(s_t) the critic on the context before token t (whitened over the batch's
    agent tokens: mean 0, population std 1), −mean_t min(ρA, clip(ρ)A) + c_v·mean_t (V(s_t) − R)² − c·H."""
    c_v, c_ent = 0.5, 0.05
    tr = make_trainer(
        cache_dir,
        tmp_path,
        "algorithm.name=ppo",
        f"ppo.value_coef={c_v}",
        f"ppo.whiten_advantages={whiten}",
        f"training.entropy_coef={c_ent}",
    )
    assert tr.critic is not None
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a critic that has learned something: its values differ from token to token
        tr.critic.head.weight.copy_(0.5 * torch.randn(tr.critic.head.weight.shape, generator=g))
        tr.critic.head.bias.fill_(0.3)
    p0, p1, p2 = tr.train_problems[:3]
    episodes = [
        episode(tr, p0, ["Right", "Down"], 1.0),
        episode(tr, p1, ["Down"], 0.0),
        episode(tr, p2, ["Left"], -0.1),
        episode(tr, p0, ["Up Up"], 0.5),
    ]
    loss, metrics = loss_on(tr, episodes)

    pol = [tokens(tr.policy, tr, e) for e in episodes]
    values, returns = [], []
    for e, p in zip(episodes, pol):
        for ids, pos in p.positions:  # V(s_t): the critic's output on the prefix that ends before token t
            values.append(tr.critic(torch.tensor([ids[:pos]]), torch.ones(1, pos, dtype=torch.bool))[0, -1])
            returns.append(e.reward)
    v = torch.stack(values).double()
    ret = torch.tensor(returns, dtype=torch.float64)
    adv = (ret - v).detach()
    if whiten:
        adv = (adv - adv.mean()) / (((adv - adv.mean()) ** 2).mean().sqrt() + 1e-6)
    logp = torch.cat([p.logp for p in pol])
    ratio = torch.exp(logp - logp.detach())
    policy_loss = -torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
    value_loss = ((v - ret) ** 2).mean()
    expected = policy_loss + c_v * value_loss - c_ent * mean_over_tokens([p.entropy for p in pol])
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy, tr.critic))
    assert metrics["value_loss"] == pytest.approx(float(value_loss.detach()), rel=1e-4)


# ----------------------------------------------------------------------------- direction of one update


# lr 1e-4: Adam's first step moves every weight by ±lr, small enough to stay in the linear regime where
# the sign of Δ log π follows the gradient's; K = 2 for the group methods (direction_episodes)
DIRECTION = ("training.lr=1e-4", "training.entropy_coef=0", "num_completions=2")


def one_update_moves_log_pi_with_the_advantage(
    tr: TinyZeroTrainer, episodes: list, loss: torch.Tensor, adv: list
) -> None:
    """After one real optimizer step on the batch, Δ log π(τ) > 0 where A > 0 and < 0 where A < 0."""
    with torch.no_grad():
        before = [float(tokens(tr.policy, tr, e).total) for e in episodes]
    assert math.isfinite(tr.optimize(loss))  # a step was taken
    with torch.no_grad():
        after = [float(tokens(tr.policy, tr, e).total) for e in episodes]
    moved = [b - a for a, b in zip(before, after)]
    for a, d, e in zip(adv, moved, episodes):
        if abs(a) > 1e-6:
            assert (d > 0) == (a > 0), (e.actions, a, d, moved)


DIRECTION_GROUPS = [[1.0, 0.0], [0.0, 1.0]]  # K = 2: one better and one worse trajectory per prompt


def direction_episodes(tr: TinyZeroTrainer) -> list:
    """Four trajectories whose actions start with four different characters: no token is pushed up in
    one trajectory and down in another, so each trajectory's move is its own advantage's doing."""
    p0, p1 = tr.train_problems[:2]
    return [
        episode(tr, p0, ["Right"], 1.0),
        episode(tr, p0, ["Down"], 0.0),
        episode(tr, p1, ["Left"], 0.0),
        episode(tr, p1, ["Up"], 1.0),
    ]


def group_adv(rewards: list[list[float]]) -> list[float]:
    """The sign carrier of a group method: r − mean r."""
    return [x - sum(g) / len(g) for g in rewards for x in g]


def test_direction_astarpo(cache_dir: Path, tmp_path: Path) -> None:
    tr, episodes, table = astarpo_setup(cache_dir, tmp_path, *DIRECTION)
    loss, _ = loss_on(tr, episodes)  # π_θ = π_ref: the residual is −A*
    adv = [e.reward - table[tr.task.describe(e.problem)]["v"] for e in episodes]
    one_update_moves_log_pi_with_the_advantage(tr, episodes, loss, adv)


def test_direction_ragen(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=ragen", *DIRECTION)
    episodes = direction_episodes(tr)
    loss, _ = loss_on(tr, episodes)
    beta = tr.cfg.astarpo.beta  # π_θ = π_ref: equal importance weights
    adv = [x - v_star_by_hand(g, beta) for g in DIRECTION_GROUPS for x in g]
    one_update_moves_log_pi_with_the_advantage(tr, episodes, loss, adv)


def test_direction_grpo(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=grpo", *DIRECTION)
    episodes = direction_episodes(tr)
    loss, _ = loss_on(tr, episodes)
    one_update_moves_log_pi_with_the_advantage(tr, episodes, loss, group_adv(DIRECTION_GROUPS))


def test_direction_rloo(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=rloo", *DIRECTION)
    episodes = direction_episodes(tr)
    loss, _ = loss_on(tr, episodes)
    one_update_moves_log_pi_with_the_advantage(tr, episodes, loss, group_adv(DIRECTION_GROUPS))


def test_direction_ppo(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=ppo", *DIRECTION)
    episodes = direction_episodes(tr)
    loss, _ = loss_on(tr, episodes)
    # the fresh critic's head is zero (V = 0), so the whitened A has the sign of R − (token-weighted mean
    # R) on every token of a trajectory: R − 9/19 here
    one_update_moves_log_pi_with_the_advantage(tr, episodes, loss, [0.5, -0.5, -0.5, 0.5])
