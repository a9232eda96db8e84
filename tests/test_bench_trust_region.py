"""Smoke test of bench/trust_region.py --quick: it runs end to end, the three variants train the same
run, and it writes every figure it promises. No timing assertions (the machine is shared)."""

from __future__ import annotations

from pathlib import Path

from script_loader import run_bench


def test_trust_region_bench_quick_runs_the_same_training_three_ways(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "trust_region_quick.json"
    proc, res = run_bench("bench/trust_region.py", out, "--quick", "--cache-dir", str(cache_dir))
    assert res["same_run"] is True  # the check never acts at the default limit: nothing else changes
    assert set(res["seconds_per_iteration"]) == {"off", "per_step", "shipped"}
    assert all(v > 0 for v in res["seconds_per_iteration"].values())
    assert res["ratio_to_off"]["off"] == 1.0 and res["generated_tokens_per_variant"] > 0
    assert "| shipped |" in proc.stdout
