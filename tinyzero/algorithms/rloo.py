"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al., 2024, arXiv 2402.14740).

For K trajectories τ_1..τ_K of the same prompt, each one's baseline is the mean reward of the others:

    A_k = r_k − 1/(K−1) · Σ_{j≠k} r_j                                    (1)

an unbiased baseline (it does not depend on τ_k) that costs no critic and no extra samples. The whole
response is one action (sequence-level REINFORCE):

    loss = −mean_k( ρ_k · A_k ) − c_ent · H,   ρ_k = π_θ(τ_k) / π_old(τ_k)    (2)

ρ_k = 1 in value at the first update epoch, so the gradient is the plain REINFORCE estimate A·∇log π;
later epochs (``training.update_epochs`` > 1) importance-weight it. The paper puts a KL penalty into
the reward; here, as for the other baselines, the trust region (``training.max_kl_rise``) and the
entropy bonus keep π_θ near π_ref instead. docs/extending.md builds this file step by step.
"""

from __future__ import annotations

import torch

from tinyzero.algorithms.common import group_view, masked_mean
from tinyzero.algorithms.interface import Algorithm, Collect, Forward, Rollouts
from tinyzero.config import Config


def leave_one_out_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(P·K,) rewards → (P·K,) advantages (1): each reward minus the mean of its group's other rewards."""
    g = group_view(rewards, group_size)
    others = (g.sum(dim=1, keepdim=True) - g) / (group_size - 1)
    return (g - others).flatten()


def collect(cfg: Config) -> Collect:
    """K = ``num_completions`` trajectories from π_θ for each sampled prompt (K ≥ 2: config check)."""
    k = cfg.num_completions
    return Collect(prompts=max(1, cfg.astarpo.num_trajectories // k), samples_per_prompt=k)


def loss(cfg: Config, data: Rollouts, fwd: Forward, state: None = None) -> tuple[torch.Tensor, dict]:
    """Loss (2) over the batch's trajectories, K consecutive ones per prompt."""
    lp, batch = fwd.policy, data.batch
    adv = leave_one_out_advantages(data.rewards, data.group_size).to(lp.traj)
    ratio = torch.exp(lp.traj - fwd.old.traj)  # 1 at the first epoch; its gradient is ∇log π(τ)
    entropy = masked_mean(lp.entropy, batch.mask)
    value = -(ratio * adv).mean() - cfg.training.entropy_coef * entropy
    metrics = {
        "advantage/mean": float(adv.mean()),
        "advantage/std": float(adv.std()),
        "kl": float((lp.traj.detach() - fwd.ref.traj).mean()),
        "entropy": float(entropy.detach()),
        "reward/group_std": float(group_view(data.rewards, data.group_size).std(dim=1).mean()),
    }
    return value, metrics


ALGORITHM = Algorithm(collect=collect, loss=loss)
