"""Where explicit-matmul attention beats PyTorch's CPU flash-attention kernel in a training step.

    python bench/attention.py            # nano, tiny, small; rows of 27-256 tokens; median of 5
    python bench/attention.py --quick    # < 1 minute: nano, two lengths, one repeat (a CI check)

Why: ``tinyzero.models.transformer`` writes a float32 training forward's attention out as two
batched matmuls and a (T, T) softmax when rows have at most ``MATMUL_ATTENTION_MAX_LEN`` tokens, and
keeps ``scaled_dot_product_attention`` (the flash kernel on CPU) for longer rows. This script is
where that limit comes from: the same model, weights and batch timed both ways at several row
lengths. What is timed is the log-prob path every RL loss uses, ``token_logprobs_and_entropy`` on
a full (unpadded) batch, then ``backward``: forward + backward, as in an update epoch.

Each length gets about ``--tokens`` tokens (B = tokens // T rows), so the matmul work per step is the
same at every length and only attention's share grows with T. Repeats interleave the two systems
(A B A B ...); each figure is the median of ``--repeats`` timed steps after one warm-up. Writes
``bench/results/attention.json`` (``--quick``: ``attention_quick.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, write_results  # noqa: E402
from tinyzero.models import transformer  # noqa: E402

# The limit the model uses for each system while it is timed: 0 → always the flash kernel, a huge
# limit → always the matmuls.
SYSTEMS = {"sdpa": 0, "matmul": 1 << 30}


def timed_step(model: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor, limit: int) -> float:
    """Seconds of one forward + backward with attention forced to one system."""
    transformer.MATMUL_ATTENTION_MAX_LEN = limit
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    logp, ent = transformer.token_logprobs_and_entropy(model, ids, attn)
    (logp.sum() + 0.01 * ent.sum()).backward()
    return time.perf_counter() - start


def matmul_layers(model: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor, limit: int) -> int:
    """How many attention layers took the matmuls in one forward at ``limit``: the check that each
    system is timed on the path it is named after."""
    calls = []
    real = transformer.causal_attention_matmul
    transformer.causal_attention_matmul = lambda *a: calls.append(1) or real(*a)
    try:
        transformer.MATMUL_ATTENTION_MAX_LEN = limit
        with torch.no_grad():
            transformer.token_logprobs_and_entropy(model, ids[:1], attn[:1])
    finally:
        transformer.causal_attention_matmul = real
    return len(calls)


def measure(preset: str, lengths: list[int], tokens: int, repeats: int) -> list[dict]:
    """Median seconds per forward + backward of both systems at each row length."""
    torch.manual_seed(0)
    config = transformer.model_config(preset, vocab_size=40, max_seq_len=max(lengths))
    model = transformer.TransformerLM(config)
    rows = []
    for T in lengths:
        B = max(1, tokens // T)
        ids = torch.randint(0, 40, (B, T))
        attn = torch.ones(B, T, dtype=torch.bool)
        times: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        for limit in SYSTEMS.values():  # warm-up
            timed_step(model, ids, attn, limit)
        for _ in range(repeats):
            for name, limit in SYSTEMS.items():
                times[name].append(timed_step(model, ids, attn, limit))
        median = {name: statistics.median(t) for name, t in times.items()}
        rows.append(
            {
                "preset": preset,
                "row_tokens": T,
                "rows": B,
                "sdpa_s": round(median["sdpa"], 4),
                "matmul_s": round(median["matmul"], 4),
                "matmul_speedup": round(median["sdpa"] / median["matmul"], 3),
                "matmul_layers": {name: matmul_layers(model, ids, attn, n) for name, n in SYSTEMS.items()},
            }
        )
        r = rows[-1]
        print(
            f"{preset:<6}{T:>6}{B:>6}{1000 * r['sdpa_s']:>11.1f}{1000 * r['matmul_s']:>11.1f}"
            f"{r['matmul_speedup']:>9.2f}x",
            flush=True,
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="nano, two lengths, one repeat (< 1 minute)")
    ap.add_argument("--presets", default="nano,tiny,small")
    ap.add_argument("--lengths", default="27,48,64,96,128,256", help="row lengths in tokens")
    ap.add_argument("--tokens", type=int, default=10_000, help="tokens per batch at every length")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/attention[_quick].json)")
    args = ap.parse_args()
    if args.quick:
        args.presets, args.lengths, args.tokens, args.repeats = "nano", "27,96", 2_000, 1
    torch.set_num_threads(args.threads)
    presets = args.presets.split(",")
    lengths = [int(t) for t in args.lengths.split(",")]
    limit = transformer.MATMUL_ATTENTION_MAX_LEN
    print(f"forward + backward, float32, {args.threads} threads; the model's limit: {limit} tokens")
    print(f"{'preset':<6}{'T':>6}{'B':>6}{'sdpa ms':>11}{'matmul ms':>11}{'matmul':>10}")
    try:
        rows = [row for preset in presets for row in measure(preset, lengths, args.tokens, args.repeats)]
    finally:
        transformer.MATMUL_ATTENTION_MAX_LEN = limit
    result = {
        "config": {**vars(args), "model_limit": limit},
        "rows": rows,
        "machine": machine_info(),
    }
    out = args.out or str(ROOT / "bench" / "results" / f"attention{'_quick' if args.quick else ''}.json")
    write_results(result, out)


if __name__ == "__main__":
    main()
