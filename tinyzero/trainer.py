"""TinyZeroTrainer: base model → rollouts → algorithm loss → optimizer step → metrics, eval, checkpoints.

The loop is deliberately plain (nanochat-style): rollout is data collection in ``tinyzero.rollout``,
each algorithm is one ``step(trainer) -> (loss, metrics)`` function in ``tinyzero.algorithms``, and
this file only wires them together and keeps the bookkeeping (RNG, optimizer, logging, resume).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tinyzero.algorithms import astarpo, grpo, ppo, ragen_astarpo
from tinyzero.checkpoint import load_checkpoint, save_checkpoint
from tinyzero.config import Config, save_config, to_yaml
from tinyzero.environments import make_task
from tinyzero.errors import UserError
from tinyzero.metrics import MetricsLogger, mean
from tinyzero.models.io import load_model_dir
from tinyzero.pretrain import ensure_base_model
from tinyzero.rollout import Episode, SamplingSettings, run_episodes

StepFn = Callable[["TinyZeroTrainer"], tuple[torch.Tensor, dict]]
ALGORITHMS: dict[str, StepFn] = {
    "astarpo": astarpo.step,
    "ragen": ragen_astarpo.step,
    "grpo": grpo.step,
    "ppo": ppo.step,
}
RewardFn = Callable[[Any, Episode], float]


def default_reward(task: Any, episode: Episode) -> float:
    """The environment's own reward, summed over turns (train.py's compute_reward may reshape it)."""
    return episode.reward


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device=cuda but no CUDA device is available (use run.device=cpu or auto)")
    return torch.device(name)


class TinyZeroTrainer:
    """Trains π_θ (initialised from the task's base model π_ref, which stays frozen) with RL."""

    def __init__(
        self, cfg: Config, reward_fn: RewardFn = default_reward, resume: bool = False, progress: bool = True
    ) -> None:
        self.cfg = cfg
        self.reward_fn = reward_fn
        self.show_progress = progress and cfg.logging.progress
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        self.device = resolve_device(cfg.run.device)
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
        self.base_key, self.base_report, self.ref, self.tok = self._load_reference()
        self.ref.eval().requires_grad_(False)  # π_ref is frozen: the anchor of every KL and of V*
        self.policy = copy.deepcopy(self.ref).requires_grad_(True)
        self.policy.train()

        self.train_problems = self.task.problems("train")
        self.problem_pool = list(self.train_problems)
        self.test_problems = self.task.problems("test")[: cfg.training.eval_problems]
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.run.seed)  # rollouts and data order
        self.v_star_table: dict | None = None
        self.critic: torch.nn.Module | None = None
        params = list(self.policy.parameters())
        if cfg.algorithm.name == "ppo":
            self.critic = ppo.make_critic(self.ref).to(self.device)
            params += list(self.critic.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.training.lr, weight_decay=cfg.training.weight_decay)
        self.iteration = 0
        self.elapsed = 0.0
        self.generated_tokens = 0
        self.stage1_tokens = 0
        if resume:
            self._resume()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.run_dir / "config.yaml")

    def _load_reference(self) -> tuple[str, dict, torch.nn.Module, Any]:
        """(base key, base report, π_ref, tokenizer): our cached pre-trained base, or a local HF model."""
        if self.cfg.model.source == "hf":  # no pre-training: the local model is π_ref as is
            from tinyzero.models.hf import load_hf_reference

            return load_hf_reference(self.cfg, self.device, self.show_progress)
        base_dir = ensure_base_model(self.cfg, str(self.device), self.show_progress)
        ref, tok = load_model_dir(base_dir, self.device)
        return base_dir.name, json.loads((base_dir / "report.json").read_text()), ref, tok

    # ------------------------------------------------------------------ helpers used by algorithms
    def progress_bar(self, **kwargs: Any) -> tqdm:
        return tqdm(disable=not self.show_progress, mininterval=1.0, **kwargs)

    def sampling(self, greedy: bool = False) -> SamplingSettings:
        r = self.cfg.rollout
        return SamplingSettings(r.max_new_tokens, r.history, greedy, r.temperature, r.top_k, r.top_p)

    def sample_problems(self, n: int) -> list:
        """n training prompts drawn (with replacement) by the trainer's generator: resumable data order."""
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
            model, self.tok, self.task, problems, self.sampling(greedy), generator or self.gen
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
    def optimize(self, loss: torch.Tensor) -> float:
        """One AdamW step with global-norm clipping; a non-finite loss or gradient skips the step."""
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return float("nan")
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.training.grad_clip)
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return float("nan")
        self.optimizer.step()
        return float(norm)

    @torch.no_grad()
    def evaluate(self, problems: list | None = None) -> dict:
        """Held-out figures: greedy success (the headline), one sampled try per problem, format rate."""
        problems = self.test_problems if problems is None else problems
        gen = torch.Generator(device=self.device).manual_seed(
            self.cfg.run.seed + 7
        )  # eval never moves self.gen
        greedy = run_episodes(self.policy, self.tok, self.task, problems, self.sampling(greedy=True), gen)
        sampled = run_episodes(self.policy, self.tok, self.task, problems, self.sampling(), gen)
        self.policy.train()
        return {
            "eval/greedy_success": mean([e.success for e in greedy]),
            "eval/sampled_success": mean([e.success for e in sampled]),
            "eval/format_rate": mean([e.format_ok for e in sampled]),
            "eval/mean_reward": mean([e.reward for e in greedy]),
        }

    def train(self) -> dict:
        cfg = self.cfg
        step_fn = ALGORITHMS[cfg.algorithm.name]
        logger = MetricsLogger(
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
            # A fresh run (iteration 0) re-logs everything: drop lines left by an earlier, uncheckpointed try.
            resume_from=self.iteration if self.iteration > 0 else -1,
        )
        if self.iteration == 0:
            logger.log({"iteration": 0, "elapsed_s": 0.0, "generated_tokens": 0, **self.evaluate()})
        bar = self.progress_bar(
            total=cfg.training.total_iterations, initial=self.iteration, desc=f"{cfg.algorithm.name}"
        )
        last_eval: dict = {}
        try:
            while self.iteration < cfg.training.total_iterations:
                start, tokens_before = time.perf_counter(), self.generated_tokens + self.stage1_tokens
                loss, metrics = step_fn(self)
                grad_norm = self.optimize(loss)
                self.iteration += 1
                seconds = time.perf_counter() - start
                self.elapsed += seconds
                new_tokens = self.generated_tokens + self.stage1_tokens - tokens_before
                record = {
                    "iteration": self.iteration,
                    "loss": float(loss.detach()),
                    "grad_norm": grad_norm,
                    "seconds": seconds,
                    "elapsed_s": self.elapsed,
                    "tokens_per_s": new_tokens / max(seconds, 1e-9),
                    "generated_tokens": self.generated_tokens + self.stage1_tokens,
                    **metrics,
                }
                every = cfg.training.eval_every
                if (every and self.iteration % every == 0) or self.iteration == cfg.training.total_iterations:
                    last_eval = self.evaluate()
                    record.update(last_eval)
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
        finally:
            bar.close()
            logger.close()
        if not last_eval:  # nothing left to train (--resume of a finished run): still report held-out figures
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
            **last_eval,
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        state = {
            "rng_torch": self.gen.get_state().tolist(),
            "elapsed": self.elapsed,
            "generated_tokens": self.generated_tokens,
            "stage1_tokens": self.stage1_tokens,
            "config_yaml": to_yaml(self.cfg),
            "task": self.cfg.task.name,
            "base_key": self.base_key,
        }
        extra = (
            {f"critic.{k}": v for k, v in self.critic.state_dict().items()}
            if self.critic is not None
            else None
        )
        return save_checkpoint(
            self.ckpt_root,
            self.iteration,
            self.policy,
            self.tok,
            self.optimizer,
            state,
            extra,
            self.cfg.training.keep_last,
        )

    def _resume(self) -> None:
        if not (self.ckpt_root / "latest").is_file():
            raise UserError(f"--resume: no checkpoint in '{self.ckpt_root}' (start without --resume)")
        ckpt = load_checkpoint(self.ckpt_root, self.device)
        state = ckpt["state"]
        if state.get("task") != self.cfg.task.name:
            raise UserError(
                f"--resume: checkpoint is for task '{state.get('task')}', config says '{self.cfg.task.name}'"
            )
        self.policy.load_state_dict(ckpt["model"].state_dict())
        if self.critic is not None:
            self.critic.load_state_dict({k[len("critic.") :]: v for k, v in ckpt["extra"].items()})
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.gen.set_state(torch.tensor(state["rng_torch"], dtype=torch.uint8))
        self.iteration = int(state["iteration"])
        self.elapsed = float(state["elapsed"])
        self.generated_tokens = int(state["generated_tokens"])
        self.stage1_tokens = int(state["stage1_tokens"])
