"""Smoke test of bench/train_step.py --quick: it runs end to end and writes every figure it promises.

No timing assertions (the machine is shared); only that the figures exist and are positive.
"""

from __future__ import annotations

from script_loader import run_bench


def test_train_step_bench_quick_writes_positive_figures(tmp_path):
    out = tmp_path / "train_step_quick.json"
    # One thread and 4 trajectories keep it ~10 s even on a busy machine (figures are not checked).
    args = ["--quick", "--presets", "tiny", "--trajectories", "4", "--threads", "1", "--bf16"]
    proc, res = run_bench("bench/train_step.py", out, *args)
    assert "speed-up" in proc.stdout or "timing ours only" in proc.stdout
    assert res["peak_gflops"] > 0 and res["config"]["quick"] is True
    entry = res["presets"]["tiny"]["workloads"]["frozenlake_episode"]
    assert entry["real_tokens"] > 0 and entry["padded_tokens"] >= entry["real_tokens"]
    systems = ["ours", "bf16"] + (["baseline"] if res["config"]["baseline_rev"] else [])
    for name in systems:
        figures = entry[name]
        for key in (
            "fwd_bwd_s",
            "tok_s_real",
            "tok_s_padded",
            "gflops_useful",
            "frac_of_peak",
            "optimizer_s",
        ):
            assert figures[key] > 0, (name, key)
        assert figures["tok_s_padded"] >= figures["tok_s_real"]
    assert res["peak_gflops_bf16"] > 0 and entry["speedup_bf16_vs_ours"] > 0
    bf16 = entry["agreement_vs_ours"]["bf16"]  # same weights: bf16 rounding, not another loss
    assert bf16["loss_abs_diff"] <= 0.02 * max(1.0, abs(bf16["loss"]))
    if "baseline" in systems:
        assert entry["speedup_vs_baseline"] > 0
        agreement = entry["agreement_vs_ours"]["baseline"]
        assert agreement["loss_abs_diff"] <= 1e-4 * max(1.0, abs(agreement["loss"]))
