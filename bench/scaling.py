"""Data-parallel scaling on this machine: the same run with 1 process and with N under torchrun.

    python bench/scaling.py                 # 1 vs 2 processes, one thread each, 8 iterations
    python bench/scaling.py --procs 4 --iterations 20 --extra model.preset=small

Both runs use the same config and the same global batch size (``astarpo.num_trajectories``), so
N processes each sample and train on 1/N of it. The table reports the median seconds per iteration
(the first iteration is excluded: warm-up) and trajectories per second, and is written to
bench/results/scaling.json. Evaluation is kept tiny so the timing is the training loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tinyzero, whatever is installed


def run(procs: int, out: Path, args: argparse.Namespace) -> dict:
    overrides = [
        f"run.out_dir={out}",
        f"run.name=p{procs}",
        f"pretrain.cache_dir={args.cache_dir}",
        "run.device=cpu",
        f"run.threads={args.threads}",
        f"training.total_iterations={args.iterations}",
        "training.eval_every=0",
        "training.eval_problems=8",
        f"training.checkpoint_every={args.iterations}",
        "logging.tensorboard=false",
        *args.extra,
    ]
    launcher = [sys.executable]
    if procs > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    cmd = [*launcher, "train.py", "--config", args.config, "--no-progress", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    lines = [json.loads(x) for x in (out / f"p{procs}" / "metrics.jsonl").read_text().splitlines()]
    secs = [m["seconds"] for m in lines if m["iteration"] >= 2]
    cfg = json.loads(json.dumps(lines[-1]))
    per_iter = statistics.median(secs)
    trajectories = args.trajectories
    return {
        "processes": procs,
        "threads_per_process": args.threads,
        "median_s_per_iteration": round(per_iter, 3),
        "trajectories_per_s": round(trajectories / per_iter, 1),
        "generated_tokens_per_s": round(statistics.median(m["tokens_per_s"] for m in lines[2:]), 0),
        "wall_s_including_startup": round(wall, 1),
        "final_reward_mean": cfg.get("reward/mean"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--procs", type=int, default=2, help="processes of the data-parallel run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--cache-dir", default=".cache/base_models")
    parser.add_argument("--extra", nargs="*", default=[], help="more key=value overrides for both runs")
    parser.add_argument("--tag", default="", help="write bench/results/scaling_<tag>.json instead")
    args = parser.parse_args()
    from tinyzero.config import load_config

    args.trajectories = load_config(ROOT / args.config, list(args.extra)).astarpo.num_trajectories
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(p, Path(tmp), args) for p in (1, args.procs)]
    speedup = rows[0]["median_s_per_iteration"] / rows[1]["median_s_per_iteration"]
    print(f"{'processes':>9} {'s/iter':>8} {'traj/s':>8} {'tok/s':>8} {'wall s':>8}")
    for r in rows:
        print(
            f"{r['processes']:>9} {r['median_s_per_iteration']:>8.2f} {r['trajectories_per_s']:>8.1f} "
            f"{r['generated_tokens_per_s']:>8.0f} {r['wall_s_including_startup']:>8.1f}"
        )
    print(f"speed-up {speedup:.2f}x with {args.procs} processes (load average {os.getloadavg()[0]:.1f})")
    result = {
        "command": "python bench/scaling.py " + " ".join(sys.argv[1:]),
        "config": args.config,
        "extra": args.extra,
        "cpu_count": os.cpu_count(),
        "load_average_after": round(os.getloadavg()[0], 1),
        "rows": rows,
        "speedup": round(speedup, 2),
    }
    out = ROOT / "bench" / "results" / (f"scaling_{args.tag}.json" if args.tag else "scaling.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
