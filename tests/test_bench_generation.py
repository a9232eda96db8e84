"""bench/generation.py --quick as a smoke test: it runs end to end (ours, no-cache, HF generate on the
exported weights), writes every figure the docs quote, and HF greedy decoding of the same weights gives
our tokens. No timing assertions (the machine is shared).

Run: pytest tests/test_bench_generation.py -q        (~15 s)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from script_loader import load_script, run_bench
from torch._dynamo.utils import counters

pytest.importorskip("transformers")


def test_quick_generation_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "generation.json"
    proc, data = run_bench(
        "bench/generation.py", out, "--quick", "--threads", "1", timeout=300, one_thread=True
    )
    assert "vs HF" in proc.stdout  # the table is printed
    rows = data["settings"]
    assert {(r["batch"], r["mode"]) for r in rows} == {
        (1, "greedy"),
        (1, "sampled"),
        (16, "greedy"),
        (16, "sampled"),
    }
    for r in rows:
        for key in ("ours_tok_s", "hf_tok_s", "nocache_tok_s", "speedup_vs_hf", "ours_frac_of_peak"):
            assert r[key] > 0, key
        assert r["speedup_vs_hf"] == pytest.approx(r["ours_tok_s"] / r["hf_tok_s"], rel=0.01)
        assert r["ours_read_bytes_per_token"] >= r["min_bytes_per_token"] > 0
        if r["mode"] == "greedy":  # same weights, same argmax
            assert r["greedy_tokens_equal_hf"] >= 0.95
    assert data["matmul_peak_gflop_s"] > 0 and data["machine"]["threads"] == 1


def test_decode_bytes_counts_the_slots_each_step_reads() -> None:
    """The traffic model, counted by hand: a 3-slot prompt and 4 new tokens (a 7-slot buffer). Every
    step reads the weights; the minimum reads the slots written so far (3 + 4 + 5 + 6 = 18); ours
    reads the whole buffer once half of it is written (3, then 7 + 7 + 7 = 24)."""
    bench = load_script("bench/generation.py", "bench_generation")
    model = bench.TransformerLM(bench.model_config("nano", vocab_size=40, max_seq_len=64))
    weights = 4 * sum(p.numel() for p in model.parameters())
    slot = 2 * 4 * 64 * 4  # K and V, 4 layers, d_model 64, fp32
    assert bench.decode_bytes(model, 2, 3, 4) == 4 * weights + 2 * slot * 18
    assert bench.decode_bytes(model, 2, 3, 4, 0.5) == 4 * weights + 2 * slot * 24
    assert bench.decode_bytes(model, 2, 3, 4, 0.0) == 4 * weights + 2 * slot * 28


def test_compiled_decode_gives_the_eager_tokens_and_restores_the_model() -> None:
    """``--compile``'s system: the decode step's tensor work behind torch.compile (here the ``eager``
    backend: dynamo's tracing and guards without inductor's minutes), the slot passed as a tensor,
    every step reading the whole buffer. Same greedy tokens as the shipped sampler, every step through
    the compiled function, and the model and the full-read threshold as they were afterwards."""
    bench = load_script("bench/generation.py", "bench_generation")
    transformer = bench.transformer
    torch.manual_seed(0)
    model = bench.TransformerLM(bench.model_config("nano", vocab_size=40, max_seq_len=64)).eval()
    with torch.no_grad():  # larger weights than the init's, so greedy continuations do not repeat one token
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    prompts = [[1, 5, 6], [1, 7, 8, 9, 10, 11, 12], [1, 4]]
    kwargs = dict(eos_id=-1, pad_id=0, greedy=True)
    shipped = transformer.generate(model, prompts, 12, **kwargs)
    compiled = bench.CompiledDecode(model, backend="eager")
    counters.clear()
    out = compiled(transformer.generate, model, prompts, 12, **kwargs)
    assert counters["stats"]["unique_graphs"] == 1  # one shape: every step read the whole buffer
    assert len(set(shipped.tokens.flatten().tolist())) > 5  # a continuation worth comparing
    assert torch.equal(out.tokens, shipped.tokens)
    # reading the whole buffer from the first step sums over more (zero-weight) slots: rounding only
    torch.testing.assert_close(out.logprobs, shipped.logprobs, rtol=0, atol=1e-5)
    assert compiled.steps == 11  # every token after the first came through the compiled step
    assert "decode_layers" not in vars(model)
    assert transformer.DECODE_FULL_READ_FROM == bench.DECODE_FULL_READ_FROM == 0.5
