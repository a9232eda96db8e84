"""RAGEN (StarPO, Wang et al., 2025, arXiv 2504.20073) rollouts, updated with A*PO.

RAGEN trains an agent on multi-turn trajectories: observation, action, observation, … is ONE token
sequence, the loss covers only the agent's tokens (observations are masked, see
``tinyzero.context``), and the trajectory's reward is the sum of its turns' rewards.

Here the policy update is A*PO's regression instead of PPO. For each initial state x we sample
K = ``num_completions`` trajectories τ_1..τ_K from π_θ and estimate

    V*(x) = β · log Σ_k w_k exp(r_k / β),   w_k ∝ π_ref(τ_k) / π_θ(τ_k)   (self-normalised)

which is exactly A*PO's equation (1) with importance sampling toward π_ref (exact when π_θ = π_ref,
as at the first iteration). ``astarpo.v_star_source: reference`` instead draws K fresh trajectories
from π_ref (unbiased, K more rollouts per state), and ``table`` reads V*(x) from A*PO's stage-1 table
(N π_ref samples per training state, drawn once before the first update and cached: the definition
of V* taken literally, a target that stays put for each state). Then A* = r − V* and the loss is A*PO's

    loss = mean_k( (β2 · log π_θ(τ_k)/π_ref(τ_k) − A*(x, τ_k))² ) − c_ent · H

StarPO-S (``algorithm.starpo_s_keep`` < 1) keeps only the prompt groups with the highest reward
standard deviation, where the learning signal is. Single-turn tasks run through the same code as
one-turn episodes.
"""

from __future__ import annotations

import math

import torch

from tinyzero.algorithms import astarpo
from tinyzero.algorithms.astarpo import estimate_v_star, kl_metrics, needs_dist, regression_loss
from tinyzero.algorithms.common import group_view
from tinyzero.algorithms.interface import Algorithm, Collect, Forward, Preparation, Prepared, Rollouts
from tinyzero.config import Config


def starpo_s_keep(rewards: torch.Tensor, keep: float) -> torch.Tensor:
    """Indices of the ⌈keep·P⌉ prompt groups with the highest reward std (rewards: (P, K)).

    Rounded up, so a fraction never keeps fewer groups than asked (0.5 of 5 keeps 3) and keep > 0 keeps
    at least one; the product is first rounded to 9 decimals so that 0.7·10 = 7.000000000000001 keeps 7.
    Ties keep the earlier group (stable sort).
    """
    n_keep = max(1, math.ceil(round(keep * rewards.shape[0], 9)))
    return torch.argsort(rewards.std(dim=1), descending=True, stable=True)[:n_keep]


def collect(cfg: Config) -> Collect:
    """K trajectories from π_θ per initial state (and K from π_ref for the reference source)."""
    k = cfg.num_completions
    return Collect(
        prompts=max(1, cfg.astarpo.num_trajectories // k),
        samples_per_prompt=k,
        from_reference=cfg.astarpo.v_star_source == "reference",
    )


def prepare(cfg: Config, prep: Preparation) -> Prepared:
    """The stage-1 V* table for ``v_star_source: table`` (A*PO's, shared cache); nothing otherwise."""
    if cfg.astarpo.v_star_source == "table":
        return astarpo.prepare(cfg, prep)
    return Prepared()


def loss(cfg: Config, data: Rollouts, fwd: Forward, table: dict | None = None) -> tuple[torch.Tensor, dict]:
    """A*PO's regression on K consecutive trajectories per initial state, V* estimated from the group
    (or, for ``v_star_source: table``, read from the stage-1 ``table`` under the group's prompt)."""
    k, rewards, lp, ref = data.group_size, data.rewards, fwd.policy, fwd.ref
    if cfg.astarpo.v_star_source == "table":
        assert table is not None, "v_star_source: table needs the stage-1 table (prepare)"
        v_star = torch.tensor([table[key]["v"] for key in data.keys[::k]])  # (P,)
    elif cfg.astarpo.v_star_source == "reference":
        assert data.ref_rewards is not None, "v_star_source: reference needs the π_ref episodes"
        v_star = estimate_v_star(group_view(data.ref_rewards, k), cfg.astarpo.beta)  # (P,)
    else:
        # log π_ref(τ) − log π_old(τ): the sampling policy's, so V* stays fixed over the update epochs
        log_w = group_view(ref.traj - fwd.old.traj, k)
        v_star = estimate_v_star(group_view(rewards, k), cfg.astarpo.beta, log_w.cpu())  # (P,)

    groups = group_view(rewards, k)
    kept = starpo_s_keep(groups, cfg.algorithm.starpo_s_keep)
    sel = (kept[:, None] * k + torch.arange(k)).flatten().to(lp.traj.device)
    targets = v_star.repeat_interleave(k)
    value, entropy = regression_loss(cfg, data.batch, lp, ref, rewards, targets, keep=sel)
    advantage = rewards - targets
    metrics = {
        "v_star/mean": float(v_star.mean()),
        "advantage/mean": float(advantage.mean()),
        "advantage/std": float(advantage.std()),
        **kl_metrics(data.batch, lp, ref),
        "entropy": float(entropy.detach()),
        "reward/group_std": float(groups.std(dim=1).mean()),
        "kept_groups": int(len(kept)),
    }
    return value, metrics


ALGORITHM = Algorithm(collect=collect, loss=loss, prepare=prepare, needs_dist=needs_dist)
