"""Smoke test of bench/decode.py --quick: it runs end to end, times every system, finds the same
greedy tokens on each, and leaves the model's decode step and threshold as it found them.

No timing assertions (the machine is shared): only that the figures exist, are positive and agree.
"""

from __future__ import annotations

import math
from pathlib import Path

from script_loader import run_bench

from tinyzero.models.transformer import DECODE_FULL_READ_FROM

SYSTEMS = ("general", "written", "ships", "whole")


def test_quick_run_times_every_system_with_the_same_tokens(tmp_path: Path) -> None:
    out = tmp_path / "decode_quick.json"
    proc, res = run_bench("bench/decode.py", out, "--quick", "--threads", "1", one_thread=True)
    assert res["config"]["full_read_from"] == DECODE_FULL_READ_FROM
    [row] = res["rows"]
    assert (row["preset"], row["batch"], row["new_tokens"]) == ("nano", 16, 16)
    for name in SYSTEMS:
        assert row[f"{name}_tok_s"] > 0
        assert row[f"{name}_same_tokens"] is True
        want = row[f"{name}_tok_s"] / row["general_tok_s"]
        assert math.isclose(row[f"{name}_speedup"], want, rel_tol=0.02)
    # Each system ran on the path it is named after: steps 1..N-1 feed a token back (the prefill
    # draws the first); the shipped threshold reads the whole buffer from the step whose slot count
    # P + t + 1 reaches half the buffer's P + N.
    P, N = row["prompt_width"], row["new_tokens"]
    ships = sum(2 * (P + t + 1) >= P + N for t in range(N - 1))
    assert 0 < ships < N - 1  # the quick run's prompts are short enough to tell the rules apart
    assert row["paths"] == {
        "general": {"general_steps": N - 1, "whole_buffer_steps": 0},
        "written": {"general_steps": 0, "whole_buffer_steps": 0},
        "ships": {"general_steps": 0, "whole_buffer_steps": ships},
        "whole": {"general_steps": 0, "whole_buffer_steps": N - 1},
    }
    assert "general" in proc.stdout and "whole" in proc.stdout  # the table is printed
