"""Smoke test of bench/attention.py --quick: it runs end to end, times both systems at every length
and leaves the model's limit as it found it.

No timing assertions (the machine is shared): only that the figures exist, are positive and agree.
"""

from __future__ import annotations

import math
from pathlib import Path

from script_loader import run_bench

from tinyzero.models.transformer import MATMUL_ATTENTION_MAX_LEN


def test_quick_run_times_both_systems_at_every_length(tmp_path: Path) -> None:
    out = tmp_path / "attention_quick.json"
    proc, res = run_bench("bench/attention.py", out, "--quick", "--threads", "1", one_thread=True)
    assert res["config"]["model_limit"] == MATMUL_ATTENTION_MAX_LEN
    assert [(r["preset"], r["row_tokens"]) for r in res["rows"]] == [("nano", 27), ("nano", 96)]
    for row in res["rows"]:
        assert row["matmul_layers"] == {"sdpa": 0, "matmul": 4}  # each system timed on its own path
        assert row["sdpa_s"] > 0 and row["matmul_s"] > 0
        assert math.isclose(row["matmul_speedup"], row["sdpa_s"] / row["matmul_s"], rel_tol=0.02)
    assert "matmul ms" in proc.stdout  # the table is printed
