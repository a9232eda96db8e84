"""RAGEN (StarPO, Wang et al., 2025, arXiv 2504.20073) rollouts, updated with A*PO.

RAGEN trains an agent on multi-turn trajectories: observation, action, observation, … is ONE token
sequence, the loss covers only the agent's tokens (observations are masked, see
``tinyzero.context``), and the trajectory's reward is the sum of its turns' rewards.

Here the policy update is A*PO's regression instead of PPO. For each initial state x we sample
K = ``num_completions`` trajectories τ_1..τ_K from π_θ and estimate

    V*(x) = β · log Σ_k w_k exp(r_k / β),   w_k ∝ π_ref(τ_k) / π_θ(τ_k)   (self-normalised)

which is exactly A*PO's equation (1) with importance sampling toward π_ref (exact when π_θ = π_ref,
as at the first iteration). ``astarpo.v_star_source: reference`` instead draws K fresh trajectories
from π_ref (unbiased, K more rollouts per state). Then A* = r − V* and the loss is A*PO's

    loss = mean_k( (β2 · log π_θ(τ_k)/π_ref(τ_k) − A*(x, τ_k))² ) − c_ent · H

StarPO-S (``algorithm.starpo_s_keep`` < 1) keeps only the prompt groups with the highest reward
standard deviation, where the learning signal is. Single-turn tasks run through the same code as
one-turn episodes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from tinyzero.algorithms.astarpo import estimate_v_star, kl_metrics, policy_and_ref_logprobs, regress
from tinyzero.algorithms.common import group_view, make_batch
from tinyzero.rollout import Episode

if TYPE_CHECKING:
    from tinyzero.trainer import TinyZeroTrainer


def starpo_s_keep(rewards: torch.Tensor, keep: float) -> torch.Tensor:
    """Indices of the ⌈keep·P⌉ prompt groups with the highest reward std (rewards: (P, K)).

    Rounded up, so a fraction never keeps fewer groups than asked (0.5 of 5 keeps 3) and keep > 0 keeps
    at least one; the product is first rounded to 9 decimals so that 0.7·10 = 7.000000000000001 keeps 7.
    Ties keep the earlier group (stable sort).
    """
    n_keep = max(1, math.ceil(round(keep * rewards.shape[0], 9)))
    return torch.argsort(rewards.std(dim=1), descending=True, stable=True)[:n_keep]


def step(trainer: TinyZeroTrainer) -> tuple[torch.Tensor, dict]:
    """K trajectories from π_θ per sampled initial state (and K from π_ref for the reference source)."""
    cfg = trainer.cfg
    k = cfg.num_completions
    n_prompts = max(1, cfg.astarpo.num_trajectories // k)
    problems = trainer.sample_problems(n_prompts)
    episodes = trainer.rollout([p for p in problems for _ in range(k)], trainer.policy)
    ref_eps = None
    if cfg.astarpo.v_star_source == "reference":  # K fresh π_ref trajectories per initial state
        ref_eps = trainer.rollout([p for p in problems for _ in range(k)], trainer.ref)
    return loss_from_episodes(trainer, episodes, ref_eps)


def loss_from_episodes(
    trainer: TinyZeroTrainer, episodes: list[Episode], ref_episodes: list[Episode] | None = None
) -> tuple[torch.Tensor, dict]:
    """The update on given episodes: K = ``num_completions`` consecutive ones per initial state (``step``
    after its rollouts; tests feed fixed ones). ``ref_episodes``: the K π_ref trajectories per state that
    ``astarpo.v_star_source: reference`` estimates V* from (unused otherwise)."""
    cfg = trainer.cfg
    k = cfg.num_completions
    rewards = trainer.rewards(episodes)  # (P·K,)
    batch = make_batch(trainer.tok, episodes, cfg.rollout.history, trainer.device)
    lp, ref = policy_and_ref_logprobs(trainer, batch)

    if cfg.astarpo.v_star_source == "reference":
        assert ref_episodes is not None, "v_star_source: reference needs the π_ref episodes"
        v_star = estimate_v_star(group_view(trainer.rewards(ref_episodes), k), cfg.astarpo.beta)  # (P,)
    else:
        log_w = group_view(ref.traj - lp.traj.detach(), k)  # log π_ref(τ) − log π_θ(τ)
        v_star = estimate_v_star(group_view(rewards, k), cfg.astarpo.beta, log_w.cpu())  # (P,)

    groups = group_view(rewards, k)
    kept = starpo_s_keep(groups, cfg.algorithm.starpo_s_keep)
    sel = (kept[:, None] * k + torch.arange(k)).flatten().to(lp.traj.device)
    lp, loss, entropy = regress(trainer, batch, lp, ref, rewards, v_star.repeat_interleave(k), keep=sel)
    advantage = rewards - v_star.repeat_interleave(k)
    metrics = {
        "v_star/mean": float(v_star.mean()),
        "advantage/mean": float(advantage.mean()),
        "advantage/std": float(advantage.std()),
        **kl_metrics(batch, lp, ref),
        "entropy": float(entropy.detach()),
        "reward/group_std": float(groups.std(dim=1).mean()),
        "kept_groups": int(len(kept)),
    }
    trainer.record_episodes(episodes, rewards, metrics)
    return loss, metrics
