"""bench/stage1.py --quick (what CI runs; no timing is asserted): stage 1 drawn with and without the
shared prefill gives the same V* table and tokens, and the sampler did see repeated prompts.

python -m pytest -q tests/test_bench_stage1.py        (~15 s: a smoke base and two stage-1 tables)
"""

from __future__ import annotations

from pathlib import Path

from script_loader import run_bench


def test_quick_run_draws_the_same_table_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "stage1.json"
    proc, data = run_bench("bench/stage1.py", out, "--quick", timeout=300, one_thread=True)
    shared, unshared = data["modes"]["shared"], data["modes"]["unshared"]
    assert data["same_table"] is True and shared["tokens"] == unshared["tokens"] > 0
    # N samples of each prompt: the first turn alone repeats every prompt N times.
    assert shared["rows"] == unshared["rows"] >= data["prompts"] * data["samples_per_prompt"]
    assert shared["rows"] > shared["distinct"] >= data["prompts"]  # the sharing had rows to share
    assert "same table: True" in proc.stdout
