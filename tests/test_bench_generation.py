"""bench/generation.py --quick as a smoke test: it runs end to end (ours, no-cache, HF generate on the
exported weights), writes every figure the docs quote, and HF greedy decoding of the same weights gives
our tokens. No timing assertions (the machine is shared).

Run: pytest tests/test_bench_generation.py -q        (~15 s)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_loader import run_script

pytest.importorskip("transformers")


def test_quick_generation_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "generation.json"
    proc = run_script(
        "bench/generation.py", "--quick", "--threads", "1", "--out", str(out), timeout=300, one_thread=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "vs HF" in proc.stdout  # the table is printed
    data = json.loads(out.read_text())
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
        if r["mode"] == "greedy":  # same weights, same argmax
            assert r["greedy_tokens_equal_hf"] >= 0.95
    assert data["matmul_peak_gflop_s"] > 0 and data["machine"]["threads"] == 1
