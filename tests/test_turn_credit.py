"""A*PO with per-turn credit (``astarpo.credit: turn``): per-state V* from stage 1, episodes split at the
states that have one, and the real loss on hand-made episodes against the formula recomputed here.

docs/algorithms.md, "Per-turn credit": V*(s) = β·log mean exp(r/β) over the reference episodes through
s; a segment from s_a to s_b (or the end) is regressed onto V*(s_b) − V*(s_a) (r for the last one).

Run: OMP_NUM_THREADS=1 pytest tests/test_turn_credit.py -q     (~20 s; smoke base model)
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from handmade import assert_same_loss_and_gradient, episode, loss_on, make_trainer, params_of, perturb, tokens
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.algorithms.astarpo import state_values, turn_segments
from tinyzero.algorithms.interface import Prepared
from tinyzero.config import load_config
from tinyzero.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def soft_value(rewards: list[float], beta: float) -> float:
    """β·log((1/n)·Σ e^{r/β}), plain floats."""
    return beta * math.log(sum(math.exp(r / beta) for r in rewards) / len(rewards))


def test_state_values_by_hand() -> None:
    """Each episode is one sample of the return from every state it passed through, counted once."""
    shown = [["a", "b", "c"], ["a", "b"], ["a", "d", "a"]]
    values = state_values(shown, [1.0, 0.0, 0.5], beta=0.5)
    assert values.keys() == {"a", "b", "c", "d"}
    assert values["a"] == [pytest.approx(soft_value([1.0, 0.0, 0.5], 0.5)), 3]  # episode 3 counts once
    assert values["b"] == [pytest.approx(soft_value([1.0, 0.0], 0.5)), 2]
    assert values["c"] == [pytest.approx(1.0), 1]
    assert values["d"] == [pytest.approx(0.5), 1]


def test_segments_by_hand() -> None:
    """Cut at every later turn whose state is known; the last segment ends on the reward."""
    seg, targets = turn_segments(["s0", "s1", "s2", "s3"], 0.0, 0.3, {"s2": 0.7, "s0": 0.9, "x": 5.0})
    assert seg == [0, 0, 1, 1]  # s1 and s3 unknown; s0's table value is not used: turn 0 takes V*(x)
    assert targets == [(0.7, 0.3), (0.0, 0.7)]  # (end, start): s0 → s2, then s2 → the fall
    seg, targets = turn_segments(["s0", "s1"], 1.0, 0.25, {})
    assert seg == [0, 0] and targets == [(1.0, 0.25)]  # nothing known: eq. (3) for the whole episode


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from("abcdef"), min_size=1, max_size=8),
    st.dictionaries(st.sampled_from("abcdef"), st.floats(-1, 1), max_size=6),
    st.floats(-1, 1),
    st.floats(-1, 1),
)
def test_segments_telescope_to_the_episode_advantage(
    observations: list[str], states: dict[str, float], reward: float, v_start: float
) -> None:
    """Σ_k (end_k − start_k) = r − V*(x); segments are consecutive runs starting at 0; one per known turn."""
    seg, targets = turn_segments(observations, reward, v_start, states)
    assert sum(end - start for end, start in targets) == pytest.approx(reward - v_start, abs=1e-9)
    assert seg[0] == 0 and all(b - a in (0, 1) for a, b in zip(seg, seg[1:]))
    assert len(targets) == seg[-1] + 1 == 1 + sum(o in states for o in observations[1:])
    for k, (end, _) in enumerate(targets[:-1]):
        assert targets[k + 1][1] == end  # a segment starts where the previous one ended


def turn_setup(cache_dir: Path, tmp_path: Path, *overrides: str) -> tuple:
    tr = make_trainer(
        cache_dir,
        tmp_path,
        "algorithm.name=astarpo",
        "astarpo.credit=turn",
        "astarpo.min_state_visits=2",
        *overrides,
    )
    p0, p1 = tr.train_problems[:2]
    episodes = [
        episode(tr, p0, ["Right", "Down", "Right"], 0.0),
        episode(tr, p1, ["Down", "Right"], 1.0),
        episode(tr, p0, ["Down"], 0.0),
    ]
    # States with a value: the second observation of episode 0, seen by 3 reference episodes (a cut
    # there); episode 1's second one, seen once (below astarpo.min_state_visits=2: no cut).
    mid = episodes[0].turns[1].observation
    once = episodes[1].turns[1].observation
    table = {
        tr.task.describe(p0): {"v": 0.2, "success": True, "states": {mid: [0.65, 3]}},
        tr.task.describe(p1): {"v": 0.6, "success": True, "states": {once: [0.0, 1]}},
    }
    tr.prepared = Prepared(state=table)
    return tr, episodes, table


def test_turn_credit_loss_is_the_documented_regression(cache_dir: Path, tmp_path: Path) -> None:
    """mean over segments of (β2·Σ_{turns of the segment}(log π_θ − log π_ref) − (end − start))² − c·H."""
    beta2, c_ent = 0.5, 0.05
    tr, episodes, _ = turn_setup(
        cache_dir, tmp_path, f"astarpo.beta2={beta2}", f"training.entropy_coef={c_ent}"
    )
    perturb(tr.policy)
    loss, metrics = loss_on(tr, episodes)

    def per_turn(model: torch.nn.Module, ep) -> list[torch.Tensor]:  # Σ log-prob of each turn's tokens
        t = tokens(model, tr, ep)
        sizes = [len(turn.action_ids) for turn in ep.turns]
        return [chunk.sum() for chunk in t.logp.split(sizes)]

    pol = [per_turn(tr.policy, e) for e in episodes]
    with torch.no_grad():
        ref = [per_turn(tr.ref, e) for e in episodes]
    ratio = [[p - q for p, q in zip(ps, qs)] for ps, qs in zip(pol, ref)]
    residuals = [  # segments written out: episode 0 cut at turn 1 (V* 0.65), the others whole
        beta2 * ratio[0][0] - (0.65 - 0.2),
        beta2 * (ratio[0][1] + ratio[0][2]) - (0.0 - 0.65),
        beta2 * (ratio[1][0] + ratio[1][1]) - (1.0 - 0.6),
        beta2 * ratio[2][0] - (0.0 - 0.2),
    ]
    entropy = torch.cat([tokens(tr.policy, tr, e).entropy for e in episodes]).mean()
    expected = (torch.stack(residuals) ** 2).mean() - c_ent * entropy
    assert_same_loss_and_gradient(loss, expected, params_of(tr.policy))
    assert metrics["credit/segments_per_episode"] == pytest.approx(4 / 3)


def test_trajectory_credit_is_unchanged_by_a_state_table(cache_dir: Path, tmp_path: Path) -> None:
    """The default (eq. 3) ignores the per-state values: same loss with or without them."""
    tr, episodes, table = turn_setup(cache_dir, tmp_path, "astarpo.credit=trajectory")
    with_states, _ = loss_on(tr, episodes)
    tr.prepared = Prepared(state={k: {"v": row["v"], "success": True} for k, row in table.items()})
    without, _ = loss_on(tr, episodes)
    assert with_states.item() == without.item()


def test_stage1_stores_state_values_consistent_with_the_prompt_value(cache_dir: Path, tmp_path: Path) -> None:
    """Real stage 1: each prompt's start observation is visited by all N episodes, so its state value
    is the prompt's V*; states are stored only with turn credit (another cache key)."""
    tr = make_trainer(cache_dir, tmp_path, "algorithm.name=astarpo", "astarpo.credit=turn")
    table = tr.prepare().state
    assert all("states" in row for row in table.values())
    for problem in tr.train_problems:
        row = table[tr.task.describe(problem)]
        start = tr.task.episode(problem).prompt
        assert row["states"][start] == [pytest.approx(row["v"], abs=1e-6), tr.cfg.astarpo.num_value_samples]
        assert all(-1.0 <= v <= 1.0 + 1e-6 and 1 <= n <= 4 for v, n in row["states"].values())
    assert sum(len(row["states"]) for row in table.values()) > len(table)  # later states too
    plain = make_trainer(cache_dir, tmp_path / "plain", "algorithm.name=astarpo").prepare().state
    assert all("states" not in row for row in plain.values())


def test_a_state_seen_often_enough_is_cut_at(cache_dir: Path, tmp_path: Path) -> None:
    """With astarpo.min_state_visits=1 the once-seen state of episode 1 becomes a cut: 5 segments."""
    tr, episodes, _ = turn_setup(cache_dir, tmp_path, "astarpo.min_state_visits=1")
    assert loss_on(tr, episodes)[1]["credit/segments_per_episode"] == pytest.approx(5 / 3)
    tr, episodes, _ = turn_setup(cache_dir, tmp_path, "astarpo.min_state_visits=4")
    assert loss_on(tr, episodes)[1]["credit/segments_per_episode"] == pytest.approx(3 / 3)


def test_credit_settings_are_checked() -> None:
    smoke = ROOT / "configs" / "smoke.yaml"
    with pytest.raises(UserError, match="astarpo.credit"):
        load_config(smoke, ["astarpo.credit=turns"])
    with pytest.raises(UserError, match="astarpo.min_state_visits"):
        load_config(smoke, ["astarpo.min_state_visits=0"])
    with pytest.raises(UserError, match="history"):
        load_config(smoke, ["astarpo.credit=turn", "rollout.history=-1"])
