"""Figures and analyses of played episodes: the summary figures, FrozenLake's fixed plan and whether
the policy reads the map, the cells an episode visited, and why an episode failed (``FAILURE_KINDS``).

Everything here works on episodes and ``Record``s alone (no model, no files), so the reports and
the tests use it on hand-built episodes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tinyzero.environments.arith import evaluate_tree, numbers_used, parse_expression
from tinyzero.environments.base import Task
from tinyzero.environments.countdown import CLOSE, OPEN, extract_answer
from tinyzero.environments.frozenlake_env import _DELTAS, ACTION_NAMES, FrozenLakeTextEnv, parse_actions
from tinyzero.evaluation.schema import FAILURE_KINDS
from tinyzero.metrics import mean
from tinyzero.rollout import Episode


@dataclass
class Record:
    """One held-out problem: its group, its greedy episode and its K sampled episodes."""

    group: str
    task: Task
    problem: Any
    optimum: float
    greedy: Episode
    sampled: list[Episode]


def episode_figures(episodes: list[Episode]) -> dict:
    return {
        "success": mean([e.success for e in episodes]),
        "format_rate": mean([e.format_ok for e in episodes]),
        "mean_reward": mean([e.reward for e in episodes]),
        "response_length": mean([e.num_action_tokens for e in episodes]),
        "turns": mean([len(e.turns) for e in episodes]),
    }


def normalize_action(text: str, max_actions: int) -> str:
    """A turn's text in canonical form ("Down Right"), or the stripped raw text if it does not parse."""
    ids = parse_actions(text, max_actions)
    return " ".join(ACTION_NAMES[i] for i in ids) if ids is not None else text.strip()


def fixed_plan(records: list[Record]) -> list[str]:
    """The most common greedy action at each turn among the maps still playing at that turn."""
    plan: list[str] = []
    for t in range(max((len(rec.greedy.actions) for rec in records), default=0)):
        votes = Counter(
            normalize_action(rec.greedy.actions[t], rec.task.cfg.max_actions_per_turn)
            for rec in records
            if len(rec.greedy.actions) > t
        )
        plan.append(votes.most_common(1)[0][0])
    return plan


def replay_plan(desc: tuple[str, ...], plan: list[str], task_cfg: Any) -> bool:
    """Does ``plan`` (turn texts, played open-loop without slipping) reach the goal of map ``desc``?"""
    env = FrozenLakeTextEnv(
        desc=desc,
        is_slippery=False,
        max_turns=task_cfg.max_turns,
        max_actions_per_turn=task_cfg.max_actions_per_turn,
        invalid_penalty=task_cfg.invalid_penalty,
    )
    env.reset(seed=0)
    try:
        for text in plan:
            _, _, terminated, truncated, info = env.step(text)
            if terminated or truncated:
                return bool(info["success"])
        return False
    finally:
        env.close()


def reads_map(records: list[Record]) -> dict:
    """Figures that tell a map-reading policy from one that plays a memorised fixed plan."""
    plan = fixed_plan(records)

    def follows(rec: Record) -> bool:
        k = rec.task.cfg.max_actions_per_turn
        return all(normalize_action(a, k) == plan[t] for t, a in enumerate(rec.greedy.actions))

    plan_ok = [replay_plan(tuple(rec.problem), plan, rec.task.cfg) for rec in records]
    fails = [rec for rec, ok in zip(records, plan_ok) if not ok]
    wins = [rec for rec, ok in zip(records, plan_ok) if ok]
    return {
        "fixed_plan": plan,
        "fixed_plan_share": mean([follows(rec) for rec in records]),
        "fixed_plan_success": mean(plan_ok),
        "maps_where_plan_fails": len(fails),
        "greedy_success_where_plan_fails": mean([r.greedy.success for r in fails]) if fails else None,
        "greedy_success_where_plan_succeeds": mean([r.greedy.success for r in wins]) if wins else None,
    }


def _player(observation: str) -> tuple[int, int] | None:
    for r, line in enumerate(observation.strip("\n").split("\n")):
        for c, ch in enumerate(line):
            if ch in "PXW":
                return r, c
    return None


Cell = tuple[int, int]


def turn_cells(desc: tuple[str, ...], episode: Episode, task_cfg: Any) -> tuple[Cell, list[list[Cell]]]:
    """The start cell and, per turn, the cells the player stood on after that turn's moves.

    Why per turn: the animated GIF draws one frame per move and needs to know which turn a move
    belongs to; ``episode_path`` is the same cells flattened. Non-slippery: every move replayed exactly
    (a move into the wall repeats the cell; an unparseable turn has no cell). Slippery: where the next
    turn's observation shows the player (nothing when it did not move), and a last cell inferred from
    the outcome (hole / goal) next to it.
    """
    n = len(desc)
    flat = "".join(desc)
    start = divmod(flat.index("S"), n)
    pos, groups = start, []
    k = task_cfg.max_actions_per_turn

    def move(at: Cell, a: int) -> Cell:
        r, c = at[0] + _DELTAS[a][0], at[1] + _DELTAS[a][1]
        return (r, c) if 0 <= r < n and 0 <= c < n else at

    for t, (turn, text) in enumerate(zip(episode.turns, episode.actions)):
        groups.append([])
        seen = _player(turn.observation)
        if seen is not None and seen != pos:
            groups[max(t - 1, 0)].append(seen)  # a slip moved the player somewhere else than intended
            pos = seen
        last = t == len(episode.turns) - 1
        if task_cfg.is_slippery and not last:
            continue  # the next turn's observation says where the player really went
        at, steps = pos, []
        for a in parse_actions(text, k) or []:
            at = move(at, a)
            steps.append(at)
            if desc[at[0]][at[1]] in "HG":
                break
        want = {"hole": "H", "solved": "G"}.get(episode.reason)
        if task_cfg.is_slippery and want and (not steps or desc[steps[-1][0]][steps[-1][1]] != want):
            near = [move(pos, a) for a in range(4)]
            steps = [p for p in near if desc[p[0]][p[1]] == want][:1]  # where it must have slipped to
        groups[t] += steps
        pos = steps[-1] if steps else pos
    return start, groups


def episode_path(desc: tuple[str, ...], episode: Episode, task_cfg: Any) -> list[Cell]:
    """Cells visited, start first. Non-slippery: every move, replayed exactly. Slippery: the positions
    seen at the start of each turn, and a last cell inferred from the outcome (hole / goal) next to it."""
    start, groups = turn_cells(desc, episode, task_cfg)
    return [start, *(cell for cells in groups for cell in cells)]


def failure_kind(task: Task, episode: Episode) -> str | None:
    """Why ``episode`` failed (one of FAILURE_KINDS), or None if it succeeded."""
    if episode.success:
        return None
    if episode.reason == "context_full" and (not episode.turns or task.name == "frozenlake"):
        return "context_full"
    if task.name == "frozenlake":
        if episode.reason == "hole":
            return "hole"
        if episode.reason == "out_of_turns":
            return "out_of_turns" if episode.format_ok else "invalid_action"
        return episode.reason if episode.reason in FAILURE_KINDS else "other"
    text = episode.actions[-1] if episode.actions else ""
    q = episode.problem
    if task.name == "countdown":
        from tinyzero.environments.countdown import score_and_reason

        _, reason = score_and_reason(text, q.target, q.numbers)
    elif task.name == "multiplication":
        from tinyzero.environments.multiplication import score_and_reason

        _, reason = score_and_reason(text, q.a, q.b)
    else:
        reason = episode.reason
    if reason == "solved":  # the reward function said otherwise: trust the episode
        reason = episode.reason
    return reason if reason in FAILURE_KINDS else "other"


def count_failures(episodes: list[Episode], records: list[Record], sampled: bool) -> dict[str, int]:
    tasks = [rec.task for rec in records for _ in (rec.sampled if sampled else [rec.greedy])]
    counts = Counter(failure_kind(t, e) for t, e in zip(tasks, episodes))
    return {kind: counts.get(kind, 0) for kind in FAILURE_KINDS}


def _fmt_value(v: Any) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def explain_failure(task: Task, episode: Episode) -> str:
    """One line saying what went wrong, in the problem's own terms."""
    kind = failure_kind(task, episode)
    if kind is None:
        return "solved"
    q = episode.problem
    text = episode.actions[-1] if episode.actions else ""
    if kind == "context_full":
        return f"the prompt no longer fit the model's context window after {len(episode.turns)} turns"
    if task.name == "countdown":
        answer = extract_answer(text)
        if kind == "no_answer":
            if answer is None:
                return f"no complete `{OPEN}…{CLOSE}` in the output"
            return f"answer {answer!r} is not an arithmetic expression"
        if kind == "wrong_numbers":
            return f"uses {sorted(numbers_used(answer))} but must use {sorted(q.numbers)}, each exactly once"
        value = evaluate_tree(parse_expression(answer))
        shown = "undefined (division by zero or too large)" if value is None else _fmt_value(value)
        return f"{answer} = {shown}, the target is {q.target}"
    if task.name == "multiplication":
        answer = extract_answer(text)
        if kind == "no_answer":
            if answer is None:
                return f"no complete `{OPEN}…{CLOSE}` in the output"
            return f"answer {answer!r} is not a plain integer"
        got = int(answer.strip())
        return f"answered {got}, but {q.a}*{q.b} = {q.a * q.b} (off by {got - q.a * q.b:+d})"
    if task.name == "frozenlake":
        path = episode_path(tuple(q), episode, task.cfg)
        r, c = path[-1]
        where = f"row {r + 1}, column {c + 1}"
        k = task.cfg.max_actions_per_turn
        if kind == "hole":
            return f"fell in the hole at {where} on turn {len(episode.turns)}"
        if kind == "out_of_turns":
            return f"still on the ice at {where} after {len(episode.turns)} turns (max_turns)"
        if kind == "invalid_action":
            bad = [(t, a) for t, a in enumerate(episode.actions) if parse_actions(a, k) is None]
            t, a = bad[0]
            return (
                f"{len(bad)} of {len(episode.actions)} turns unparseable, e.g. turn {t + 1}: {a!r} (expected "
                f"1..{k} of Left/Down/Right/Up); ran out of turns at {where}"
            )
    return f"episode ended with reason {episode.reason!r}"
