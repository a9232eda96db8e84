"""The sampler's decode step, three ways, side by side: the general forward vs ``decode_step``.

    python bench/decode.py            # tiny, batch 16 / 64 / 256, 64 new tokens, median of 5
    python bench/decode.py --quick    # seconds: nano, batch 16, prompts 4-8, 16 tokens, 1 repeat (CI)

Why: ``generate`` appends each new token with ``TransformerLM.decode_step``, which computes what
``hidden_states(tokens[:, None], kv_cache=cache)`` computes in fewer ops, and whose attention reads
the whole KV-cache buffer once ``DECODE_FULL_READ_FROM`` of it is written. This script is where that
design and that threshold come from. Systems, all in one process on the same model and prompts:

* ``general``: every step through ``hidden_states`` (mask bookkeeping, SDPA over the written slots):
  the sampler before ``decode_step``;
* ``written``: ``decode_step`` reading only the written slots (threshold above 1: never the whole buffer);
* ``ships``: ``decode_step`` as shipped (``DECODE_FULL_READ_FROM``);
* ``whole``: ``decode_step`` always reading the whole buffer (threshold 0).

What is timed is ``generate`` end to end (prefill included, greedy, no EOS: every sequence runs all
``--new-tokens`` steps), prompts of 20-60 tokens (``--prompts``) left-padded as in
bench/generation.py. With short prompts and long continuations (``--prompts 8,16 --new-tokens 128``)
most steps find the buffer less than half written: the case the threshold is for. Repeats
interleave the systems (A B C D A B C D ...) so a load spike on this shared machine hits all alike;
each figure is the median of ``--repeats`` runs after one warm-up. The greedy tokens of every system
are compared with the general path's. Writes ``bench/results/decode.json`` (``decode_quick.json``).
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

SHIPPED = transformer.DECODE_FULL_READ_FROM
DECODE_STEP = transformer.TransformerLM.decode_step


def general_step(model: transformer.TransformerLM, tokens: torch.Tensor, cache) -> torch.Tensor:
    """The decode step as the model's general forward computes it (the sampler's loop before)."""
    return model.hidden_states(tokens[:, None], kv_cache=cache)[:, 0]


# name → (decode step, full-read threshold)
SYSTEMS = {
    "general": (general_step, SHIPPED),
    "written": (DECODE_STEP, 2.0),
    "ships": (DECODE_STEP, SHIPPED),
    "whole": (DECODE_STEP, 0.0),
}


def run(model, prompts: list[list[int]], new_tokens: int, system: str) -> tuple[float, torch.Tensor]:
    """Seconds and greedy tokens of one ``generate`` call on ``system``."""
    step, threshold = SYSTEMS[system]
    transformer.TransformerLM.decode_step = step
    transformer.DECODE_FULL_READ_FROM = threshold
    start = time.perf_counter()
    out = transformer.generate(model, prompts, new_tokens, eos_id=-1, pad_id=0, greedy=True)
    return time.perf_counter() - start, out.tokens


def paths(model, prompts: list[list[int]], new_tokens: int, system: str) -> dict[str, int]:
    """How many decode steps of one ``generate`` call on ``system`` went through ``hidden_states`` and
    how many read the whole buffer: the check that each system is timed on the path it is named after."""
    counts = {"general_steps": -1, "whole_buffer_steps": 0}  # -1: the prefill is a hidden_states call too
    hidden_states, clear_tail = transformer.TransformerLM.hidden_states, transformer.KVCache.clear_tail

    def counted_hidden_states(self, *args, **kwargs):
        counts["general_steps"] += 1
        return hidden_states(self, *args, **kwargs)

    def counted_clear_tail(self):
        counts["whole_buffer_steps"] += 1
        return clear_tail(self)

    transformer.TransformerLM.hidden_states = counted_hidden_states
    transformer.KVCache.clear_tail = counted_clear_tail
    try:
        run(model, prompts, new_tokens, system)
    finally:
        transformer.TransformerLM.hidden_states = hidden_states
        transformer.KVCache.clear_tail = clear_tail
    return counts


def measure(
    preset: str, batches: list[int], new_tokens: int, repeats: int, prompt_range: tuple[int, int]
) -> list[dict]:
    torch.manual_seed(0)
    config = transformer.model_config(preset, vocab_size=100, max_seq_len=256)
    model = transformer.TransformerLM(config).eval()
    rows = []
    for B in batches:
        g = torch.Generator().manual_seed(B)
        lengths = torch.randint(prompt_range[0], prompt_range[1] + 1, (B,), generator=g).tolist()
        prompts = [[1] + torch.randint(3, 100, (n - 1,), generator=g).tolist() for n in lengths]
        times: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        tokens: dict[str, torch.Tensor] = {}
        for r in range(repeats + 1):  # the first round is the warm-up
            for name in SYSTEMS:
                seconds, tokens[name] = run(model, prompts, new_tokens, name)
                if r:
                    times[name].append(seconds)
        tok_s = {name: B * new_tokens / statistics.median(t) for name, t in times.items()}
        row = {"preset": preset, "batch": B, "new_tokens": new_tokens, "prompt_width": max(lengths)}
        for name in SYSTEMS:
            row[f"{name}_tok_s"] = round(tok_s[name], 1)
            row[f"{name}_speedup"] = round(tok_s[name] / tok_s["general"], 3)
            row[f"{name}_same_tokens"] = bool(torch.equal(tokens[name], tokens["general"]))
        row["paths"] = {name: paths(model, prompts, new_tokens, name) for name in SYSTEMS}
        rows.append(row)
        cells = "".join(f"{row[f'{n}_tok_s']:>10,.0f} ({row[f'{n}_speedup']:.2f}x)" for n in SYSTEMS)
        print(f"{preset:<6}{B:>6}{cells}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="nano, batch 16, short prompts, 1 repeat")
    ap.add_argument("--presets", default="tiny")
    ap.add_argument("--batches", default="16,64,256")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompts", default="20,60", help="shortest,longest prompt in tokens")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/decode[_quick].json)")
    args = ap.parse_args()
    if args.quick:
        args.presets, args.batches, args.new_tokens, args.repeats = "nano", "16", 16, 1
        args.prompts = "4,8"  # shorter than the continuation: the two full-read rules differ
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    prompt_range = tuple(int(n) for n in args.prompts.split(","))
    print(f"generate, greedy, {args.new_tokens} new tokens, {args.threads} threads: tok/s (÷ general)")
    print(f"{'preset':<6}{'batch':>6}" + "".join(f"{name:>18}" for name in SYSTEMS))
    try:
        rows = [
            row
            for preset in args.presets.split(",")
            for row in measure(preset, batches, args.new_tokens, args.repeats, prompt_range)
        ]
    finally:
        transformer.TransformerLM.decode_step = DECODE_STEP
        transformer.DECODE_FULL_READ_FROM = SHIPPED
    result = {"config": {**vars(args), "full_read_from": SHIPPED}, "rows": rows, "machine": machine_info()}
    out = args.out or str(ROOT / "bench" / "results" / f"decode{'_quick' if args.quick else ''}.json")
    write_results(result, out)


if __name__ == "__main__":
    main()
