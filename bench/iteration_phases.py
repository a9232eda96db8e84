"""Where one training iteration's time goes: rollouts, forwards, backward, the trust region's check.

    python bench/iteration_phases.py                               # configs/default.yaml, 8 iterations
    python bench/iteration_phases.py --threads 1 training.update_epochs=1 astarpo.num_trajectories=64

Why: the time-to-0.9 work needs to know which part of an iteration a change makes cheaper. The
trainer runs unmodified; the functions it calls are wrapped with timers for the measured iterations
(after ``--warmup`` iterations, stage 1 done beforehand and not counted):

* ``rollout``: sampling the iteration's episodes (the KV-cache sampler and the environments);
* ``forward (π_θ, π_ref)``: ``trajectory_logprobs`` as the trainer calls it (π_θ with gradients, π_ref
  without, at the start of the iteration; with ``update_epochs`` > 1 and no trust region, π_θ again);
* ``trust-region check``: the forward after each step (``training.max_kl_rise`` > 0); with more than
  one update epoch it is also the next epoch's forward;
* ``backward``: ``loss.backward()``; ``optimizer``: what is left of ``optimize`` (clip, AdamW, the
  check's bookkeeping); ``other``: the rest of ``update`` (batching, rewards, the loss itself).

Nested timers are subtracted, so the rows add up to the iteration. Writes
``bench/results/iteration_phases.json``. Times depend on the machine and its load; the shares are
what to compare between settings measured in one go.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinyzero.trust_region as trust_region  # noqa: E402
from bench.common import machine_info, write_results  # noqa: E402
from tinyzero import trainer as trainer_module  # noqa: E402
from tinyzero.config import load_config  # noqa: E402

PHASES = ("rollout", "forward (π_θ, π_ref)", "trust-region check", "backward", "optimizer", "other")


class Clock:
    """Exclusive time per phase: a timed call inside another timed call is charged to the inner one."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = collections.defaultdict(float)
        self._stack: list[list] = []  # [name, start, time of nested timed calls]

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            self._stack.append([name, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                _, start, nested = self._stack.pop()
                total = time.perf_counter() - start
                self.spent[name] += total - nested
                if self._stack:
                    self._stack[-1][2] += total

        return timed


def measure(args: argparse.Namespace, work: Path) -> dict:
    cfg = load_config(
        args.config,
        [
            f"run.out_dir={work}",
            "run.name=phases",
            f"run.threads={args.threads}",
            "logging.tensorboard=false",
            "logging.progress=false",
            "training.eval_every=0",
            *args.overrides,
        ],
    )
    tr = trainer_module.TinyZeroTrainer(cfg, progress=False)
    tr.prepare()  # stage 1 (if any) before the clock
    for _ in range(args.warmup):
        tr.update()
    clock = Clock()
    tr.rollout = clock.wrap("rollout", tr.rollout)
    tr.optimize = clock.wrap("optimizer", tr.optimize)
    update = clock.wrap("other", tr.update)
    # Module-level functions are shared with the rest of the process: wrapped here, put back below.
    shared = [
        (trainer_module, "trajectory_logprobs", "forward (π_θ, π_ref)"),
        (trust_region, "trajectory_logprobs", "trust-region check"),
        (torch.Tensor, "backward", "backward"),
    ]
    originals = [getattr(owner, attr) for owner, attr, _ in shared]
    for (owner, attr, phase), fn in zip(shared, originals, strict=True):
        setattr(owner, attr, clock.wrap(phase, fn))
    try:
        start = time.perf_counter()
        for _ in range(args.iterations):
            update()
        total = time.perf_counter() - start
    finally:
        for (owner, attr, _), fn in zip(shared, originals, strict=True):
            setattr(owner, attr, fn)
    per_it = {k: clock.spent[k] / args.iterations for k in PHASES}
    return {
        "config": args.config,
        "overrides": args.overrides,
        "threads": args.threads,
        "iterations": args.iterations,
        "s_per_iteration": round(total / args.iterations, 3),
        "phases_s": {k: round(v, 3) for k, v in per_it.items()},
        "phases_share": {k: round(v / (total / args.iterations), 3) for k, v in per_it.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "iteration_phases.json"))
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. training.update_epochs=1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args, Path(tmp))
    settings = " ".join(args.overrides) or "as configured"
    print(f"{result['s_per_iteration']:.3f} s per iteration ({args.threads} threads; {settings})")
    for k in PHASES:
        print(f"  {k:<22} {result['phases_s'][k]:>7.3f} s  {100 * result['phases_share'][k]:>5.1f} %")
    result["machine"] = machine_info()
    write_results(result, args.out)


if __name__ == "__main__":
    main()
