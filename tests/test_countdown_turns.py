"""Multi-turn countdown: the Gymnasium contract, every way an episode ends, the move parser on hostile text,
demonstrations that solve every generated problem, and one real training iteration.

Run: pytest tests/test_countdown_turns.py -q        (~30 s; the last test pre-trains a tiny base)
"""

from __future__ import annotations

import builtins
import itertools
import random
from pathlib import Path

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzero.config import load_config
from tinyzero.environments import CountdownTurnsEnv, make_task
from tinyzero.environments.arith import MAX_ABS
from tinyzero.environments.countdown_turns import (
    ENV_ID,
    RESTART,
    SEARCH_SLIP,
    apply,
    legal_moves,
    parse,
    solvable,
)
from tinyzero.errors import UserError
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.pretrain import build_corpus
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]


def env_on(numbers: list[int], target: int, **kw) -> CountdownTurnsEnv:
    env = CountdownTurnsEnv(**kw)
    env.reset(seed=0, options={"numbers": numbers, "target": target})
    return env


@pytest.mark.parametrize(("restart", "show_tried"), [(False, False), (True, False), (True, True)])
def test_passes_gymnasiums_env_checker_and_is_registered(restart: bool, show_tried: bool) -> None:
    check_env(CountdownTurnsEnv(restart=restart, show_tried=show_tried), skip_render_check=True)
    env = gymnasium.make(ENV_ID, restart=restart, show_tried=show_tried)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and obs.endswith(f"-> {info['target']}")
    assert solvable(list(info["numbers"]), info["target"])  # a random problem is always solvable


def test_solved_is_one_number_left_equal_to_the_target() -> None:
    env = env_on([13, 14, 2], 40)
    obs, r, term, trunc, info = env.step("13*2")
    assert (obs, r, term, trunc, info["reason"]) == ("14 26 -> 40", 0.0, False, False, "moving")
    obs, r, term, trunc, info = env.step("26+14")
    assert (obs, r, term, trunc, info["reason"], info["success"]) == (
        "40 -> 40",
        1.0,
        True,
        False,
        "solved",
        True,
    )


@pytest.mark.parametrize(
    "action",
    ["13*3", "13*13", "14/13", "1+2+3", "13 * ", "", "Down", "<answer>13*2+14</answer>", "13*2\n14", RESTART],
)
def test_an_invalid_move_ends_the_episode_with_zero(action: str) -> None:
    env = env_on([13, 14, 2], 40)  # restart off: "restart" is invalid too
    obs, r, term, trunc, info = env.step(action)
    assert (r, term, trunc, info["reason"], info["format_ok"]) == (0.0, True, False, "invalid_action", False)
    assert obs == "13 14 2 -> 40"  # nothing applied


def test_a_dead_end_scores_like_a_wrong_countdown_answer() -> None:
    env = env_on([13, 14, 2], 40)
    env.step("13+14")
    obs, r, term, trunc, info = env.step("27*2")
    assert (obs, r, term, info["reason"], info["format_ok"]) == ("54 -> 40", 0.1, True, "wrong_value", True)


def test_restart_puts_the_numbers_back_and_turns_run_out() -> None:
    env = env_on([13, 14, 2], 40, restart=True, max_turns=4)
    env.step("13+14")
    obs, r, term, trunc, info = env.step("27*2")
    assert (obs, r, term, trunc) == ("54 -> 40", 0.0, False, False)  # may start over
    obs, r, term, trunc, info = env.step(" Restart ")
    assert (obs, r, term, trunc, info["reason"]) == ("13 14 2 -> 40", 0.0, False, False, "moving")
    obs, r, term, trunc, info = env.step("13*2")  # the 4th turn: out of turns
    assert (r, term, trunc, info["reason"]) == (0.1, False, True, "out_of_turns")
    with pytest.raises(RuntimeError):
        env.step("26+14")


def test_duplicate_numbers_are_two_positions_and_division_is_exact() -> None:
    assert apply([5, 5, 3], "5-5") == [3, 0]
    assert apply([5, 3], "5-5") is None  # only one 5
    assert apply([12, 4, 7], "12/4") == [7, 3] and apply([12, 5], "12/5") is None
    assert apply([3, 0], "3/0") is None
    assert apply([3, 7], "3-7") == [-4]  # negative results allowed (as the solver allows them)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60), numbers=st.lists(st.integers(-50, 50), min_size=2, max_size=4))
def test_parser_never_raises_never_executes_and_keeps_the_count(text: str, numbers: list[int]) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("model text was executed")

    saved = builtins.eval, builtins.exec
    builtins.eval, builtins.exec = refuse, refuse
    try:
        after = apply(numbers, text)
    finally:
        builtins.eval, builtins.exec = saved
    assert after is None or (len(after) == len(numbers) - 1 and all(isinstance(x, int) for x in after))


@settings(max_examples=100, deadline=None)
@given(
    actions=st.lists(st.one_of(st.text(max_size=12), st.sampled_from(["1+2", "2*3", RESTART])), max_size=10)
)
def test_rewards_are_in_the_documented_set(actions: list[str]) -> None:
    env = env_on([1, 2, 3], 9, restart=True, show_tried=True, max_turns=6)
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        assert r in (0.0, 0.1, 1.0) and env.observation_space.contains(obs)
        if term or trunc:
            break


def test_show_tried_lists_each_first_move_once_after_the_numbers() -> None:
    env = env_on([13, 14, 2], 40, restart=True, show_tried=True, max_turns=9)
    seen = [env.step(a)[0] for a in ("13 * 2", "26-14", RESTART, "13*2", RESTART, "14+2", "16+13")]
    assert seen == [
        "14 26 -> 40 tried 13*2",  # spaces in the action do not make a different move
        "12 -> 40 tried 13*2",
        "13 14 2 -> 40 tried 13*2",
        "14 26 -> 40 tried 13*2",  # the same first move again is not listed twice
        "13 14 2 -> 40 tried 13*2",
        "13 16 -> 40 tried 13*2 14+2",
        "29 -> 40 tried 13*2 14+2",  # only first moves (from the original numbers) are listed
    ]
    assert all(env.observation_space.contains(obs) for obs in seen)
    longest = env_on([19, 18, 17], 100, restart=True, show_tried=True, max_turns=20)
    firsts = ["19-18", "18-19", "17*19", "18*17", "19*18", "17+18", "18+19", "17-19", "19-17", "17*18"]
    for a in firsts:
        obs = longest.step(a)[0]
        obs = longest.step(RESTART)[0]
    assert longest.observation_space.contains(obs) and obs.endswith("tried " + " ".join(firsts))
    assert env_on([13, 14, 2], 40, restart=True).step("13*2")[0] == "14 26 -> 40"  # off: as before


def test_show_tried_without_restart_is_refused() -> None:
    with pytest.raises(ValueError, match="show_tried needs restart"):
        CountdownTurnsEnv(show_tried=True)
    with pytest.raises(UserError, match="task.show_tried"):
        load_config(None, ["task.name=countdown_turns", "task.show_tried=true"])


def test_demonstrations_avoid_the_first_moves_they_were_shown_as_tried() -> None:
    cfg = load_config(None, ["task.name=countdown_turns", "task.restart=true", "task.show_tried=true"])
    cfg.task.num_train, cfg.task.max_turns = 300, 9
    task = make_task(cfg.task)
    rng = random.Random(2)
    after_restart = 0
    for problem in task.problems("train"):
        start = sorted(problem.numbers)
        for obs, action in task.behaviour_turns(problem, rng, skill=0.5):
            numbers_text, _, tried_text = obs.partition(" tried ")
            numbers = [int(x) for x in numbers_text.split(" -> ")[0].split()]
            tried = tried_text.split()
            if sorted(numbers) != start or not tried or action == RESTART:
                continue
            after_restart += 1
            good = [a for a, after in legal_moves(numbers) if solvable(after, problem.target)]
            assert action not in tried or set(good) <= set(tried), (obs, action)
    assert after_restart > 50  # the rule was exercised, not vacuously true


@pytest.mark.parametrize("restart", [False, True])
def test_skilled_demonstrations_solve_every_problem_and_random_ones_are_legal(restart: bool) -> None:
    cfg = load_config(None, ["task.name=countdown_turns", f"task.restart={restart}", "task.num_train=200"])
    task = make_task(cfg.task)
    rng = random.Random(1)
    for problem in task.problems("train"):
        skilled = task.behaviour_turns(problem, rng, skill=1.0)
        assert len(skilled) == len(problem.numbers) - 1  # one operation a turn, no detour
        episode = task.episode(problem)
        results = [episode.step(action) for _, action in skilled]
        assert results[-1].reward == 1.0 and results[-1].info["success"]
        for obs, action in task.behaviour_turns(problem, rng, skill=0.0):
            numbers = [int(x) for x in obs.split(" -> ")[0].split()]
            assert action == RESTART or action in dict(legal_moves(numbers))


def search_config(**overrides: object) -> object:
    keys = {"task.name": "countdown_turns", "task.restart": "true", "task.show_tried": "true"}
    keys.update({"task.demos": "search", "task.num_train": "300", "task.max_turns": "12"}, **overrides)
    return load_config(None, [f"{k}={v}" for k, v in keys.items()])


def value_of(a: int, op: str, b: int) -> int | None:
    """The rules, derived here and not taken from the env: exact division only, |result| <= MAX_ABS."""
    if op == "/":
        return a // b if b and a % b == 0 else None
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    return value if abs(value) <= MAX_ABS else None


def finishing_moves(numbers: list[int], target: int) -> set[str]:
    """Moves that reach the target at once from two numbers."""
    (a, b), out = numbers, set()
    for x, y in ((a, b), (b, a)):
        out |= {f"{x}{op}{y}" for op in "+-*/" if value_of(x, op, y) == target}
    return out


def search_order(numbers: list[int]) -> list[str]:
    """The documented try order: for each pair of positions in order a+b, a*b, larger-smaller; then for
    each pair larger/smaller where exact; a move text already listed is not repeated."""
    out: list[str] = []
    pairs = [(numbers[i], numbers[j]) for i, j in itertools.combinations(range(len(numbers)), 2)]
    moves = [m for a, b in pairs for m in ((a, "+", b), (a, "*", b), (max(a, b), "-", min(a, b)))]
    moves += [(max(a, b), "/", min(a, b)) for a, b in pairs]
    for x, op, y in moves:
        if f"{x}{op}{y}" not in out and value_of(x, op, y) is not None:
            out.append(f"{x}{op}{y}")
    return out


@pytest.mark.parametrize("skill", [0.0, 0.3, 1.0])
def test_search_demonstrations_try_first_moves_in_order_and_finish_or_restart_exactly(skill: float) -> None:
    """`task.demos: search`: first moves in the documented order (the first one a working guess with
    probability skill); from two numbers a move that makes the target when one exists, else `restart`."""
    task = make_task(search_config(**{"task.max_turns": 40}).task)
    rng = random.Random(3)
    restarts = finishes = guesses = slips = 0
    problems = task.problems("train")
    for problem in problems:
        turns = task.behaviour_turns(problem, rng, skill)
        order, firsts = search_order(list(problem.numbers)), []
        episode = task.episode(problem)
        for obs, action in turns:
            numbers = [int(x) for x in obs.split(" -> ")[0].split()]
            if len(numbers) == len(problem.numbers):
                firsts.append(action)
            elif len(numbers) == 1:  # after a slip: always start over
                assert action == RESTART and numbers != [problem.target], (obs, action)
            else:
                finishing = finishing_moves(numbers, problem.target)
                slip = not finishing and action != RESTART
                assert action in finishing or action == RESTART or slip, (obs, action)
                assert not (finishing and action == RESTART), (obs, action)
                assert not slip or value_of(*parse(action)) != problem.target
                restarts += action == RESTART
                finishes += action in finishing
                slips += slip
            result = episode.step(action)
        assert result.done and result.info["success"], turns  # 40 turns: every order reaches a solution
        guessed = firsts[0] != order[0]
        guesses += guessed
        assert firsts[guessed:] == order[: len(firsts) - guessed], (problem, firsts)
        assert not guessed or solvable(apply(list(problem.numbers), firsts[0]), problem.target)
    assert finishes == len(problems)
    if skill == 1.0:
        assert restarts == slips == 0
    else:
        assert restarts > 100
        assert abs(slips / (slips + restarts) - SEARCH_SLIP) < 0.06, (slips, restarts)  # of dead ends
    assert (guesses > 30) == (skill > 0)


@pytest.mark.parametrize("keep", [0.0, 0.25, 1.0])
def test_search_corpus_learns_the_given_fraction_of_restarts_and_no_slip(keep: float) -> None:
    """`task.demo_restarts`: the corpus (one sequence per learned turn, history 0) keeps each restart
    from two numbers with probability `keep`, every restart from one number (after a slip), no slip,
    and every first and finishing move. With 40 turns every demonstration is solved, so each holds
    one finishing move, and each failed first move ends in a restart or a slip (then a restart from
    one number): restarts shown from two numbers = first moves − finishing moves − slips."""
    cfg = search_config(**{"task.demo_restarts": keep, "task.max_turns": 40})
    task, tok = make_task(cfg.task), CharTokenizer()
    corpus = build_corpus(task, tok, task.problems("train"), 4000, skill=0.0, history=0, seed=5)
    count = {"first": 0, "finish": 0, "restart from 2": 0, "restart from 1": 0}
    for ids, mask in corpus:
        action = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
        left, target = tok.decode([i for i, m in zip(ids, mask, strict=True) if not m]).split(" -> ")
        numbers = [int(x) for x in left.split()]
        if len(numbers) == 3:
            count["first"] += 1
        elif action == RESTART:
            count[f"restart from {len(numbers)}"] += 1
        else:  # a learned move from two numbers always reaches the target
            assert value_of(*parse(action)) == int(target.split()[0]), (numbers, action)
            count["finish"] += 1
    assert sum(count.values()) == len(corpus)
    slips = count["restart from 1"]
    shown = count["first"] - count["finish"] - slips  # ±1: the corpus may end inside an episode
    assert shown > 2 * count["finish"]  # restarts are the majority of what the search shows
    assert abs(count["restart from 2"] - keep * shown) <= 0.05 * shown + 1, (count, shown)
    assert abs(slips / (slips + shown) - SEARCH_SLIP) < 0.05, count


def after_move(numbers: list[int], move: str) -> list[int]:
    """The numbers left after a legal move: the two operands taken out, the value put last."""
    x, op, y = parse(move)
    rest = list(numbers)
    rest.remove(x)
    rest.remove(y)
    return [*rest, value_of(x, op, y)]


def test_check_drills_show_the_two_numbers_after_every_first_move_with_the_search_answer() -> None:
    """`task.demo_checks=1`: a demonstration is, for each first move of the search order, the
    observation the search would show after it (two numbers, the moves tried so far) and the move
    that finishes from there, or `restart` where none does. Derived here from the rules."""
    cfg = search_config(**{"task.demo_checks": 1.0})
    task, rng = make_task(cfg.task), random.Random(3)
    finishable = states = 0
    for problem in task.problems("train")[:150]:
        numbers, target = list(problem.numbers), problem.target
        order = search_order(numbers)
        expected = [(k, after_move(numbers, m)) for k, m in enumerate(order)]
        expected = [(k, after) for k, after in expected if len(after) == 2]
        drill = task.behaviour_turns(problem, rng, 0.0)
        assert len(drill) == len(expected)
        for (obs, action), (k, after) in zip(drill, expected, strict=True):
            shown = " ".join(map(str, after))
            assert obs == f"{shown} -> {target} tried {' '.join(order[: k + 1])}\n"
            finishes = finishing_moves(after, target)
            assert action in finishes if finishes else action == RESTART, (obs, action)
            finishable += bool(finishes)
            states += 1
    assert 0.1 < finishable / states < 0.4  # mostly dead ends, as in a search


@pytest.mark.parametrize("share", [0.0, 0.3])
def test_check_drills_replace_the_given_share_of_searches(share: float) -> None:
    """A search starts from three numbers, a drill from two; `demo_checks=0` leaves only searches."""
    task = make_task(search_config(**{"task.demo_checks": share}).task)
    rng = random.Random(4)
    demos = [task.behaviour_turns(p, rng, 0.0) for p in task.problems("train")[:300]]
    drills = sum(len(d[0][0].split(" -> ")[0].split()) == 2 for d in demos)
    assert abs(drills / len(demos) - share) < 0.07, drills


def test_without_drills_the_search_corpus_draws_exactly_what_it_drew_before_them() -> None:
    """`demo_checks=0` takes no random draw: search bases built before the option keep their corpus
    (and their cache key, test_pretrain), so a cached base is never a model of another corpus."""
    task = make_task(search_config().task)
    old, new = random.Random(7), random.Random(7)
    for problem in task.problems("train")[:50]:
        assert task.behaviour_turns(problem, new, 0.0) == task.search_turns(problem, old, 0.0)


def test_check_drills_need_search_demonstrations_and_no_history() -> None:
    with pytest.raises(UserError, match="task.demo_checks"):
        search_config(**{"task.demo_checks": 0.5, "task.demos": "heuristic"})
    with pytest.raises(UserError, match="task.demo_checks"):
        search_config(**{"task.demo_checks": 0.5, "rollout.history": -1})
    with pytest.raises(UserError, match="task.demo_checks"):
        search_config(**{"task.demo_checks": 0.5, "task.num_numbers": 4})


def test_search_demonstrations_need_the_restart_and_tried_options() -> None:
    for bad in (
        {"task.show_tried": "false"},
        {"task.name": "countdown", "task.show_tried": "false", "task.restart": "false"},
    ):
        with pytest.raises(UserError, match="task.demos"):
            search_config(**bad)


def test_one_real_training_iteration(cache_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        [
            f"run.out_dir={tmp_path}",
            f"pretrain.cache_dir={cache_dir}",
            "task.name=countdown_turns",
            "task.restart=true",
            "task.max_turns=4",
            "training.total_iterations=1",
        ],
    )
    summary = TinyZeroTrainer(cfg, progress=False).train()
    assert summary["task"] == "countdown_turns" and summary["iterations"] == 1
    assert summary["generated_tokens"] > 0
