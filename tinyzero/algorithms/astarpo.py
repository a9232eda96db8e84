"""A*PO: A*-Policy Optimization (Brantley et al., 2025, arXiv 2505.20686).

The KL-regularised objective  max_π E[r] − β·KL(π ‖ π_ref)  has the closed-form optimum

    π*(y|x) ∝ π_ref(y|x) · exp(r(x,y) / β)
    V*(x)   = β · log E_{y ~ π_ref}[ exp(r(x,y) / β) ]          (1)
    β · log π*(y|x) / π_ref(y|x) = r(x,y) − V*(x) = A*(x,y)      (2)

V* depends only on π_ref, so it is estimated ONCE, offline (stage 1, ``build_v_star_table``), from
N reference samples per training prompt with β1 = ``astarpo.beta``. Stage 2 (``loss``) then needs a
single on-policy sample per prompt and regresses the scaled log-ratio onto the optimal advantage:

    loss = mean( (β2 · (log π_θ(y|x) − log π_ref(y|x)) − (r − V*(x)))² )   (3)

with sequence-summed log-probs (EOS included), a small entropy bonus, and no clipping, critic, KL
term or advantage whitening. ``astarpo.credit: turn`` (multi-turn tasks) splits (3) at the states
stage 1 has a V* for (``turn_segments``): the segments' targets V*(s_b) − V*(s_a) sum to r − V*(x),
so the blame for a fall lands on the turns that led to it, not on the whole episode.
Departures from the paper: β2 and the learning rate are tuned for tiny
models trained with Adam from scratch (docs/algorithms.md says why); the stage-1 table is cached
across runs that share a base model and settings. The trainer drives the three parts through the
interface in ``tinyzero/algorithms/interface.py`` (``ALGORITHM`` at the bottom of this file).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch
import torch.nn.functional as F

from tinyzero.algorithms.common import Batch, LogProbs, masked_mean, token_kl
from tinyzero.algorithms.interface import Algorithm, Collect, Forward, Preparation, Prepared, Rollouts
from tinyzero.config import Config
from tinyzero.metrics import mean


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


def state_values(observations: list[list[str]], rewards: list[float], beta: float) -> dict[str, list]:
    """{state s: [V*(s), n]}: β·log mean exp(r/β) over the n reference episodes through s (eq. 1 per state).

    ``observations[i]``: what episode i was shown at each turn; ``rewards[i]``: its reward. Why this
    estimates V*(s): in a Markov environment an episode that reaches s continues from s as π_ref does
    from s, so each episode through s is one sample of π_ref's return from s (the whole episode's
    reward: the tasks here pay at the end, and a penalty earlier in the episode is rare and small).
    An episode counts once per state, however often it came back to it. n is kept because the
    estimate's bias depends on it (``turn_credit`` cuts only at states seen often enough).
    """
    returns: dict[str, list[float]] = {}
    for shown, r in zip(observations, rewards, strict=True):
        for obs in dict.fromkeys(shown):
            returns.setdefault(obs, []).append(r)
    return {
        obs: [float(estimate_v_star(torch.tensor(rs, dtype=torch.float64), beta)), len(rs)]
        for obs, rs in returns.items()
    }


def turn_segments(
    observations: list[str], reward: float, v_start: float, states: dict[str, float]
) -> tuple[list[int], list[tuple[float, float]]]:
    """Split an episode at the turns whose state has a V*: (segment of each turn, (V* at end, at start)).

    A segment runs from a turn whose observation s_a has a value to the next such turn s_b (or to the
    end); it is regressed like a whole episode in (3), with r replaced by V*(s_b) (the last segment
    keeps r) and V*(x) by V*(s_a), turn 0 taking ``v_start`` = V*(x). The targets telescope:
    Σ_k (V*(s_{b_k}) − V*(s_{a_k})) = r − V*(x), so an episode no state of which is known past its
    start is one segment, eq. (3) exactly.
    """
    cuts = [0] + [t for t in range(1, len(observations)) if observations[t] in states]
    segment_of_turn = [0] * len(observations)
    for k, (a, b) in enumerate(zip(cuts, cuts[1:] + [len(observations)], strict=True)):
        segment_of_turn[a:b] = [k] * (b - a)
    values = [v_start] + [states[observations[t]] for t in cuts[1:]]
    targets = [(end, start) for start, end in zip(values, values[1:] + [reward], strict=True)]
    return segment_of_turn, targets


def v_star_cache_key(cfg: Config, prep: Preparation) -> str:
    """Everything V* depends on: β1, N, and what the trainer says a cached result depends on (the
    reference model, how samples are drawn, the number of prompts, the reward's code, the task).
    Turn credit stores per-state values too: another table (the default key is unchanged)."""
    settings = {"beta": cfg.astarpo.beta, "n": cfg.astarpo.num_value_samples, **prep.cache_settings}
    if cfg.astarpo.credit == "turn":
        settings["states"] = "v,n"  # per-state [value, visits]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _write_json(path: os.PathLike, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)  # atomic: an interrupted write never leaves a half table


def build_v_star_table(cfg: Config, prep: Preparation, chunk: int = 128) -> tuple[dict[str, dict], int]:
    """Stage 1: N samples from π_ref per training prompt → ({prompt key: {"v": V*, "success": any}}, tokens).

    Written to ``<run>/v_star.json`` after every chunk (an interrupted run resumes where it stopped)
    and copied to a shared cache so later runs with the same base model and settings skip it.
    Under torchrun the chunks are dealt round-robin to the ranks and gathered after each round, so
    stage 1 takes 1/world of the time; every chunk keeps its own seed, so the table is the same
    whatever the number of processes. Rank 0 alone reads and writes the files. ``tokens``: generated
    by all ranks (0 when the table was found complete).

    The table is a property of π_ref and the training prompts, not of the run: a chunk's seed is its
    position alone (the rows before it: what ``run.seed=0`` drew when the seed still depended on the
    run, so tables cached by seed-0 runs stay valid), never ``run.seed``. The shared cache is keyed
    without the run's seed, so a seed-dependent table would make a run's result depend on which seed
    happened to fill the cache first; with this one a run draws exactly the table it would read.
    """
    dist = prep.dist
    table, done = _load_v_star_table(cfg, prep) if dist.is_main else ({}, False)
    table, done = dist.broadcast((table, done))
    if done:
        return table, 0
    n, tokens = cfg.astarpo.num_value_samples, 0
    todo = [p for p in prep.problems if prep.describe(p) not in table]
    chunks = [todo[start : start + chunk] for start in range(0, len(todo), chunk)]
    offsets, seen = [], set(table)  # len(table) before each chunk, as if they ran one after another
    for problems in chunks:
        offsets.append(len(seen))
        seen.update(prep.describe(p) for p in problems)
    bar = prep.progress(total=len(prep.problems), initial=len(table), desc="A*PO stage 1: V* from π_ref")
    for first in range(0, len(chunks), dist.world_size):  # one round = one chunk per rank
        mine = first + dist.rank
        part: tuple[dict, int] = ({}, 0)
        if mine < len(chunks):
            part = _v_star_chunk(cfg, prep, chunks[mine], offsets[mine], n)  # seed: position, not run.seed
        for rows, chunk_tokens in dist.gather(part):  # in chunk order
            table.update(rows)
            tokens += chunk_tokens
            bar.update(len(rows))
        if dist.is_main:
            _write_json(prep.run_dir / "v_star.json", table)
    bar.close()
    if dist.is_main:
        shared = prep.cache_dir / "v_star" / f"{v_star_cache_key(cfg, prep)}.json"
        shared.parent.mkdir(parents=True, exist_ok=True)
        _write_json(shared, table)
    return table, tokens


def _load_v_star_table(cfg: Config, prep: Preparation) -> tuple[dict, bool]:
    """(the table so far, whether it is complete): the run's own or the shared cached one."""
    key = v_star_cache_key(cfg, prep)
    shared = prep.cache_dir / "v_star" / f"{key}.json"
    local = prep.run_dir / "v_star.json"
    stamp = prep.run_dir / "v_star.key"  # which settings the local table was made with
    if local.is_file() and (not stamp.is_file() or stamp.read_text().strip() != key):
        local.unlink()  # made with other settings (e.g. another β): never reuse a stale V*
    prep.run_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)
    for path in (local, shared):
        if path.is_file():
            table = json.loads(path.read_text())
            if len(table) == len(prep.problems):
                if not local.is_file():
                    _write_json(local, table)
                return table, True
    return (json.loads(local.read_text()) if local.is_file() else {}), False


def _v_star_chunk(cfg: Config, prep: Preparation, problems: list, seed: int, n: int) -> tuple[dict, int]:
    """V* rows for one chunk of prompts, and the tokens generated for them."""
    # A per-chunk seed makes an interrupted stage 1 produce the same table when resumed.
    episodes = prep.sample_reference([p for p in problems for _ in range(n)], seed)
    rewards = prep.rewards(episodes).view(len(problems), n)
    v_star = estimate_v_star(rewards, cfg.astarpo.beta)
    rows = {}
    for i, p in enumerate(problems):
        mine = episodes[i * n : (i + 1) * n]
        rows[prep.describe(p)] = {"v": float(v_star[i]), "success": any(e.success for e in mine)}
        if cfg.astarpo.credit == "turn":
            shown = [[turn.observation for turn in e.turns] for e in mine]
            rows[prep.describe(p)]["states"] = state_values(shown, rewards[i].tolist(), cfg.astarpo.beta)
    return rows, sum(e.num_action_tokens for e in episodes)


def training_pool(cfg: Config, prep: Preparation, table: dict[str, dict]) -> list:
    """The prompts stage 2 samples from: all of them, or (reference-code option) those π_ref ever solved."""
    if not cfg.astarpo.filter_all_failed:
        return list(prep.problems)
    kept = [p for p in prep.problems if table[prep.describe(p)]["success"]]
    return kept or list(prep.problems)


def prepare(cfg: Config, prep: Preparation) -> Prepared:
    """Stage 1, once per run: the V* table (the state every ``loss`` reads) and the prompts to train on."""
    table, tokens = build_v_star_table(cfg, prep)
    pool = training_pool(cfg, prep, table)
    figures = {"pool_size": len(pool), "v_star/table_mean": mean([row["v"] for row in table.values()])}
    return Prepared(state=table, problems=pool, metrics=figures, tokens=tokens)


# ----------------------------------------------------------------------------- stage 2: one update


def regression_loss(
    cfg: Config,
    batch: Batch,
    lp: LogProbs,
    ref: LogProbs,
    rewards: torch.Tensor,
    v_star: torch.Tensor,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss (3) over the trajectories ``keep`` (all by default), minus the entropy bonus over every agent
    token, plus (``astarpo.kl_coef`` > 0) the exact per-character KL over the kept trajectories' tokens.
    Returns (loss, entropy). With the KL term, ``lp`` and ``ref`` must carry distributions (``needs_dist``).
    """
    idx = torch.arange(len(rewards), device=lp.traj.device) if keep is None else keep
    r, v = rewards.to(lp.traj)[idx], v_star.to(lp.traj)[idx]
    entropy = masked_mean(lp.entropy, batch.mask)
    loss = astarpo_loss(lp.traj[idx], ref.traj[idx], r, v, cfg.astarpo.beta2, cfg.astarpo.huber_delta)
    loss = loss - cfg.training.entropy_coef * entropy
    if cfg.astarpo.kl_coef > 0:
        assert lp.dist is not None and ref.dist is not None, "astarpo.kl_coef needs dist=True log-probs"
        kept_mask = batch.mask  # every agent token, unless some trajectories are left out (StarPO-S)
        if keep is not None:
            kept = torch.zeros(batch.num_traj, dtype=torch.bool, device=lp.traj.device).index_fill(
                0, keep, True
            )
            kept_mask = kept_mask & kept[batch.traj][:, None]
        loss = loss + cfg.astarpo.kl_coef * masked_mean(token_kl(lp.dist, ref.dist), kept_mask)
    return loss, entropy


def needs_dist(cfg: Config) -> bool:
    """Whether the update needs whole predictive distributions (only the exact KL term does)."""
    return cfg.astarpo.kl_coef > 0


def kl_metrics(batch: Batch, lp: LogProbs, ref: LogProbs) -> dict[str, float]:
    """Sequence KL (mean log-ratio per trajectory) and, given distributions, the exact per-char KL."""
    out = {"kl": float((lp.traj.detach() - ref.traj).mean())}
    if lp.dist is not None and ref.dist is not None:
        out["kl/token"] = float(masked_mean(token_kl(lp.dist.detach(), ref.dist), batch.mask))
    return out


def collect(cfg: Config) -> Collect:
    """Stage 2 needs a single on-policy sample per prompt."""
    return Collect(prompts=cfg.astarpo.num_trajectories)


def segment_logprobs(lp: LogProbs, segment_of_row: torch.Tensor, num_segments: int) -> LogProbs:
    """``lp`` with ``traj`` summed over segments instead of trajectories (one training row per turn)."""
    traj = torch.zeros(num_segments, dtype=lp.token.dtype, device=lp.token.device)
    traj = traj.index_add(0, segment_of_row.to(lp.token.device), lp.token.sum(dim=1))
    return LogProbs(lp.token, lp.entropy, traj, lp.dist)


def turn_credit(
    data: Rollouts, table: dict[str, dict], min_visits: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(segment of each training row, each segment's end value, its start value) for the whole batch.

    Only states at least ``min_visits`` reference episodes passed through are cut at. Why: V̂*(s) from
    n samples is biased low by Jensen's inequality (E[log mean e^{r/β}] ≤ log E[e^{r/β}]), the more so
    the smaller n; from one sample it is just that episode's 0 or 1. A cut from a well-sampled state to
    a once-seen one would hand the move between them a target biased toward blame.
    """
    rows, ends, starts = [], [], []
    for key, episode, r in zip(data.keys, data.episodes, data.rewards.tolist(), strict=True):
        states = {obs: v for obs, (v, n) in table[key]["states"].items() if n >= min_visits}
        seg, targets = turn_segments([turn.observation for turn in episode.turns], r, table[key]["v"], states)
        rows += [len(ends) + k for k in seg]
        ends += [end for end, _ in targets]
        starts += [start for _, start in targets]
    if len(rows) != data.batch.ids.shape[0]:
        raise ValueError(
            f"turn credit needs one training row per turn: {len(rows)} turns, {data.batch.ids.shape[0]} rows"
        )
    return torch.tensor(rows), torch.tensor(ends), torch.tensor(starts)


def loss(cfg: Config, data: Rollouts, fwd: Forward, table: dict[str, dict]) -> tuple[torch.Tensor, dict]:
    """Loss (3) minus the entropy bonus; each episode's V* is read from the stage-1 table under its prompt.

    The targets r − V* are fixed for the batch, so more than one update epoch is legitimate. With
    ``astarpo.credit: turn`` the regression runs over segments of episodes (``turn_segments``).
    """
    v_star = torch.tensor([table[key]["v"] for key in data.keys])
    lp, ref = fwd.policy, fwd.ref
    extra = {}
    if cfg.astarpo.credit == "turn":
        seg, ends, starts = turn_credit(data, table, cfg.astarpo.min_state_visits)
        lp, ref = segment_logprobs(lp, seg, len(ends)), segment_logprobs(ref, seg, len(ends))
        value, entropy = regression_loss(cfg, data.batch, lp, ref, ends, starts)
        extra = {"credit/segments_per_episode": len(ends) / len(data.episodes)}
    else:
        value, entropy = regression_loss(cfg, data.batch, lp, ref, data.rewards, v_star)
    advantage = data.rewards - v_star
    metrics = {
        "v_star/mean": float(v_star.mean()),
        "advantage/mean": float(advantage.mean()),
        "advantage/std": float(advantage.std()) if len(advantage) > 1 else 0.0,
        **kl_metrics(data.batch, fwd.policy, fwd.ref),
        "entropy": float(entropy.detach()),
        **extra,
    }
    return value, metrics


ALGORITHM = Algorithm(collect=collect, loss=loss, prepare=prepare, needs_dist=needs_dist)
