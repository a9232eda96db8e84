"""A*PO's stage-1 table (``build_v_star_table``): every row is β·log mean_i e^{r_i/β} of the N reference
samples drawn with its chunk's seed, recomputed here by hand; ``success`` says whether any of them won;
``filter_all_failed`` keeps the prompts π_ref ever solved; a changed β throws away the run's local
table; a stage 1 interrupted after its first chunk resumes to the identical table; the table does not
depend on ``run.seed`` (the shared cache is keyed without it); a bf16 run keeps a table of its own.

Why: V* is the regression target of every A*PO update; a row read from the wrong samples, with the
wrong β or for the wrong prompt would bias the whole run without any error.

Run: OMP_NUM_THREADS=1 pytest tests/test_v_star_table.py -q     (~10 s; uses the 3×3 base of conftest)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import LAKE3
from handmade import make_trainer

from tinyzero.algorithms import astarpo
from tinyzero.rollout import Episode, run_episodes
from tinyzero.trainer import TinyZeroTrainer

CHUNK = 4
N_PROMPTS = 10  # chunks of 4, 4 and 2 prompts


def by_hand(tr: TinyZeroTrainer, beta: float) -> dict[str, dict]:
    """The table replayed chunk by chunk: seed = rows before the chunk, whatever run.seed is."""
    n = tr.cfg.astarpo.num_value_samples
    table = {}
    for start in range(0, len(tr.train_problems), CHUNK):
        problems = tr.train_problems[start : start + CHUNK]
        gen = torch.Generator().manual_seed(start)
        eps = run_episodes(
            tr.ref, tr.tok, tr.task, [p for p in problems for _ in range(n)], tr.sampling(), gen
        )
        for i, p in enumerate(problems):
            mine = eps[i * n : (i + 1) * n]
            v = beta * math.log(sum(math.exp(e.reward / beta) for e in mine) / n)
            table[tr.task.describe(p)] = {"v": v, "success": any(e.success for e in mine)}
    return table


def lake_trainer(cache: Path, out: Path, *overrides: str, reward=None) -> TinyZeroTrainer:
    tr = make_trainer(cache, out, "algorithm.name=astarpo", *LAKE3, *overrides)
    tr.train_problems = tr.train_problems[:N_PROMPTS]
    if reward is not None:
        tr.reward_fn = reward
    return tr


def assert_tables_equal(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key, row in expected.items():
        assert got[key]["success"] == row["success"], key
        assert got[key]["v"] == pytest.approx(row["v"], rel=1e-6, abs=1e-7), key


def test_rows_are_v_star_of_the_chunks_reference_samples(lake_cache: Path, tmp_path: Path) -> None:
    tr = lake_trainer(lake_cache, tmp_path, "astarpo.beta=0.37")
    table = astarpo.build_v_star_table(tr.cfg, tr.preparation(), chunk=CHUNK)[0]
    expected = by_hand(tr, 0.37)
    assert_tables_equal(table, expected)
    flags = [row["success"] for row in expected.values()]
    assert any(flags) and not all(flags)  # both kinds of row are checked
    assert len({round(row["v"], 6) for row in expected.values()}) >= 3  # the rows differ
    assert json.loads((tr.run_dir / "v_star.json").read_text()) == table  # the run's copy


def test_filter_all_failed_keeps_the_prompts_pi_ref_solved(lake_cache: Path, tmp_path: Path) -> None:
    tr = lake_trainer(lake_cache, tmp_path, "astarpo.filter_all_failed=true")
    keys = [tr.task.describe(p) for p in tr.train_problems]
    table = {k: {"v": 0.0, "success": i % 3 == 0} for i, k in enumerate(keys)}
    assert astarpo.training_pool(tr.cfg, tr.preparation(), table) == [
        p for i, p in enumerate(tr.train_problems) if i % 3 == 0
    ]
    none = {k: {"v": 0.0, "success": False} for k in keys}  # nothing solved: train on everything
    assert astarpo.training_pool(tr.cfg, tr.preparation(), none) == tr.train_problems
    tr.cfg.astarpo.filter_all_failed = False
    assert astarpo.training_pool(tr.cfg, tr.preparation(), table) == tr.train_problems


def test_a_changed_beta_discards_the_runs_local_table(lake_cache: Path, tmp_path: Path) -> None:
    first = lake_trainer(lake_cache, tmp_path, "run.name=beta", "astarpo.beta=0.43")
    old = astarpo.build_v_star_table(first.cfg, first.preparation(), chunk=CHUNK)[0]
    again = lake_trainer(lake_cache, tmp_path, "run.name=beta", "astarpo.beta=0.29")
    new = astarpo.build_v_star_table(again.cfg, again.preparation(), chunk=CHUNK)[0]
    assert_tables_equal(new, by_hand(again, 0.29))
    assert any(abs(new[k]["v"] - old[k]["v"]) > 1e-3 for k in old)
    assert json.loads((again.run_dir / "v_star.json").read_text()) == new


class Interrupt(Exception):
    """Raised by the reward function to stop stage 1 in the middle, as Ctrl-C or a crash would."""


def test_an_interrupted_stage_1_resumes_to_the_identical_table(lake_cache: Path, tmp_path: Path) -> None:
    calls = {"n": 0, "limit": None}

    def reward(task: object, ep: Episode) -> float:  # one function for both runs: same cache key
        calls["n"] += 1
        if calls["limit"] is not None and calls["n"] > calls["limit"]:
            raise Interrupt
        return ep.reward

    first = lake_trainer(lake_cache, tmp_path, "run.name=cut", "astarpo.beta=0.31", reward=reward)
    calls["limit"] = CHUNK * first.cfg.astarpo.num_value_samples  # the first chunk's rewards, then stop
    with pytest.raises(Interrupt):
        astarpo.build_v_star_table(first.cfg, first.preparation(), chunk=CHUNK)[0]
    partial = json.loads((first.run_dir / "v_star.json").read_text())
    assert len(partial) == CHUNK  # the first chunk was saved before the interruption

    calls["limit"] = None
    resumed = lake_trainer(lake_cache, tmp_path, "run.name=cut", "astarpo.beta=0.31", reward=reward)
    table = astarpo.build_v_star_table(resumed.cfg, resumed.preparation(), chunk=CHUNK)[0]
    assert_tables_equal(table, by_hand(resumed, 0.31))
    assert {k: table[k] for k in partial} == partial  # the saved rows were kept, not recomputed


def test_the_table_is_the_same_for_every_run_seed(lake_cache: Path, tmp_path: Path) -> None:
    """Two seeds, each with an empty cache of its own, draw one table: the one either would read from
    the shared cache. A seed-dependent table made a run's figures depend on which seed filled it."""
    tables = []
    for seed in (0, 3):
        overrides = (f"run.seed={seed}", "pretrain.seed=0", "astarpo.beta=0.41")  # one base for both
        tr = lake_trainer(lake_cache, tmp_path / f"s{seed}", *overrides)
        tr.cache_root = tmp_path / f"cache{seed}"  # nothing cached: this seed draws its own table
        tables.append(astarpo.build_v_star_table(tr.cfg, tr.preparation(), chunk=CHUNK)[0])
        assert_tables_equal(tables[-1], by_hand(tr, 0.41))
    diff = {k: (tables[0][k], tables[1][k]) for k in tables[0] if tables[0][k] != tables[1][k]}
    assert not diff, diff


def test_a_bf16_run_draws_its_own_table(lake_cache: Path, tmp_path: Path) -> None:
    """Sampling under bf16 autocast draws other samples than float32, so a bf16 run neither reads the
    float32 table from the shared cache nor leaves its own where a float32 run would read it: otherwise
    a run's figures would depend on which dtype filled the cache first."""
    built = {}
    for name, dtype in (
        ("f32", "float32"),
        ("f32-again", "float32"),
        ("bf16", "bfloat16"),
        ("bf16-again", "bfloat16"),
    ):
        tr = lake_trainer(lake_cache, tmp_path / name, "astarpo.beta=0.37", f"run.dtype={dtype}")
        tr.cache_root = tmp_path / "cache"  # one shared cache, empty at first
        built[name] = astarpo.build_v_star_table(tr.cfg, tr.preparation(), chunk=CHUNK)
    assert built["f32"][1] > 0 and built["bf16"][1] > 0  # each drew its own samples
    assert built["f32-again"] == (built["f32"][0], 0) and built["bf16-again"] == (built["bf16"][0], 0)
