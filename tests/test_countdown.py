"""Countdown: scoring, the exhaustive solver, problem generation and splits, demonstrations.

Run: pytest tests/test_countdown.py -q
"""

from __future__ import annotations

import itertools
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.config import TaskConfig
from tinyzero.environments import make_task
from tinyzero.environments.arith import evaluate, numbers_used
from tinyzero.environments.countdown import (
    MAX_ATTEMPTS,
    CountdownProblem,
    attempts,
    backward_trace,
    compute_score,
    make_prompt,
    needs,
    reachable_targets,
    score_and_reason,
    search_trace,
    solve,
)

NUMS = [3, 7, 25]


@pytest.mark.parametrize(
    ("solution", "score", "reason"),
    [
        ("<answer>25+3*7</answer>", 1.0, "solved"),
        ("<answer> 7 x 3 + 25 </answer>", 1.0, "solved"),
        ("I think... <answer>3+7+25</answer> no wait <answer>25+3*7</answer>", 1.0, "solved"),
        ("<answer>25+3*7</answer> then <answer>3+7+25</answer>", 0.1, "wrong_value"),  # the last one counts
        ("<answer>3+7+25</answer>", 0.1, "wrong_value"),
        ("<answer>25+21</answer>", 0.1, "wrong_numbers"),
        ("<answer>25+3*7+0</answer>", 0.1, "wrong_numbers"),
        ("<answer>25+3*7*1</answer>", 0.1, "wrong_numbers"),
        ("<answer>25+3+3+7+8</answer>", 0.1, "wrong_numbers"),
        ("<answer>25+3*(7-7)</answer>", 0.1, "wrong_numbers"),
        ("<answer>25/(7-7)*3</answer>", 0.1, "wrong_numbers"),
        ("25+3*7", 0.0, "no_answer"),
        ("<answer>25+3*7", 0.0, "no_answer"),
        ("25+3*7</answer>", 0.0, "no_answer"),
        ("<answer></answer>", 0.0, "no_answer"),
        ("<answer>25+3*7=46</answer>", 0.0, "no_answer"),
        ("<answer>46</answer>", 0.1, "wrong_numbers"),
        ("<answer>25+3**7</answer>", 0.0, "no_answer"),
        ("<answer>__import__('os').system('rm -rf /')</answer>", 0.0, "no_answer"),
        ("", 0.0, "no_answer"),
    ],
)
def test_scores(solution: str, score: float, reason: str) -> None:
    assert score_and_reason(solution, 46, NUMS) == (score, reason)
    assert compute_score(solution, 46, NUMS) == score


def test_division_by_zero_is_well_formed_but_wrong() -> None:
    assert score_and_reason("<answer>5/(2-2)</answer>", 5, [2, 2, 5]) == (0.1, "wrong_value")


def test_fractional_intermediates_are_accepted() -> None:
    assert compute_score("<answer>6/(1-3/4)</answer>", 24, [1, 3, 4, 6]) == 1.0


@pytest.mark.parametrize(
    "solution",
    [
        None,
        123,
        b"<answer>25+3*7</answer>",
        ["<answer>25+3*7</answer>"],
        "<answer>" * 200_000,
        "<answer>" + "1" * 10**6 + "</answer>",
        "<answer>" + "(" * 10**5 + "</answer>",
        "<answer>9**9**9**9</answer>",
        "<answer>\u0662\u0665+3*7</answer>",
        "\U0001f600" * 10**5,
    ],
)
def test_hostile_answers_score_zero_fast(solution: object) -> None:
    t0 = time.perf_counter()
    assert compute_score(solution, 46, NUMS) == 0.0  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 0.5


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda s: f"<answer>{s}</answer>", st.text(alphabet="0123456789+-*/() 37<>answer", max_size=30)
        ),
    ),
    st.integers(-1000, 1000),
    st.lists(st.integers(0, 100), max_size=5),
)
def test_score_never_raises(solution: str, target: int, numbers: list[int]) -> None:
    assert compute_score(solution, target, numbers) in (0.0, 0.1, 1.0)


def _brute_force_targets(numbers: list[int]) -> set[int]:
    """Independent solver: repeatedly replace two numbers by their combination (integer intermediates)."""
    if len(numbers) == 1:
        return {numbers[0]}
    out: set[int] = set()
    for i, j in itertools.combinations(range(len(numbers)), 2):
        a, b = numbers[i], numbers[j]
        rest = [x for k, x in enumerate(numbers) if k not in (i, j)]
        combos = {a + b, a * b, a - b, b - a}
        if b and a % b == 0:
            combos.add(a // b)
        if a and b % a == 0:
            combos.add(b // a)
        for c in combos:
            out |= _brute_force_targets([*rest, c])
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=2, max_size=4))
def test_solver_is_complete_and_correct(numbers: list[int]) -> None:
    expected = {t for t in _brute_force_targets(numbers) if 1 <= t <= 100}
    assert set(reachable_targets(numbers, 1, 100)) == expected
    for t in expected:
        expr = solve(numbers, t, random.Random(t))
        assert expr is not None
        assert evaluate(expr) == t
        assert sorted(numbers_used(expr)) == sorted(numbers)
        assert compute_score(f"<answer>{expr}</answer>", t, numbers) == 1.0


def test_solve_unsolvable() -> None:
    assert solve([1, 1], 5) is None
    assert solve([2, 2], 4) in ("2+2", "2*2")


@pytest.mark.parametrize("overrides", [{}, {"num_numbers": 4, "max_number": 15, "max_target": 60}])
def test_generated_problems_are_solvable(overrides: dict) -> None:
    cfg = TaskConfig(name="countdown", num_train=300, num_test=50, **overrides)
    task = make_task(cfg)
    for split in ("train", "test"):
        for p in task.problems(split):
            assert len(p.numbers) == cfg.num_numbers
            assert all(1 <= x <= cfg.max_number for x in p.numbers)
            assert 1 <= p.target <= cfg.max_target
            expr = solve(p.numbers, p.target)
            assert expr is not None
            assert task.episode(p).step(f"<answer>{expr}</answer>").reward == 1.0
            assert task.optimum(p) == 1.0


def test_splits_disjoint_deterministic_and_prefix_stable() -> None:
    task = make_task(TaskConfig(name="countdown", num_train=400, num_test=60, seed=3))
    train, test = task.problems("train"), task.problems("test")
    assert len(train) == 400 and len(test) == 60
    key = lambda p: (tuple(sorted(p.numbers)), p.target)  # noqa: E731
    assert not {key(p) for p in train} & {key(p) for p in test}
    assert len({key(p) for p in train}) == len(train)
    assert train == task.problems("train")
    assert task.problems("train", 50) == train[:50]
    assert task.problems("test", 0) == []
    other = make_task(TaskConfig(name="countdown", num_train=400, num_test=60, seed=4))
    assert other.problems("train") != train
    assert not {key(p) for p in other.problems("test")} & {key(p) for p in train}  # split ignores the seed
    with pytest.raises(ValueError, match="split"):
        task.problems("valid")


def test_too_small_space_raises() -> None:
    task = make_task(TaskConfig(name="countdown", num_numbers=2, max_number=2, max_target=4))
    with pytest.raises(ValueError, match="too small"):
        task.problems("train", 50)


def test_episode_and_prompt() -> None:
    task = make_task(TaskConfig(name="countdown"))
    problem = CountdownProblem((3, 7, 25), 46)
    ep = task.episode(problem)
    assert ep.prompt == "Use 3 7 25 to make 46\n"
    assert task.describe(problem) == "3 7 25 -> 46"
    res = ep.step("<answer>25+3*7</answer>")
    assert (res.observation, res.reward, res.done) == ("", 1.0, True)
    assert res.info == {"success": True, "format_ok": True, "reason": "solved"}
    with pytest.raises(RuntimeError):
        ep.step("<answer>25+3*7</answer>")
    res = task.episode(problem).step("46")
    assert res.reward == 0.0 and res.info["format_ok"] is False and res.info["reason"] == "no_answer"


def test_behaviour_turns() -> None:
    task = make_task(TaskConfig(name="countdown", num_train=150))
    rng = random.Random(0)
    allowed = {chr(c) for c in range(32, 127)} | {"\n"}
    for p in task.problems("train"):
        for skill, lowest in ((1.0, 1.0), (0.0, 0.1)):
            turns = task.behaviour_turns(p, rng, skill)
            assert len(turns) == 1
            obs, action = turns[0]
            assert obs == task.episode(p).prompt
            assert set(obs + action) <= allowed
            assert compute_score(action, p.target, list(p.numbers)) >= lowest
    # skill 0 is mostly wrong (random expressions), skill 1 varies its expressions.
    p = CountdownProblem((3, 7, 25), 46)
    wrong = [task.behaviour_turns(p, rng, 0.0)[0][1] for _ in range(50)]
    assert sum(compute_score(a, 46, [3, 7, 25]) == 1.0 for a in wrong) < 10
    assert len({task.behaviour_turns(p, rng, 1.0)[0][1] for _ in range(50)}) > 1


def _check_line(line: str) -> tuple[list[int], int]:
    """One attempt line ``a?b=x,x?c=y`` (or ``c?x=y``): both steps computed right; (operands, y)."""
    first, second = line.split(",")
    (e1, x), (e2, y) = first.split("="), second.split("=")
    assert evaluate(e1) == int(x) >= 0 and evaluate(e2) == int(y)
    used = numbers_used(e2)
    assert int(x) in used
    used.remove(int(x))
    return numbers_used(e1) + used, int(y)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=3, max_size=3), st.integers(0, 2**16), st.floats(0, 1))
def test_search_traces_compute_every_line_and_stop_at_the_first_hit(
    numbers: list[int], seed: int, skill: float
) -> None:
    targets = reachable_targets(numbers, 1, 100)
    if not targets:
        return
    rng = random.Random(seed)
    problem = CountdownProblem(tuple(numbers), rng.choice(targets))
    trace = search_trace(problem, rng, skill)
    *lines, answer = trace.split("\n")
    assert 1 <= len(lines) <= MAX_ATTEMPTS and len(set(lines)) == len(lines)
    values = []
    for line in lines:
        operands, y = _check_line(line)
        assert sorted(operands) == sorted(numbers)  # each given number exactly once
        values.append(y)
    assert problem.target not in values[:-1]  # the search stops at its first hit
    score = compute_score(trace, problem.target, numbers)
    assert score == (1.0 if values[-1] == problem.target else 0.1)  # the answer is the last attempt's
    assert evaluate(answer.removeprefix("<answer>").removesuffix("</answer>")) == values[-1]
    if skill == 1.0:
        assert score == 1.0  # a guided search always finds it within MAX_ATTEMPTS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=3, max_size=3))
def test_attempts_reach_every_target_the_solver_reaches(numbers: list[int]) -> None:
    """Skipping negative first results loses no positive target."""
    reached = {a.value for a in attempts(numbers)}
    assert {t for t in reached if 1 <= t <= 100} == set(reachable_targets(numbers, 1, 100))


def test_search_traces_solve_as_often_as_their_skill_says() -> None:
    task = make_task(TaskConfig(name="countdown", num_train=300, scratchpad=True))
    rng = random.Random(0)
    problems = task.problems("train")

    def solved(skill: float) -> float:
        wins = 0
        for p in problems:
            ((obs, action),) = task.behaviour_turns(p, rng, skill)
            assert obs == task.episode(p).prompt
            wins += compute_score(action, p.target, list(p.numbers)) == 1.0
        return wins / len(problems)

    guided, blind = solved(1.0), solved(0.0)
    assert guided == 1.0 and 0.1 < blind < 0.6  # random search finds ~30% within 6 attempts
    assert blind < solved(0.5) < guided


def test_search_trace_needs_three_numbers() -> None:
    with pytest.raises(ValueError, match="3 numbers"):
        attempts([1, 2, 3, 4])


def test_backward_trace_by_hand() -> None:
    """Use 13 14 2 to make 40, worked on paper: z=13, 14 and 2 make 16 28 12 7; the last step with 13
    could be 27+13 or 53-13 (40*13 > 400, 40/13 and 13/40 are not whole): no; z=14, 13 and 2 make
    15 26 11, and 26+14 is the first last step: 13*2+14."""
    assert backward_trace(CountdownProblem((13, 14, 2), 40)) == (
        "13: 14+2=16 14*2=28 14-2=12 14/2=7 | 27+13 53-13 no\n"
        "14: 13+2=15 13*2=26 13-2=11 | 26+14 yes\n"
        "<answer>(13*2)+14</answer>"
    )
    # z used last on the left (z - p): 20-15=5 with 15=3*5, after 25-20 failed
    assert backward_trace(CountdownProblem((20, 3, 5), 5)) == (
        "20: 3+5=8 3*5=15 5-3=2 | 25-20 20-15 yes\n<answer>20-(3*5)</answer>"
    )
    # 27 from 5 5 2: z=5 (5 and 2 make 7 10 3; 22+5 32-5 135/5: no); the second 5 is the same line;
    # z=2: 5*5=25 and 25+2
    lines = backward_trace(CountdownProblem((5, 5, 2), 27)).split("\n")
    assert [line.split(":")[0] for line in lines[:-1]] == ["5", "2"]
    assert lines[-1] == "<answer>(5*5)+2</answer>"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=3, max_size=3), st.integers(1, 100))
def test_backward_trace_is_complete_and_computed_right(numbers: list[int], target: int) -> None:
    """Judged against the exhaustive solver: a trace exists exactly for the reachable targets, its answer
    scores 1.0, every pair item is computed right, every last step written gives the target, a line
    stops at its first last step whose other value the pair made ("yes") or says "no" after all of
    them, and the lines take each distinct number as z in the prompt's order until the first "yes"."""
    problem = CountdownProblem(tuple(numbers), target)
    if target not in reachable_targets(numbers, 1, 100):
        with pytest.raises(ValueError, match="no solution"):
            backward_trace(problem)
        return
    trace = backward_trace(problem)
    assert compute_score(trace, target, numbers) == 1.0
    *lines, answer = trace.split("\n")
    assert answer.startswith("<answer>") and len(lines) <= 3
    assert [int(line.split(":")[0]) for line in lines] == list(dict.fromkeys(numbers))[: len(lines)]
    for i, line in enumerate(lines):
        z = int(line.split(":")[0])
        made_part, steps_part = line.split(": ", 1)[1].split(" | ")
        *steps, verdict = steps_part.split()
        made = {}
        for item in made_part.split():
            expr, value = item.split("=")
            assert evaluate(expr) == int(value), line
            made.setdefault(int(value), expr)
        rest = list(numbers)
        rest.remove(z)
        assert all(sorted(numbers_used(e)) == sorted(rest) for e in made.values())
        hits = []
        for step in steps:
            assert evaluate(step) == target and z in numbers_used(step), line
            others = list(numbers_used(step))
            others.remove(z)
            hits.append(others[0] in made)
        assert verdict == ("yes" if any(hits) else "no") and (verdict == "yes") == (i == len(lines) - 1)
        assert not any(hits[:-1])  # a line stops at its first hit


@pytest.mark.parametrize(("numbers", "target"), [((36, 24, 20), 30), ((27, 18, 32), 48), ((40, 15, 12), 50)])
def test_backward_trace_is_complete_with_larger_numbers(numbers: tuple[int, ...], target: int) -> None:
    """task.max_number above 20: the only solutions divide a pair's product over 400 (20*36/24, 27*32/18,
    15*40/12), and the search still lists that last step."""
    trace = backward_trace(CountdownProblem(numbers, target))
    assert compute_score(trace, target, list(numbers)) == 1.0 and "/" in trace.split("<answer>")[1]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100), st.integers(1, 20), st.integers(0, 400))
def test_needs_are_exactly_the_values_one_last_operation_can_use(target: int, z: int, p: int) -> None:
    """p is listed iff some + - * / between p and z (either order, whole results) gives the target."""
    ways = [p + z, p - z, z - p, p * z]
    ways += [p // z] if p % z == 0 else []
    ways += [z // p] if p > 0 and z % p == 0 else []
    assert (p in {n.value for n in needs(target, z)}) == (target in ways)


def test_backward_corpus_searches_as_often_as_its_skill_says() -> None:
    """The skilled demonstrations are the whole search and always solve; the others guess at once."""
    task = make_task(TaskConfig(name="countdown", num_train=300, scratchpad=True, trace="backward"))
    rng = random.Random(0)
    problems = task.problems("train")

    def demos(skill: float) -> list[str]:
        out = []
        for p in problems:
            ((obs, action),) = task.behaviour_turns(p, rng, skill)
            assert obs == make_prompt(p)
            out.append(action)
        return out

    assert all(d == backward_trace(p) for d, p in zip(demos(1.0), problems, strict=True))
    assert all(d.startswith("<answer>") for d in demos(0.0))
    searched = sum(not d.startswith("<answer>") for d in demos(0.4)) / len(problems)
    assert 0.3 < searched < 0.5


def test_make_task_unknown() -> None:
    with pytest.raises(
        ValueError,
        match="unknown task 'chess'; choose one of countdown, countdown_turns, frozenlake, multiplication",
    ):
        make_task(TaskConfig(name="chess"))
