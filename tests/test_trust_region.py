"""The post-step trust region (``training.max_kl_rise``, tinyzero/trust_region.py) on the smoke config:
what it measures is the rise of the exact per-character KL(π_θ ‖ π_ref) on the batch, a step inside the
region is kept whole, a step outside is shrunk by halving, a step no shrinking saves is undone bit for
bit (weights and AdamW state), a step back toward π_ref passes however large, every algorithm arms
it, and its counters survive a resume.

Run: pytest tests/test_trust_region.py -q        (~25 s on 2 CPU cores)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tinyzero.algorithms.common import make_batch, masked_mean, token_kl, trajectory_logprobs
from tinyzero.checkpoint import load_checkpoint
from tinyzero.config import load_config
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]


def make_trainer(cache: Path, out: Path, *overrides: str, resume: bool = False) -> TinyZeroTrainer:
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        [f"run.out_dir={out}", f"pretrain.cache_dir={cache}", "run.device=cpu", "run.threads=1", *overrides],
    )
    return TinyZeroTrainer(cfg, resume=resume, progress=False)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def adam_state(tr: TinyZeroTrainer) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in tr.optimizer.state[p].items()} for p in tr.policy.parameters()]


def kl_ref(tr: TinyZeroTrainer, batch) -> float:
    """KL_ref of the current policy on the batch, computed here independently of the trust region."""
    with torch.no_grad():
        pol = trajectory_logprobs(tr.policy, batch, dist=True).dist
        ref = trajectory_logprobs(tr.ref, batch, dist=True).dist
    return float(masked_mean(token_kl(pol, ref), batch.mask))


def arm(tr: TinyZeroTrainer, lr: float | None = None):
    """Arm the trust region on a real batch of 8 episodes (optionally setting the lr); (batch, lp, ref)."""
    eps = tr.rollout(tr.sample_problems(8), tr.policy)
    batch = make_batch(tr.tok, eps, tr.cfg.rollout.history, tr.device)
    lp = trajectory_logprobs(tr.train_policy, batch, dist=True)
    with torch.no_grad():
        ref = trajectory_logprobs(tr.ref, batch, dist=True)
    tr.trust.reset()
    tr.trust.arm(batch, lp.dist, ref.dist)
    for g in tr.optimizer.param_groups:
        g["lr"] = g["lr"] if lr is None else lr
    return batch, lp, ref


def armed_step(tr: TinyZeroTrainer, lr: float, loss_fn=None):
    """Arm on a real batch, take one step (default loss −mean log π) at ``lr``; return the batch."""
    batch, lp, ref = arm(tr, lr)
    loss = -masked_mean(lp.token, batch.mask) if loss_fn is None else loss_fn(lp, ref, batch)
    tr.optimize(loss)
    return batch


def test_a_step_inside_the_region_is_kept_whole_and_its_rise_is_exact(
    cache_dir: Path, tmp_path: Path
) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_kl_rise=1e6")
    before = weights(tr.policy)
    batch = armed_step(tr, lr=1e-3)
    assert not tr.trust.stopped and tr.trust.scale == 1.0 and tr.trust.shrunk == tr.trust.rejected == 0
    assert not same(before, weights(tr.policy))
    # π_old = π_ref here (first step), so the rise is KL_ref after the step
    assert tr.trust.rise == pytest.approx(kl_ref(tr, batch), rel=1e-4) and tr.trust.rise > 0


def test_a_step_outside_the_region_is_shrunk_by_halving(cache_dir: Path, tmp_path: Path) -> None:
    full = make_trainer(cache_dir, tmp_path / "full", "training.max_kl_rise=1e6")
    armed_step(full, lr=3e-3)
    whole_rise, whole = full.trust.rise, weights(full.policy)
    tr = make_trainer(cache_dir, tmp_path / "half", f"training.max_kl_rise={whole_rise / 2}")
    start = weights(tr.policy)
    batch = armed_step(tr, lr=3e-3)  # same seed: the same batch and gradient as `full`
    assert tr.trust.scale < 1.0 and not tr.trust.stopped and tr.trust.shrunk == 1
    assert tr.trust.rise <= whole_rise / 2
    assert tr.trust.rise == pytest.approx(kl_ref(tr, batch), rel=1e-4)
    expected = {k: torch.lerp(start[k], whole[k], tr.trust.scale) for k in start}
    for k, v in tr.policy.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-6, atol=1e-7)


def test_a_step_no_shrinking_saves_is_undone_bit_for_bit(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_kl_rise=1e-4")
    armed_step(tr, lr=1e-6)  # a first tiny step, so that AdamW has moments to restore
    assert not tr.trust.stopped, f"a tiny step measured a rise of {tr.trust.rise}"
    before, state = weights(tr.policy), adam_state(tr)
    armed_step(tr, lr=1.0)  # even 1/16 of this is far outside 1e-4 nats per character
    assert tr.trust.stopped and tr.trust.rejected == 1 and tr.trust.scale == 0.0
    assert same(before, weights(tr.policy))
    for saved, now in zip(state, adam_state(tr), strict=True):
        assert saved.keys() == now.keys() and all(torch.equal(saved[k], now[k]) for k in saved)
    # Once a step of the iteration was undone, further steps on the batch are refused.
    loss = -trajectory_logprobs(tr.train_policy, tr.trust._batch).traj.mean()
    assert tr.optimize(loss) != tr.optimize(loss)  # NaN: no step taken
    assert same(before, weights(tr.policy))


def test_a_large_step_back_toward_the_reference_passes(cache_dir: Path, tmp_path: Path) -> None:
    """The repair of a damaged policy: far from π_old, toward π_ref. A KL(π_old ‖ π_θ) limit would stop it."""
    tr = make_trainer(cache_dir, tmp_path, "training.max_kl_rise=1e-4")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # damage the policy outside the trust region
        for p in tr.policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))

    def toward_ref(lp, ref, batch):
        return masked_mean(token_kl(lp.dist, ref.dist), batch.mask)

    start = weights(tr.policy)
    armed_step(tr, lr=0.01, loss_fn=toward_ref)
    assert tr.trust.scale == 1.0 and not tr.trust.stopped and tr.trust.rise < -1e-3
    moved = max(float((v - start[k]).abs().max()) for k, v in tr.policy.state_dict().items())
    assert moved > 5e-3  # a large step, kept whole


def test_arming_without_distributions_is_refused(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_kl_rise=0.1")
    eps = tr.rollout(tr.sample_problems(4), tr.policy)
    batch = make_batch(tr.tok, eps, tr.cfg.rollout.history, tr.device)
    lp = trajectory_logprobs(tr.train_policy, batch)
    with pytest.raises(ValueError, match="full distributions"):
        tr.trust.arm(batch, lp.dist, lp.dist)


@pytest.mark.parametrize("algorithm", ["ragen", "astarpo", "grpo", "ppo"])
def test_every_algorithm_is_held_to_the_region(cache_dir: Path, tmp_path: Path, algorithm: str) -> None:
    """From π_θ = π_ref every step raises KL_ref: a limit of 1e-30 undoes them all (π_θ stays π_ref), and
    a limit no step reaches changes nothing."""
    extra = ["training.update_epochs=2"]  # every algorithm takes two steps per batch when asked
    tight = make_trainer(
        cache_dir, tmp_path / "tight", f"algorithm.name={algorithm}", "training.max_kl_rise=1e-30", *extra
    )
    summary = tight.train()
    assert summary["rejected_steps"] == 2  # one per iteration: the second epoch is never tried
    assert same(tight.ref.state_dict(), tight.policy.state_dict())
    lines = [json.loads(x) for x in (tight.run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    assert [m["trust/step_scale"] for m in lines] == [0.0, 0.0]
    assert all(m["trust/kl_rise"] > 1e-30 for m in lines)

    off = make_trainer(cache_dir, tmp_path / "off", f"algorithm.name={algorithm}", *extra)
    loose = make_trainer(
        cache_dir, tmp_path / "loose", f"algorithm.name={algorithm}", "training.max_kl_rise=1e6", *extra
    )
    off.train()
    result = loose.train()
    assert result["rejected_steps"] == result["shrunk_steps"] == 0
    # Measuring costs a forward but draws no random numbers: the run is the same as without the check.
    assert same(loose.policy.state_dict(), off.policy.state_dict())


def test_counters_are_checkpointed_and_resumed(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_kl_rise=1e-30")
    tr.train()
    ckpt = load_checkpoint(tr.ckpt_root / "iter_000002", "cpu")
    assert ckpt["state"]["rejected_steps"] == 2 and ckpt["state"]["shrunk_steps"] == 0
    again = make_trainer(
        cache_dir, tmp_path, "training.max_kl_rise=1e-30", "training.total_iterations=3", resume=True
    )
    assert again.trust.rejected == 2
    assert again.train()["rejected_steps"] == 3


def test_the_check_before_another_step_is_that_steps_forward(cache_dir: Path, tmp_path: Path) -> None:
    """With update_epochs > 1 the check after a kept step hands its forward to the next step: the same
    log-probs as a fresh forward at the new weights, with a graph that backpropagates."""
    tr = make_trainer(cache_dir, tmp_path, "training.max_kl_rise=1e6")
    batch, lp, _ = arm(tr)
    kept = tr.step_then_logprobs(-masked_mean(lp.token, batch.mask), batch, dist=False)
    fresh = trajectory_logprobs(tr.train_policy, batch, dist=True)
    assert kept is not lp and kept.dist is not None
    assert torch.equal(kept.token.detach(), fresh.token.detach())
    assert torch.equal(kept.dist.detach(), fresh.dist.detach())
    before = weights(tr.policy)
    tr.optimize(-masked_mean(kept.token, batch.mask))  # the graph is live: a real second step
    assert not same(before, weights(tr.policy))


def test_after_a_shrunk_step_the_next_forward_is_at_the_shrunk_weights(
    cache_dir: Path, tmp_path: Path
) -> None:
    full = make_trainer(cache_dir, tmp_path / "full", "training.max_kl_rise=1e6")
    armed_step(full, lr=3e-3)
    tr = make_trainer(cache_dir, tmp_path / "half", f"training.max_kl_rise={full.trust.rise / 2}")
    batch, lp, _ = arm(tr, lr=3e-3)
    nxt = tr.step_then_logprobs(-masked_mean(lp.token, batch.mask), batch, dist=False)
    assert tr.trust.shrunk == 1 and nxt.dist is None  # not the discarded full-step forward: a new one
    assert torch.equal(nxt.token.detach(), trajectory_logprobs(tr.train_policy, batch).token.detach())


def test_the_check_costs_one_forward_per_iteration(cache_dir: Path, tmp_path: Path) -> None:
    """Two regression steps per batch, the check on (never acting) vs off: the same run, plus exactly one
    forward of π_θ per iteration (the last step's check); the first step's check is the second's forward."""

    def forwards(run: str, *extra: str) -> int:
        tr = make_trainer(cache_dir, tmp_path / run, "training.update_epochs=2", *extra)
        calls = [0]
        hook = tr.policy.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        tr.train()
        hook.remove()
        return calls[0]

    iterations = make_trainer(cache_dir, tmp_path / "cfg").cfg.training.total_iterations
    assert forwards("on", "training.max_kl_rise=1e6") - forwards("off") == iterations
