"""A trust region checked after the step: undo an optimizer step that moved π_θ too far on its own batch.

Why: a character-level policy has decision points inside a word (after ``Ri`` comes ``g``, or the
first letter of another move). One ordinary-looking step (loss 0.2, gradient norm 0.7) can cross such a
point in many contexts at once; the next rollouts are then mostly invalid moves, and on FrozenLake
that has ended runs for good (docs/results.md, "Stability"). The gradient norm does not see it coming;
the policy's own distributions on the batch do. So, with ``training.max_step_kl`` = δ > 0:

    KL_step = mean over the batch's agent tokens t of  KL( π_old(· | c_t) ‖ π_θ(· | c_t) )   (exact, all V)

is measured after every optimizer step of an iteration, π_old being the policy that sampled the batch.
A step that takes KL_step past δ is undone (weights and AdamW moments restored) and the iteration's
remaining steps are skipped, like PPO's target-KL early stop, except that the offending step itself is
taken back rather than kept. Off (δ = 0) by default; it costs one extra no-grad forward per step.
"""

from __future__ import annotations

import torch

from tinyzero.algorithms.common import Batch, token_kl, trajectory_logprobs
from tinyzero.distributed import global_mean


class TrustRegion:
    """Per-iteration state of the post-step KL check; the trainer arms it, steps, and asks ``accept``."""

    def __init__(self, max_kl: float) -> None:
        self.max_kl = max_kl
        self.rejected = 0  # rejected steps over the whole run (checkpointed)
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.max_kl > 0

    def reset(self) -> None:
        """Start of an iteration: nothing armed, no step taken back yet."""
        self._batch: Batch | None = None
        self._before: torch.Tensor | None = None  # (S, T, V) log π_old on the batch
        self._saved: tuple[list[torch.Tensor], dict] | None = None
        self.stopped = False  # a step of this iteration was taken back: no more steps on this batch
        self.step_kl = 0.0  # KL(π_old ‖ π_θ) after the last step measured this iteration

    def arm(self, batch: Batch, dist: torch.Tensor | None) -> None:
        """Remember π_old's log-distributions on this iteration's batch (``dist``: LogProbs.dist)."""
        if not self.enabled:
            return
        if dist is None:
            raise ValueError("training.max_step_kl needs the policy's full distributions (dist=True)")
        self._batch, self._before = batch, dist.detach()

    @property
    def armed(self) -> bool:
        return self._batch is not None

    def snapshot(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Copy the weights and the optimizer's state before a step (a tiny model: cheap)."""
        state = {
            p: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for p, s in optimizer.state.items()
        }
        self._saved = ([p.detach().clone() for p in params], state)

    @torch.no_grad()
    def measure(self, model: torch.nn.Module) -> float:
        """KL(π_old ‖ π_now) per agent token on the armed batch, averaged over the global batch."""
        assert self._batch is not None and self._before is not None
        after = trajectory_logprobs(model, self._batch, dist=True).dist
        assert after is not None
        self.step_kl = float(global_mean(token_kl(self._before, after), self._batch.mask))
        return self.step_kl

    @torch.no_grad()
    def restore(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Put back the weights and optimizer state of the last snapshot, and stop this iteration."""
        assert self._saved is not None
        weights, state = self._saved
        for p, w in zip(params, weights, strict=True):
            p.copy_(w)
        optimizer.state.clear()
        optimizer.state.update(state)
        self._saved = None
        self.stopped = True
        self.rejected += 1
