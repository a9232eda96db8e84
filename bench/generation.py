"""Generation throughput, side by side in one process: our batched KV-cache sampler vs (a) the naive
no-cache baseline and (b) Hugging Face ``transformers`` ``generate`` on the same weights.

    python bench/generation.py --threads 1   # tiny + small, batch 1/16/64/256, 64 new tokens (10-25 min)
    python bench/generation.py --quick       # < 1 minute (CI smoke: tiny, batch 1 and 16, 16 tokens)
    python bench/generation.py --compile ... # adds ours with its decode step under torch.compile

Why this benchmark: rollouts dominate RL wall-clock time, so sampler speed is the number that matters.
The model is randomly initialised (weights do not change the cost) and exported to a
``LlamaForCausalLM`` with ``tinyzero.models.hf.to_hf_model`` (built from a local config, nothing is
downloaded), so both systems run exactly the same weights, prompts and thread count.

Fairness: every system produces exactly ``--new-tokens`` tokens per sequence. Ours and the no-cache
baseline run with ``eos_id=-1`` (never matches); HF runs with ``eos_token_id=None`` (no EOS stopping,
no extra logits processor), ``use_cache=True``, the pad token set, ``top_k=0``/``top_p=1``/
``temperature=1`` (i.e. plain softmax sampling, like ours; HF's default top_k=50 is switched off) and
the same left-padded prompts with an attention mask. Prompts are random with lengths 20-60. Each
figure is the median of ``--repeats`` timed runs after one warm-up run; the no-cache baseline (minutes
at large batches) runs once, and only up to ``--nocache-max-batch``.

GFLOP/s counts the useful forward FLOPs of the KV-cache computation (2·params of every matmul per
processed token, the LM head only where a next token is drawn, 4·d·layers·context for attention) over
ours' wall time, as a fraction of a measured fp32 matmul peak (best of several large matmuls, same
threads).

Memory traffic: ``min_bytes`` is the least a KV-cache decoder must read per generated token, the
weights once per step (shared by the batch) plus every cached key and value of the (left-padded)
context it attends over, both systems alike (HF's ``DynamicCache`` also copies the whole cache every
step, so it moves more). Over each system's wall time that gives GB/s, as a fraction of the measured
memory read bandwidth (``memory_read_gbps``, same threads): near 1 means bound by memory traffic,
far below 1 means bound by something else (kernel and per-op overheads). ``ours_read_bytes`` is what
ours actually reads: its decode step reads the whole cache buffer once half of it is written
(``DECODE_FULL_READ_FROM``), more than the minimum, in exchange for contiguous reads. Writes
``bench/results/generation.json`` (``generation_quick.json`` with ``--quick``).

``--compile`` adds a third system timed in the same rounds, ``compiled``: ours with
``TransformerLM.decode_layers`` (the tensor work of a decode step) under ``torch.compile`` with static
shapes, every step reading the whole cache buffer (one shape per batch: the compiled graph is built
once per setting, its cache slot passed as a tensor so it is not specialised on). Inductor starts
from an empty cache directory, so ``compiled_first_call_s`` (the first ``generate``, compiling
included) of a batch's first mode is what a user pays the first time (the next mode, same shapes,
finds inductor's on-disk cache); it is not in the medians. The sampler ships eager:
rollouts change batch size and cache length from call to call, and every new shape compiles again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    machine_info,
    matmul_peak_gflops,
    memory_read_gbps,
    require_cpp_compiler,
    write_results,
)
from tinyzero.models import transformer  # noqa: E402
from tinyzero.models.transformer import (  # noqa: E402
    DECODE_FULL_READ_FROM,
    TransformerLM,
    generate,
    model_config,
)

MODES = {"greedy": dict(greedy=True), "sampled": dict(temperature=1.0)}


def median_seconds(fns: list, repeats: int, warmup: bool = True) -> list[float]:
    """Median wall time of each ``fn(run_index)`` over ``repeats`` runs, after one untimed warm-up each.

    The functions run interleaved (a, b, a, b, ...), so a load spike on this shared machine hits every
    system alike instead of whichever happened to be running.
    """
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats + int(warmup)):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn(r)
            if r >= int(warmup):
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def run_ours(model, prompts, new_tokens: int, use_cache: bool, mode: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = generate(
        model, prompts, new_tokens, eos_id=-1, pad_id=0, use_cache=use_cache, generator=g, **MODES[mode]
    )
    assert out.tokens.shape == (len(prompts), new_tokens)
    return out.tokens


def hf_inputs(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask, the layout ours builds internally."""
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    return ids, mask


def run_hf(hf_model, ids, mask, new_tokens: int, mode: str, seed: int) -> torch.Tensor:
    from transformers import GenerationConfig

    # Plain softmax sampling like ours: HF's default top_k=50 off (sampling flags only when sampling).
    sampling = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if mode == "sampled" else {}
    gc = GenerationConfig(
        max_new_tokens=new_tokens,
        **sampling,
        eos_token_id=None,  # like eos_id=-1 in ours: every sequence runs all steps, no EOS processor
        pad_token_id=0,
        bos_token_id=1,
        use_cache=True,
    )
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = hf_model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
    assert out.shape == (ids.shape[0], ids.shape[1] + new_tokens), out.shape
    return out[:, ids.shape[1] :]


class CompiledDecode:
    """Ours with ``decode_layers`` under ``torch.compile`` (static shapes), switched on for a call.

    The model's ``decode_step`` keeps its Python bookkeeping and hands the tensor work to
    ``model.decode_layers``; here that attribute is an instance-level wrapper passing the slot as a
    one-element tensor, and ``DECODE_FULL_READ_FROM`` is 0 so every step has the same shapes.
    """

    def __init__(self, model: TransformerLM, backend: str = "inductor") -> None:
        import torch._dynamo

        torch._dynamo.reset()  # one graph per setting: a new batch must not reuse (or recompile) the last
        self.model = model
        self.compiled = torch.compile(model.decode_layers, dynamic=False, backend=backend)
        self.steps = 0  # decode steps that went through the compiled function

    def layers(self, tokens, cos, sin, ks, vs, bias, slot: int) -> torch.Tensor:
        self.steps += 1
        return self.compiled(tokens, cos, sin, ks, vs, bias, torch.tensor([slot], device=tokens.device))

    def __call__(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` with the compiled decode step in place, then the model restored."""
        self.model.decode_layers = self.layers
        transformer.DECODE_FULL_READ_FROM = 0.0
        try:
            return fn(*args, **kwargs)
        finally:
            del self.model.decode_layers
            transformer.DECODE_FULL_READ_FROM = DECODE_FULL_READ_FROM


def useful_flops(model: TransformerLM, prompt_lens: list[int], new_tokens: int) -> float:
    """Forward FLOPs of KV-cache generation: every real token once, attention over its own context."""
    c = model.config
    body = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2)
    head = c.vocab_size * c.d_model
    total = 0.0
    for p in prompt_lens:
        processed = p + new_tokens - 1  # the last drawn token is never fed back
        total += 2 * body * processed + 2 * head * new_tokens
        total += 4 * c.d_model * c.n_layers * processed * (processed + 1) / 2  # QKᵀ and AV over 1..t
    return total


def decode_bytes(
    model: TransformerLM, batch: int, prompt_width: int, new_tokens: int, whole_from: float | None = None
) -> float:
    """Bytes read to draw ``new_tokens`` for ``batch`` left-padded prompts of ``prompt_width`` slots:
    all weights per step, plus K and V (fp32) of every cache slot read.

    ``whole_from=None``: only the slots attended to, the least any KV-cache decoder must read
    (``min_bytes``). A fraction: once that much of the ``prompt_width + new_tokens``-slot buffer is
    written, every step reads all of it, as ours does (``DECODE_FULL_READ_FROM``).
    """
    c = model.config
    weights = 4 * sum(p.numel() for p in model.parameters())
    kv_per_slot = 2 * c.n_layers * c.d_model * 4  # K and V of one token, every layer
    total = prompt_width + new_tokens

    def read(written: int) -> int:
        return total if whole_from is not None and written >= whole_from * total else written

    slots = sum(read(prompt_width + t) for t in range(new_tokens))  # slots read at each step
    return new_tokens * weights + batch * kv_per_slot * slots


def bench_setting(
    model, hf_model, preset: str, batch: int, mode: str, args, peak: float, bandwidth: float
) -> dict:
    g = torch.Generator().manual_seed(batch)
    lengths = torch.randint(20, 61, (batch,), generator=g).tolist()
    prompts = [torch.randint(4, 100, (n,), generator=g).tolist() for n in lengths]
    ids, mask = hf_inputs(prompts)
    n_tok = batch * args.new_tokens
    fns = [
        lambda r: run_ours(model, prompts, args.new_tokens, True, mode, r),
        lambda r: run_hf(hf_model, ids, mask, args.new_tokens, mode, r),
    ]
    compiled = CompiledDecode(model) if args.compile else None
    if compiled is not None:
        start = time.perf_counter()
        compiled(run_ours, model, prompts, args.new_tokens, True, mode, 0)  # compiles
        first_call_s = time.perf_counter() - start
        fns.append(lambda r: compiled(run_ours, model, prompts, args.new_tokens, True, mode, r))
    ours_s, hf_s, *compiled_s = median_seconds(fns, args.repeats)
    nocache = None
    if batch <= args.nocache_max_batch:
        fn = lambda r: run_ours(model, prompts, args.new_tokens, False, mode, r)  # noqa: E731
        nocache = n_tok / median_seconds([fn], 1, warmup=False)[0]
    row = dict(preset=preset, batch=batch, mode=mode, ours_tok_s=round(n_tok / ours_s, 1))
    row["hf_tok_s"] = round(n_tok / hf_s, 1)
    row["nocache_tok_s"] = None if nocache is None else round(nocache, 1)
    row["speedup_vs_hf"] = round(hf_s / ours_s, 2)
    row["speedup_vs_nocache"] = None if nocache is None else round(n_tok / ours_s / nocache, 2)
    if compiled is not None:
        row["compiled_tok_s"] = round(n_tok / compiled_s[0], 1)
        row["compiled_speedup_vs_hf"] = round(hf_s / compiled_s[0], 2)
        row["compiled_speedup_vs_ours"] = round(ours_s / compiled_s[0], 2)
        row["compiled_first_call_s"] = round(first_call_s, 1)
    gflops = useful_flops(model, lengths, args.new_tokens) / ours_s / 1e9
    row["ours_gflop_s"] = round(gflops, 2)
    row["ours_frac_of_peak"] = round(gflops / peak, 4)
    moved = decode_bytes(model, batch, max(lengths), args.new_tokens)
    row["min_bytes_per_token"] = round(moved / n_tok)
    row["ours_gb_s"], row["hf_gb_s"] = round(moved / ours_s / 1e9, 2), round(moved / hf_s / 1e9, 2)
    row["ours_frac_of_bandwidth"] = round(moved / ours_s / 1e9 / bandwidth, 3)
    row["hf_frac_of_bandwidth"] = round(moved / hf_s / 1e9 / bandwidth, 3)
    read = decode_bytes(model, batch, max(lengths), args.new_tokens, DECODE_FULL_READ_FROM)
    row["ours_read_bytes_per_token"] = round(read / n_tok)  # what ours reads (whole buffer from half)
    row["ours_read_frac_of_bandwidth"] = round(read / ours_s / 1e9 / bandwidth, 3)
    if mode == "greedy":  # same weights, same argmax: the two systems should agree token for token
        ours = run_ours(model, prompts, args.new_tokens, True, mode, 0)
        same = ours == run_hf(hf_model, ids, mask, args.new_tokens, mode, 0)
        row["greedy_tokens_equal_hf"] = round(same.float().mean().item(), 4)
        if compiled is not None:
            same = ours == compiled(run_ours, model, prompts, args.new_tokens, True, mode, 0)
            row["compiled_greedy_tokens_equal_ours"] = round(same.float().mean().item(), 4)
    return row


def print_row(r: dict) -> None:
    nc = f"{r['nocache_tok_s']:>10,.0f}" if r["nocache_tok_s"] else f"{'-':>10}"
    print(
        f"{r['preset']:<6} {r['batch']:>5} {r['mode']:<8} {r['ours_tok_s']:>10,.0f} {r['hf_tok_s']:>10,.0f} "
        f"{nc} {r['speedup_vs_hf']:>6.1f}x {r['ours_gflop_s']:>7.1f} {100 * r['ours_frac_of_peak']:>6.1f}% "
        f"{r['min_bytes_per_token'] / 1e3:>8.0f} {r['ours_gb_s']:>6.1f} {r['hf_gb_s']:>6.1f} "
        f"{100 * r['ours_frac_of_bandwidth']:>5.1f}% {r['ours_read_bytes_per_token'] / 1e3:>8.0f} "
        f"{100 * r['ours_read_frac_of_bandwidth']:>6.1f}%"
    )
    if "compiled_tok_s" in r:
        print(
            f"{'':<6} {'':>5} {'compiled':<8} {r['compiled_tok_s']:>10,.0f} {'':>10} {'':>10} "
            f"{r['compiled_speedup_vs_hf']:>6.1f}x  ({r['compiled_speedup_vs_ours']:.2f}x ours, first call "
            f"{r['compiled_first_call_s']:.1f} s)"
        )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run that finishes in under a minute")
    ap.add_argument("--presets", default="tiny,small", help="comma-separated model presets")
    ap.add_argument("--batches", default="1,16,64,256", help="comma-separated batch sizes")
    ap.add_argument("--modes", default="greedy,sampled", help="greedy and/or sampled")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads for every system (0 = torch default)"
    )
    ap.add_argument("--nocache-max-batch", type=int, default=64, help="largest batch for the no-cache run")
    ap.add_argument("--compile", action="store_true", help="add ours with a torch.compile'd decode step")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/generation[_quick].json)")
    args = ap.parse_args()
    # A --quick smoke run never overwrites the full results that docs/results.md quotes.
    name = "generation_quick.json" if args.quick else "generation.json"
    args.out = args.out or str(Path(__file__).parent / "results" / name)
    if args.quick:
        args.presets, args.batches, args.new_tokens, args.repeats = "tiny", "1,16", 16, 1
    return args


def main() -> None:
    args = parse_args()
    from tinyzero.models.hf import _require_transformers, to_hf_model

    _require_transformers()
    if args.compile:
        require_cpp_compiler()
        # a cold start, as a user's first run: inductor's on-disk caches in a new folder
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops(1024 if args.quick else 2048, 3 if args.quick else 7)
    bandwidth = memory_read_gbps(64 if args.quick else 256)
    print(
        f"threads={torch.get_num_threads()} fp32 matmul peak={peak:.1f} GFLOP/s, memory read "
        f"{bandwidth:.1f} GB/s, new_tokens={args.new_tokens}"
    )
    print(
        f"{'preset':<6} {'batch':>5} {'mode':<8} {'ours tok/s':>10} {'HF tok/s':>10} {'nocache':>10} "
        f"{'vs HF':>7} {'GFLOP/s':>7} {'%peak':>7} {'kB/tok':>8} {'ours GB/s':>6} {'HF GB/s':>6} {'%bw':>6}"
        f" {'read kB':>8} {'read %bw':>7}"
    )
    rows = []
    params = {}
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = TransformerLM(model_config(preset, vocab_size=100, max_seq_len=512)).eval()
        hf_model = to_hf_model(model)
        # generate() fills unset fields from the model's own generation config: clear its EOS there too.
        hf_model.generation_config.eos_token_id = None
        params[preset] = model.num_params()
        for batch in (int(b) for b in args.batches.split(",")):
            for mode in args.modes.split(","):
                rows.append(bench_setting(model, hf_model, preset, batch, mode, args, peak, bandwidth))
                print_row(rows[-1])

    import transformers

    results: dict = {
        "settings": rows,
        "matmul_peak_gflop_s": round(peak, 1),
        "memory_read_gb_s": round(bandwidth, 1),
    }
    for r in rows:  # the headline figures earlier versions of this file wrote, kept for continuity
        if r["preset"] == "tiny" and r["batch"] == 64:
            results[r["mode"]] = {k: r[k] for k in ("ours_tok_s", "nocache_tok_s", "speedup_vs_nocache")}
    results["config"] = dict(
        presets=args.presets.split(","),
        params=params,
        batches=[int(b) for b in args.batches.split(",")],
        new_tokens=args.new_tokens,
        prompt_lengths="uniform 20-60",
        repeats=args.repeats,
        nocache_max_batch=args.nocache_max_batch,
        quick=args.quick,
        compile=args.compile,
        statistic="median (no-cache: one run)",
        hf_generate="use_cache=True, eos_token_id=None, pad_token_id=0, top_k=0, top_p=1, temperature=1",
    )
    results["machine"] = machine_info(transformers=transformers.__version__)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
