"""GRPO baseline (Shao et al., 2024): group-normalised advantages and a clipped ratio, no critic.

For K trajectories of the same prompt:  A_k = (r_k − mean(r)) / (std(r) + ε), applied to every agent
token of τ_k, with the PPO surrogate  min(ρ_t A, clip(ρ_t, 1−ε, 1+ε) A),  ρ_t = π_θ/π_old per token,
averaged over tokens, plus optionally β_KL times the k3 estimate of KL(π_θ ‖ π_ref) per token.
π_old is π_θ before the iteration's first step: with ``training.update_epochs`` = 1 the ratio is 1
at the step and the clip never acts; from the second epoch on it bounds how far a batch moves π_θ.
"""

from __future__ import annotations

import torch

from tinyzero.algorithms.common import group_view, masked_mean
from tinyzero.algorithms.interface import Algorithm, Collect, Forward, Rollouts
from tinyzero.config import Config


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


def collect(cfg: Config) -> Collect:
    """K = ``num_completions`` trajectories from π_θ for each sampled prompt."""
    k = cfg.num_completions
    return Collect(prompts=max(1, cfg.astarpo.num_trajectories // k), samples_per_prompt=k)


def loss(cfg: Config, data: Rollouts, fwd: Forward, state: None = None) -> tuple[torch.Tensor, dict]:
    """The clipped surrogate with group-normalised advantages (K consecutive episodes per prompt)."""
    k, rewards, batch, lp, ref = data.group_size, data.rewards, data.batch, fwd.policy, fwd.ref
    adv = group_advantages(rewards, k).to(lp.token)
    token_adv = adv[batch.traj][:, None].expand_as(lp.token)  # each sequence gets its trajectory's A
    value = clipped_surrogate(lp.token, fwd.old.token, token_adv, batch.mask, cfg.grpo.clip_eps)
    if cfg.grpo.kl_coef > 0:
        log_ratio = ref.token - lp.token  # k3 = exp(log_ratio) − log_ratio − 1 ≥ 0
        value = value + cfg.grpo.kl_coef * masked_mean(torch.exp(log_ratio) - log_ratio - 1, batch.mask)
    entropy = masked_mean(lp.entropy, batch.mask)
    value = value - cfg.training.entropy_coef * entropy
    metrics = {
        "advantage/mean": float(adv.mean()),
        "advantage/std": float(adv.std()),
        "kl": float((lp.traj.detach() - ref.traj).mean()),
        "entropy": float(entropy.detach()),
        "reward/group_std": float(group_view(rewards, k).std(dim=1).mean()),
    }
    return value, metrics


ALGORITHM = Algorithm(collect=collect, loss=loss)
