"""Print docs/tasks.md: each task's prompt and answer format, with examples produced by the code itself.

    python scripts/make_task_examples.py > docs/tasks.md

Everything below the title is computed (problems from the default config's held-out split, scores from
the real scorers, grids from the real environment), so the page cannot drift from the code: re-run this
script after changing a task and commit the result.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyzero.config import Config  # noqa: E402
from tinyzero.context import Turn, build_context  # noqa: E402
from tinyzero.environments import countdown as cd  # noqa: E402
from tinyzero.environments import make_task  # noqa: E402
from tinyzero.environments import multiplication as mul  # noqa: E402
from tinyzero.environments import reverse as rev  # noqa: E402
from tinyzero.environments.frozenlake_env import (  # noqa: E402
    ACTION_NAMES,
    FrozenLakeTextEnv,
    optimal_policy,
    parse_actions,
    value_iteration,
)
from tinyzero.evaluation import FAILURE_KINDS, FAILURE_TITLES  # noqa: E402
from tinyzero.models.tokenizer import CharTokenizer  # noqa: E402


def code(text: str, lang: str = "text") -> str:
    return f"```{lang}\n{text.rstrip(chr(10))}\n```"


def cell(text: str) -> str:
    """A markdown table cell showing ``text`` literally."""
    return "`" + text.replace("|", "\\|").replace("\n", "\\n") + "`" if text else "(empty)"


def task_for(name: str, **kw):
    cfg = Config()
    return make_task(dataclasses.replace(cfg.task, name=name, **kw)), cfg


def countdown_section() -> list[str]:
    task, cfg = task_for("countdown")
    q = task.problems("test", 1)[0]
    prompt = task.episode(q).prompt
    right = cd.solve(q.numbers, q.target)
    wrong_value = "+".join(str(x) for x in q.numbers)
    outputs = [
        (f"<answer>{right}</answer>", "correct expression"),
        (f"<answer>{right.replace('+', ' + ')}</answer>", "spaces are fine"),
        (
            f"I think <answer>{wrong_value}</answer> no, <answer>{right}</answer>",
            "only the last answer counts",
        ),
        (f"<answer>{wrong_value}</answer>", "well-formed, wrong value"),
        (f"<answer>{q.numbers[0]}+{q.numbers[1]}</answer>", "a number missing"),
        (f"<answer>{q.numbers[0]}/({q.numbers[1]}-{q.numbers[1]})+{q.numbers[2]}</answer>", "a number twice"),
        (f"<answer>{right}=={q.target}</answer>", "not an expression"),
        (f"{right}", "no answer tag"),
        (f"<answer>{right}", "tag not closed"),
    ]
    rows = ["| model output | score | reason | |", "|---|---|---|---|"]
    for text, note in outputs:
        score, reason = cd.score_and_reason(text, q.target, q.numbers)
        rows.append(f"| {cell(text)} | {score} | `{reason}` | {note} |")
    demo = task.behaviour_turns(q, random.Random(1), skill=0.0)[0][1]
    return [
        "## countdown",
        "",
        f"Combine the given numbers, each exactly once, with `+ - * /` and parentheses to reach the target. "
        f"Defaults: {cfg.task.num_numbers} numbers from 1..{cfg.task.max_number}, targets in "
        f"1..{cfg.task.max_target}, every target reachable (checked by an exhaustive solver when the "
        f"problem is drawn). One turn. A real held-out problem (`task.describe`: `{task.describe(q)}`), "
        f"the prompt exactly as the model sees it, and a correct answer:",
        "",
        code(prompt + f"<answer>{right}</answer>"),
        "",
        f"Scores of `tinyzero.environments.countdown.compute_score(solution, target={q.target}, "
        f"numbers={list(q.numbers)})` (the `reason` is what `score_and_reason` returns and what the "
        f"evaluator groups failures by):",
        "",
        *rows,
        "",
        "The expression is read by a small safe parser (`tinyzero/environments/arith.py`: integers, "
        "`+ - * /` with `x X × ÷` as aliases, parentheses, unary minus; exact fractions, no `eval`; caps on "
        "length, nesting, digits and magnitude). Division is exact: `7/2*2` is 7. Division by zero or an "
        "over-large value is a wrong value (0.1).",
        "",
        f"The base model's corpus pairs prompts with `<answer>EXPR</answer>` where EXPR is a correct "
        f"expression with probability `pretrain.skill`, else a random well-formed expression over the "
        f"given numbers, e.g. `{demo}`.",
        "",
        f"With `task.scratchpad: true` (3 numbers) the corpus searches before it answers: one attempt per "
        f"line (two numbers combined, then the result with the third), stopping at the first attempt that "
        f"hits the target or after {cd.MAX_ATTEMPTS}, then the answer of the last attempt. Every line is "
        f"computed right; with probability `pretrain.skill` a hitting attempt is placed among the first "
        f"{cd.MAX_ATTEMPTS}, otherwise the search is blind (random attempts, which find a hit within "
        f"{cd.MAX_ATTEMPTS} about 30 % of the time). Only the answer is scored. For the same problem:",
        "",
        code(prompt + cd.search_trace(q, random.Random(3), skill=1.0)),
        "",
        "With `task.trace: backward` as well (`configs/countdown.yaml`) the search is complete and in a "
        "fixed order: one line for each distinct number `z`, taken in the prompt's order as the number "
        "used last. The line writes what the other two numbers can make (sum, product, difference, "
        "whole quotient), then, one by one, the last operations with `z` that would give the target "
        "(`33+16` for 49 means the pair must make 33; then target+z, z−target, target×z up to 400 "
        "or the pair's largest value, "
        "target/z and z/target when whole), and `yes` as soon as one of them uses a value the pair made "
        "(`no` when none does). The answer puts the pair's expression, in brackets, into that last "
        "operation. At most 3 lines (~100 characters on average); every solvable problem has a `yes` "
        "line. A `pretrain.skill` share of the demonstrations is this search; the rest answer at once "
        "with a random well-formed expression, so the base has seen both and RL learns which pays. For "
        "the same problem:",
        "",
        code(prompt + cd.backward_trace(q)),
    ]


def demonstration_lines(task, problem, rng: random.Random, skill: float) -> list[str]:
    """A corpus episode played in its environment: the prompt, then each action (``> ``) and what followed."""
    episode = task.episode(problem)
    lines = [episode.prompt.rstrip("\n")]
    for _, action in task.behaviour_turns(problem, rng, skill):
        result = episode.step(action)
        lines.append(f"> {action}")
        lines.append(
            result.observation.rstrip("\n") or f"(done: {result.info['reason']}, reward {result.reward})"
        )
    return lines


def countdown_turns_section() -> list[str]:
    from tinyzero.environments import countdown_turns as ct

    task, cfg = task_for("countdown_turns", restart=True, max_turns=6)
    q = task.problems("test", 1)[0]
    shown = demonstration_lines(task, q, random.Random(0), skill=1.0)
    search_task, _ = task_for("countdown_turns", restart=True, show_tried=True, demos="search", max_turns=20)
    searched = demonstration_lines(search_task, q, random.Random(1), skill=0.0)
    start = list(q.numbers)
    a, b = start[0], start[1]
    cases = [
        (f"{a}+{b}", "two of the numbers combined"),
        (f"{a} * {b}", "spaces are fine"),
        (f"{a}+{a}" if start.count(a) < 2 else f"{a}+{a + 100}", "a number that is not there"),
        (f"{a * b + 1}/{a}", "not two of the numbers"),
        (f"<answer>{a}+{b}</answer>", "one operation, nothing else"),
        (ct.RESTART, "restart (with `task.restart: true`)"),
    ]
    rows = ["| action on the first turn | numbers after | |", "|---|---|---|"]
    for action, note in cases:
        after = start if action == ct.RESTART else ct.apply(start, action)
        shown_after = "invalid: the episode ends, reward 0" if after is None else " ".join(map(str, after))
        rows.append(f"| {cell(action)} | {shown_after} | {note} |")
    return [
        "## countdown_turns",
        "",
        "Countdown in turns (`task.name: countdown_turns`, Gymnasium id `tinyzero/CountdownTurns-v0`): the "
        "same problems as `countdown`, but each turn the agent writes ONE operation on two of the numbers "
        "it has, and the environment answers with the numbers left and the target. The agent chooses; the "
        "environment computes. A real held-out problem played by a skilled demonstration (`> ` marks the "
        "agent's actions):",
        "",
        code("\n".join(shown)),
        "",
        *rows,
        "",
        "Results must be integers (division only when exact); negative results are allowed, as the solver "
        "that generates the problems allows them, so every problem is solvable in one turn fewer than it "
        "has numbers. One number left equal to the target: reward 1, `solved`. One number left that is not "
        "the target: reward 0.1 and the end (`wrong_value`), or with `task.restart: true` the agent may "
        "write `restart` to get the original numbers back and search again, within `task.max_turns` "
        "(then 0.1, `out_of_turns`). The base model's corpus plays each move, with probability "
        "`pretrain.skill`, as a step of a solution from the current numbers (or `restart` when none is "
        "left), else a random legal move.",
        "",
        "With `task.show_tried: true` as well (it needs `task.restart`), every observation ends with the "
        "first moves tried so far, each once: `3 11 16 -> 49 tried 3+11 16-3`. A policy that sees only the "
        "current observation (`rollout.history: 0`) otherwise meets the same start after every restart and, "
        "decoding greedily, tries the same first move again. In the corpus a first move then avoids the "
        "moves listed, unless every move that keeps the target reachable is among them.",
        "",
        "`task.demos: search` (with `restart` and `show_tried`) demonstrates a search instead: first "
        "moves in a fixed order (for each pair of numbers in the order given `a+b`, `a*b` and larger minus "
        "smaller; then each pair's larger over smaller where it divides exactly), each followed by the "
        "move that reaches the target from the two numbers left, or by `restart` when none does; with "
        "probability `pretrain.skill` the first try is a move that works instead. Every try before the "
        "divisions is legal whatever the numbers, so the next try is a function of the last one listed, "
        "and with 3 numbers the move after a first move is a check of at most six operations; what RL can "
        "add is which first move to try first. The base learns from only a share of the restarts "
        f"(`task.demo_restarts`, {cfg.task.demo_restarts} by default; the episodes keep them all): a "
        "search restarts after most first moves, and a base that learns every restart writes `restart` "
        f"where one operation would finish. At {ct.SEARCH_SLIP:.0%} of dead ends the demonstration "
        "writes a wrong move instead, then `restart` from the one number left: the base learns that "
        "restart, not the wrong move, so a wrong check costs it two turns rather than the episode. "
        f"`task.demo_checks` ({cfg.task.demo_checks} by default) replaces that share of the searches with "
        "check drills: the two numbers left after every first move of the order, each with the search's "
        "answer there (the move that finishes, or `restart`). A search shows that check only up to the "
        "first move that works; a drill shows it after every first move. The same problem, searched with "
        "skill 0 and 20 turns:",
        "",
        code("\n".join(searched)),
    ]


def multiplication_section() -> list[str]:
    task, cfg = task_for("multiplication")
    q = task.problems("test", 1)[0]
    prompt = task.episode(q).prompt
    p = q.a * q.b
    outputs = [
        (f"<answer>{p}</answer>", "correct"),
        (f"<answer> {p} </answer>", "surrounding spaces are fine"),
        (f"<answer>{p + 10}</answer>", "another integer"),
        (f"<answer>-{p}</answer>", "another integer"),
        (f"<answer>{p:,}</answer>", "not a plain integer"),
        (f"<answer>{q.a}*{q.b}</answer>", "not a plain integer"),
        (f"{p}", "no answer tag"),
    ]
    rows = ["| model output | score | reason | |", "|---|---|---|---|"]
    for text, note in outputs:
        score, reason = mul.score_and_reason(text, q.a, q.b)
        rows.append(f"| {cell(text)} | {score} | `{reason}` | {note} |")
    return [
        "## multiplication",
        "",
        f"Compute a × b; defaults {cfg.task.digits_a}-digit × {cfg.task.digits_b}-digit factors "
        f"(`task.digits_a`, `task.digits_b`). One turn. A real held-out problem and its answer:",
        "",
        code(prompt + f"<answer>{p}</answer>"),
        "",
        f"Scores of `tinyzero.environments.multiplication.compute_score(solution, a={q.a}, b={q.b})`:",
        "",
        *rows,
        "",
        "The content of the last `<answer>...</answer>` must be a plain integer (optional `-`, ASCII "
        "digits, at most 20 of them). The base model's corpus writes the true product with probability "
        "`pretrain.skill`, else the product with one or two digits changed.",
        "",
        "With `task.scratchpad: true` the corpus writes long multiplication before the answer (only the "
        "answer is scored; a noisy demonstration makes one mistake in one step and computes faithfully "
        "from it), for the same problem:",
        "",
        code(prompt + mul.long_multiplication(q.a, q.b)[0] + f"<answer>{p}</answer>"),
    ]


def reverse_section() -> list[str]:
    task, _ = task_for("reverse")
    q = task.problems("test", 1)[0]
    prompt, back = task.episode(q).prompt, q.word[::-1]
    outputs = [
        (f"<answer>{back}</answer>", "correct"),
        (f"<answer>{q.word}</answer>", "the copy: the base model's habit"),
        (f"<answer>{back[1:]}</answer>", "other letters"),
        (f"<answer>{back.upper()}</answer>", "not lowercase letters"),
        (f"<answer> {back}</answer>", "not lowercase letters"),
        (back, "no answer tag"),
    ]
    rows = ["| model output | score | reason | |", "|---|---|---|---|"]
    for text, note in outputs:
        score, reason = rev.score_and_reason(text, q.word)
        rows.append(f"| {cell(text)} | {score} | `{reason}` | {note} |")
    return [
        "## reverse",
        "",
        f"Write a word of {min(rev.LENGTHS)}–{max(rev.LENGTHS)} lowercase letters backwards (no "
        "palindromes); one turn. The task added as docs/extending.md's worked example. A real held-out "
        "problem:",
        "",
        code(prompt + f"<answer>{back}</answer>"),
        "",
        f"Scores of `tinyzero.environments.reverse.score_and_reason(solution, word={q.word!r})`:",
        "",
        *rows,
        "",
        "The base model's corpus reverses the word with probability `pretrain.skill` and otherwise copies "
        "it: a consistent wrong habit that only the reward tells apart from the right answer.",
    ]


def watching_section() -> list[str]:
    """How to animate episodes (written by hand: the flags are evaluate.py's)."""
    return [WATCHING]


WATCHING = """\
## Watching episodes: `evaluate.py --gif`

`--gif FILE` writes an animated GIF of greedy held-out episodes, one after another, for the two
multi-turn tasks (any other task is a one-line error, exit code 2, before anything is evaluated):

```bash
python evaluate.py --checkpoint runs/default --episodes 6 --samples 1 --gif runs/default/episodes.gif
```

- **Which episodes**: the greedy episodes of the first `--gif-episodes` (default 6) held-out problems, in
  the evaluation's order: a fair sample, not a chosen one (the PNG pictures of `--report` put a failure
  of each kind first). With `--sizes`/`--slippery` the groups take turns. The GIF shows at most the
  problems evaluated, so pass `--episodes` ≥ `--gif-episodes`; `--samples 1` keeps the rest of the
  evaluation short (about 10 s for the default FrozenLake model on one CPU thread).
- **frozenlake**: the map drawn as the `--report` pictures draw it (same code,
  `tinyzero.plots.draw_lake`): holes, goal, the arrows of the moves so far and the agent as a purple
  disc, one frame at the start and one per move (a turn of k moves is k frames; a turn that does not
  parse is one frame where nothing moves, a move into the wall one where the agent stays). On slippery
  ice a frame is where the player ended up after the turn, read from the next observation.
- **countdown_turns**: the target, the numbers left after each operation and the operations so far
  (`13*2 = 26`, `restart`, `'13*5' invalid`), one frame per turn.
- **The end**: the last state stays 4 frames (1.6 s) with a green background and `SUCCESS: reached the
  goal` / `SOLVED: made 40`, or a red one and `FAILURE: fell in a hole` / `out of turns` / `invalid move,
  then out of turns` (`FAILED: dead end: 29 is not 40`, `invalid operation`, ...); FrozenLake also marks
  the last cell (green star, red X, orange square) as the PNG does. The title says which episode and turn.
- **Format**: 360 × 420 pixels (countdown_turns 360 × 300), 400 ms a frame, looping; six FrozenLake
  episodes take about 250 KB. A grey bar along the bottom grows every frame, so no two frames are equal
  and the GIF has exactly one frame per state. The same checkpoint and seed always give the same bytes.
- In Python: `E.write_evaluation_gif(ev, n, path)` after `E.evaluate_source`, or
  `E.write_episode_gif([(task, episode), ...], path)` for any episodes; `E.gif_frames(...)` returns the
  state each frame draws (agent cell, path so far, numbers left, how it ended). Tests:
  `tests/test_gif.py`.

![Six greedy held-out FrozenLake episodes of a RAGEN + A*PO run](img/frozenlake_episodes.gif)"""  # noqa: E501 (markdown lines are kept whole)


def shortest_walk(desc: tuple[str, ...], target: str) -> list[str]:
    """Fewest moves from the start, over frozen cells, onto a ``target`` cell (breadth-first search)."""
    n = len(desc)
    start = divmod("".join(desc).index("S"), n)
    paths: dict[tuple[int, int], list[str]] = {start: []}
    queue = [start]
    for r, c in queue:
        for a, (dr, dc) in enumerate(((0, -1), (1, 0), (0, 1), (-1, 0))):
            nxt = (r + dr, c + dc)
            if 0 <= nxt[0] < n and 0 <= nxt[1] < n and nxt not in paths:
                paths[nxt] = paths[(r, c)] + [ACTION_NAMES[a]]
                if desc[nxt[0]][nxt[1]] == target:
                    return paths[nxt]
                if desc[nxt[0]][nxt[1]] in "SF":
                    queue.append(nxt)
    return []


def frozenlake_section() -> list[str]:
    task, cfg = task_for("frozenlake")
    t = cfg.task
    desc = task.problems("test", 2)[1]
    env = FrozenLakeTextEnv(desc=desc, max_turns=t.max_turns, invalid_penalty=t.invalid_penalty)
    obs, _ = env.reset(seed=0)
    # γ < 1 makes the greedy policy take a shortest path (with γ = 1 "wait by the wall" is optimal too)
    policy = optimal_policy(desc, False, gamma=0.9)
    lines = []
    while True:
        word = ACTION_NAMES[int(policy[env.state])]
        nxt, reward, term, trunc, info = env.step(word)
        lines.append((obs, word, nxt, reward, info["reason"]))
        obs = nxt
        if term or trunc:
            break
    transcript = []
    for i, (seen, word, _, reward, reason) in enumerate(lines, 1):
        transcript.append(
            f"turn {i}: the model sees\n{seen}\nand writes `{word}` → reward {reward}, {reason}"
        )
    final = lines[-1][2]

    # falling in a hole: the shortest walk over the ice into one, played in the real environment
    hole_env = FrozenLakeTextEnv(desc=desc, max_turns=t.max_turns)
    hole_env.reset(seed=0)
    hole_moves, hole_obs = shortest_walk(desc, "H"), ""
    for word in hole_moves:
        hole_obs, *_ = hole_env.step(word)

    parse_rows = ["| turn text | max_actions_per_turn | parsed as |", "|---|---|---|"]
    for text, k in [
        ("Down", 1),
        ("down", 1),
        ("  Right\n", 1),
        ("Down Right", 1),
        ("Down Right", 3),
        ("down,right, UP", 3),
        ("Down Right Down Right", 3),
        ("Jump", 1),
        ("", 1),
    ]:
        ids = parse_actions(text, k)
        shown = " ".join(ACTION_NAMES[i] for i in ids) if ids is not None else "invalid turn"
        parse_rows.append(f"| {cell(text)} | {k} | {shown} |")
    horizon = t.max_turns * t.max_actions_per_turn
    slip = value_iteration(desc, True, horizon=horizon)
    tok = CharTokenizer()
    ctx_turns = [Turn(lines[0][0] + "\n", tok.encode(lines[0][1], eos=True))]
    ctx0 = tok.decode(build_context(tok, ctx_turns, lines[1][0] + "\n", 0)[1:])
    ctx_all = build_context(tok, ctx_turns, lines[1][0] + "\n", -1)
    shown_all = "".join(
        "<bos>" if i == tok.bos_id else "<eos>" if i == tok.eos_id else tok.decode([i]) for i in ctx_all
    )
    return [
        "## frozenlake",
        "",
        f"Gymnasium's `FrozenLake-v1` as text (env id `tinyzero/FrozenLakeText-v0`): random solvable "
        f"{t.size}×{t.size} maps (`generate_random_map`, `task.p_frozen` = {t.p_frozen}), "
        f"`task.is_slippery` = {t.is_slippery}, at most `task.max_turns` = {t.max_turns} turns of "
        f"`task.max_actions_per_turn` = {t.max_actions_per_turn} move(s). The grid: `P` player, `_` frozen "
        f"(the start too, once the player has left it), `O` hole, `G` goal; `X` = the player fell in a "
        f"hole, `W` = the player is on the goal. A real held-out map (`task.describe`: "
        f"`{task.describe(desc)}`, Gymnasium's letters S start, F frozen, H hole, G goal) played by the "
        f"value-iteration policy:",
        "",
        code("\n\n".join(transcript)),
        "",
        "After the last move the environment renders",
        "",
        code(final),
        "",
        f"and the episode ends with `success` = True and total reward {sum(x[3] for x in lines)}. "
        f"Falling in a hole instead (`{' '.join(hole_moves)}` from the start) ends the episode with "
        f"reward 0 and `reason` = `hole`; the last grid shows the `X`:",
        "",
        code(hole_obs or "(no hole on this map)"),
        "",
        "Rewards and episode end:",
        "",
        "| event | reward | episode |",
        "|---|---|---|",
        "| reach the goal | +1 | ends, `solved` |",
        "| fall in a hole | 0 | ends, `hole` (moves left in that turn are dropped) |",
        f"| unparseable turn | −{t.invalid_penalty} (`task.invalid_penalty`) | no move; the turn counts |",
        f"| {t.max_turns} turns without reaching the goal | 0 | truncated, `out_of_turns` |",
        "",
        "What a turn may say (`parse_actions`): 1..`max_actions_per_turn` words from Left/Down/Right/Up, "
        "any case, separated by spaces or commas, at most 100 characters:",
        "",
        *parse_rows,
        "",
        f"The ceiling is each map's optimal success probability by value iteration over Gymnasium's own "
        f"transition table within {horizon} moves (`task.optimum`): 1.0 for every solvable non-slippery "
        f"map; this map slippery: {slip:.3f}. The evaluator reports success / optimum.",
        "",
        "**Exact greedy success (`evaluate.py --exact`).** On slippery ice one greedy episode per map "
        "measures a policy with binomial noise (± 0.034 on 200 maps at success 0.35), as large as the "
        "differences RL makes there. With a Markov context (`rollout.history: 0`) and one move a turn the "
        "greedy policy is a fixed move per cell, so `--exact` asks the model once for every cell and "
        "evaluates that policy on Gymnasium's transition table over the turn limit "
        "(`tinyzero.evaluation.exact`, `policy_value`): a line `exact greedy success, 4x4 slippery: 0.352 "
        "(optimum 0.413 = 0.852 of it)` per group, and the key `exact` in `--json`. On non-slippery maps "
        "it equals the greedy episode's outcome map by map (tested), on slippery maps the mean of "
        "infinitely many greedy episodes.",
        "",
        "What the model is given before each turn is set by `rollout.history`. With the default 0 (a "
        "Markov context) turn 2 above is just",
        "",
        code(ctx0),
        "",
        "and with `rollout.history=-1` the whole episode so far, as one token sequence (only the actions "
        "and their `<eos>` are trained):",
        "",
        code(shown_all),
        "",
        "The base model's corpus plays episodes whose every move is, with probability `pretrain.skill`, "
        "a move toward the goal that ignores holes, else a random move that stays on the grid. With "
        "`task.demos: optimal` the skilled move is value iteration's action instead (discount 0.95, so "
        "ties go to the faster route): on non-slippery maps a step of a shortest path, on slippery ice the "
        "move that keeps away from holes (often into a wall: a slip then goes sideways, never backwards). "
        'On slippery ice "toward the goal" is no skill at all: followed on every move for 30 turns it '
        "reaches the goal on 0.064 of the held-out 4×4 maps, value iteration's action on 0.410, the "
        "optimum (best move per turn left) being 0.413.",
    ]


MEANINGS = {
    "no_answer": "countdown/multiplication: no complete `<answer>...</answer>`, or its content is not an "
    "expression / plain integer (score 0.0)",
    "wrong_numbers": "countdown: a well-formed expression that does not use every given number exactly once",
    "wrong_value": "a well-formed answer with the wrong value (countdown: also division by zero; "
    "countdown_turns: the last number left is not the target)",
    "hole": "frozenlake: fell in a hole",
    "out_of_turns": "frozenlake, countdown_turns: every turn valid, but not solved within `task.max_turns`",
    "invalid_action": "frozenlake: ran out of turns after at least one unparseable turn; countdown_turns: "
    "an invalid operation (the episode ends there)",
    "context_full": "the prompt (with the history kept by `rollout.history`) no longer fit "
    "`model.max_seq_len` with room for `rollout.max_new_tokens`",
    "other": "any other ending (should not happen)",
}


def summary_section() -> list[str]:
    kinds = "\n".join(f"| `{k}` | {FAILURE_TITLES[k]} | {MEANINGS[k]} |" for k in FAILURE_KINDS)
    return [
        "## What scores 1.0 / 0.1 / 0.0",
        "",
        "| task | 1.0 | 0.1 | 0.0 |",
        "|---|---|---|---|",
        "| countdown | the last `<answer>` is an expression using every given number exactly once and "
        "equal to the target | a well-formed expression with the wrong numbers or the wrong value | no "
        "complete `<answer>...</answer>`, or its content is not an expression |",
        "| countdown_turns | one number left, equal to the target | a dead end or out of turns, every move "
        "valid | an invalid operation |",
        "| multiplication | the last `<answer>` holds a×b | it holds another plain integer | no answer, or "
        "not a plain integer |",
        "| reverse | the last `<answer>` holds the word reversed | other lowercase letters | no answer, or "
        "any other character |",
        "| frozenlake | +1 when the goal is reached (the episode's reward is the sum over turns) | — | "
        "hole or out of turns; each unparseable turn subtracts `task.invalid_penalty` |",
        "",
        "`train.py`'s `compute_reward` receives the whole episode and may reshape this. The evaluator "
        "(`python evaluate.py --checkpoint ... --report eval.md`) sorts failed episodes into these kinds:",
        "",
        "| kind | report heading | meaning |",
        "|---|---|---|",
        kinds,
    ]


def main() -> None:
    parts = [
        "# Tasks: prompts, answers and scores",
        "",
        "<!-- generated by `python scripts/make_task_examples.py > docs/tasks.md`: edit the script -->",
        "",
        "Every task is text in, text out: the model reads a prompt (a line ending in a newline, or a grid) "
        "and writes an action that ends with its end-of-sequence token. Characters are tokens (a fixed "
        "character vocabulary, `tinyzero/models/tokenizer.py`). Countdown and multiplication are one-turn "
        "episodes; FrozenLake runs several turns. Problems come from the task's seeded generator; a "
        "problem is held out (test split) when a hash of its canonical form says so (about 1 in 10), so "
        "train and test never share a problem. All examples below are produced by "
        "`scripts/make_task_examples.py` from the default configuration.",
        "",
        *countdown_section(),
        "",
        *countdown_turns_section(),
        "",
        *multiplication_section(),
        "",
        *frozenlake_section(),
        "",
        *reverse_section(),
        "",
        *summary_section(),
        "",
        *watching_section(),
    ]
    print("\n".join(parts))


if __name__ == "__main__":
    main()
