"""bench/time_to_target.py: the first crossing is the target's, the summary counts misses, and the --quick
run (what CI runs; no timing is asserted) writes the promised JSON.

python -m pytest -q tests/test_bench_time_to_target.py        (~30 s: one smoke run)
"""

from __future__ import annotations

from pathlib import Path

from script_loader import load_script, run_bench


def load_bench():
    return load_script("bench/time_to_target.py", "bench_ttt")


def test_first_crossing_is_the_first_evaluation_at_or_above_the_target() -> None:
    bench = load_bench()
    evals = [{"iteration": i, "greedy": g} for i, g in [(0, 0.1), (25, 0.9), (50, 0.85), (75, 0.95)]]
    assert bench.first_crossing(evals, 0.9)["iteration"] == 25  # equal counts; a later dip does not
    assert bench.first_crossing(evals, 0.95)["iteration"] == 75
    assert bench.first_crossing(evals, 0.96) is None


def test_summary_counts_a_missed_target_as_missing_not_as_fast() -> None:
    bench = load_bench()
    runs = [
        {"iterations_to_target": 100, "wall_s_to_target": 200.0, "s_per_iteration": 2.0},
        {"iterations_to_target": None, "wall_s_to_target": None, "s_per_iteration": 2.2},
        {"iterations_to_target": 150, "wall_s_to_target": 330.0, "s_per_iteration": 2.1},
    ]
    s = bench.summarize(runs)
    assert s["reached"] == "2/3" and s["max_iterations"] == 150 and s["median_iterations"] == 125
    assert s["max_wall_s"] == 330.0 and s["median_s_per_iteration"] == 2.1


def test_quick_run_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "ttt.json"
    quick = ["--quick", "--no-progress"]
    proc, data = run_bench("bench/time_to_target.py", out, *quick, timeout=300, one_thread=True)
    run = data["runs"][0]
    assert data["summary"]["reached"] == "1/1" and run["iterations_to_target"] == 0
    assert run["iterations_run"] == 2 and [e["iteration"] for e in run["evals"]] == [0, 1, 2]
    assert all(e["wall_s"] > 0 for e in run["evals"]) and run["stage1_and_rl_tokens"] > 0
    assert "seed" in proc.stdout and "wall s" in proc.stdout
