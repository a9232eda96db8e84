"""GRPO baseline (Shao et al., 2024): group-normalised advantages and a clipped ratio, no critic.

For K trajectories of the same prompt:  A_k = (r_k − mean(r)) / (std(r) + ε), applied to every agent
token of τ_k, with the PPO surrogate  min(ρ_t A, clip(ρ_t, 1−ε, 1+ε) A),  ρ_t = π_θ/π_old per token,
averaged over tokens, plus optionally β_KL times the k3 estimate of KL(π_θ ‖ π_ref) per token.
We take one gradient step per batch of rollouts (as A*PO does), so π_old = π_θ at the step and
ρ = 1: the clip is kept for fidelity and matters once ``update_epochs`` > 1 is added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tinyzero.algorithms.common import group_view, make_batch, masked_mean, trajectory_logprobs
from tinyzero.rollout import Episode

if TYPE_CHECKING:
    from tinyzero.trainer import TinyZeroTrainer


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """(P·K,) rewards → (P·K,) advantages normalised within each group of K."""
    g = group_view(rewards, group_size)
    return ((g - g.mean(dim=1, keepdim=True)) / (g.std(dim=1, keepdim=True) + eps)).flatten()


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """−mean_t min(ρ_t A_t, clip(ρ_t) A_t) over masked tokens (logp, old_logp, adv, mask: (S, T))."""
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    return -masked_mean(surrogate, mask)


def step(trainer: TinyZeroTrainer) -> tuple[torch.Tensor, dict]:
    """K trajectories from π_θ for each sampled prompt, then the clipped surrogate on them."""
    cfg = trainer.cfg
    k = cfg.num_completions
    problems = trainer.sample_problems(max(1, cfg.astarpo.num_trajectories // k))
    episodes = trainer.rollout([p for p in problems for _ in range(k)], trainer.policy)
    return loss_from_episodes(trainer, episodes)


def loss_from_episodes(trainer: TinyZeroTrainer, episodes: list[Episode]) -> tuple[torch.Tensor, dict]:
    """The loss on given episodes, K = ``num_completions`` consecutive ones per prompt (``step`` after
    its rollout; tests feed fixed ones)."""
    cfg = trainer.cfg
    k = cfg.num_completions
    rewards = trainer.rewards(episodes)
    batch = make_batch(trainer.tok, episodes, cfg.rollout.history, trainer.device)
    lp = trajectory_logprobs(trainer.train_policy, batch, dist=trainer.trust.enabled)
    with torch.no_grad():
        ref = trajectory_logprobs(trainer.ref, batch, dist=trainer.trust.enabled)
    trainer.arm_trust_region(batch, lp, ref)  # training.max_kl_rise: the step is checked on this batch
    adv = group_advantages(rewards, k).to(lp.token)
    token_adv = adv[batch.traj][:, None].expand_as(lp.token)  # each sequence gets its trajectory's A
    loss = clipped_surrogate(lp.token, lp.token.detach(), token_adv, batch.mask, cfg.grpo.clip_eps)
    if cfg.grpo.kl_coef > 0:
        log_ratio = ref.token - lp.token  # k3 = exp(log_ratio) − log_ratio − 1 ≥ 0
        loss = loss + cfg.grpo.kl_coef * masked_mean(torch.exp(log_ratio) - log_ratio - 1, batch.mask)
    entropy = masked_mean(lp.entropy, batch.mask)
    loss = loss - cfg.training.entropy_coef * entropy
    metrics = {
        "advantage/mean": float(adv.mean()),
        "advantage/std": float(adv.std()),
        "kl": float((lp.traj.detach() - ref.traj).mean()),
        "entropy": float(entropy.detach()),
        "reward/group_std": float(group_view(rewards, k).std(dim=1).mean()),
    }
    trainer.record_episodes(episodes, rewards, metrics)
    return loss, metrics
