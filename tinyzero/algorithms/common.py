"""Shared by every algorithm: episodes → padded tensors, and sequence log-probs over the agent's tokens.

Sharing this code is what makes the comparisons fair: A*PO, RAGEN, GRPO and PPO see the same
rollouts, the same masks and the same log-prob computation; only the loss differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinyzero.context import pad_batch, training_sequences
from tinyzero.distributed import token_count
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.models.transformer import token_logprobs_and_entropy, token_logprobs_entropy_and_dist
from tinyzero.rollout import Episode


@dataclass
class Batch:
    """Training tensors for N trajectories stored as S ≥ N right-padded sequences."""

    ids: torch.Tensor  # (S, T) long
    attn: torch.Tensor  # (S, T) bool, True on real tokens
    mask: torch.Tensor  # (S, T) bool, True on the agent's tokens (the only ones trained)
    traj: torch.Tensor  # (S,) long, which trajectory each sequence belongs to
    num_traj: int


def make_batch(
    tok: CharTokenizer, episodes: list[Episode], history: int, device: torch.device | str
) -> Batch:
    seqs, owner = [], []
    for n, ep in enumerate(episodes):
        for s in training_sequences(tok, ep.turns, history):
            seqs.append(s)
            owner.append(n)
    ids, attn, mask = pad_batch(seqs, tok.pad_id)
    return Batch(
        ids.to(device), attn.to(device), mask.to(device), torch.tensor(owner, device=device), len(episodes)
    )


@dataclass
class LogProbs:
    """Per-token and per-trajectory log-probs of the agent's tokens under one model."""

    token: torch.Tensor  # (S, T) log p(x_t | x_<t), 0 outside the mask
    entropy: torch.Tensor  # (S, T) entropy of the predictive distribution, 0 outside the mask
    traj: torch.Tensor  # (N,) Σ over the trajectory's agent tokens (EOS included)
    dist: torch.Tensor | None = None  # (S, T, V) log π(· | context_t), only when asked for (exact KL)


def trajectory_logprobs(model: torch.nn.Module, batch: Batch, dist: bool = False) -> LogProbs:
    """log π(τ) = Σ_t log π(a_t | context_t) over agent tokens, per trajectory (sequence sums, not means).

    ``dist`` also keeps the whole log-distribution at every position (for ``token_kl``).
    """
    full = None
    if dist:
        logp, ent, full = token_logprobs_entropy_and_dist(model, batch.ids, batch.attn)
    else:
        logp, ent = token_logprobs_and_entropy(model, batch.ids, batch.attn)  # (S, T) each
    logp = logp * batch.mask
    ent = ent * batch.mask
    traj = torch.zeros(batch.num_traj, dtype=logp.dtype, device=logp.device)
    traj = traj.index_add(0, batch.traj, logp.sum(dim=1))
    return LogProbs(logp, ent, traj, full)


def token_kl(policy: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Exact KL(π_θ ‖ π_ref) at every position: Σ_v π_θ(v)·(log π_θ(v) − log π_ref(v)); (S, T, V) → (S, T).

    Exact over the vocabulary, not the sampled-token k3 estimate: it also charges probability that
    moved onto characters π_ref rules out (e.g. ``D`` after ``Ri``) before any of them is sampled.
    """
    return (policy.exp() * (policy - ref)).sum(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-level mean; under torchrun the denominator is global (``distributed.token_count``)."""
    return (x * mask).sum() / token_count(mask)


def group_view(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(P·K,) → (P, K): trajectories of the same prompt are stored contiguously."""
    return x.view(-1, group_size)
