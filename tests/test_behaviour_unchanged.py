"""Short runs of every algorithm reproduce, bit for bit, the weights and metrics recorded in
tests/data/behaviour.json (tests/behaviour.py says how they were made and when to record them again).

Why: the algorithms, the trainer's loop (update epochs, trust region, critic) and stage 1 were
reorganised without changing what they compute; this keeps it so. A changed sign, a reordered random
draw or one extra optimizer step changes the hash.

Run: OMP_NUM_THREADS=1 pytest tests/test_behaviour_unchanged.py -q     (~10 s)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from behaviour import CASES, GOLDEN, machine, smoke_case

RECORDED = json.loads(GOLDEN.read_text())


def first_difference(got: list[dict], want: list[dict]) -> str | None:
    """Where two metric logs first differ (iteration and key), or None."""
    if len(got) != len(want):
        return f"{len(got)} records, recorded {len(want)}"
    for g, w in zip(got, want, strict=True):
        if g.keys() != w.keys():
            return f"iteration {w.get('iteration')}: keys {sorted(g.keys() ^ w.keys())} differ"
        for key, value in w.items():
            same = value == g[key] or (isinstance(value, float) and math.isnan(value) and math.isnan(g[key]))
            if not same:
                return f"iteration {w.get('iteration')}: {key} = {g[key]!r}, recorded {value!r}"
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_reproduces_the_recorded_weights_and_metrics(cache_dir: Path, tmp_path: Path, name: str) -> None:
    if RECORDED["machine"] != machine():
        pytest.skip(f"fingerprints recorded on {RECORDED['machine']}, this is {machine()}")
    want = RECORDED["cases"][name]
    got = smoke_case(name, cache_dir, tmp_path)
    assert first_difference(got["metrics"], want["metrics"]) is None, first_difference(
        got["metrics"], want["metrics"]
    )
    assert got["weights_sha256"] == want["weights_sha256"]


def test_every_case_is_recorded() -> None:
    assert sorted(RECORDED["cases"]) == sorted(CASES)
