"""Helpers for the algorithm tests: hand-made episodes, and log-probs computed without the trainer's code.

The expected losses in tests/test_algorithm_losses.py must not reuse the code they check, so the
per-token log-probs here come from one plain forward per turn on the context the sampler saw
(``build_context``), with no batching, padding, masks or ``trajectory_logprobs``. Not a test file:
imported by the tests (pytest puts tests/ on the path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tinyzero.config import load_config
from tinyzero.context import Turn, build_context
from tinyzero.rollout import Episode
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def make_trainer(
    cache: Path, out_dir: Path, *overrides: str, config: Path = SMOKE, resume: bool = False
) -> TinyZeroTrainer:
    """A real trainer on the given config (CPU, one thread), its base model from the session cache."""
    cfg = load_config(
        config,
        [
            f"run.out_dir={out_dir}",
            f"pretrain.cache_dir={cache}",
            "run.device=cpu",
            "run.threads=1",
            *overrides,
        ],
    )
    return TinyZeroTrainer(cfg, resume=resume, progress=False)


def episode(tr: TinyZeroTrainer, problem: object, actions: list[str], reward: float) -> Episode:
    """An episode of ``problem`` in which the policy wrote ``actions`` (EOS after each), scored ``reward``.

    Observations are the environment's own (the moves are played in it while it accepts them); the
    reward is set by hand, so a test chooses the advantages it needs.
    """
    env = tr.task.episode(problem)
    obs, turns = env.prompt, []
    for text in actions:
        turns.append(Turn(obs, tr.tok.encode(text) + [tr.tok.eos_id]))
        if not env.done:
            obs = env.step(text).observation or obs
    return Episode(problem=problem, turns=turns, actions=list(actions), reward=reward, done=True)


def perturb(model: torch.nn.Module, scale: float = 0.01, seed: int = 0) -> None:
    """Move π_θ away from π_ref, so that log π_θ − log π_ref ≠ 0 and swapped arguments show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


@dataclass
class Tokens:
    """One trajectory's agent tokens under one model: float64, differentiable through the model."""

    logp: torch.Tensor  # (n,) log π(a_t | ctx_t)
    entropy: torch.Tensor  # (n,) −Σ_v π(v|ctx_t) log π(v|ctx_t)
    dist: torch.Tensor  # (n, V) log π(· | ctx_t)
    positions: list[tuple[list[int], int]]  # (the ids up to and including token t, t) for each token

    @property
    def total(self) -> torch.Tensor:
        return self.logp.sum()


def tokens(model: torch.nn.Module, tr: TinyZeroTrainer, ep: Episode) -> Tokens:
    """Per-token log-probs of ``ep``'s actions: one forward per turn on [context the sampler saw, action]."""
    history = tr.cfg.rollout.history
    logp, ent, dist, positions = [], [], [], []
    for t, turn in enumerate(ep.turns):
        ctx = build_context(tr.tok, ep.turns[:t], turn.observation, history)
        ids = ctx + turn.action_ids
        logsm = torch.log_softmax(model(torch.tensor([ids]))[0].double(), dim=-1)  # (T, V)
        for j, a in enumerate(turn.action_ids):
            pos = len(ctx) + j  # token a sits at pos; it is predicted by the logits at pos − 1
            d = logsm[pos - 1]
            logp.append(d[a])
            ent.append(-(d.exp() * d).sum())
            dist.append(d)
            positions.append((ids[: pos + 1], pos))
    return Tokens(torch.stack(logp), torch.stack(ent), torch.stack(dist), positions)


def huber(e: torch.Tensor, delta: float) -> torch.Tensor:
    """docs/algorithms.md: e² for |e| ≤ δ, 2δ|e| − δ² beyond (δ = 0: the plain square)."""
    if delta <= 0:
        return e**2
    return torch.where(e.abs() <= delta, e**2, 2 * delta * e.abs() - delta**2)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Two state dicts hold the same tensors, bit for bit (resume and replay tests)."""
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def params_of(*modules: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def assert_same_loss_and_gradient(
    real: torch.Tensor, expected: torch.Tensor, params: list[torch.nn.Parameter], rtol: float = 1e-4
) -> None:
    """Same value, and the same gradient w.r.t. every trained weight (a loss can be right in value and
    still push the wrong way: e.g. a ratio π_θ/π_θ that is 1 but carries no gradient)."""
    assert real.item() == pytest_approx(expected.item(), rtol)
    g_real = torch.autograd.grad(real, params, retain_graph=True, allow_unused=True)
    g_exp = torch.autograd.grad(expected, params, retain_graph=True, allow_unused=True)
    flat_real = torch.cat(
        [(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(g_real, params)]
    )
    flat_exp = torch.cat(
        [(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(g_exp, params)]
    )
    assert flat_exp.abs().max() > 0, "the expected loss has no gradient: the test would prove nothing"
    torch.testing.assert_close(
        flat_real.double(), flat_exp.double(), rtol=1e-3, atol=1e-3 * float(flat_exp.abs().max())
    )


def pytest_approx(x: float, rtol: float):  # noqa: ANN201 - pytest's approx object
    import pytest

    return pytest.approx(x, rel=rtol, abs=1e-6)


def loss_on(
    tr: TinyZeroTrainer, episodes: list[Episode], ref_episodes: list[Episode] | None = None
) -> tuple[torch.Tensor, dict]:
    """The trainer's real loss path (``loss_on``, what ``update()`` runs after its rollouts) on given
    episodes, grouped as the configured algorithm collects them."""
    k = tr.algorithm.collect(tr.cfg).samples_per_prompt
    return tr.loss_on(tr.rollouts(episodes, k, ref_episodes))
