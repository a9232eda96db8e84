"""Time and iterations to a held-out success threshold, for one config over several seeds.

    python bench/time_to_target.py                                   # configs/default.yaml, seeds 0 1 2, 0.9
    python bench/time_to_target.py --seeds 0 1 2 3 --target 0.9 --threads 2 training.lr=1e-3
    python bench/time_to_target.py --quick                           # smoke config, 1 seed, seconds (CI)

Why both figures: iterations to the target do not depend on the machine (runs are deterministic on
CPU), seconds do. A change that makes iterations cheaper shows in seconds per iteration; one that
makes learning faster shows in iterations. The clock starts after the base model is loaded (its
build time is reported apart, once) and includes A*PO's stage 1 (its V* cache is cleared before each
run), every held-out evaluation and checkpoint: what a user waits for. Each run stops at the first
evaluation at or above the target unless ``--full`` (then the final success is reported too).

Writes ``bench/results/time_to_target.json`` (``time_to_target_quick.json`` with ``--quick``).
No timing is asserted anywhere: the figures are for the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import isolate_base, machine_info, shown_path, write_results  # noqa: E402
from tinyzero.config import load_config  # noqa: E402
from tinyzero.pretrain import ensure_base_model  # noqa: E402
from tinyzero.trainer import TinyZeroTrainer  # noqa: E402


def first_crossing(evals: list[dict], target: float) -> dict | None:
    """The first evaluation whose greedy success is ``>= target`` (None if none is)."""
    return next((e for e in evals if e["greedy"] >= target), None)


def run_seed(seed: int, args: argparse.Namespace, work: Path) -> dict:
    """Train one seed, timing every held-out evaluation from the start of training."""
    cfg = load_config(
        args.config,
        [
            f"run.seed={seed}",
            f"run.name=ttt-s{seed}",
            f"run.out_dir={work / 'runs'}",
            f"run.threads={args.threads}",
            f"pretrain.cache_dir={args.cache_dir}",
            "logging.tensorboard=false",
            *args.overrides,
        ],
    )
    torch.set_num_threads(args.threads)  # the base build too: the trainer sets threads only when it starts
    built = time.perf_counter()
    base = ensure_base_model(cfg, "cpu", progress=False)  # cached after the first build: not on the clock
    base_s = time.perf_counter() - built
    cfg.pretrain.cache_dir = isolate_base(base, work / f"cache-s{seed}")  # stage 1 computed, not read
    start = time.perf_counter()
    trainer = TinyZeroTrainer(cfg, progress=not args.no_progress)
    evals: list[dict] = []
    evaluate = trainer.evaluate

    def timed_evaluate(*a, **k) -> dict:
        out = evaluate(*a, **k)
        evals.append(
            {
                "iteration": trainer.iteration,
                "wall_s": round(time.perf_counter() - start, 2),
                "greedy": out["eval/greedy_success"],
                "sampled": out["eval/sampled_success"],
            }
        )
        if not args.full and out["eval/greedy_success"] >= args.target:
            trainer.cfg.training.total_iterations = trainer.iteration  # stop after this iteration
        return out

    trainer.evaluate = timed_evaluate  # type: ignore[method-assign]
    summary = trainer.train()
    hit = first_crossing(evals, args.target)
    seconds = summary["elapsed_s"]  # training iterations only (no evaluations), for s/iteration
    return {
        "seed": seed,
        "base_build_s": round(base_s, 1),
        "iterations_to_target": hit["iteration"] if hit else None,
        "wall_s_to_target": hit["wall_s"] if hit else None,
        "s_per_iteration": round(seconds / max(summary["iterations"], 1), 3),
        "iterations_run": summary["iterations"],
        "final_greedy": summary.get("eval/greedy_success"),
        "stage1_and_rl_tokens": summary["generated_tokens"],
        "evals": evals,
    }


def table(runs: list[dict], target: float) -> str:
    lines = [
        f"{'seed':>5}{'it->' + str(target):>10}{'wall s':>10}{'s/it':>8}{'final':>8}{'base s':>8}",
    ]
    for r in runs:
        lines.append(
            f"{r['seed']:>5}{_cell(r['iterations_to_target']):>10}{_cell(r['wall_s_to_target']):>10}"
            f"{r['s_per_iteration']:>8.3f}{_cell(r['final_greedy']):>8}{r['base_build_s']:>8.1f}"
        )
    return "\n".join(lines)


def _cell(v: float | int | None) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) and v < 1.5 else str(v)


def summarize(runs: list[dict]) -> dict:
    """Median and worst seed (a missed target counts as missing: reached tells how many made it)."""
    its = [r["iterations_to_target"] for r in runs if r["iterations_to_target"] is not None]
    secs = [r["wall_s_to_target"] for r in runs if r["wall_s_to_target"] is not None]
    return {
        "reached": f"{len(its)}/{len(runs)}",
        "median_iterations": statistics.median(its) if its else None,
        "max_iterations": max(its) if its else None,
        "median_wall_s": statistics.median(secs) if secs else None,
        "max_wall_s": max(secs) if secs else None,
        "median_s_per_iteration": statistics.median(r["s_per_iteration"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.9, help="held-out greedy success to reach")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="train every iteration (not only to the target)")
    parser.add_argument("--quick", action="store_true", help="smoke config, one seed: a CI check")
    parser.add_argument("--cache-dir", default=str(ROOT / ".cache" / "base_models"))
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/time_to_target*.json)")
    parser.add_argument("overrides", nargs="*", help="config overrides for every seed, e.g. training.lr=1e-3")
    args = parser.parse_args()
    if args.quick:
        args.config, args.seeds, args.target, args.threads = str(ROOT / "configs" / "smoke.yaml"), [0], 0.0, 1
        args.full = True  # the smoke budget: two iterations, the whole path (stage 1, evaluations) exercised
        args.overrides = ["algorithm.name=astarpo", "training.eval_every=1", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_seed(seed, args, Path(tmp)) for seed in args.seeds]
    print(table(runs, args.target))
    result = {
        "config": shown_path(Path(args.config), ROOT),
        "overrides": args.overrides,
        "target": args.target,
        "stopped_at_target": not args.full,
        "summary": summarize(runs),
        "runs": runs,
        "machine": machine_info(),
    }
    name = "time_to_target_quick.json" if args.quick else "time_to_target.json"
    write_results(result, args.out or ROOT / "bench" / "results" / name)


if __name__ == "__main__":
    main()
