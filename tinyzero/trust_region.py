"""A trust region checked after the step: shrink or undo an optimizer step that moves π_θ away from π_ref
too fast on its own batch.

Why: a character-level policy has decision points inside a word (after ``Ri`` comes ``g``, or the
first letter of another move). One ordinary-looking step (loss 0.2, gradient norm 0.7) can put mass on
``D`` after ``Ri`` in many contexts at once; the next rollouts are then full of invalid moves, and on
FrozenLake that has ended runs for good (docs/results.md, "Stability"). The gradient norm does not see
it coming; the exact per-character KL to π_ref on the batch does, because mass appearing where π_ref
has almost none costs log(π_θ/π_ref) ≈ 10+ nats per unit. So, with ``training.max_kl_rise`` = δ > 0:

    KL_ref(π) = mean over the batch's agent positions t of  KL( π(· | c_t) ‖ π_ref(· | c_t) )   (exact, all V)
    rise      = KL_ref(π_θ after the step) − KL_ref(π_old)

π_old being the policy that sampled the batch (with ``update_epochs`` > 1 every step of the iteration
is held to the same π_old). A step with rise > δ is shrunk (θ_old + 2^-k·Δθ, k = 1..BACKTRACKS, a
backtracking line search as in TRPO); if even the smallest is outside, it is undone (weights and AdamW
moments restored bit for bit) and the iteration takes no further step.

Why a rise in the KL to π_ref and not the KL between consecutive policies: a step that *repairs* a
damaged policy (mass back from ``D`` to ``g``) is a large move from π_old but a move toward π_ref.
Measured (docs/results.md): holding steps to KL(π_old ‖ π_θ) ≤ 0.05 froze 2 of 3 runs, every repair
step rejected for 100+ iterations; the rise lets repairs through at any size. Off (δ = 0) by default;
it costs one forward per iteration (plus one per backtrack) and draws no random numbers: with
``update_epochs`` > 1 the check of every step but the last is the forward the next step needs anyway
(``step(keep=True)`` hands it over, computed with gradients), so only the last step pays for its check.
"""

from __future__ import annotations

import torch

from tinyzero.algorithms.common import Batch, LogProbs, token_kl, trajectory_logprobs
from tinyzero.distributed import global_mean

BACKTRACKS = 4  # shrink a step at most to 1/16: near π_old the rise falls at least linearly with the size


class TrustRegion:
    """Per-iteration state of the post-step check; the trainer arms it and steps through ``step``."""

    def __init__(self, max_rise: float) -> None:
        self.max_rise = max_rise
        self.rejected = 0  # steps undone over the whole run (checkpointed)
        self.shrunk = 0  # steps taken at a reduced size over the whole run (checkpointed)
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.max_rise > 0

    def reset(self) -> None:
        """Start of an iteration: nothing armed, no step shrunk or undone yet."""
        self._batch: Batch | None = None
        self._ref: torch.Tensor | None = None  # (S, T, V) log π_ref on the batch
        self._start = 0.0  # KL_ref(π_old)
        self.stopped = False  # a step of this iteration was undone: no more steps on this batch
        self.rise = 0.0  # KL_ref(π_θ) − KL_ref(π_old) after the last step measured this iteration
        self.scale = 1.0  # smallest step size taken this iteration (0 = a step was undone)

    def arm(self, batch: Batch, policy_dist: torch.Tensor | None, ref_dist: torch.Tensor | None) -> None:
        """Take π_old's and π_ref's log-distributions on this iteration's batch (``LogProbs.dist``)."""
        if not self.enabled:
            return
        if policy_dist is None or ref_dist is None:
            raise ValueError("training.max_kl_rise needs the full distributions of π_θ and π_ref (dist=True)")
        self._batch, self._ref = batch, ref_dist
        self._start = self._kl_ref(policy_dist.detach())

    @property
    def armed(self) -> bool:
        return self._batch is not None

    def armed_on(self, batch: Batch) -> bool:
        return self._batch is batch

    def _kl_ref(self, dist: torch.Tensor) -> float:
        assert self._batch is not None and self._ref is not None
        return float(global_mean(token_kl(dist, self._ref), self._batch.mask))

    def measure(self, model: torch.nn.Module, grad: bool = False) -> LogProbs:
        """π_θ's log-probs on the armed batch with the model's current weights; sets ``rise`` (global
        batch). ``grad``: keep the autograd graph, so the caller's next step can reuse this forward."""
        assert self._batch is not None
        with torch.set_grad_enabled(grad):
            after = trajectory_logprobs(model, self._batch, dist=True)
        assert after.dist is not None
        self.rise = self._kl_ref(after.dist.detach()) - self._start
        return after

    def step(
        self,
        params: list[torch.Tensor],
        optimizer: torch.optim.Optimizer,
        model: torch.nn.Module,
        keep: bool = False,
    ) -> LogProbs | None:
        """``optimizer.step()``, then shrink it until the rise is ≤ δ, or undo it. ``model`` computes π_θ
        from ``params`` (under torchrun every rank measures the same global rise: all agree).

        ``keep``: another step on this batch follows, so measure the whole step with gradients and return
        that forward (π_θ's log-probs at the new weights, exactly what the next step would compute). None
        when the step was shrunk or undone (the next step, if any, computes its own forward).
        """
        old = [p.detach().clone() for p in params]
        state = {
            p: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for p, s in optimizer.state.items()
        }
        optimizer.step()
        after = self.measure(model, grad=keep)
        if self.rise <= self.max_rise:
            return after if keep else None
        del after  # its graph, if any, is never used
        with torch.no_grad():
            new = [p.detach().clone() for p in params]
            for k in range(1, BACKTRACKS + 1):
                for p, a, b in zip(params, old, new, strict=True):
                    p.copy_(torch.lerp(a, b, 0.5**k))
                self.measure(model)
                if self.rise <= self.max_rise:  # AdamW keeps the moments of the full step
                    self.scale = min(self.scale, 0.5**k)
                    self.shrunk += 1
                    return None
            for p, a in zip(params, old, strict=True):
                p.copy_(a)
        optimizer.state.clear()
        optimizer.state.update(state)
        self.stopped, self.scale = True, 0.0
        self.rejected += 1
        return None
