"""Generation throughput: our KV-cache sampler vs the naive no-cache baseline, same model, same process.

    python bench/generation.py            # tiny preset, batch 64, 64 new tokens, 3 repeats
    python bench/generation.py --quick    # < 1 minute

Why this benchmark: rollouts dominate RL wall-clock time, so sampler speed is the number that matters.
The model is randomly initialised (weights do not change the cost). Random models may emit EOS at any
step, so both samplers run with ``eos_id=-1`` (outside the vocabulary: never matches) and therefore
produce exactly ``--new-tokens`` tokens per sequence: tok/s compare equal work. Prompts are random
with lengths 20-60 (left-padded, like real task prompts). Each measurement is the median of
``--repeats`` timed runs after one warm-up run; torch's default thread count is kept.

Writes ``bench/results/generation.json`` (``generation_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyzero.models.transformer import TransformerLM, generate, model_config  # noqa: E402

SETTINGS = {"greedy": dict(greedy=True), "sampled": dict(temperature=1.0)}


def time_generate(model, prompts, new_tokens: int, use_cache: bool, repeats: int, **sampling) -> float:
    """Median seconds of one ``generate`` call over ``repeats`` runs (after a warm-up run)."""
    times = []
    for r in range(repeats + 1):
        g = torch.Generator().manual_seed(r)
        start = time.perf_counter()
        out = generate(
            model, prompts, new_tokens, eos_id=-1, pad_id=0, use_cache=use_cache, generator=g, **sampling
        )
        elapsed = time.perf_counter() - start
        assert out.tokens.shape == (len(prompts), new_tokens)
        if r > 0:  # r == 0 is the warm-up
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run that finishes in under a minute")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/generation[_quick].json)")
    args = ap.parse_args()
    # A --quick smoke run never overwrites the full results that docs/results.md quotes.
    name = "generation_quick.json" if args.quick else "generation.json"
    args.out = args.out or str(Path(__file__).parent / "results" / name)
    if args.quick:
        args.batch, args.new_tokens, args.repeats = min(args.batch, 32), min(args.new_tokens, 32), 1

    torch.manual_seed(0)
    model = TransformerLM(model_config(args.preset, vocab_size=100, max_seq_len=512)).eval()
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(20, 61, (args.batch,), generator=g).tolist()
    prompts = [torch.randint(4, 100, (n,), generator=g).tolist() for n in lengths]
    n_tokens = args.batch * args.new_tokens

    results: dict = {}
    print(
        f"preset={args.preset} params={model.num_params():,} batch={args.batch} new_tokens={args.new_tokens}"
    )
    print(f"{'setting':<10} {'ours tok/s':>12} {'nocache tok/s':>14} {'speedup':>8}")
    for name, sampling in SETTINGS.items():
        ours = n_tokens / time_generate(model, prompts, args.new_tokens, True, args.repeats, **sampling)
        naive = n_tokens / time_generate(model, prompts, args.new_tokens, False, args.repeats, **sampling)
        results[name] = dict(
            ours_tok_s=round(ours, 1),
            nocache_tok_s=round(naive, 1),
            speedup_vs_nocache=round(ours / naive, 2),
        )
        print(f"{name:<10} {ours:>12,.0f} {naive:>14,.0f} {ours / naive:>7.1f}x")

    results["config"] = dict(
        preset=args.preset,
        params=model.num_params(),
        batch=args.batch,
        new_tokens=args.new_tokens,
        prompt_lengths="uniform 20-60",
        repeats=args.repeats,
        quick=args.quick,
        statistic="median",
    )
    results["machine"] = dict(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        python=platform.python_version(),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
