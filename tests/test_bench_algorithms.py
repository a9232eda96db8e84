"""bench/algorithms.py: the --quick smoke run writes the promised JSON; the GRPO comparison is right.

python -m pytest -q tests/test_bench_algorithms.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from script_loader import load_script, run_bench, run_script

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
    # GRPO's best (0.4 at 40 s on seed 0) reached by astarpo at 20 s: half GRPO's time to its best
    assert by_key[("astarpo", 0)]["best_time_ratio_vs_grpo"] == 0.5
    assert by_key[("astarpo", 1)]["best_time_ratio_vs_grpo"] is None


def test_a_grpo_collapse_is_compared_by_its_best_not_its_final() -> None:
    bench = load_bench()
    grpo = fake_run("grpo", 0, [0.15, 0.3, 0.0, 0.0])  # best 0.3 at 5 s, then collapsed to 0
    astarpo = fake_run("astarpo", 0, [0.15, 0.2, 0.35, 0.9])  # 0.3 first reached at 10 s
    by_algo = {q["algorithm"]: q for q in bench.compare_to_grpo([grpo, astarpo])}
    assert by_algo["astarpo"]["time_ratio_vs_grpo"] == 0.0  # GRPO's final (0) is reached at once
    assert by_algo["astarpo"]["grpo_best_greedy"] == 0.3
    assert by_algo["astarpo"]["seconds_to_grpo_best"] == 10.0
    assert by_algo["astarpo"]["best_time_ratio_vs_grpo"] == 2.0
    assert by_algo["astarpo"]["best_ratio_vs_grpo_total"] == round(10.0 / 15.0, 3)  # GRPO ran 15 s


def test_quick_run_trains_every_algorithm_and_counts_stage1(tmp_path: Path) -> None:
    out = tmp_path / "algorithms.json"
    proc, result = run_bench("bench/algorithms.py", out, "--quick")
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


def fake_run(algo: str, seed: int, greedy: list[float]) -> dict:
    """A finished run whose held-out greedy success was ``greedy`` at iterations 0, 10, 20, ..."""
    points = [
        {"iteration": 10 * i, "elapsed_s": 5.0 * i, "generated_tokens": 100 * i, "greedy": g, "sampled": g}
        for i, g in enumerate(greedy)
    ]
    return {
        "task": "frozenlake",
        "algorithm": algo,
        "seed": seed,
        "base_greedy": greedy[0],
        "final_greedy": greedy[-1],
        "final_sampled": greedy[-1],
        "elapsed_s": points[-1]["elapsed_s"],
        "generated_tokens": points[-1]["generated_tokens"],
        "stage1_tokens": 0,
        "kl": 0.1,
        "peak_rss_mb": 100.0,
        "curve": points,
    }


def write_result(path: Path, runs: list[dict], iterations: int = 30) -> Path:
    config = {
        "quick": False,
        "tasks": ["frozenlake"],
        "iterations": iterations,
        "eval_every": 10,
        "base_seed": 0,
    }
    path.write_text(json.dumps({"runs": runs, "config": config}))
    return path


def run_merge(paths: list[Path], out: Path, plot_dir: Path) -> subprocess.CompletedProcess:
    """``bench/algorithms.py --merge`` as a user runs it (the plot goes to ``plot_dir``, not docs/img)."""
    merge = ["--merge", *map(str, paths), "--out", str(out), "--plot-dir", str(plot_dir)]
    return run_script("bench/algorithms.py", *merge, timeout=120)


def test_iterations_to_threshold_is_the_first_evaluation_at_or_above_it() -> None:
    bench = load_bench()
    runs = [fake_run("ragen", 0, [0.1, 0.95, 0.8, 0.97]), fake_run("grpo", 0, [0.1, 0.5, 0.89, 0.2])]
    by_algo = {q["algorithm"]: q for q in bench.to_threshold(runs, 0.9)}
    assert (by_algo["ragen"]["iteration"], by_algo["ragen"]["seconds"], by_algo["ragen"]["tokens"]) == (
        10,
        5.0,
        100,
    )
    assert by_algo["grpo"]["iteration"] is None and by_algo["grpo"]["seconds"] is None


def test_merge_combines_the_processes_runs_into_one_comparison(tmp_path: Path) -> None:
    a = write_result(
        tmp_path / "a.json",
        [fake_run("astarpo", s, [0.1, 0.6, 0.92, 0.95]) for s in (0, 1)]
        + [fake_run("grpo", s, [0.1, 0.3, 0.5, 0.6]) for s in (0, 1)],
    )
    b = write_result(tmp_path / "b.json", [fake_run("ragen", s, [0.1, 0.2, 0.7, 0.91]) for s in (0, 1)])
    out = tmp_path / "merged.json"
    proc = run_merge([a, b], out, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert sorted((r["algorithm"], r["seed"]) for r in result["runs"]) == sorted(
        (algo, s) for algo in ("astarpo", "grpo", "ragen") for s in (0, 1)
    )
    ratio = {(q["algorithm"], q["seed"]): q["time_ratio_vs_grpo"] for q in result["vs_grpo"]}
    assert ratio[("astarpo", 0)] == round(5.0 / 15.0, 3)  # 0.6 (GRPO's final) at 5 s of GRPO's 15 s
    assert ratio[("ragen", 1)] == round(10.0 / 15.0, 3)  # the runs of the other file are compared too
    reached = {(q["algorithm"], q["seed"]): q["iteration"] for q in result["to_threshold"]}
    assert reached[("astarpo", 0)] == 20 and reached[("ragen", 0)] == 30 and reached[("grpo", 0)] is None
    assert (tmp_path / "algorithms_frozenlake.png").stat().st_size > 0
    assert "it to 0.9" in proc.stdout


def test_merge_refuses_runs_made_with_different_settings_in_one_line(tmp_path: Path) -> None:
    a = write_result(tmp_path / "a.json", [fake_run("grpo", 0, [0.1, 0.5])], iterations=300)
    b = write_result(tmp_path / "b.json", [fake_run("ragen", 0, [0.1, 0.5])], iterations=60)
    again = write_result(tmp_path / "c.json", [fake_run("grpo", 0, [0.1, 0.4])], iterations=300)
    for pair, words in (((a, b), "iterations"), ((a, again), "twice")):
        proc = run_merge(list(pair), tmp_path / "m.json", tmp_path)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


def test_overrides_reach_every_run_and_may_not_change_what_the_bench_sets(tmp_path: Path) -> None:
    """Positional overrides (e.g. the RAGEN settings of an earlier comparison) are in every run's config;
    a key the bench sets from its own flags is refused with exit 2 instead of being silently overridden."""
    from tinyzero.config import load_config

    bench = load_bench()
    args = argparse.Namespace(
        overrides=["num_completions=5", "astarpo.v_star_source=reference"],  # neither is the config's
        threads=1,
        base_seed=0,
        cache_dir=str(tmp_path / "cache"),
        iterations=7,
        eval_every=7,
    )
    for algo in ("ragen", "grpo"):
        overrides = bench.run_overrides("frozenlake", algo, 2, args, tmp_path)
        cfg = load_config(ROOT / "configs" / "frozenlake.yaml", overrides)
        assert (cfg.num_completions, cfg.astarpo.v_star_source) == (5, "reference")
        assert (cfg.algorithm.name, cfg.run.seed, cfg.training.total_iterations) == (algo, 2, 7)
    proc = run_script("bench/algorithms.py", "training.total_iterations=5", "--quick", timeout=120)
    assert proc.returncode == 2 and "the bench sets training.total_iterations itself" in proc.stderr
