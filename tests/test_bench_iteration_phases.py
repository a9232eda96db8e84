"""bench/iteration_phases.py: the phases add up to the iteration, each timer sits on the code it names
(the trust region's check is charged only when the trust region is on), and nested calls are not
counted twice. No timing is asserted: only where the time is booked.

python -m pytest -q tests/test_bench_iteration_phases.py        (~15 s: smoke runs)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, *overrides: str) -> dict:
    bench = load_script("bench/iteration_phases.py", "bench_phases")
    args = bench.argparse.Namespace(
        config=str(ROOT / "configs" / "smoke.yaml"),
        iterations=2,
        warmup=1,
        threads=1,
        overrides=list(overrides),
    )
    return bench.measure(args, tmp_path)


def test_nested_timers_charge_each_call_to_the_innermost_phase() -> None:
    clock = load_script("bench/iteration_phases.py", "bench_phases").Clock()
    inner = clock.wrap("inner", lambda: time.sleep(0.02))
    outer = clock.wrap("outer", lambda: (time.sleep(0.01), inner()))
    outer()
    assert clock.spent["inner"] == pytest.approx(0.02, abs=0.01)
    assert clock.spent["outer"] == pytest.approx(0.01, abs=0.008)  # not 0.03: the inner call is not its own


def test_phases_add_up_and_follow_the_settings(cache_dir: Path, tmp_path: Path) -> None:
    common = (
        "algorithm.name=astarpo",
        "astarpo.kl_coef=0.1",
        "training.update_epochs=2",
        f"pretrain.cache_dir={cache_dir}",
    )
    on = run(tmp_path / "on", *common, "training.max_kl_rise=0.05")
    off = run(tmp_path / "off", *common)
    for result in (on, off):
        assert sum(result["phases_share"].values()) == pytest.approx(1.0, abs=0.05)
        for phase in ("rollout", "forward (π_θ, π_ref)", "backward"):
            assert result["phases_s"][phase] > 0, phase
    assert on["phases_s"]["trust-region check"] > 0
    assert off["phases_s"]["trust-region check"] == 0.0
