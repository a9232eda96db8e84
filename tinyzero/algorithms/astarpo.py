"""A*PO: A*-Policy Optimization (Brantley et al., 2025, arXiv 2505.20686).

The KL-regularised objective  max_π E[r] − β·KL(π ‖ π_ref)  has the closed-form optimum

    π*(y|x) ∝ π_ref(y|x) · exp(r(x,y) / β)
    V*(x)   = β · log E_{y ~ π_ref}[ exp(r(x,y) / β) ]          (1)
    β · log π*(y|x) / π_ref(y|x) = r(x,y) − V*(x) = A*(x,y)      (2)

V* depends only on π_ref, so it is estimated ONCE, offline (stage 1, ``build_v_star_table``), from
N reference samples per training prompt with β1 = ``astarpo.beta``. Stage 2 (``step``) then needs a
single on-policy sample per prompt and regresses the scaled log-ratio onto the optimal advantage:

    loss = mean( (β2 · (log π_θ(y|x) − log π_ref(y|x)) − (r − V*(x)))² )   (3)

with sequence-summed log-probs (EOS included), a small entropy bonus, and no clipping, critic, KL
term or advantage whitening. Departures from the paper: β2 and the learning rate are tuned for tiny
models trained with Adam from scratch (docs/algorithms.md says why); the stage-1 table is cached
across runs that share a base model and settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from tinyzero.algorithms.common import (
    Batch,
    LogProbs,
    make_batch,
    masked_mean,
    token_kl,
    trajectory_logprobs,
)
from tinyzero.metrics import mean
from tinyzero.reward import reward_fingerprint
from tinyzero.rollout import Episode, run_episodes

if TYPE_CHECKING:
    from tinyzero.trainer import TinyZeroTrainer


def estimate_v_star(
    rewards: torch.Tensor, beta: float, log_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """V* = β·(logsumexp(r/β + lw) − logsumexp(lw)) over the last dim; lw = 0 gives β·log mean exp(r/β).

    Computed in float64 so that both limits are exact to rounding: β → 0 gives max(r) (a hard max over
    samples), β → ∞ gives mean(r). ``log_weights`` are unnormalised log importance weights (e.g.
    log π_ref − log π_θ), normalised here (self-normalised importance sampling).
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    r = torch.as_tensor(rewards, dtype=torch.float64)
    lw = torch.zeros_like(r) if log_weights is None else torch.as_tensor(log_weights, dtype=torch.float64)
    v = beta * (torch.logsumexp(r / beta + lw, dim=-1) - torch.logsumexp(lw, dim=-1))
    dtype = (
        rewards.dtype if isinstance(rewards, torch.Tensor) and rewards.is_floating_point() else torch.float32
    )
    return v.to(dtype)


def astarpo_loss(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    rewards: torch.Tensor,
    v_star: torch.Tensor,
    beta2: float,
    huber_delta: float = 0.0,
) -> torch.Tensor:
    """Equation (3): least squares of β2·log(π_θ/π_ref) onto A* = r − V*, averaged over trajectories.

    ``huber_delta`` = δ > 0 swaps the square for the Huber loss scaled to match it: e² when |e| ≤ δ,
    2δ|e| − δ² beyond (e = the residual). Same minimiser and same gradient for ordinary residuals, but
    a trajectory with an outlying log-ratio (a rare character sampled, |e| of several nats) pulls
    with at most 2δ instead of 2|e|, so after gradient clipping it cannot take over the whole step.
    """
    advantage = rewards - v_star  # A*(x, y)
    residual = beta2 * (logp - ref_logp) - advantage
    if huber_delta > 0:
        return 2 * F.huber_loss(residual, torch.zeros_like(residual), delta=huber_delta)
    return (residual**2).mean()


# ----------------------------------------------------------------------------- stage 1: V* table


def v_star_cache_key(trainer: TinyZeroTrainer) -> str:
    """Everything V* depends on: the reference model, β1, N, the prompts and how samples are drawn."""
    cfg = trainer.cfg
    settings = {
        "base": trainer.base_key,
        "beta": cfg.astarpo.beta,
        "n": cfg.astarpo.num_value_samples,
        "rollout": {
            k: getattr(cfg.rollout, k) for k in ("temperature", "top_k", "top_p", "max_new_tokens", "history")
        },
        "num_train": len(trainer.train_problems),
        # What the reward computes (its code, not its name: train.py's compute_reward is edited in place)
        # and the task settings it can read through `task`.
        "reward_fn": reward_fingerprint(trainer.reward_fn),
        "task": {k: v for k, v in dataclasses.asdict(cfg.task).items() if k != "num_test"},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _write_json(path: os.PathLike, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)  # atomic: an interrupted write never leaves a half table


def build_v_star_table(trainer: TinyZeroTrainer, chunk: int = 128) -> dict[str, dict]:
    """Stage 1: N samples from π_ref per training prompt → {prompt key: {"v": V*, "success": any}}.

    Written to ``<run>/v_star.json`` after every chunk (an interrupted run resumes where it stopped)
    and copied to a shared cache so later runs with the same base model and settings skip it.
    Under torchrun the chunks are dealt round-robin to the ranks and gathered after each round, so
    stage 1 takes 1/world of the time; every chunk keeps its own seed, so the table is the same
    whatever the number of processes. Rank 0 alone reads and writes the files.
    """
    cfg, dist = trainer.cfg, trainer.dist
    table, done = _load_v_star_table(trainer) if dist.is_main else ({}, False)
    table, done = dist.broadcast((table, done))
    if done:
        return table
    local = trainer.run_dir / "v_star.json"
    n = cfg.astarpo.num_value_samples
    todo = [p for p in trainer.train_problems if trainer.task.describe(p) not in table]
    chunks = [todo[start : start + chunk] for start in range(0, len(todo), chunk)]
    offsets, seen = [], set(table)  # len(table) before each chunk, as if they ran one after another
    for problems in chunks:
        offsets.append(len(seen))
        seen.update(trainer.task.describe(p) for p in problems)
    bar = trainer.progress_bar(
        total=len(trainer.train_problems), initial=len(table), desc="A*PO stage 1: V* from π_ref"
    )
    for first in range(0, len(chunks), dist.world_size):  # one round = one chunk per rank
        mine = first + dist.rank
        part: tuple[dict, int] = ({}, 0)
        if mine < len(chunks):
            part = _v_star_chunk(trainer, chunks[mine], cfg.run.seed * 100_003 + offsets[mine], n)
        for rows, tokens in dist.gather(part):  # in chunk order
            table.update(rows)
            trainer.stage1_tokens += tokens
            bar.update(len(rows))
        if dist.is_main:
            _write_json(local, table)
    bar.close()
    if dist.is_main:
        shared = trainer.cache_root / "v_star" / f"{v_star_cache_key(trainer)}.json"
        shared.parent.mkdir(parents=True, exist_ok=True)
        _write_json(shared, table)
    return table


def _load_v_star_table(trainer: TinyZeroTrainer) -> tuple[dict, bool]:
    """(the table so far, whether it is complete): the run's own or the shared cached one."""
    key = v_star_cache_key(trainer)
    shared = trainer.cache_root / "v_star" / f"{key}.json"
    local = trainer.run_dir / "v_star.json"
    stamp = trainer.run_dir / "v_star.key"  # which settings the local table was made with
    if local.is_file() and (not stamp.is_file() or stamp.read_text().strip() != key):
        local.unlink()  # made with other settings (e.g. another β): never reuse a stale V*
    trainer.run_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)
    for path in (local, shared):
        if path.is_file():
            table = json.loads(path.read_text())
            if len(table) == len(trainer.train_problems):
                if not local.is_file():
                    _write_json(local, table)
                return table, True
    return (json.loads(local.read_text()) if local.is_file() else {}), False


def _v_star_chunk(trainer: TinyZeroTrainer, problems: list, seed: int, n: int) -> tuple[dict, int]:
    """V* rows for one chunk of prompts, and the tokens generated for them."""
    # A per-chunk seed makes an interrupted stage 1 produce the same table when resumed.
    # On the model's device: torch.multinomial rejects a CPU generator for CUDA tensors.
    gen = torch.Generator(device=trainer.device).manual_seed(seed)
    # run_episodes, not trainer.rollout: count these tokens once, as stage-1 (not generated) tokens.
    episodes = run_episodes(
        trainer.ref,
        trainer.tok,
        trainer.task,
        [p for p in problems for _ in range(n)],
        trainer.sampling(),
        gen,
    )
    rewards = trainer.rewards(episodes).view(len(problems), n)
    v_star = estimate_v_star(rewards, trainer.cfg.astarpo.beta)
    rows = {}
    for i, p in enumerate(problems):
        wins = any(e.success for e in episodes[i * n : (i + 1) * n])
        rows[trainer.task.describe(p)] = {"v": float(v_star[i]), "success": wins}
    return rows, sum(e.num_action_tokens for e in episodes)


def training_pool(trainer: TinyZeroTrainer, table: dict[str, dict]) -> list:
    """The prompts stage 2 samples from: all of them, or (reference-code option) those π_ref ever solved."""
    if not trainer.cfg.astarpo.filter_all_failed:
        return list(trainer.train_problems)
    kept = [p for p in trainer.train_problems if table[trainer.task.describe(p)]["success"]]
    return kept or list(trainer.train_problems)


def regress(
    trainer: TinyZeroTrainer,
    batch: Batch,
    lp: LogProbs,
    ref: LogProbs,
    rewards: torch.Tensor,
    v_star: torch.Tensor,
    keep: torch.Tensor | None = None,
) -> tuple[LogProbs, torch.Tensor, torch.Tensor]:
    """Loss (3) minus the entropy bonus (plus the optional per-character KL) over the trajectories ``keep``.

    The targets r − V* are fixed for the batch, so with ``training.update_epochs`` > 1 the regression
    first takes that many − 1 steps on it; the returned loss is the last one, for the trainer's step.
    With ``astarpo.kl_coef`` > 0, ``lp`` and ``ref`` must carry their distributions (``wants_dist``).
    Returns the final log-probs, the loss and the entropy.
    """
    cfg = trainer.cfg
    idx = torch.arange(len(rewards), device=lp.traj.device) if keep is None else keep
    kept = torch.zeros(len(rewards), dtype=torch.bool, device=lp.traj.device).index_fill(0, idx, True)
    kept_mask = batch.mask & kept[batch.traj][:, None]  # agent tokens of the kept trajectories

    def loss_of(lp: LogProbs) -> tuple[torch.Tensor, torch.Tensor]:
        r, v = rewards.to(lp.traj)[idx], v_star.to(lp.traj)[idx]
        entropy = masked_mean(lp.entropy, batch.mask)
        loss = astarpo_loss(lp.traj[idx], ref.traj[idx], r, v, cfg.astarpo.beta2, cfg.astarpo.huber_delta)
        loss = loss - cfg.training.entropy_coef * entropy
        if cfg.astarpo.kl_coef > 0:
            assert lp.dist is not None and ref.dist is not None, "astarpo.kl_coef needs dist=True log-probs"
            loss = loss + cfg.astarpo.kl_coef * masked_mean(token_kl(lp.dist, ref.dist), kept_mask)
        return loss, entropy

    for _ in range(cfg.training.update_epochs - 1):
        lp = trainer.step_then_logprobs(loss_of(lp)[0], batch, dist=wants_dist(trainer))
    loss, entropy = loss_of(lp)
    return lp, loss, entropy


def wants_dist(trainer: TinyZeroTrainer) -> bool:
    """Whether the update needs whole predictive distributions (only the exact KL term does)."""
    return trainer.cfg.astarpo.kl_coef > 0


def policy_and_ref_logprobs(trainer: TinyZeroTrainer, batch: Batch) -> tuple[LogProbs, LogProbs]:
    """Log-probs under π_θ (with gradients) and π_ref; distributions only when the KL term or the trust
    region needs them."""
    dist = wants_dist(trainer) or trainer.trust.enabled
    lp = trajectory_logprobs(trainer.train_policy, batch, dist=dist)
    with torch.no_grad():
        ref = trajectory_logprobs(trainer.ref, batch, dist=dist)
    trainer.arm_trust_region(batch, lp, ref)  # π_old on this batch: every step of the iteration is held to it
    return lp, ref


def kl_metrics(batch: Batch, lp: LogProbs, ref: LogProbs) -> dict[str, float]:
    """Sequence KL (mean log-ratio per trajectory) and, given distributions, the exact per-char KL."""
    out = {"kl": float((lp.traj.detach() - ref.traj).mean())}
    if lp.dist is not None and ref.dist is not None:
        out["kl/token"] = float(masked_mean(token_kl(lp.dist.detach(), ref.dist), batch.mask))
    return out


# ----------------------------------------------------------------------------- stage 2: one update


def step(trainer: TinyZeroTrainer) -> tuple[torch.Tensor, dict]:
    """One on-policy sample per prompt, loss (3) minus the entropy bonus."""
    cfg = trainer.cfg
    if trainer.v_star_table is None:
        trainer.v_star_table = build_v_star_table(trainer)
        trainer.problem_pool = training_pool(trainer, trainer.v_star_table)
    problems = trainer.sample_problems(cfg.astarpo.num_trajectories)
    return loss_from_episodes(trainer, trainer.rollout(problems, trainer.policy))


def loss_from_episodes(trainer: TinyZeroTrainer, episodes: list[Episode]) -> tuple[torch.Tensor, dict]:
    """Stage 2's loss on given on-policy episodes (``step`` after its rollout; tests feed fixed ones).

    Each episode's V* is read from ``trainer.v_star_table`` under its own prompt (``episode.problem``).
    """
    cfg = trainer.cfg
    rewards = trainer.rewards(episodes)
    v_star = torch.tensor([trainer.v_star_table[trainer.task.describe(e.problem)]["v"] for e in episodes])
    batch = make_batch(trainer.tok, episodes, cfg.rollout.history, trainer.device)
    lp, ref = policy_and_ref_logprobs(trainer, batch)
    lp, loss, entropy = regress(trainer, batch, lp, ref, rewards, v_star)
    advantage = rewards - v_star
    metrics = {
        "v_star/mean": float(v_star.mean()),
        "advantage/mean": float(advantage.mean()),
        "advantage/std": float(advantage.std()) if len(advantage) > 1 else 0.0,
        **kl_metrics(batch, lp, ref),
        "entropy": float(entropy.detach()),
        "pool_size": len(trainer.problem_pool),
    }
    trainer.record_episodes(episodes, rewards, metrics)
    metrics["v_star/table_mean"] = mean([v["v"] for v in trainer.v_star_table.values()])
    return loss, metrics
