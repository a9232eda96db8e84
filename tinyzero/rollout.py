"""Trajectory collection: run many text episodes at once, one batched generate() call per turn.

Single-turn tasks are one-turn episodes, so every algorithm and the evaluator see the same
``Episode`` records whatever the task. Rollout is pure data collection (no gradients); turning
episodes into training tensors happens in ``tinyzero.algorithms.common``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tinyzero.context import Turn, build_context
from tinyzero.environments.base import Task
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.models.transformer import generate


@dataclass
class SamplingSettings:
    """How actions are drawn: greedy for evaluation, temperature/top-k/top-p for training."""

    max_new_tokens: int
    history: int = 0
    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


@dataclass
class Episode:
    """One finished episode: what was seen, what the policy wrote, and how it scored."""

    problem: Any
    turns: list[Turn] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # decoded action texts, one per turn
    sample_logprob: float = 0.0  # Σ log-prob of the action tokens under the sampling distribution
    reward: float = 0.0  # summed over turns
    success: bool = False
    format_ok: bool = True  # every turn was well-formed
    reason: str = ""  # why the episode ended (solved, hole, wrong_value, ...)
    done: bool = False

    @property
    def num_action_tokens(self) -> int:
        return sum(len(t.action_ids) for t in self.turns)


@torch.no_grad()
def run_episodes(
    model: torch.nn.Module,
    tok: CharTokenizer,
    task: Task,
    problems: list[Any],
    sampling: SamplingSettings,
    generator: torch.Generator | None = None,
) -> list[Episode]:
    """Play one episode per entry of ``problems`` (repeat a problem to get K samples of it)."""
    # Environment seeds come from the same generator as the samples, so slippery dynamics are reproducible.
    seeds: list[int | None] = [None] * len(problems)
    if generator is not None:
        seeds = torch.randint(
            2**31 - 1, (len(problems),), generator=generator, device=generator.device
        ).tolist()
    envs = [task.episode(p, seed=s) for p, s in zip(problems, seeds)]
    episodes = [Episode(problem=p) for p in problems]
    observations = [env.prompt for env in envs]
    max_len = model.config.max_seq_len
    for _ in range(task.max_turns):
        active = [i for i, ep in enumerate(episodes) if not ep.done]
        if not active:
            break
        contexts = []
        for i in list(active):
            ctx = build_context(tok, episodes[i].turns, observations[i], sampling.history)
            if len(ctx) + sampling.max_new_tokens > max_len:  # the context window is full: end the episode
                episodes[i].done, episodes[i].reason = True, "context_full"
                active.remove(i)
                continue
            contexts.append(ctx)
        if not active:
            break
        out = generate(
            model,
            contexts,
            sampling.max_new_tokens,
            eos_id=tok.eos_id,
            pad_id=tok.pad_id,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            greedy=sampling.greedy,
            generator=generator,
        )
        lengths = out.lengths.tolist()
        tokens = out.tokens.tolist()
        logps = (out.logprobs * out.mask).sum(dim=1).tolist()
        for row, i in enumerate(active):
            ep = episodes[i]
            action_ids = tokens[row][: lengths[row]]
            text = tok.decode(action_ids)
            result = envs[i].step(text)
            ep.turns.append(Turn(observations[i], action_ids))
            ep.actions.append(text)
            ep.sample_logprob += logps[row]
            ep.reward += float(result.reward)
            ep.format_ok = ep.format_ok and bool(result.info.get("format_ok", True))
            ep.success = bool(result.info.get("success", False))
            ep.reason = str(result.info.get("reason", ""))
            observations[i] = result.observation
            ep.done = bool(result.done)
    for ep in episodes:
        if not ep.done:
            ep.done, ep.reason = (
                True,
                ep.reason if ep.reason not in ("", "moving", "invalid_action") else "out_of_turns",
            )
    return episodes
