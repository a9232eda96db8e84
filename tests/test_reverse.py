"""The reverse task (tinyzero/environments/reverse.py), the worked example of docs/extending.md: its
scorer by hand and on hostile text, its splits, its corpus, and the task through the registry.

Run: OMP_NUM_THREADS=1 pytest tests/test_reverse.py -q     (~5 s)
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.config import load_config
from tinyzero.environments import make_task
from tinyzero.environments.reverse import ReverseProblem, ReverseTask, score_and_reason

ROOT = Path(__file__).resolve().parents[1]


def task(**overrides: object) -> ReverseTask:
    cfg = load_config(ROOT / "configs" / "reverse.yaml", [f"task.{k}={v}" for k, v in overrides.items()])
    made = make_task(cfg.task)
    assert isinstance(made, ReverseTask)  # through the registry (tinyzero.config.TASKS)
    return made


@pytest.mark.parametrize(
    ("answer", "score", "reason"),
    [
        ("<answer>tenalp</answer>", 1.0, "solved"),
        ("thinking... <answer>x</answer><answer>tenalp</answer>", 1.0, "solved"),  # the last one counts
        ("<answer>planet</answer>", 0.1, "wrong_value"),  # the copy: well-formed, wrong
        ("<answer>tenal</answer>", 0.1, "wrong_value"),
        ("<answer>TENALP</answer>", 0.0, "no_answer"),  # not lowercase letters
        ("<answer> tenalp</answer>", 0.0, "no_answer"),
        ("<answer></answer>", 0.0, "no_answer"),
        ("tenalp", 0.0, "no_answer"),
        ("<answer>tenalp", 0.0, "no_answer"),
    ],
)
def test_score_by_hand(answer: str, score: float, reason: str) -> None:
    assert score_and_reason(answer, "planet") == (score, reason)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.from_regex(r"[a-z]{3,7}", fullmatch=True))
def test_the_scorer_never_raises_and_only_the_reversal_scores_one(text: str, word: str) -> None:
    score, _ = score_and_reason(text, word)
    assert score in (0.0, 0.1, 1.0)
    if score == 1.0:  # only an answer that is the reversed word scores 1
        assert f"<answer>{word[::-1]}</answer>" in text
    assert score_and_reason(f"{text}<answer>{word[::-1]}</answer>", word) == (1.0, "solved")


def test_splits_are_disjoint_deterministic_and_free_of_palindromes() -> None:
    t = task(num_train=500, num_test=100)
    train, test = t.problems("train"), t.problems("test")
    assert len(train) == 500 and len(test) == 100
    assert not {p.word for p in train} & {p.word for p in test}
    assert train == task(num_train=500, num_test=100).problems("train")
    assert task(seed=1, num_train=500).problems("train") != train
    assert all(p.word != p.word[::-1] and 3 <= len(p.word) <= 7 for p in train + test)


@pytest.mark.parametrize(("skill", "expected"), [(0.0, "planet"), (1.0, "tenalp")])
def test_the_corpus_copies_without_skill_and_reverses_with_it(skill: float, expected: str) -> None:
    t, rng = task(), random.Random(0)
    for _ in range(20):
        [(prompt, action)] = t.behaviour_turns(ReverseProblem("planet"), rng, skill)
        assert prompt == "reverse: planet\n" == t.episode(ReverseProblem("planet")).prompt
        assert action == f"<answer>{expected}</answer>"


def test_the_corpus_mixes_at_the_given_skill() -> None:
    t, rng = task(), random.Random(0)
    actions = [t.behaviour_turns(ReverseProblem("planet"), rng, 0.3)[0][1] for _ in range(2000)]
    assert abs(actions.count("<answer>tenalp</answer>") / 2000 - 0.3) < 0.04
    assert set(actions) == {"<answer>tenalp</answer>", "<answer>planet</answer>"}


def test_an_episode_is_one_scored_turn() -> None:
    ep = task().episode(ReverseProblem("abc"))
    result = ep.step("<answer>cba</answer>")
    assert result.done and result.reward == 1.0 and result.info["success"] and result.info["format_ok"]
    with pytest.raises(RuntimeError):
        ep.step("<answer>cba</answer>")
