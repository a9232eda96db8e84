"""A*PO vs RAGEN(+A*PO) vs GRPO vs PPO: success against wall-clock and generated tokens, same budget.

    python bench/algorithms.py                       # FrozenLake, 4 algorithms x 3 seeds (by hand, long)
    python bench/algorithms.py --tasks frozenlake countdown --seeds 0 1 --iterations 100
    python bench/algorithms.py --quick               # smoke config, 1 seed, < 1 minute
    # both cores: one process per pair of algorithms, then one table, JSON and plot
    python bench/algorithms.py --algorithms astarpo grpo --iterations 300 --threads 1 --out a.json &
    python bench/algorithms.py --algorithms ragen ppo --iterations 300 --threads 1 --out b.json
    python bench/algorithms.py --merge a.json b.json
    python bench/algorithms.py num_completions=8 astarpo.v_star_source=importance --seeds 0  # overrides 1st

What is held equal: one base model per task (``pretrain.seed`` fixed, so RL seeds share π_ref), the
task's config (``configs/<task>.yaml``; its ``num_completions`` is the group size of ragen, grpo and
rloo: 2 in configs/frozenlake.yaml since 2026-12-06, 8 in the 2026-12-05 comparison, which
``num_completions=8 astarpo.v_star_source=importance`` repeats), the rollout budget
(``astarpo.num_trajectories`` episodes an iteration for every algorithm), the number of iterations
and the seeds. Runs are interleaved
(seed 0: every algorithm, then seed 1, ...) in one process, one at a time, so machine noise hits all
algorithms alike. A*PO's stage 1 (V* from π_ref) is paid inside its run: the shared V* cache is cleared
before every astarpo run, so its wall-clock and token counts include stage 1.

Per run: held-out greedy/sampled success at every evaluation, against the run's training seconds and
generated tokens (stage 1 included); final success; KL to π_ref (mean of the last 10 iterations);
peak resident memory during the run (Linux VmHWM, reset before each run). Per seed, the time and tokens
each algorithm needed to first reach GRPO's final greedy success, and that time over GRPO's total time
(the paper's claim, at 1.5B-7B scale, is 1.3-2.2x less wall-clock than GRPO/PPO; our target is <= 0.6);
and, because GRPO's final can be a collapse to 0 that every run "reaches" at once, the time to GRPO's
best greedy success over GRPO's total time (t_best/t_grpo) and over the time GRPO took to its best.

Also per run: the iteration, seconds and tokens at which held-out greedy first reached ``--threshold``
(0.9); iterations compare across machines, seconds only within one measurement. Two processes at once
(one thread each) must each get their own ``--cache-dir`` holding the base model: A*PO clears the V*
cache beside it before every run.

Writes ``bench/results/algorithms.json`` (``algorithms_quick.json`` with ``--quick``) and, for full
runs, ``docs/img/algorithms_<task>.png`` (success vs iterations and vs wall-clock, mean over seeds,
min-max band).
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
from typing import NoReturn

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


def bench_settings(
    task: str, algo: str, seed: int, args: argparse.Namespace, work: Path
) -> dict[str, object]:
    """What the bench sets in every run from its own flags; a positional override may not change these."""
    return {
        "task.name": task,
        "algorithm.name": algo,
        "run.name": f"{task}-{algo}-s{seed}",
        "run.out_dir": work / "runs",
        "run.seed": seed,
        "run.threads": args.threads,
        "pretrain.seed": args.base_seed,
        "pretrain.cache_dir": args.cache_dir,
        "training.total_iterations": args.iterations,
        "training.eval_every": args.eval_every,
        "training.checkpoint_every": args.iterations,
        "logging.tensorboard": "false",
    }


def run_overrides(task: str, algo: str, seed: int, args: argparse.Namespace, work: Path) -> list[str]:
    """The config overrides of one run: the user's (``args.overrides``, every run alike), then the bench's."""
    bench = bench_settings(task, algo, seed, args, work)
    return [*args.overrides, *(f"{key}={value}" for key, value in bench.items())]


def run_one(task: str, algo: str, seed: int, args: argparse.Namespace, work: Path) -> dict:
    """Train one (task, algorithm, seed) and return its learning curve and summary figures."""
    config = ROOT / "configs" / ("smoke.yaml" if args.quick else f"{task}.yaml")
    cfg = load_config(config, run_overrides(task, algo, seed, args, work))
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


def first_at_least(curve: list[dict], target: float) -> dict | None:
    """The first evaluation whose greedy success is >= target (None if the run never got there)."""
    return next((point for point in curve if point["greedy"] >= target), None)


def time_to_reach(curve: list[dict], target: float) -> tuple[float | None, int | None]:
    """Training seconds and tokens at the first evaluation whose greedy success is >= target."""
    point = first_at_least(curve, target)
    return (point["elapsed_s"], point["generated_tokens"]) if point else (None, None)


def to_threshold(runs: list[dict], threshold: float) -> list[dict]:
    """Per run: the iteration, seconds and tokens at which held-out greedy first reached ``threshold``.

    Iterations compare across machines; seconds only within one measurement."""
    out = []
    for r in runs:
        point = first_at_least(r["curve"], threshold)
        out.append(
            {
                "task": r["task"],
                "algorithm": r["algorithm"],
                "seed": r["seed"],
                "threshold": threshold,
                "iteration": point["iteration"] if point else None,
                "seconds": point["elapsed_s"] if point else None,
                "tokens": point["generated_tokens"] if point else None,
            }
        )
    return out


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
        grpo_best = max(point["greedy"] for point in grpo["curve"])
        to_best = time_to_reach(r["curve"], grpo_best)[0]
        grpo_to_best = time_to_reach(grpo["curve"], grpo_best)[0]
        out.append(
            {
                "task": r["task"],
                "algorithm": r["algorithm"],
                "seed": r["seed"],
                "grpo_final_greedy": grpo["final_greedy"],
                "seconds_to_grpo_final": seconds,
                "tokens_to_grpo_final": tokens,
                "time_ratio_vs_grpo": round(seconds / grpo["elapsed_s"], 3) if seconds is not None else None,
                "grpo_best_greedy": grpo_best,
                "seconds_to_grpo_best": to_best,
                # the target's ratio with GRPO's best in place of its final (which may be a collapse to 0)
                "best_ratio_vs_grpo_total": (
                    round(to_best / grpo["elapsed_s"], 3) if to_best is not None else None
                ),
                # against the seconds GRPO itself needed to its best
                "best_time_ratio_vs_grpo": (
                    round(to_best / grpo_to_best, 3) if to_best is not None and grpo_to_best else None
                ),
            }
        )
    return out


def spread(values: list[float | None], fmt: str = ".3f") -> str:
    """mean [min, max] of the values that are not None, as text ('-' when there are none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    return f"{statistics.mean(vals):{fmt}} [{min(vals):{fmt}}, {max(vals):{fmt}}]"


def counted(values: list[float | None], fmt: str = ".3f") -> str:
    """spread() plus how many of the values exist, e.g. '0.512 [0.43, 0.6] (2/3)' (None = never reached)."""
    return f"{spread(values, fmt)} ({sum(v is not None for v in values)}/{len(values)})"


def print_table(runs: list[dict], ratios: list[dict], reached: list[dict]) -> None:
    """One line per (task, algorithm): mean [min, max] over seeds, and how many seeds reached each mark."""
    mark = reached[0]["threshold"] if reached else 0.9
    columns = ("final greedy", "best greedy", "final sampled")
    columns += ("t/t_grpo", "t_best/t_grpo", "t_best/t_grpo_best")  # the three ratios of compare_to_grpo
    head = f"{'task':<14} {'algorithm':<8} " + " ".join(f"{c:>24}" for c in columns)
    head += f" {'seconds':>8} {'tokens':>9} {'KL':>6} {'RSS MB':>7}"
    print(head + f" {f'it to {mark}':>18} {f's to {mark}':>18}")
    for task in dict.fromkeys(r["task"] for r in runs):
        for algo in dict.fromkeys(r["algorithm"] for r in runs):
            rs = [r for r in runs if (r["task"], r["algorithm"]) == (task, algo)]
            if not rs:
                continue
            mine = [q for q in ratios if (q["task"], q["algorithm"]) == (task, algo)]
            hits = [q for q in reached if (q["task"], q["algorithm"]) == (task, algo)]
            cells = (
                spread([r["final_greedy"] for r in rs]),
                spread([max(p["greedy"] for p in r["curve"]) for r in rs]),
                spread([r["final_sampled"] for r in rs]),
                counted([q["time_ratio_vs_grpo"] for q in mine]),
                counted([q["best_ratio_vs_grpo_total"] for q in mine]),
                counted([q["best_time_ratio_vs_grpo"] for q in mine]),
            )
            print(
                f"{task:<14} {algo:<8} " + " ".join(f"{c:>24}" for c in cells) + " "
                f"{statistics.mean(r['elapsed_s'] for r in rs):>8.0f} "
                f"{statistics.mean(r['generated_tokens'] for r in rs):>9.0f} "
                f"{statistics.mean(r['kl'] or 0.0 for r in rs):>6.2f} "
                f"{max(r['peak_rss_mb'] or 0 for r in rs):>7.0f} "
                f"{counted([q['iteration'] for q in hits], '.0f'):>18} "
                f"{counted([q['seconds'] for q in hits], '.0f'):>18}"
            )


def plot(runs: list[dict], task: str, path: Path) -> None:
    """Held-out greedy success vs iterations and vs training seconds: mean over seeds, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0), sharey=True)
    for algo in ALGORITHMS:
        rs = [r for r in runs if (r["task"], r["algorithm"]) == (task, algo)]
        if not rs:
            continue
        n = min(len(r["curve"]) for r in rs)
        ys = [[r["curve"][i]["greedy"] for r in rs] for i in range(n)]
        for ax, x_key in zip(axes, ("iteration", "elapsed_s"), strict=True):
            xs = [statistics.mean(r["curve"][i][x_key] for r in rs) for i in range(n)]
            ax.plot(xs, [statistics.mean(y) for y in ys], marker="o", ms=3, label=f"{algo} ({len(rs)} seeds)")
            ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], alpha=0.15)
    axes[0].set_xlabel("iteration (same rollout budget per iteration)")
    axes[1].set_xlabel("training wall-clock (s, mean over seeds; A*PO stage 1 included)")
    axes[0].set_ylabel("held-out greedy success (mean, min-max band)")
    fig.suptitle(f"{task}: same base model, same rollout budget")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


SAME_SETTING = ("quick", "tasks", "iterations", "eval_every", "base_seed", "overrides")


def usage_error(message: str) -> NoReturn:
    """One line on stderr and exit status 2: a user mistake, not a crash."""
    print(f"error: --merge: {message}", file=sys.stderr)
    sys.exit(2)


def merge(paths: list[str]) -> list[dict]:
    """The runs of several result files made with the same settings (e.g. algorithms split over two
    processes, one per core); exits with a one-line message when the settings differ or a run repeats."""
    results = []
    for path in paths:
        try:
            results.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            usage_error(f"cannot read {path} ({err}); pass result files written by this script")
    first = results[0]["config"]
    for path, result in zip(paths[1:], results[1:], strict=True):
        differ = [k for k in SAME_SETTING if result["config"].get(k) != first.get(k)]
        if differ:
            usage_error(f"{path} differs from {paths[0]} in {', '.join(differ)}; merge like runs only")
    runs = [r for result in results for r in result["runs"]]
    keys = [(r["task"], r["algorithm"], r["seed"]) for r in runs]
    if len(set(keys)) != len(keys):
        usage_error("the files hold the same (task, algorithm, seed) twice; merge disjoint runs")
    return runs


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
    ap.add_argument("--threshold", type=float, default=0.9, help="report iterations/seconds to this success")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/algorithms[_quick].json)")
    ap.add_argument("--plot-dir", default=str(ROOT / "docs" / "img"), help="where algorithms_<task>.png goes")
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="train nothing: combine result files of like runs (one per process) into one table, JSON, plot",
    )
    ap.add_argument(
        "overrides",
        nargs="*",
        help="config overrides for every run, e.g. num_completions=8 (not the keys the flags set)",
    )
    args = ap.parse_args()
    own = bench_settings("", "", 0, args, Path())  # only its keys matter here
    for override in args.overrides:
        key = override.split("=", 1)[0]
        if key in own:
            ap.error(f"{override}: the bench sets {key} itself (see its flags)")
    if args.merge and args.overrides:
        ap.error("--merge trains nothing: config overrides have no effect there")
    if args.merge and args.quick:
        ap.error("--merge combines existing result files; --quick trains: use one or the other")
    if args.quick:
        args.seeds, args.iterations, args.eval_every, args.threads = args.seeds[:1], 3, 1, 1
        args.cache_dir = str(Path(tempfile.gettempdir()) / "tinyzero_bench_quick" / "base_models")
    name = "algorithms_quick.json" if args.quick else "algorithms.json"
    args.out = args.out or str(ROOT / "bench" / "results" / name)
    return args


def train_all(args: argparse.Namespace) -> list[dict]:
    """Every (seed, task, algorithm) in turn, interleaved by seed so machine noise hits all alike."""
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
    return runs


def main() -> None:
    args = parse_args()
    if args.merge:
        runs = merge(args.merge)
        config = json.loads(Path(args.merge[0]).read_text())["config"]
        config["merged_from"] = args.merge
    else:
        runs = train_all(args)
        config = {k: v for k, v in vars(args).items() if k not in ("out", "progress", "merge", "plot_dir")}
    ratios = compare_to_grpo(runs)
    reached = to_threshold(runs, args.threshold)
    print_table(runs, ratios, reached)
    result = {"runs": runs, "vs_grpo": ratios, "to_threshold": reached, "config": config}
    result["machine"] = machine_info()
    write_results(result, args.out)
    if not config["quick"]:
        for task in dict.fromkeys(r["task"] for r in runs):
            img = Path(args.plot_dir) / f"algorithms_{task}.png"
            plot(runs, task, img)
            print(f"wrote {img}")


if __name__ == "__main__":
    main()
