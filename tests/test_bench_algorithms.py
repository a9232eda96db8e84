"""bench/algorithms.py: the --quick smoke run writes the promised JSON; the GRPO comparison is right.

python -m pytest -q tests/test_bench_algorithms.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    return load_script("bench/algorithms.py", "bench_algorithms")


def curve(points: list[tuple[float, int, float]]) -> list[dict]:
    return [{"elapsed_s": s, "generated_tokens": t, "greedy": g} for s, t, g in points]


def test_time_to_reach_is_the_first_evaluation_at_or_above_the_target() -> None:
    bench = load_bench()
    c = curve([(0, 0, 0.1), (10, 100, 0.3), (20, 200, 0.5), (30, 300, 0.4)])
    assert bench.time_to_reach(c, 0.3) == (10, 100)
    assert bench.time_to_reach(c, 0.45) == (20, 200)
    assert bench.time_to_reach(c, 0.6) == (None, None)


def test_ratio_is_time_to_grpo_final_over_grpo_total_time_within_the_same_seed() -> None:
    bench = load_bench()
    runs = [
        {
            "task": "t",
            "algorithm": "grpo",
            "seed": 0,
            "final_greedy": 0.4,
            "elapsed_s": 40.0,
            "curve": curve([(0, 0, 0.1), (40, 400, 0.4)]),
        },
        {
            "task": "t",
            "algorithm": "astarpo",
            "seed": 0,
            "final_greedy": 0.6,
            "elapsed_s": 40.0,
            "curve": curve([(0, 0, 0.1), (10, 90, 0.2), (20, 180, 0.45), (40, 360, 0.6)]),
        },
        {
            "task": "t",
            "algorithm": "astarpo",
            "seed": 1,
            "final_greedy": 0.1,
            "elapsed_s": 40.0,
            "curve": curve([(0, 0, 0.1), (40, 360, 0.1)]),
        },
        {
            "task": "t",
            "algorithm": "grpo",
            "seed": 1,
            "final_greedy": 0.5,
            "elapsed_s": 50.0,
            "curve": curve([(0, 0, 0.1), (50, 500, 0.5)]),
        },
    ]
    by_key = {(r["algorithm"], r["seed"]): r for r in bench.compare_to_grpo(runs)}
    assert by_key[("astarpo", 0)]["time_ratio_vs_grpo"] == 0.5  # reached 0.4 at 20 s of GRPO's 40 s
    assert by_key[("astarpo", 0)]["tokens_to_grpo_final"] == 180
    assert by_key[("astarpo", 1)]["time_ratio_vs_grpo"] is None  # never reached seed 1's GRPO (0.5)
    assert by_key[("grpo", 1)]["time_ratio_vs_grpo"] == 1.0


def test_quick_run_trains_every_algorithm_and_counts_stage1(tmp_path: Path) -> None:
    out = tmp_path / "algorithms.json"
    proc = subprocess.run(
        [sys.executable, "bench/algorithms.py", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    runs = {r["algorithm"]: r for r in result["runs"]}
    assert set(runs) == {"astarpo", "ragen", "grpo", "ppo", "rloo"}
    for r in runs.values():
        assert [p["iteration"] for p in r["curve"]] == [0, 1, 2, 3]  # eval every iteration in --quick
        assert r["generated_tokens"] > 0 and r["elapsed_s"] > 0
        assert r["kl"] is not None and r["peak_rss_mb"] and r["peak_rss_mb"] > 0
    # A*PO's offline stage 1 is paid inside its run (the shared V* cache is cleared first).
    assert runs["astarpo"]["stage1_tokens"] > 0
    assert all(runs[a]["stage1_tokens"] == 0 for a in ("ragen", "grpo", "ppo"))
    assert {q["algorithm"] for q in result["vs_grpo"]} == set(runs)
    assert "final greedy" in proc.stdout
