"""Multiplication: scoring, problem generation and splits, noisy demonstrations.

Run: pytest tests/test_multiplication.py -q
"""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.config import TaskConfig
from tinyzero.environments import make_task
from tinyzero.environments.multiplication import (
    MultiplicationProblem,
    compute_score,
    corrupt,
    long_multiplication,
    num_steps,
    score_and_reason,
)


@pytest.mark.parametrize(
    ("solution", "score", "reason"),
    [
        ("<answer>4183</answer>", 1.0, "solved"),
        ("<answer> 4183\n</answer>", 1.0, "solved"),
        ("so <answer>4000</answer> or rather <answer>4183</answer>", 1.0, "solved"),
        ("<answer>4183</answer><answer>4184</answer>", 0.1, "wrong_value"),
        ("<answer>4184</answer>", 0.1, "wrong_value"),
        ("<answer>-4183</answer>", 0.1, "wrong_value"),
        ("<answer>04183</answer>", 1.0, "solved"),
        ("<answer>" + "9" * 20 + "</answer>", 0.1, "wrong_value"),
        ("<answer>" + "9" * 21 + "</answer>", 0.0, "no_answer"),
        ("<answer>47*89</answer>", 0.0, "no_answer"),
        ("<answer>4183.0</answer>", 0.0, "no_answer"),
        ("<answer>+4183</answer>", 0.0, "no_answer"),
        ("<answer>4 183</answer>", 0.0, "no_answer"),
        ("<answer>\u0664183</answer>", 0.0, "no_answer"),  # Arabic-Indic four
        ("<answer></answer>", 0.0, "no_answer"),
        ("4183", 0.0, "no_answer"),
        ("<answer>4183", 0.0, "no_answer"),
    ],
)
def test_scores(solution: str, score: float, reason: str) -> None:
    assert score_and_reason(solution, 47, 89) == (score, reason)
    assert compute_score(solution, 47, 89) == score


@pytest.mark.parametrize(
    "solution",
    [
        None,
        4183,
        b"<answer>4183</answer>",
        "<answer>" * 200_000,
        "<answer>" + "1" * 10**6 + "</answer>",
        "\xff" * 10**6,
    ],
)
def test_hostile_answers_score_zero_fast(solution: object) -> None:
    t0 = time.perf_counter()
    assert compute_score(solution, 47, 89) == 0.0  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 0.5


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda s: f"<answer>{s}</answer>", st.text(alphabet="0123456789- \n<>/answer", max_size=30)
        ),
    ),
    st.integers(-(10**9), 10**9),
    st.integers(-(10**9), 10**9),
)
def test_score_never_raises(solution: str, a: int, b: int) -> None:
    assert compute_score(solution, a, b) in (0.0, 0.1, 1.0)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**18), st.integers(1, 2), st.randoms(use_true_random=False))
def test_corrupt_changes_digits_keeps_length(n: int, errors: int, rng: random.Random) -> None:
    m = corrupt(n, rng, errors)
    s, t = str(n), str(m)
    assert m != n and len(t) == len(s)
    assert 1 <= sum(x != y for x, y in zip(s, t)) <= min(errors, len(s))
    assert len(t) == 1 or t[0] != "0"


@pytest.mark.parametrize(("da", "db"), [(2, 2), (3, 1), (4, 3)])
def test_problems_have_the_digits_asked(da: int, db: int) -> None:
    task = make_task(TaskConfig(name="multiplication", digits_a=da, digits_b=db, num_train=300, num_test=30))
    for split in ("train", "test"):
        for p in task.problems(split):
            assert len(str(p.a)) == da and len(str(p.b)) == db
            assert task.episode(p).step(f"<answer>{p.a * p.b}</answer>").reward == 1.0
            assert task.optimum(p) == 1.0


def test_splits_disjoint_deterministic_and_prefix_stable() -> None:
    task = make_task(TaskConfig(name="multiplication", num_train=2000, num_test=200, seed=1))
    train, test = task.problems("train"), task.problems("test")
    assert len(train) == 2000 and len(test) == 200
    key = lambda p: tuple(sorted((p.a, p.b)))  # noqa: E731 - a*b and b*a are one problem
    assert not {key(p) for p in train} & {key(p) for p in test}
    assert len(set(train)) == len(train)
    assert train == task.problems("train")
    assert task.problems("train", 100) == train[:100]
    assert make_task(TaskConfig(name="multiplication", seed=2)).problems("train", 100) != train[:100]


def test_too_small_space_raises() -> None:
    task = make_task(TaskConfig(name="multiplication", digits_a=1, digits_b=1))
    assert len(task.problems("train", 50)) == 50
    with pytest.raises(ValueError, match="too small"):
        task.problems("train", 100)  # only 81 one-digit products exist


def test_episode_and_prompt() -> None:
    task = make_task(TaskConfig(name="multiplication"))
    p = MultiplicationProblem(47, 89)
    ep = task.episode(p)
    assert ep.prompt == "47*89=\n"
    assert task.describe(p) == "47*89"
    res = ep.step("<answer>4183</answer>")
    assert (res.observation, res.reward, res.done) == ("", 1.0, True)
    assert res.info == {"success": True, "format_ok": True, "reason": "solved"}
    with pytest.raises(RuntimeError):
        ep.step("<answer>4183</answer>")
    res = task.episode(p).step("<answer>4182</answer>")
    assert res.reward == 0.1 and res.info == {"success": False, "format_ok": True, "reason": "wrong_value"}


def test_behaviour_turns() -> None:
    task = make_task(TaskConfig(name="multiplication", digits_a=3, digits_b=2, num_train=200))
    rng = random.Random(0)
    allowed = {chr(c) for c in range(32, 127)} | {"\n"}
    for p in task.problems("train"):
        for skill, expected in ((1.0, 1.0), (0.0, 0.1)):
            ((obs, action),) = task.behaviour_turns(p, rng, skill)
            assert obs == task.episode(p).prompt
            assert set(obs + action) <= allowed
            assert compute_score(action, p.a, p.b) == expected
    p = MultiplicationProblem(47, 89)
    half = [compute_score(task.behaviour_turns(p, rng, 0.5)[0][1], 47, 89) for _ in range(400)]
    assert 0.4 < half.count(1.0) / len(half) < 0.6


def _check_steps(work: str, a: int, b: int) -> list[bool]:
    """Each written step parsed back and checked by hand: True where the equation holds."""
    ok = []
    for line in work.splitlines():
        lhs, rhs = line.split("=")
        x, op, y = lhs.partition("*") if "*" in lhs else lhs.partition("+")
        value = int(x) * int(y) if op == "*" else int(x) + int(y)
        ok.append(value == int(rhs))
        if op == "*":
            assert int(x) == a and int(y) in {int(d) * 10**i for i, d in enumerate(reversed(str(b)))}
    return ok


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 99_999), st.integers(1, 99_999), st.integers(0, 10_000))
def test_long_multiplication_steps_are_true_and_a_slip_is_one_consistent_mistake(
    a: int, b: int, seed: int
) -> None:
    work, product = long_multiplication(a, b)
    assert product == a * b
    assert all(_check_steps(work, a, b)) and len(work.splitlines()) == num_steps(b)
    rng = random.Random(seed)
    slip = rng.randrange(num_steps(b))
    work, product = long_multiplication(a, b, slip, rng)
    assert product != a * b  # one wrong digit somewhere always changes the result
    assert _check_steps(work, a, b) == [
        i != slip for i in range(num_steps(b))
    ]  # only the slipped step is wrong
    assert work.splitlines()[-1].endswith(f"={product}")


def test_scratchpad_demonstrations_score_like_plain_ones() -> None:
    task = make_task(TaskConfig(name="multiplication", num_train=200, scratchpad=True))
    rng = random.Random(0)
    p = MultiplicationProblem(47, 89)
    ((obs, action),) = task.behaviour_turns(p, rng, 1.0)
    assert obs == "47*89=\n"
    assert action == "47*9=423\n47*80=3760\n423+3760=4183\n<answer>4183</answer>"
    assert compute_score(task.behaviour_turns(p, rng, 0.0)[0][1], 47, 89) == 0.1  # a slip: a wrong integer
    scores = [
        compute_score(task.behaviour_turns(q, rng, 0.7)[0][1], q.a, q.b) for q in task.problems("train")
    ]
    assert set(scores) == {1.0, 0.1} and 0.6 < scores.count(1.0) / len(scores) < 0.8


def test_shift_habit_forgets_place_value_consistently() -> None:
    """task.scratchpad_errors=shift: every unskilled demonstration makes the same schoolbook mistake
    (tens partial product not shifted) and adds what it wrote; skilled ones are the correct method."""
    assert long_multiplication(47, 89, shift=False) == ("47*9=423\n47*8=376\n423+376=799\n", 799)
    assert long_multiplication(47, 80, shift=False) == ("47*8=376\n", 376)
    habit = make_task(
        TaskConfig(name="multiplication", scratchpad=True, scratchpad_errors="shift", num_train=50)
    )
    rng = random.Random(0)
    for p in habit.problems("train"):
        (_, never), (_, always) = habit.behaviour_turns(p, rng, 0.0)[0], habit.behaviour_turns(p, rng, 1.0)[0]
        a, b = p.a, p.b
        assert never.endswith(f"<answer>{a * (b % 10) + a * (b // 10)}</answer>")  # the habit, every time
        assert always.endswith(f"<answer>{a * b}</answer>") and f"{a}*{(b // 10) * 10}=" in always
