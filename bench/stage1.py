"""A*PO's stage 1 (V* from N samples of π_ref per training prompt), with and without the shared prefill.

    python bench/stage1.py                               # configs/default.yaml, 2 threads
    python bench/stage1.py --threads 1 training.num_problems=256
    python bench/stage1.py --quick                       # smoke config, seconds (CI)

Why: stage 1 asks ``generate`` for N samples of every training prompt, and in a multi-turn episode
with a Markov context (``rollout.history: 0``) the samples that reach the same state get the same next
prompt. ``generate(share_prefill=True)`` (the default) runs the prompts' forward once per distinct
prompt and copies the cache rows; ``share_prefill=False`` runs it for every row, as before. Both modes
draw the table in the same run, one after the other, from the same base model; the script reports
their seconds, how many prompt rows and distinct prompts the sampler saw, and whether the two tables
are the same (every V* and the token count: the sharing must not change what is sampled).

The run gets a cache of its own holding just the base model (as in bench/time_to_target.py), so both
modes compute the table instead of reading the user's cached one. Writes ``bench/results/stage1.json``
(``stage1_quick.json`` with ``--quick``). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import tinyzero.rollout as rollout  # noqa: E402
from bench.common import isolate_base, machine_info, shown_path, write_results  # noqa: E402
from tinyzero.algorithms.astarpo import build_v_star_table  # noqa: E402
from tinyzero.config import load_config  # noqa: E402
from tinyzero.models.transformer import generate  # noqa: E402
from tinyzero.pretrain import ensure_base_model  # noqa: E402
from tinyzero.trainer import TinyZeroTrainer  # noqa: E402


def draw_table(trainer: TinyZeroTrainer, share: bool) -> dict:
    """Stage 1 from scratch with the sampler's prefill shared or not: seconds, tokens, rows, the table."""
    for stale in [trainer.run_dir / "v_star.json", *(trainer.cache_root / "v_star").glob("*.json")]:
        stale.unlink(missing_ok=True)  # the other mode's table must not be read back
    seen = {"rows": 0, "distinct": 0}

    def counting_generate(model, prompts, *args, **kwargs):
        seen["rows"] += len(prompts)
        seen["distinct"] += len({tuple(p) for p in prompts})
        return generate(model, prompts, *args, share_prefill=share, **kwargs)

    # The sampler is looked up in tinyzero.rollout when an episode runs: swap it there for this mode.
    rollout.generate = counting_generate
    try:
        start = time.perf_counter()
        table, tokens = build_v_star_table(trainer.cfg, trainer.preparation())
        seconds = time.perf_counter() - start
    finally:
        rollout.generate = generate
    return {"seconds": round(seconds, 2), "tokens": tokens, **seen, "table": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke config: a CI check")
    parser.add_argument("--cache-dir", default=str(ROOT / ".cache" / "base_models"))
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/stage1*.json)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. training.num_problems=256")
    args = parser.parse_args()
    if args.quick:
        args.config, args.threads = str(ROOT / "configs" / "smoke.yaml"), 1
        args.overrides = ["algorithm.name=astarpo", *args.overrides]
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            args.config,
            [
                f"run.out_dir={Path(tmp) / 'runs'}",
                "run.name=stage1",
                f"run.threads={args.threads}",
                f"pretrain.cache_dir={args.cache_dir}",
                "logging.tensorboard=false",
                *args.overrides,
            ],
        )
        base = ensure_base_model(cfg, "cpu", progress=False)
        cfg.pretrain.cache_dir = isolate_base(base, Path(tmp) / "cache")  # stage 1 computed, not read
        trainer = TinyZeroTrainer(cfg, progress=False)
        modes = {"unshared": draw_table(trainer, share=False), "shared": draw_table(trainer, share=True)}
    same = modes["shared"].pop("table") == modes["unshared"].pop("table")
    same_tokens = modes["shared"]["tokens"] == modes["unshared"]["tokens"]
    print(f"{'prefill':>10}{'seconds':>10}{'tokens':>10}{'rows':>8}{'distinct':>10}")
    for name, m in modes.items():
        print(f"{name:>10}{m['seconds']:>10.2f}{m['tokens']:>10}{m['rows']:>8}{m['distinct']:>10}")
    speedup = modes["unshared"]["seconds"] / max(modes["shared"]["seconds"], 1e-9)
    print(f"shared prefill: {speedup:.2f}x faster; same table: {same and same_tokens}")
    result = {
        "config": shown_path(Path(args.config), ROOT),
        "overrides": args.overrides,
        "prompts": len(trainer.train_problems),
        "samples_per_prompt": cfg.astarpo.num_value_samples,
        "modes": modes,
        "speedup": round(speedup, 3),
        "same_table": same and same_tokens,
        "machine": machine_info(),
    }
    name = "stage1_quick.json" if args.quick else "stage1.json"
    write_results(result, args.out or ROOT / "bench" / "results" / name)


if __name__ == "__main__":
    main()
