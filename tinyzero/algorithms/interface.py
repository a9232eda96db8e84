"""What an algorithm is, as the trainer sees it: three small things, all plain data and functions.

1. ``collect(cfg) -> Collect``: what to sample each iteration (how many prompts, how many samples of
   each from π_θ, and whether as many again from π_ref).
2. ``prepare(cfg, Preparation) -> Prepared`` (optional): one-off work before the first iteration,
   such as A*PO's stage 1. It gets a reference sampler and a cache location, not the trainer.
3. ``loss(cfg, Rollouts, Forward, state) -> (loss, metrics)``: the paper's math on a batch it is
   handed: the episodes and their rewards, and log-probs under π_θ, π_old and π_ref.

The trainer owns everything else: the loop, drawing prompts, the forwards, the optimizer, update
epochs (``loss`` is called once per epoch, with π_θ's log-probs at the current weights), the trust
region, logging, checkpoints and distributed plumbing. docs/extending.md adds an algorithm this way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tinyzero.algorithms.common import Batch, LogProbs
from tinyzero.config import Config
from tinyzero.rollout import Episode


@dataclass(frozen=True)
class Collect:
    """One iteration's sampling: ``prompts`` training prompts, each sampled ``samples_per_prompt`` times
    from π_θ (stored consecutively, so group g is episodes[g·K:(g+1)·K]), and as many again from π_ref
    when ``from_reference``."""

    prompts: int
    samples_per_prompt: int = 1
    from_reference: bool = False


@dataclass
class Rollouts:
    """One iteration's data, as every loss receives it."""

    episodes: list[Episode]  # from π_θ, grouped as Collect says
    rewards: torch.Tensor  # (N,) compute_reward of each episode
    keys: list[str]  # each episode's prompt, as ``task.describe`` names it (the key of per-prompt tables)
    batch: Batch  # the episodes as padded training tensors (masks: the agent's tokens only)
    group_size: int  # K = Collect.samples_per_prompt
    ref_rewards: torch.Tensor | None = None  # (N,) rewards of the π_ref episodes (Collect.from_reference)


@dataclass
class Forward:
    """Log-probs of the batch's agent tokens. ``policy`` has gradients and is recomputed after every
    update epoch; ``old`` (π_θ before this iteration's first step) and ``ref`` (π_ref) have none."""

    policy: LogProbs
    old: LogProbs
    ref: LogProbs
    values: torch.Tensor | None = None  # (S, T) the critic's outputs, with gradients (Algorithm.critic)
    old_values: torch.Tensor | None = None  # (S, T) the critic's outputs before the first step, detached


@dataclass
class Preparation:
    """What a one-off preparation may use: π_ref as a seeded sampler, the training prompts, the rewards,
    and where to keep its results (in the run, to resume; in a cache shared by runs)."""

    problems: list  # the training prompts
    describe: Callable[[Any], str]  # prompt -> its key
    sample_reference: Callable[[list, int], list[Episode]]  # (prompts, seed) -> one π_ref episode each
    rewards: Callable[[list[Episode]], torch.Tensor]
    run_dir: Path
    cache_dir: Path
    cache_settings: dict  # what a cached result also depends on: base model, rollout, reward code, task
    dist: Any  # tinyzero.distributed.Dist: rank, world size, gather, broadcast
    progress: Callable[..., Any]  # progress-bar factory (tqdm's arguments)


@dataclass
class Prepared:
    """The result of ``prepare``: a state handed to every ``loss`` call, the prompts to train on (None:
    all of them), figures logged every iteration, and the tokens generated (all processes)."""

    state: Any = None
    problems: list | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tokens: int = 0


LossFn = Callable[[Config, Rollouts, Forward, Any], tuple[torch.Tensor, dict]]


def no_dist(cfg: Config) -> bool:
    """The default ``needs_dist``: sampled-token log-probs are enough."""
    return False


@dataclass(frozen=True)
class Algorithm:
    """An entry of the registry in ``tinyzero/algorithms/__init__.py``."""

    collect: Callable[[Config], Collect]
    loss: LossFn
    prepare: Callable[[Config, Preparation], Prepared] | None = None
    # Whether ``loss`` needs whole predictive distributions (an exact KL term); the trust region asks
    # for them on its own.
    needs_dist: Callable[[Config], bool] = no_dist
    critic: Callable[[torch.nn.Module], torch.nn.Module] | None = None  # builds V_φ from π_ref, if any
