"""``training.ref_reset_every``: at every multiple of N the trained policy becomes π_ref and A*PO's
stage 1 is redone from it; a run resumed across a reset continues bit for bit.

Why: after a reset every A*PO target (V* and the β·log π/π_ref regression) is measured against the new
reference. A reset that copied the wrong weights, kept the base model's table, or came back from a
checkpoint with the base model as π_ref would train toward the wrong target without any error.

Run: OMP_NUM_THREADS=1 pytest tests/test_ref_reset.py -q     (~20 s; uses the 3×3 base of conftest)
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import LAKE3
from handmade import assert_same_weights, make_trainer

from tinyzero.rollout import run_episodes
from tinyzero.trainer import TinyZeroTrainer

EVERY = ("training.ref_reset_every=2", "training.checkpoint_every=1")


def lake(cache: Path, out: Path, *overrides: str, resume: bool = False) -> TinyZeroTrainer:
    return make_trainer(cache, out, "algorithm.name=astarpo", *LAKE3, *overrides, resume=resume)


def v_star_by_hand(tr: TinyZeroTrainer, reference: torch.nn.Module) -> dict[str, float]:
    """Stage 1 replayed with ``reference`` as π_ref: N samples per training map, one chunk (seed 0),
    V* = β·log mean_i e^{r_i/β}."""
    n, beta = tr.cfg.astarpo.num_value_samples, tr.cfg.astarpo.beta
    problems = tr.train_problems
    gen = torch.Generator().manual_seed(0)
    episodes = run_episodes(
        reference, tr.tok, tr.task, [p for p in problems for _ in range(n)], tr.sampling(), gen
    )
    table = {}
    for i, p in enumerate(problems):
        mine = episodes[i * n : (i + 1) * n]
        table[tr.task.describe(p)] = beta * math.log(sum(math.exp(e.reward / beta) for e in mine) / n)
    return table


def test_a_reset_makes_the_trained_policy_the_reference_and_redoes_stage_1(
    lake_cache: Path, tmp_path: Path
) -> None:
    # The policy after 2 iterations, from a run that never resets (2 iterations: no reset is due).
    two = lake(lake_cache, tmp_path, "run.name=two", "training.total_iterations=2")
    two.train()
    base_table = dict(two.prepared.state)

    tr = lake(lake_cache, tmp_path, "run.name=reset", "training.total_iterations=4", *EVERY)
    tr.train()
    assert tr.ref_reset_at == 2
    assert_same_weights(tr.ref.state_dict(), two.policy.state_dict())  # π_ref = π_θ at iteration 2

    table = tr.prepared.state  # the table the iterations after the reset trained on
    expected = v_star_by_hand(tr, two.policy)
    assert list(table) == list(expected)
    for key, v in expected.items():
        assert table[key]["v"] == pytest.approx(v, rel=1e-6, abs=1e-7), key
    assert any(abs(table[k]["v"] - base_table[k]["v"]) > 1e-3 for k in table)  # not the base's table
    assert json.loads((tr.run_dir / "v_star.json").read_text()) == table
    logged = [m.get("ref_reset_at") for m in map(json.loads, (tr.run_dir / "metrics.jsonl").open())]
    assert logged[1:] == [0, 0, 2, 2]  # iterations 1..4; a reset at 4 would come before iteration 5


def test_a_run_resumed_across_a_reset_gives_identical_weights(lake_cache: Path, tmp_path: Path) -> None:
    """Straight to 6 (resets at 2 and 4) against 3, then resumed to 6: the checkpoint at 3 must carry
    the reset π_ref (its stage-1 table is cached under a fingerprint of those weights)."""
    straight = lake(lake_cache, tmp_path, "run.name=a", "training.total_iterations=6", *EVERY)
    straight.train()

    lake(lake_cache, tmp_path, "run.name=b", "training.total_iterations=3", *EVERY).train()
    shutil.rmtree(
        lake_cache.parent / "v_star", ignore_errors=True
    )  # nothing cached: a wrong π_ref cannot hide behind a hit
    resumed = lake(lake_cache, tmp_path, "run.name=b", "training.total_iterations=6", *EVERY, resume=True)
    assert (resumed.iteration, resumed.ref_reset_at) == (3, 2)
    resumed.train()

    assert resumed.ref_reset_at == straight.ref_reset_at == 4
    assert_same_weights(straight.ref.state_dict(), resumed.ref.state_dict())
    assert_same_weights(straight.policy.state_dict(), resumed.policy.state_dict())
    assert torch.equal(straight.gen.get_state(), resumed.gen.get_state())
