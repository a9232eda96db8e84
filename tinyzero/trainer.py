"""TinyZeroTrainer: base model → rollouts → algorithm loss → optimizer step → metrics, eval, checkpoints.

The loop is deliberately plain (nanochat-style): rollout is data collection in ``tinyzero.rollout``;
an algorithm (``tinyzero.algorithms``) says what to collect, optionally prepares once (A*PO's stage 1)
and turns a batch it is handed into a loss; this file owns everything else: drawing prompts, the
forwards, update epochs, the optimizer and trust region, logging, checkpoints and resume.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from tinyzero import distributed
from tinyzero.algorithms import get_algorithm
from tinyzero.algorithms.common import Batch, LogProbs, make_batch, trajectory_logprobs
from tinyzero.algorithms.interface import Forward, Preparation, Prepared, Rollouts
from tinyzero.checkpoint import find_resumable, load_checkpoint, save_checkpoint
from tinyzero.config import Config, ineffective_settings, save_config, to_yaml
from tinyzero.environments import make_task
from tinyzero.errors import UserError
from tinyzero.guards import Interrupted, StopOnInterrupt, TrainingDiverged, check_finite, memory_metrics
from tinyzero.metrics import MetricsLogger, mean
from tinyzero.models.io import load_model_dir, weights_sha256
from tinyzero.pretrain import check_lengths, ensure_base_model, load_hf_reference
from tinyzero.resume import changed, flatten, refuse_unsafe
from tinyzero.reward import RewardFn, default_reward, reward_fingerprint
from tinyzero.rollout import Episode, SamplingSettings, run_episodes
from tinyzero.trust_region import TrustRegion


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        raise UserError(
            f"run.device=cuda but no CUDA device is available (torch {torch.__version__}, a {build}; "
            f"check the NVIDIA driver with nvidia-smi, or use run.device=cpu or auto)"
        )
    return torch.device(name)


def scheduled_lr(peak: float, schedule: str, final: float, iteration: int, total: int) -> float:
    """The learning rate of update ``iteration`` (0-based) of ``total``: ``peak`` for the first update,
    ``final`` × ``peak`` for the last, cosine or straight in between (constant: ``peak`` throughout).

    Why decay at all: late in a run the policy is near its best and full-size steps knock it off (a
    seed's held-out success falling 0.915 → 0.775 while it trains on); smaller steps keep what was won.
    A function of the iteration, not optimizer state, so a resumed run continues the same curve.
    """
    if schedule == "constant":
        return peak
    progress = iteration / max(total - 1, 1)  # 0 at the first update, 1 at the last
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return peak * (final + (1.0 - final) * shape)


class TinyZeroTrainer:
    """Trains π_θ (initialised from the task's base model π_ref, which stays frozen) with RL."""

    def __init__(
        self, cfg: Config, reward_fn: RewardFn = default_reward, resume: bool = False, progress: bool = True
    ) -> None:
        self.cfg = cfg
        self.algorithm = get_algorithm(cfg.algorithm.name)  # an unknown name fails here, before any work
        self.reward_fn = reward_fn
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        self.device = resolve_device(cfg.run.device)
        # Under torchrun: join the process group; on GPUs each rank takes the GPU of its LOCAL_RANK.
        d = cfg.distributed
        self.dist, self.device = distributed.setup(d.strategy, d.backend, d.timeout_s, self.device)
        self.show_progress = progress and cfg.logging.progress and self.dist.is_main
        cfg.run.dtype = resolve_dtype(cfg.run.dtype, self.device)  # auto → what this device runs natively
        check_precision_options(cfg, self.device)
        self.run_info = distributed.describe_run(self.device, cfg.run.dtype, self.dist)  # console + summary
        if self.dist.is_main:
            print(distributed.format_run(self.run_info), flush=True)
        self._check_rank_shares()
        self.run_dir = Path(cfg.run.out_dir) / cfg.run.name
        self.ckpt_root = self.run_dir / "checkpoints"
        if self.ckpt_root.is_dir() and any(self.ckpt_root.glob("iter_*")) and not resume:
            raise UserError(
                f"run directory '{self.run_dir}' already has checkpoints: add --resume to continue it, "
                f"or choose another run.name"
            )
        self.cache_root = Path(cfg.pretrain.cache_dir).parent
        torch.manual_seed(cfg.run.seed)
        random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)

        self.task = make_task(cfg.task)
        # Under torchrun rank 0 pre-trains (or finds) the cached base model first; the others then load it.
        with self.dist.main_first():
            self.base_key, self.base_report, self.ref, self.tok = self._load_reference()
        check_lengths(cfg, self.task, self.tok)  # rollout settings may differ from the base model's
        self.ref.eval().requires_grad_(False)  # π_ref is frozen: the anchor of every KL and of V*
        self.policy = copy.deepcopy(self.ref).requires_grad_(True)
        self.policy.train()
        self.ref_reset_at = 0  # iteration at which π_ref last became a copy of π_θ (0: the base model)
        self.ref_digest = ""  # fingerprint of π_ref's weights after a reset (keys its stage-1 table)

        # RL's prompts: all training problems, or the first training.num_problems (A*PO's stage 1 samples
        # every one of them N times: a smaller pool makes it affordable where episodes are long).
        self.train_problems = self.task.problems("train")[: cfg.training.num_problems or None]
        self.problem_pool = list(self.train_problems)
        self.test_problems = self.task.problems("test")[: cfg.training.eval_problems]
        # Rollouts and data order; each rank draws its own prompts and samples (rank 0 keeps the run's seed).
        self.gen = torch.Generator(device=self.device).manual_seed(
            distributed.rank_seed(cfg.run.seed, self.dist.rank)
        )
        self.prepared: Prepared | None = None  # the algorithm's one-off preparation, done at the first update
        self.critic: torch.nn.Module | None = None
        if self.algorithm.critic is not None:
            self.critic = self.algorithm.critic(self.ref).to(self.device)
        self.iteration = 0
        self.elapsed = 0.0
        self.generated_tokens = 0
        self.stage1_tokens = 0
        self.bad_steps = 0  # consecutive skipped (non-finite) optimizer steps
        self.skipped_steps = 0  # all skipped steps of the run
        self.trust = TrustRegion(cfg.training.max_kl_rise)  # post-step KL check (tinyzero/trust_region.py)
        self._kept: LogProbs | None = None  # the trust region's forward after the last step, to reuse
        self.resumed_from: Path | None = None  # the checkpoint --resume continued from
        ckpt = self._load_weights_for_resume() if resume else None  # into the plain modules, before sharding
        # Training forwards go through these (DDP wrapper / FSDP2-sharded module / the module itself);
        # sampling, evaluation and checkpoints use the plain modules (``sampler``).
        self.train_policy = self._compiled(distributed.wrap(self.policy, self.dist, self.device))
        self.train_critic = (
            self._compiled(distributed.wrap(self.critic, self.dist, self.device))
            if self.critic is not None
            else None
        )
        self._weights_version = 0  # bumped by every optimizer step: when FSDP's sampling copy is stale
        self._sampling_copy: tuple[int, torch.nn.Module] | None = None
        params = list(self.policy.parameters())  # after wrapping: FSDP2 replaces them with sharded ones
        if self.critic is not None:
            params += list(self.critic.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.training.lr, weight_decay=cfg.training.weight_decay)
        if ckpt is not None:
            self._restore_state(ckpt)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            save_config(cfg, self.run_dir / "config.yaml")

    def _load_reference(self) -> tuple[str, dict, torch.nn.Module, Any]:
        """(base key, base report, π_ref, tokenizer): our cached pre-trained base, or a local HF model."""
        if self.cfg.model.source == "hf":  # no pre-training: the local model is π_ref as is
            return load_hf_reference(self.cfg, self.device, self.show_progress)
        base_dir = ensure_base_model(self.cfg, str(self.device), self.show_progress)
        ref, tok = load_model_dir(base_dir, self.device)
        return base_dir.name, json.loads((base_dir / "report.json").read_text()), ref, tok

    # ------------------------------------------------------------------ helpers
    def progress_bar(self, **kwargs: Any) -> tqdm:
        return tqdm(disable=not self.show_progress, mininterval=1.0, **kwargs)

    def sampling(self, greedy: bool = False) -> SamplingSettings:
        r = self.cfg.rollout
        return SamplingSettings(r.max_new_tokens, r.history, greedy, r.temperature, r.top_k, r.top_p)

    def sample_problems(self, n: int) -> list:
        """n training prompts drawn (with replacement) by the trainer's generator: resumable data order.

        Under torchrun ``n`` is the iteration's global count: each rank draws its n / world share.
        """
        n //= self.dist.world_size  # exact: _check_rank_shares made n a multiple of the world size
        idx = torch.randint(len(self.problem_pool), (n,), generator=self.gen, device=self.device).tolist()
        return [self.problem_pool[i] for i in idx]

    def rollout(
        self,
        problems: list,
        model: torch.nn.Module,
        generator: torch.Generator | None = None,
        greedy: bool = False,
    ) -> list[Episode]:
        was_training = model.training
        model.eval()
        episodes = run_episodes(
            self.sampler(model), self.tok, self.task, problems, self.sampling(greedy), generator or self.gen
        )
        model.train(was_training)
        self.generated_tokens += sum(e.num_action_tokens for e in episodes)
        return episodes

    def rewards(self, episodes: list[Episode]) -> torch.Tensor:
        return torch.tensor([float(self.reward_fn(self.task, e)) for e in episodes], dtype=torch.float32)

    def record_episodes(self, episodes: list[Episode], rewards: torch.Tensor, metrics: dict) -> None:
        """The per-iteration rollout statistics every algorithm reports under the same names."""
        metrics.update(
            {
                "reward/mean": float(rewards.mean()),
                "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
                "success": mean([e.success for e in episodes]),
                "format_rate": mean([e.format_ok for e in episodes]),
                "response_length": mean([e.num_action_tokens for e in episodes]),
                "turns": mean([len(e.turns) for e in episodes]),
            }
        )

    # ------------------------------------------------------------------ the loop
    def optimize(self, loss: torch.Tensor, keep_logprobs: bool = False) -> float:
        """One AdamW step with global-norm clipping; a non-finite loss or gradient skips the step.

        With ``training.max_kl_rise`` > 0 and the iteration's batch armed (``loss_on``), a step
        that raises the per-character KL to π_ref on that batch too much is shrunk or undone.
        ``keep_logprobs``: another step on the batch follows (``step_then_logprobs``).
        """
        self._kept = None
        self.optimizer.zero_grad(set_to_none=True)
        if self.trust.stopped:  # an earlier step on this batch was taken back: leave the batch alone
            return float("nan")
        if not self.dist.all_true(bool(torch.isfinite(loss))):  # every rank skips, or none does
            return self._skip_step("loss", loss)
        with self.autocast(enabled=False):  # backward in the dtypes autocast chose for the forward
            loss.backward()  # DDP/FSDP average the gradients over ranks here
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        norm = distributed.grad_norm_value(
            torch.nn.utils.clip_grad_norm_(params, self.cfg.training.grad_clip)
        )
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip_step("gradient norm", norm)
        if self.trust.armed:  # step, then shrink or undo it (tinyzero/trust_region.py)
            with self.autocast():
                self._kept = self.trust.step(params, self.optimizer, self.train_policy, keep=keep_logprobs)
        else:
            self.optimizer.step()
        self._weights_version += 1
        self.bad_steps = 0
        return float(norm)

    def set_lr(self) -> float:
        """Set this iteration's learning rate (``training.lr_schedule``) on every parameter group."""
        t = self.cfg.training
        lr = scheduled_lr(t.lr, t.lr_schedule, t.lr_final, self.iteration, t.total_iterations)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def reset_due(self) -> bool:
        """``training.ref_reset_every``: a reset at every multiple of N, before that iteration's update.

        A function of the iteration and of the last reset (saved in checkpoints), so a run resumed
        from a checkpoint written just before a reset still makes it, once."""
        every = self.cfg.training.ref_reset_every
        due = every > 0 and self.iteration > 0 and self.iteration % every == 0
        return due and self.ref_reset_at != self.iteration

    def reset_reference(self) -> None:
        """π_ref ← π_θ, then the algorithm prepares again (A*PO: a new stage-1 table, from the new π_ref).

        Why: A*PO regresses β·log(π/π_ref) onto r − V*, i.e. toward π_ref·exp(r/β), and its KL term holds
        π_θ near π_ref. From a weak base that target is itself weak and the anchor holds the policy
        back once it has outgrown the base; taking the trained policy as the new reference compounds
        the tilt (π_ref·exp(r/β), then that times exp(r/β) again, ...). The optimizer's state is kept.
        """
        self.ref.load_state_dict(self.sampler(self.policy).state_dict())  # full weights (FSDP: gathered)
        self.ref_reset_at = self.iteration
        self.ref_digest = weights_sha256([self.ref])[:16]
        self.prepared = None  # the next update redoes the preparation from the new π_ref
        self.problem_pool = list(self.train_problems)  # a preparation may have narrowed it
        if self.show_progress:
            tqdm.write(f"iteration {self.iteration}: π_ref ← π_θ (training.ref_reset_every); stage 1 again")

    def reference_key(self) -> str:
        """What π_ref is, for caches of its samples: the base model's key, plus the reset and a
        fingerprint of the weights once π_ref has been reset to a trained policy."""
        if not self.ref_reset_at:
            return self.base_key
        return f"{self.base_key}@{self.ref_reset_at}:{self.ref_digest}"

    def update(self) -> tuple[torch.Tensor, dict, float]:
        """One iteration's work without the bookkeeping: the algorithm's preparation (first time only),
        its rollouts, its loss over the update epochs, and the last optimizer step (loss, the
        algorithm's metrics, gradient norm)."""
        self.trust.reset()
        with self.autocast():
            if self.prepared is None:
                self.prepare()
            loss, metrics = self.loss_on(self.collect())
        return loss, metrics, self.optimize(loss)

    def prepare(self) -> Prepared:
        """The algorithm's one-off preparation (A*PO's stage 1); it may narrow the prompts trained on."""
        if self.algorithm.prepare is None:
            self.prepared = Prepared()
        else:
            self.prepared = self.algorithm.prepare(self.cfg, self.preparation())
            self.stage1_tokens += self.prepared.tokens
        if self.prepared.problems is not None:
            self.problem_pool = self.prepared.problems
        return self.prepared

    def preparation(self) -> Preparation:
        """What a preparation may use: π_ref as a seeded sampler, the prompts, rewards, where to cache."""

        def sample_reference(problems: list, seed: int) -> list[Episode]:
            # On the model's device: torch.multinomial rejects a CPU generator for CUDA tensors.
            # run_episodes, not self.rollout: these tokens count once, as stage-1 (not generated) tokens.
            gen = torch.Generator(device=self.device).manual_seed(seed)
            return run_episodes(self.ref, self.tok, self.task, problems, self.sampling(), gen)

        cache_settings = {
            "base": self.reference_key(),
            "rollout": {
                k: getattr(self.cfg.rollout, k)
                for k in ("temperature", "top_k", "top_p", "max_new_tokens", "history")
            },
            "num_train": len(self.train_problems),
            # What the reward computes (its code, not its name: train.py's compute_reward is edited in
            # place) and the task settings it can read through `task`.
            "reward_fn": reward_fingerprint(self.reward_fn),
            "task": {k: v for k, v in dataclasses.asdict(self.cfg.task).items() if k != "num_test"},
        }
        if self.cfg.run.dtype != "float32":  # bf16 sampling draws other samples (float32 keys unchanged)
            cache_settings["dtype"] = self.cfg.run.dtype
        return Preparation(
            problems=self.train_problems,
            describe=self.task.describe,
            sample_reference=sample_reference,
            rewards=self.rewards,
            run_dir=self.run_dir,
            cache_dir=self.cache_root,
            cache_settings=cache_settings,
            dist=self.dist,
            progress=self.progress_bar,
        )

    def collect(self) -> Rollouts:
        """The iteration's prompts and episodes, as the algorithm's ``collect`` asks for them."""
        plan = self.algorithm.collect(self.cfg)
        problems = self.sample_problems(plan.prompts)
        prompts = [p for p in problems for _ in range(plan.samples_per_prompt)]
        episodes = self.rollout(prompts, self.policy)
        ref_episodes = self.rollout(prompts, self.ref) if plan.from_reference else None
        return self.rollouts(episodes, plan.samples_per_prompt, ref_episodes)

    def rollouts(
        self, episodes: list[Episode], group_size: int, ref_episodes: list[Episode] | None = None
    ) -> Rollouts:
        """Episodes → what a loss receives (rewards, prompt keys, training tensors). Tests hand it fixed
        episodes."""
        return Rollouts(
            episodes=episodes,
            rewards=self.rewards(episodes),
            keys=[self.task.describe(e.problem) for e in episodes],
            batch=make_batch(self.tok, episodes, self.cfg.rollout.history, self.device),
            group_size=group_size,
            ref_rewards=None if ref_episodes is None else self.rewards(ref_episodes),
        )

    def loss_on(self, data: Rollouts) -> tuple[torch.Tensor, dict]:
        """The algorithm's loss on ``data`` after ``training.update_epochs`` − 1 steps on it: each epoch
        recomputes π_θ's log-probs (and the critic's values) at the new weights; π_old and π_ref stay."""
        cfg, batch = self.cfg, data.batch
        wants_dist = self.algorithm.needs_dist(cfg)
        dist = wants_dist or self.trust.enabled
        lp = trajectory_logprobs(self.train_policy, batch, dist=dist)
        with torch.no_grad():
            ref = trajectory_logprobs(self.ref, batch, dist=dist)
        self.trust.arm(batch, lp.dist, ref.dist)  # π_old on this batch: every step is held to it
        old = LogProbs(lp.token.detach(), lp.entropy.detach(), lp.traj.detach())
        values = self.train_critic(batch.ids, batch.attn) if self.train_critic is not None else None
        fwd = Forward(lp, old, ref, values, None if values is None else values.detach())
        state = self.prepared.state if self.prepared is not None else None
        for _ in range(cfg.training.update_epochs - 1):
            loss, _ = self.algorithm.loss(cfg, data, fwd, state)
            fwd.policy = self.step_then_logprobs(loss, batch, dist=wants_dist)
            if self.train_critic is not None:
                fwd.values = self.train_critic(batch.ids, batch.attn)
        loss, metrics = self.algorithm.loss(cfg, data, fwd, state)
        self.record_episodes(data.episodes, data.rewards, metrics)
        metrics.update(self.prepared.metrics if self.prepared is not None else {})
        return loss, metrics

    def step_then_logprobs(self, loss: torch.Tensor, batch: Batch, dist: bool) -> LogProbs:
        """``optimize(loss)``, then π_θ's log-probs (with gradients) on ``batch`` at the new weights, for
        the next step on the same batch (``training.update_epochs`` > 1).

        With the trust region on, its check after the step already ran exactly this forward on the
        armed batch: it is reused instead of computed twice (the check then costs one forward per
        iteration, not one per step).
        """
        self.optimize(loss, keep_logprobs=True)
        kept, self._kept = self._kept, None
        if kept is not None and self.trust.armed_on(batch):
            return kept  # carries the distributions whether or not ``dist`` asked for them
        return trajectory_logprobs(self.train_policy, batch, dist=dist)

    def _trust_metrics(self) -> dict[str, float]:
        """This iteration's trust-region figures (none when it is off)."""
        if not self.trust.enabled:
            return {}
        return {
            "trust/kl_rise": self.trust.rise,
            "trust/step_scale": self.trust.scale,
            "rejected_steps": self.trust.rejected,
            "shrunk_steps": self.trust.shrunk,
        }

    def _skip_step(self, what: str, value: torch.Tensor) -> float:
        """Count a skipped step, say so in one line, stop after ``training.max_bad_steps`` in a row."""
        self.bad_steps += 1
        self.skipped_steps += 1
        limit = self.cfg.training.max_bad_steps
        where = f"iteration {self.iteration + 1}: {what} is {float(value.detach())}"
        if limit and self.bad_steps >= limit:
            raise TrainingDiverged(
                f"{where}, {self.bad_steps} non-finite steps in a row (training.max_bad_steps={limit}): "
                f"the run stopped without saving; lower training.lr or check compute_reward for NaN/inf, "
                f"then --resume from the last checkpoint"
            )
        tqdm.write(f"warning: {where}; step skipped ({self.bad_steps} in a row)", file=sys.stderr)
        return float("nan")

    @torch.no_grad()
    def evaluate(self, problems: list | None = None) -> dict:
        """Held-out figures: greedy success (the headline), one sampled try per problem, format rate."""
        model = self.sampler(self.policy)  # a collective under FSDP: every rank calls evaluate()
        if not self.dist.is_main:  # rank 0 evaluates alone: the same figures as a single-process run
            return {}
        problems = self.test_problems if problems is None else problems
        gen = torch.Generator(device=self.device).manual_seed(
            self.cfg.run.seed + 7
        )  # eval never moves self.gen
        with self.autocast():
            greedy = run_episodes(model, self.tok, self.task, problems, self.sampling(greedy=True), gen)
            sampled = run_episodes(model, self.tok, self.task, problems, self.sampling(), gen)
        self.policy.train()
        return {
            "eval/greedy_success": mean([e.success for e in greedy]),
            "eval/sampled_success": mean([e.success for e in sampled]),
            "eval/format_rate": mean([e.format_ok for e in sampled]),
            "eval/mean_reward": mean([e.reward for e in greedy]),
        }

    def train(self) -> dict:
        cfg = self.cfg
        if self.dist.is_main:
            for note in ineffective_settings(cfg):  # a key that does nothing here is said, not ignored
                print(f"note: {note}", file=sys.stderr)
        logger = (
            None
            if not self.dist.is_main
            else MetricsLogger(
                self.run_dir,
                tensorboard=cfg.logging.tensorboard,
                wandb_cfg={
                    "project": "tinyzero",
                    "name": cfg.run.name,
                    "mode": cfg.logging.wandb_mode,
                    "config": json.loads(json.dumps(dataclasses.asdict(cfg))),
                }
                if cfg.logging.wandb
                else None,
                # A fresh run (iteration 0) re-logs everything: drop lines of an earlier, uncheckpointed try.
                resume_from=self.iteration if self.iteration > 0 else -1,
            )
        )
        if self.iteration == 0:
            first = {"iteration": 0, "elapsed_s": 0.0, "generated_tokens": 0, **self.evaluate()}
            if logger is not None:
                logger.log(first)
        bar = self.progress_bar(
            total=cfg.training.total_iterations, initial=self.iteration, desc=f"{cfg.algorithm.name}"
        )
        last_eval: dict = {}
        evaluated = False
        saved_at = -1  # iteration of the last checkpoint this loop wrote
        stop = StopOnInterrupt("finishing this iteration, then saving a checkpoint; Ctrl-C again to stop now")
        stop.__enter__()  # not a `with`: keeps the loop's indentation (and other branches' diffs) unchanged
        try:
            while self.iteration < cfg.training.total_iterations:
                start, tokens_before = time.perf_counter(), self.generated_tokens + self.stage1_tokens
                own_before = self.generated_tokens
                if self.reset_due():
                    self.reset_reference()
                lr = self.set_lr()
                loss, metrics, grad_norm = self.update()
                self.iteration += 1
                loss_value = float(loss.detach())
                if self.dist.enabled:  # global token count; metrics averaged over ranks
                    own = self.generated_tokens - own_before
                    self.generated_tokens += self.dist.sum(own) - own
                    metrics = self.dist.mean_metrics({"loss": loss_value, **metrics})
                    loss_value = metrics.pop("loss")
                seconds = time.perf_counter() - start
                self.elapsed += seconds
                new_tokens = self.generated_tokens + self.stage1_tokens - tokens_before
                record = {
                    "iteration": self.iteration,
                    "loss": loss_value,
                    "grad_norm": grad_norm,
                    "lr": lr,
                    "seconds": seconds,
                    "elapsed_s": self.elapsed,
                    "tokens_per_s": new_tokens / max(seconds, 1e-9),
                    "generated_tokens": self.generated_tokens + self.stage1_tokens,
                    "skipped_steps": self.skipped_steps,
                    **self._trust_metrics(),
                    **({"ref_reset_at": self.ref_reset_at} if cfg.training.ref_reset_every else {}),
                    **memory_metrics(self.device),
                    **metrics,
                }
                every = cfg.training.eval_every
                if (every and self.iteration % every == 0) or self.iteration == cfg.training.total_iterations:
                    last_eval, evaluated = self.evaluate(), True
                    record.update(last_eval)
                if logger is not None:
                    logger.log(record)
                bar.update(1)
                bar.set_postfix(
                    reward=f"{record['reward/mean']:.2f}",
                    succ=f"{record['success']:.2f}",
                    ent=f"{record.get('entropy', 0):.2f}",
                    **({"eval": f"{last_eval['eval/greedy_success']:.2f}"} if last_eval else {}),
                )
                if (
                    self.iteration % cfg.training.checkpoint_every == 0
                    or self.iteration == cfg.training.total_iterations
                ):
                    self.save()
                    saved_at = self.iteration
                # Ctrl-C (on any rank: save() is a collective, so all ranks must agree to stop here).
                if not self.dist.all_true(not stop.requested):
                    if saved_at != self.iteration:  # the iteration is complete: its state is worth keeping
                        self.save()
                    raise Interrupted(f"saved checkpoint iter_{self.iteration:06d}; continue with --resume")
        finally:
            stop.__exit__()
            bar.close()
            if logger is not None:
                logger.close()
        if not evaluated:  # nothing left to train (--resume of a finished run): still report held-out figures
            last_eval = self.evaluate()
        summary = {
            "run": str(self.run_dir),
            "algorithm": cfg.algorithm.name,
            "task": cfg.task.name,
            "iterations": self.iteration,
            "base/greedy_success": self.base_report.get("greedy_success"),
            "base/pass@1": self.base_report.get("pass@1"),
            "elapsed_s": round(self.elapsed, 1),
            "generated_tokens": self.generated_tokens + self.stage1_tokens,
            "skipped_steps": self.skipped_steps,
            "rejected_steps": self.trust.rejected,
            "shrunk_steps": self.trust.shrunk,
            **self.run_info,
            **{k: v for k, v in memory_metrics(self.device).items() if "peak" in k},
            **last_eval,
        }
        if self.dist.is_main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path | None:
        """Rank 0 writes the checkpoint; every rank takes part in gathering what it holds (its RNG
        state; under FSDP its shards of the weights and optimizer state)."""
        model = self.sampler(self.policy)  # full weights in a plain module
        critic = self.critic if self.critic is None or not distributed.is_sharded(self.critic) else None
        check_finite([model, critic], f"checkpoint at iteration {self.iteration}")
        optimizer = distributed.optimizer_state(self._trained_modules(), self.optimizer)
        rng = self.dist.gather(self.gen.get_state().tolist())
        state = {
            "rng_torch": rng[0],
            "elapsed": self.elapsed,
            "generated_tokens": self.generated_tokens,
            "stage1_tokens": self.stage1_tokens,
            "skipped_steps": self.skipped_steps,
            "rejected_steps": self.trust.rejected,
            "shrunk_steps": self.trust.shrunk,
            "config_yaml": to_yaml(self.cfg),
            "task": self.cfg.task.name,
            "base_key": self.base_key,
            "ref_reset_at": self.ref_reset_at,
        }
        if self.dist.enabled:
            state["rng_torch_ranks"] = rng  # each rank's own sampling stream, for an exact resume
        extra = (
            {f"critic.{k}": v for k, v in distributed.full_state_dict(self.critic).items()}
            if self.critic is not None
            else {}
        )
        if self.ref_reset_at:  # π_ref is no longer the base model: the checkpoint must carry it
            extra.update({f"ref.{k}": v for k, v in self.ref.state_dict().items()})
        path = None
        if self.dist.is_main:
            path = save_checkpoint(
                self.ckpt_root,
                self.iteration,
                model,
                self.tok,
                optimizer,
                state,
                extra or None,
                self.cfg.training.keep_last,
            )
        self.dist.barrier()  # no rank runs ahead of a checkpoint that is still being written
        return path

    def _load_weights_for_resume(self) -> dict:
        """Weights go into the plain modules before DDP/FSDP wrap them; the rest waits for the optimizer.

        The checkpoint is the newest one whose files pass their checksums (others are reported)."""
        if not any(self.ckpt_root.glob("iter_*")):
            raise UserError(f"--resume: no checkpoint in '{self.ckpt_root}' (start without --resume)")
        path = find_resumable(self.ckpt_root)  # the newest that passes its checksums; reports the others
        if path is None:
            raise UserError(
                f"--resume: no intact checkpoint in '{self.ckpt_root}' (each failure is listed above); "
                f"start again under another run.name"
            )
        ckpt = load_checkpoint(path, self.device)
        self.resumed_from = path
        state = ckpt["state"]
        if state.get("task") != self.cfg.task.name:
            raise UserError(
                f"--resume: checkpoint is for task '{state.get('task')}', config says '{self.cfg.task.name}'"
            )
        if state.get("config_yaml"):  # the same run or none: refuse a config that changes what it is
            saved = OmegaConf.to_container(OmegaConf.create(state["config_yaml"]))
            refuse_unsafe(changed(flatten(saved), flatten(self.cfg)), self.cfg.run.name, "the config")
        self.policy.load_state_dict(ckpt["model"].state_dict())
        extra = ckpt["extra"] or {}
        if self.critic is not None:
            self.critic.load_state_dict(_prefixed(extra, "critic."))
        self.ref_reset_at = int(state.get("ref_reset_at", 0))
        if self.ref_reset_at:
            self.ref.load_state_dict(_prefixed(extra, "ref."))
            self.ref_digest = weights_sha256([self.ref])[:16]
        return ckpt

    def _restore_state(self, ckpt: dict) -> None:
        state = ckpt["state"]
        distributed.load_optimizer_state(self._trained_modules(), self.optimizer, ckpt["optimizer"])
        self.gen.set_state(self._rank_rng_state(state))
        self.iteration = int(state["iteration"])
        self.elapsed = float(state["elapsed"])
        self.generated_tokens = int(state["generated_tokens"])
        self.stage1_tokens = int(state["stage1_tokens"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.trust.rejected = int(state.get("rejected_steps", 0))
        self.trust.shrunk = int(state.get("shrunk_steps", 0))

    def _rank_rng_state(self, state: dict) -> torch.Tensor:
        """This rank's saved sampling stream; a resume with another world size cannot be exact."""
        ranks = state.get("rng_torch_ranks") or [state["rng_torch"]]
        if any(len(r) != self.gen.get_state().numel() for r in ranks):  # CUDA's is 16 bytes, CPU's 5056
            if self.dist.is_main:
                print(
                    "note: checkpoint was written on another device type (cpu vs cuda): training continues "
                    "from fresh sampling seeds, not sample-for-sample as it would have"
                )
            seed = distributed.rank_seed(self.cfg.run.seed, self.dist.rank) + int(state["iteration"])
            return torch.Generator(device=self.device).manual_seed(seed).get_state()
        if len(ranks) == self.dist.world_size:
            return torch.tensor(ranks[self.dist.rank], dtype=torch.uint8)
        if self.dist.is_main:
            print(
                f"note: checkpoint was written by {len(ranks)} process(es), this run has "
                f"{self.dist.world_size}: training continues, but not sample-for-sample as it would have"
            )
        if self.dist.rank < len(ranks):
            return torch.tensor(ranks[self.dist.rank], dtype=torch.uint8)
        seed = distributed.rank_seed(self.cfg.run.seed, self.dist.rank) + int(state["iteration"])
        return torch.Generator(device=self.device).manual_seed(seed).get_state()

    # ------------------------------------------------------------------ scale-out helpers (docs/scaling.md)
    def _trained_modules(self) -> dict[str, torch.nn.Module]:
        """The modules the optimizer updates, in its parameter order."""
        return {"policy": self.policy, **({"critic": self.critic} if self.critic is not None else {})}

    def _check_rank_shares(self) -> None:
        """Each rank takes an equal share of the iteration's prompts, so their count must divide evenly."""
        if not self.dist.enabled:
            return
        plan = self.algorithm.collect(self.cfg)
        if plan.prompts % self.dist.world_size:
            what = (
                "astarpo.num_trajectories / num_completions"
                if plan.samples_per_prompt > 1
                else ("astarpo.num_trajectories")
            )
            raise UserError(
                f"{what} = {plan.prompts} prompts per iteration cannot be split evenly over "
                f"{self.dist.world_size} processes: make it a multiple of the process count"
            )

    def sampler(self, model: torch.nn.Module) -> torch.nn.Module:
        """The plain module to generate with. Under FSDP the policy's weights are sharded, so a full
        copy is gathered once per optimizer step (a collective: every rank asks for it together) and
        sampling then runs without any FSDP hooks or communication, whatever each rank generates."""
        if not (self.dist.enabled and self.dist.strategy == "fsdp" and model is self.policy):
            return model
        if self._sampling_copy is None or self._sampling_copy[0] != self._weights_version:
            copy_ = self._sampling_copy[1] if self._sampling_copy else copy.deepcopy(self.ref)
            copy_.load_state_dict(distributed.full_state_dict(self.policy))
            self._sampling_copy = (self._weights_version, copy_)
        return self._sampling_copy[1]

    def autocast(self, enabled: bool = True) -> contextlib.AbstractContextManager:
        """bfloat16 autocast (``run.dtype``) for forwards and sampling; float32 runs never enter it."""
        if self.cfg.run.dtype != "bfloat16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _compiled(self, module: torch.nn.Module) -> torch.nn.Module:
        """``run.compile``: torch.compile the training forward (sampling stays eager: a Python loop of
        tiny steps over a mutable KV cache). Shapes vary every iteration, hence ``dynamic=True``."""
        return torch.compile(module, dynamic=True) if self.cfg.run.compile else module


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` in a checkpoint's extra file, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware rather than emulating them.

    CUDA: without emulation (a T4 emulates bf16 and would pass, then run slower than float32). CPU:
    AVX512-BF16 or AMX, where bf16 matmuls ran at ~2x the float32 peak (docs/scaling.md); most laptop
    CPUs have neither and would emulate bf16, slower than float32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's feature checks
    return device.type == "cpu" and any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """``run.dtype``, with ``auto`` made concrete: bfloat16 where ``device`` has native bf16, else float32."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if native_bf16(device) else "float32"


def has_cpp_compiler() -> bool:
    """Whether torch.compile's CPU backend (inductor, which writes and builds C++) can run here."""
    import shutil

    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


def check_precision_options(cfg: Config, device: torch.device) -> None:
    """Fail early, in one line, where ``run.dtype`` / ``run.compile`` cannot work on this machine."""
    if cfg.run.dtype == "bfloat16" and device.type == "cuda" and not native_bf16(device):
        raise UserError("run.dtype=bfloat16 but this GPU has no bfloat16 support: use run.dtype=float32")
    if cfg.run.compile and device.type == "cpu" and not has_cpp_compiler():
        raise UserError(
            "run.compile=true on CPU needs a C++ compiler (g++/clang++) for torch.compile's CPU "
            "backend: install one (e.g. apt-get install g++) or set run.compile=false"
        )
