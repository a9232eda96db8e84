"""What the trust region (``training.max_kl_rise``) costs per RL iteration, side by side in one process.

    python bench/trust_region.py                       # configs/frozenlake.yaml, 2 threads, ~5 minutes
    python bench/trust_region.py --quick               # smoke config, seconds (what the test runs)

Three trainers built from the same config and seed, so they sample the same trajectories and take the
same steps (the check never acts at the default limit, ``--limit`` 1e6: the three runs stay identical,
which the script checks and records as ``same_run``):

* ``off``: ``training.max_kl_rise`` = 0, no check;
* ``per_step``: the check as first shipped, one no-grad forward of π_θ on the batch after *every*
  optimizer step (with ``update_epochs: 2``, two per iteration);
* ``shipped``: this checkout: the check after a step that another step on the batch follows runs with
  gradients and is handed to that step as its forward (``TinyZeroTrainer.step_then_logprobs``), so only
  the iteration's last step pays for a forward of its own.

Blocks of ``--iterations`` RL iterations (``TinyZeroTrainer.update``: rollouts and steps, as ``train``
runs them, without evaluations or checkpoints) interleave the three (A B C A B C ...), so that load from other
jobs hits all alike; the figure is seconds per iteration summed over the blocks, and the ratios to
``off`` are what to read. Writes ``bench/results/trust_region.json`` (``trust_region_quick.json`` with
``--quick``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, write_results  # noqa: E402
from tinyzero.algorithms.common import Batch, LogProbs, trajectory_logprobs  # noqa: E402
from tinyzero.config import load_config  # noqa: E402
from tinyzero.trainer import TinyZeroTrainer  # noqa: E402


class PerStepCheck(TinyZeroTrainer):
    """The earlier (2026-12-01) check: every step measured by a no-grad forward of its own; the next step's
    forward computed again."""

    def step_then_logprobs(self, loss: torch.Tensor, batch: Batch, dist: bool) -> LogProbs:
        self.optimize(loss)
        return trajectory_logprobs(self.train_policy, batch, dist=dist)


def build(config: str, overrides: list[str], limit: float, cls: type[TinyZeroTrainer]) -> TinyZeroTrainer:
    cfg = load_config(ROOT / config, [*overrides, f"training.max_kl_rise={limit}"])
    return cls(cfg, progress=False)


def run_block(tr: TinyZeroTrainer, iterations: int) -> tuple[float, list[float]]:
    """``iterations`` RL iterations as the trainer's loop runs them; seconds and the losses."""
    losses = []
    start = time.perf_counter()
    for _ in range(iterations):
        loss, _, _ = tr.update()
        tr.iteration += 1
        losses.append(float(loss.detach()))
    return time.perf_counter() - start, losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/frozenlake.yaml")
    ap.add_argument("--iterations", type=int, default=5, help="RL iterations per timed block")
    ap.add_argument("--blocks", type=int, default=4, help="timed blocks per variant (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=float, default=1e6, help="training.max_kl_rise of the checked variants")
    ap.add_argument("--quick", action="store_true", help="smoke config, 1 iteration x 1 block, 1 thread")
    ap.add_argument("--cache-dir", default=None, help="pretrain.cache_dir (default: the config's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.config, args.iterations, args.blocks, args.threads = "configs/smoke.yaml", 1, 1, 1
    name = "trust_region_quick.json" if args.quick else "trust_region.json"
    out = args.out or str(Path(__file__).parent / "results" / name)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        common = [f"run.out_dir={tmp}", "run.device=cpu", f"run.threads={args.threads}"]
        if args.cache_dir:
            common.append(f"pretrain.cache_dir={args.cache_dir}")
        if args.quick:
            common.append("training.update_epochs=2")  # the smoke config takes one step per batch
        variants = {
            "off": build(args.config, [*common, "run.name=off"], 0.0, TinyZeroTrainer),
            "per_step": build(args.config, [*common, "run.name=per_step"], args.limit, PerStepCheck),
            "shipped": build(args.config, [*common, "run.name=shipped"], args.limit, TinyZeroTrainer),
        }
        seconds = dict.fromkeys(variants, 0.0)
        losses: dict[str, list[float]] = {k: [] for k in variants}
        for block in range(args.blocks + 1):  # block 0 warms up (allocator, first rollouts)
            for key, tr in variants.items():
                s, ls = run_block(tr, args.iterations)
                losses[key] += ls
                if block > 0:
                    seconds[key] += s
            print(f"block {block}/{args.blocks}: " + ", ".join(f"{k} {seconds[k]:.1f}s" for k in variants))
        timed = args.blocks * args.iterations
        tokens = variants["off"].generated_tokens
        counters = {k: (tr.trust.shrunk, tr.trust.rejected) for k, tr in variants.items()}
    per_it = {k: seconds[k] / timed for k in variants}
    same = losses["off"] == losses["per_step"] == losses["shipped"]
    results = {
        "config": dict(vars(args), out=out),
        "seconds_per_iteration": {k: round(v, 4) for k, v in per_it.items()},
        "ratio_to_off": {k: round(v / per_it["off"], 3) for k, v in per_it.items()},
        "same_run": same,
        "generated_tokens_per_variant": tokens,
        "shrunk_rejected": counters,
        "machine": machine_info(),
    }
    print(f"\n{args.config}: {timed} timed iterations per variant, {args.threads} thread(s)")
    print("| variant | s / iteration | × off |")
    print("|---|---|---|")
    for k in variants:
        print(f"| {k} | {per_it[k]:.3f} | {per_it[k] / per_it['off']:.3f} |")
    print(f"same run in all three (losses equal): {same}")
    write_results(results, out)


if __name__ == "__main__":
    main()
