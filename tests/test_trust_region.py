"""The post-step trust region (``training.max_step_kl``, tinyzero/trust_region.py) on the smoke config:
the KL it measures is the exact per-character KL(π_old ‖ π_θ) on the batch, a step past the limit is
undone bit for bit (weights and AdamW state), a step inside it is kept, every algorithm arms it, and the
count of undone steps survives a resume.

Run: pytest tests/test_trust_region.py -q        (~20 s on 2 CPU cores)
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


def adam_state(tr: TinyZeroTrainer) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in tr.optimizer.state[p].items()} for p in tr.policy.parameters()]


def armed_step(tr: TinyZeroTrainer, lr: float) -> tuple[float, torch.Tensor]:
    """Arm on a real batch, take one step of −mean log π on it at ``lr``; (the step's KL, π_old's dist)."""
    eps = tr.rollout(tr.sample_problems(8), tr.policy)
    batch = make_batch(tr.tok, eps, tr.cfg.rollout.history, tr.device)
    lp = trajectory_logprobs(tr.train_policy, batch, dist=True)
    tr.trust.reset()
    tr.arm_trust_region(batch, lp)
    for g in tr.optimizer.param_groups:
        g["lr"] = lr
    tr.optimize(-masked_mean(lp.token, batch.mask))
    with torch.no_grad():
        after = trajectory_logprobs(tr.policy, batch, dist=True).dist
    assert lp.dist is not None and after is not None
    return float(masked_mean(token_kl(lp.dist.detach(), after), batch.mask)), lp.dist.detach()


def test_a_step_inside_the_region_is_kept_and_its_kl_is_the_exact_one(
    cache_dir: Path, tmp_path: Path
) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_step_kl=1e6")
    before = weights(tr.policy)
    kl_after, _ = armed_step(tr, lr=1e-3)
    assert not tr.trust.stopped and tr.trust.rejected == 0
    assert any(not torch.equal(before[k], v) for k, v in tr.policy.state_dict().items())
    assert kl_after > 0
    assert tr.trust.step_kl == pytest.approx(kl_after, rel=1e-5)  # what it measured = KL(π_old ‖ π_new)


def test_a_step_past_the_region_is_undone_bit_for_bit(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_step_kl=0.05")
    armed_step(tr, lr=1e-5)  # a first small step, so that AdamW has moments to restore
    assert not tr.trust.stopped, f"a tiny step measured KL {tr.trust.step_kl}"
    before, state = weights(tr.policy), adam_state(tr)
    armed_step(tr, lr=0.5)  # a huge step: far outside 0.05 nats per character
    assert tr.trust.stopped and tr.trust.rejected == 1
    assert tr.trust.step_kl > 0.05
    for k, v in tr.policy.state_dict().items():
        assert torch.equal(before[k], v), k
    for saved, now in zip(state, adam_state(tr), strict=True):
        assert saved.keys() == now.keys() and all(torch.equal(saved[k], now[k]) for k in saved)
    # Once a step of the iteration was taken back, further steps on the batch are refused.
    w = weights(tr.policy)
    loss = -trajectory_logprobs(tr.train_policy, tr.trust._batch).traj.mean()
    assert tr.optimize(loss) != tr.optimize(loss)  # NaN: no step taken
    assert all(torch.equal(w[k], v) for k, v in tr.policy.state_dict().items())


def test_arming_without_distributions_is_refused(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_step_kl=0.1")
    eps = tr.rollout(tr.sample_problems(4), tr.policy)
    batch = make_batch(tr.tok, eps, tr.cfg.rollout.history, tr.device)
    with pytest.raises(ValueError, match="full distributions"):
        tr.arm_trust_region(batch, trajectory_logprobs(tr.train_policy, batch))


@pytest.mark.parametrize("algorithm", ["ragen", "astarpo", "grpo", "ppo"])
def test_every_algorithm_is_held_to_the_region(cache_dir: Path, tmp_path: Path, algorithm: str) -> None:
    """A limit no step can meet leaves π_θ equal to π_ref; a limit every step meets changes nothing."""
    extra = ["training.update_epochs=2"] if algorithm in ("ragen", "astarpo") else []
    tight = make_trainer(
        cache_dir, tmp_path / "tight", f"algorithm.name={algorithm}", "training.max_step_kl=1e-30", *extra
    )
    summary = tight.train()
    assert summary["rejected_steps"] == 2  # one per iteration: the second epoch is never tried
    ref = tight.ref.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in tight.policy.state_dict().items())
    lines = [json.loads(x) for x in (tight.run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    assert [m["trust/rejected"] for m in lines] == [1.0, 1.0]
    assert all(m["trust/step_kl"] > 1e-30 for m in lines)

    off = make_trainer(cache_dir, tmp_path / "off", f"algorithm.name={algorithm}", *extra)
    loose = make_trainer(
        cache_dir, tmp_path / "loose", f"algorithm.name={algorithm}", "training.max_step_kl=1e6", *extra
    )
    off.train()
    assert loose.train()["rejected_steps"] == 0
    # Measuring costs a forward but draws no random numbers: the run is the same as without the check.
    b = loose.policy.state_dict()
    assert all(torch.equal(b[k], v) for k, v in off.policy.state_dict().items())


def test_rejected_count_is_checkpointed_and_resumed(cache_dir: Path, tmp_path: Path) -> None:
    tr = make_trainer(cache_dir, tmp_path, "training.max_step_kl=1e-30")
    tr.train()
    ckpt = load_checkpoint(tr.ckpt_root / "iter_000002", "cpu")
    assert ckpt["state"]["rejected_steps"] == 2
    again = make_trainer(
        cache_dir, tmp_path, "training.max_step_kl=1e-30", "training.total_iterations=3", resume=True
    )
    assert again.trust.rejected == 2
    assert again.train()["rejected_steps"] == 3
