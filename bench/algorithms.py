"""A*PO vs RAGEN(+A*PO) vs GRPO vs PPO: success against wall-clock and generated tokens, same budget.

    python bench/algorithms.py                       # FrozenLake, 4 algorithms x 3 seeds (by hand, long)
    python bench/algorithms.py --tasks frozenlake countdown --seeds 0 1 --iterations 100
    python bench/algorithms.py --quick               # smoke config, 1 seed, < 1 minute

What is held equal: one base model per task (``pretrain.seed`` fixed, so RL seeds share π_ref), the
task's config (``configs/<task>.yaml``), the rollout budget (``astarpo.num_trajectories`` episodes an
iteration for every algorithm), the number of iterations and the seeds. Runs are interleaved
(seed 0: every algorithm, then seed 1, ...) in one process, one at a time, so machine noise hits all
algorithms alike. A*PO's stage 1 (V* from π_ref) is paid inside its run: the shared V* cache is cleared
before every astarpo run, so its wall-clock and token counts include stage 1.

Per run: held-out greedy/sampled success at every evaluation, against the run's training seconds and
generated tokens (stage 1 included); final success; KL to π_ref (mean of the last 10 iterations);
peak resident memory during the run (Linux VmHWM, reset before each run). Per seed, the time and tokens
each algorithm needed to first reach GRPO's final greedy success, and that time over GRPO's total time
(the paper's claim, at 1.5B-7B scale, is 1.3-2.2x less wall-clock than GRPO/PPO; our target is <= 0.6).

Writes ``bench/results/algorithms.json`` (``algorithms_quick.json`` with ``--quick``) and, for full
runs, ``docs/img/algorithms_<task>.png`` (success vs wall-clock, mean over seeds, min-max band).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, write_results  # noqa: E402
from tinyzero.config import ALGORITHMS as REGISTRY  # noqa: E402
from tinyzero.config import load_config  # noqa: E402
from tinyzero.trainer import TinyZeroTrainer  # noqa: E402

ALGORITHMS = tuple(REGISTRY)  # every algorithm the config knows (tinyzero.config.ALGORITHMS)
TASKS = ("frozenlake", "countdown", "multiplication")


def reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of this process (Linux: writing 5 to clear_refs)."""
    with contextlib.suppress(OSError):  # not Linux: the peak then covers everything run so far
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float | None:
    """VmHWM of this process in MiB (None where /proc is unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_one(task: str, algo: str, seed: int, args: argparse.Namespace, work: Path) -> dict:
    """Train one (task, algorithm, seed) and return its learning curve and summary figures."""
    config = ROOT / "configs" / ("smoke.yaml" if args.quick else f"{task}.yaml")
    overrides = [
        f"task.name={task}",
        f"algorithm.name={algo}",
        f"run.name={task}-{algo}-s{seed}",
        f"run.out_dir={work / 'runs'}",
        f"run.seed={seed}",
        f"run.threads={args.threads}",
        f"pretrain.seed={args.base_seed}",
        f"pretrain.cache_dir={args.cache_dir}",
        f"training.total_iterations={args.iterations}",
        f"training.eval_every={args.eval_every}",
        f"training.checkpoint_every={args.iterations}",
        "logging.tensorboard=false",
    ]
    cfg = load_config(config, overrides)
    shutil.rmtree(Path(args.cache_dir).parent / "v_star", ignore_errors=True)  # stage 1 is paid, not cached
    reset_peak_rss()
    trainer = TinyZeroTrainer(cfg, progress=args.progress)
    summary = trainer.train()
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [
        {
            "iteration": r["iteration"],
            "elapsed_s": round(r["elapsed_s"], 2),
            "generated_tokens": r["generated_tokens"],
            "greedy": r["eval/greedy_success"],
            "sampled": r["eval/sampled_success"],
        }
        for r in rows
        if "eval/greedy_success" in r
    ]
    kls = [r["kl"] for r in rows if "kl" in r][-10:]
    return {
        "task": task,
        "algorithm": algo,
        "seed": seed,
        "base_greedy": summary["base/greedy_success"],
        "final_greedy": summary["eval/greedy_success"],
        "final_sampled": summary["eval/sampled_success"],
        "elapsed_s": summary["elapsed_s"],
        "generated_tokens": summary["generated_tokens"],
        "stage1_tokens": trainer.stage1_tokens,
        "kl": round(statistics.mean(kls), 4) if kls else None,
        "peak_rss_mb": peak_rss_mb(),
        "curve": curve,
    }


def time_to_reach(curve: list[dict], target: float) -> tuple[float | None, int | None]:
    """Training seconds and tokens at the first evaluation whose greedy success is >= target."""
    for point in curve:
        if point["greedy"] >= target:
            return point["elapsed_s"], point["generated_tokens"]
    return None, None


def same_setting(a: dict, b: dict) -> bool:
    return (a["task"], a["seed"]) == (b["task"], b["seed"])


def compare_to_grpo(runs: list[dict]) -> list[dict]:
    """Per (task, seed): each algorithm's time/tokens to GRPO's final greedy success, and the time ratio."""
    out = []
    for r in runs:
        grpo = next(
            (
                g
                for g in runs
                if g["algorithm"] == "grpo" and (g["task"], g["seed"]) == (r["task"], r["seed"])
            ),
            None,
        )
        if grpo is None:
            continue
        seconds, tokens = time_to_reach(r["curve"], grpo["final_greedy"])
        out.append(
            {
                "task": r["task"],
                "algorithm": r["algorithm"],
                "seed": r["seed"],
                "grpo_final_greedy": grpo["final_greedy"],
                "seconds_to_grpo_final": seconds,
                "tokens_to_grpo_final": tokens,
                "time_ratio_vs_grpo": round(seconds / grpo["elapsed_s"], 3) if seconds is not None else None,
            }
        )
    return out


def spread(values: list[float]) -> str:
    """mean [min, max] as text ('-' when empty)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    return f"{statistics.mean(vals):.3f} [{min(vals):.3f}, {max(vals):.3f}]"


def print_table(runs: list[dict], ratios: list[dict]) -> None:
    head = f"{'task':<14} {'algorithm':<8} {'final greedy':>24} {'final sampled':>24} {'seconds':>8}"
    print(head + f" {'tokens':>9} {'KL':>6} {'RSS MB':>7} {'t/t_grpo':>24}")
    for task in dict.fromkeys(r["task"] for r in runs):
        for algo in dict.fromkeys(r["algorithm"] for r in runs):
            rs = [r for r in runs if (r["task"], r["algorithm"]) == (task, algo)]
            if not rs:
                continue
            ratio = [q["time_ratio_vs_grpo"] for q in ratios if (q["task"], q["algorithm"]) == (task, algo)]
            reached = sum(v is not None for v in ratio)
            print(
                f"{task:<14} {algo:<8} {spread([r['final_greedy'] for r in rs]):>24} "
                f"{spread([r['final_sampled'] for r in rs]):>24} "
                f"{statistics.mean(r['elapsed_s'] for r in rs):>8.0f} "
                f"{statistics.mean(r['generated_tokens'] for r in rs):>9.0f} "
                f"{statistics.mean(r['kl'] or 0.0 for r in rs):>6.2f} "
                f"{max(r['peak_rss_mb'] or 0 for r in rs):>7.0f} "
                f"{spread(ratio) + f' ({reached}/{len(ratio)})':>24}"
            )


def plot(runs: list[dict], task: str, path: Path) -> None:
    """Held-out greedy success vs training seconds: mean over seeds, min-max band, one line per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for algo in ALGORITHMS:
        rs = [r for r in runs if (r["task"], r["algorithm"]) == (task, algo)]
        if not rs:
            continue
        n = min(len(r["curve"]) for r in rs)
        xs = [statistics.mean(r["curve"][i]["elapsed_s"] for r in rs) for i in range(n)]
        ys = [[r["curve"][i]["greedy"] for r in rs] for i in range(n)]
        ax.plot(xs, [statistics.mean(y) for y in ys], marker="o", ms=3, label=f"{algo} ({len(rs)} seeds)")
        ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], alpha=0.15)
    ax.set_xlabel("training wall-clock (s, A*PO stage 1 included)")
    ax.set_ylabel("held-out greedy success")
    ax.set_title(f"{task}: same base model, same rollout budget")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke config, one seed, < 1 minute")
    ap.add_argument(
        "--tasks", nargs="+", default=["frozenlake"], choices=["frozenlake", "countdown", "multiplication"]
    )
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch's default)")
    ap.add_argument("--base-seed", type=int, default=0, help="pretrain.seed shared by every run")
    ap.add_argument("--cache-dir", default=str(ROOT / ".cache" / "base_models"))
    ap.add_argument("--progress", action="store_true", help="show each run's progress bar")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/algorithms[_quick].json)")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.iterations, args.eval_every, args.threads = args.seeds[:1], 3, 1, 1
        args.cache_dir = str(Path(tempfile.gettempdir()) / "tinyzero_bench_quick" / "base_models")
    name = "algorithms_quick.json" if args.quick else "algorithms.json"
    args.out = args.out or str(ROOT / "bench" / "results" / name)
    return args


def main() -> None:
    args = parse_args()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tinyzero_bench_") as tmp:
        for seed in args.seeds:
            for task in args.tasks:
                for algo in args.algorithms:
                    runs.append(run_one(task, algo, seed, args, Path(tmp)))
                    r = runs[-1]
                    print(
                        f"  {task} {algo} seed {seed}: greedy {r['base_greedy']:.3f} -> "
                        f"{r['final_greedy']:.3f} "
                        f"in {r['elapsed_s']:.0f}s, {r['generated_tokens']:,} tokens",
                        flush=True,
                    )
    ratios = compare_to_grpo(runs)
    print_table(runs, ratios)
    result = {
        "runs": runs,
        "vs_grpo": ratios,
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "progress")},
        "machine": machine_info(),
    }
    write_results(result, args.out)
    if not args.quick:
        for task in args.tasks:
            img = ROOT / "docs" / "img" / f"algorithms_{task}.png"
            plot(runs, task, img)
            print(f"wrote {img}")


if __name__ == "__main__":
    main()
