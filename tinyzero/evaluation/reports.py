"""What a person reads: the console table, the JSON file, the markdown report with failure examples,
and pictures of FrozenLake episodes (drawn by ``tinyzero.plots``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tinyzero.environments.base import Task
from tinyzero.environments.frozenlake_env import parse_actions, render_grid
from tinyzero.evaluation.episodes import Record, episode_path, explain_failure, failure_kind
from tinyzero.evaluation.running import Evaluation
from tinyzero.evaluation.schema import EPISODE_KEYS, EPISODE_LABELS, FAILURE_KINDS, FAILURE_TITLES, _f
from tinyzero.rollout import Episode


def console_table(figures: dict) -> str:
    """A readable plain-text summary of ``figures``."""
    src, s = figures["source"], figures["settings"]
    head = f"{src['kind']} {src['path']}" + (f" (iteration {src['iteration']})" if src["iteration"] else "")
    lines = [
        head,
        f"task {figures['task']['name']}: {s['problems']} held-out problems, {s['samples']} samples each, "
        f"seed {s['seed']}, {s['device']}",
        "",
        f"{'figure':<28}{'greedy':>10}{'sampled':>10}   (sampled: {s['samples']} per problem)",
    ]
    for key in EPISODE_KEYS:
        label = EPISODE_LABELS.get(key, key)
        lines.append(f"{label:<28}{_f(figures['greedy'][key]):>10}{_f(figures['sampled'][key]):>10}")
    lines.append(
        f"{'success / optimum':<28}{_f(figures['greedy_success_over_optimum']):>10}"
        f"{_f(figures['sampled_success_over_optimum']):>10}"
    )
    lines.append("")
    lines.append("  ".join(f"pass@{k}={_f(v)}" for k, v in figures["pass_at_k"].items()))
    lines.append(
        f"mean optimum {_f(figures['mean_optimum'])}   KL(π‖π_ref) {_f(figures['kl']['value'])} "
        f"(nats per episode, on the sampled held-out episodes)"
    )
    if len(figures["groups"]) > 1 or figures["groups"][0]["size"] is not None:
        lines.append("")
        w = max(22, *(len(g["name"]) + 1 for g in figures["groups"]))  # "6x6 not slippery, 14 turns"
        lines.append(f"{'group':<{w}}{'problems':>9}{'greedy':>9}{'sampled':>9}{'optimum':>9}{'g/opt':>8}")
        for g in figures["groups"]:
            lines.append(
                f"{g['name']:<{w}}{g['problems']:>9}{_f(g['greedy_success']):>9}{_f(g['sampled_success']):>9}"
                f"{_f(g['mean_optimum']):>9}{_f(g['greedy_success_over_optimum'], 2):>8}"
            )
    rm = figures["reads_map"]
    if rm is not None:
        lines.append("")
        lines.append(
            f"fixed plan [{', '.join(rm['fixed_plan'])}]: followed on {_f(rm['fixed_plan_share'], 2)} "
            f"of maps, solves {_f(rm['fixed_plan_success'], 2)} open-loop"
        )
        lines.append(
            f"greedy success where the fixed plan fails ({rm['maps_where_plan_fails']} maps): "
            f"{_f(rm['greedy_success_where_plan_fails'])}  (0 = the policy ignores the map)"
        )
    fails = {k: v for k, v in figures["failures"]["greedy"].items() if v}
    if fails:
        lines.append("")
        lines.append("greedy failures: " + ", ".join(f"{FAILURE_TITLES[k]} {v}" for k, v in fails.items()))
    for note in [figures["kl"]["note"] if figures["kl"]["value"] is None else None, *figures["notes"]]:
        if note:
            lines.append(f"note: {note}")
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def write_json(figures: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(figures), indent=1, allow_nan=False) + "\n")
    return path


def _transcript(task: Task, episode: Episode) -> str:
    """The episode as the model saw and wrote it (observations, then "> action" lines)."""
    if not episode.turns:
        return task.episode(episode.problem).prompt.rstrip("\n") + "\n> (no room left to answer)"
    if task.name != "frozenlake":
        return f"{episode.turns[0].observation.rstrip()}\n{episode.actions[0]}"
    parts = []
    for t, (turn, action) in enumerate(zip(episode.turns, episode.actions), 1):
        parts.append(f"turn {t}:\n{turn.observation.rstrip()}\n> {action!r}")
    # The grid after the last move: where the episode ended (X in a hole, W on the goal, P on the ice).
    desc = tuple(episode.problem)
    r, c = episode_path(desc, episode, task.cfg)[-1]
    parts.append(f"after turn {len(episode.turns)} ({episode.reason}):\n{render_grid(desc, r, c)}")
    return "\n\n".join(parts)


def map_text(task: Task, problem: Any) -> str:
    """The problem in the notation the model sees: FrozenLake maps as rows of P _ O G joined by '/'."""
    if task.name != "frozenlake":
        return task.describe(problem)
    desc = tuple(problem)
    start = "".join(desc).index("S")
    return render_grid(desc, *divmod(start, len(desc))).replace("\n", "/")


def markdown_report(ev: Evaluation, examples: int = 3, picture: str | None = None) -> str:
    """The report: figures, groups, the fixed-plan check, KL, and failure examples grouped by kind."""
    f = ev.figures
    src, s = f["source"], f["settings"]
    out = [f"# Evaluation of `{src['path']}`", ""]
    out.append(
        f"{src['kind'].replace('_', ' ')}"
        + (f", iteration {src['iteration']}" if src["iteration"] is not None else "")
        + (f", algorithm `{src['algorithm']}`" if src["algorithm"] else "")
        + f", task `{f['task']['name']}`, base `{src['base_key']}`. {s['problems']} held-out problems"
        f" (test split), {s['samples']} samples each at temperature {s['temperature']}"
        f" (top-k {s['top_k']}, top-p {s['top_p']}), seed {s['seed']}, {f['elapsed_s']:.1f} s."
    )
    out += ["", "## Figures", "", "| figure | greedy | sampled |", "|---|---|---|"]
    for key in EPISODE_KEYS:
        out.append(f"| {EPISODE_LABELS.get(key, key)} | {_f(f['greedy'][key])} | {_f(f['sampled'][key])} |")
    out.append(
        f"| success / optimum | {_f(f['greedy_success_over_optimum'])} | "
        f"{_f(f['sampled_success_over_optimum'])} |"
    )
    out += ["", "| " + " | ".join(f"pass@{k}" for k in f["pass_at_k"]) + " | mean optimum | KL(π‖π_ref) |"]
    out.append("|" + "---|" * (len(f["pass_at_k"]) + 2))
    out.append(
        "| "
        + " | ".join(_f(v) for v in f["pass_at_k"].values())
        + f" | {_f(f['mean_optimum'])} | {_f(f['kl']['value'])} |"
    )
    out += [
        "",
        f"KL: {f['kl']['note']}" + (f" (reference `{f['kl']['reference']}`)" if f["kl"]["reference"] else ""),
    ]
    if f["groups"][0]["size"] is not None:
        out += ["", "## By map size and slipperiness", ""]
        out += [
            "| group | problems | greedy | sampled | optimum | greedy / optimum |",
            "|---|---|---|---|---|---|",
        ]
        for g in f["groups"]:
            out.append(
                f"| {g['name']} | {g['problems']} | {_f(g['greedy_success'])} | {_f(g['sampled_success'])} | "
                f"{_f(g['mean_optimum'])} | {_f(g['greedy_success_over_optimum'])} |"
            )
    rm = f["reads_map"]
    if rm is not None:
        out += ["", "## Does the policy read the map?", ""]
        out.append(
            f"Fixed plan (most common greedy action per turn): `{' | '.join(rm['fixed_plan']) or '(none)'}`."
            f" Greedy episodes that follow it: {_f(rm['fixed_plan_share'])}. Played open-loop without"
            f" slipping it solves {_f(rm['fixed_plan_success'])} of the maps. On the"
            f" {rm['maps_where_plan_fails']} maps where it fails the policy's greedy success is"
            f" **{_f(rm['greedy_success_where_plan_fails'])}** "
            f"(a policy that ignores the map scores 0 there; where the plan succeeds: "
            f"{_f(rm['greedy_success_where_plan_succeeds'])})."
        )
    if picture:
        out += ["", f"![evaluated episodes]({picture})"]
    if f["notes"]:
        out += ["", *[f"Note: {n}" for n in f["notes"]]]
    out += ["", "## Failure cases", ""]
    counts_g, counts_s = f["failures"]["greedy"], f["failures"]["sampled"]
    n_greedy, n_sampled = len(ev.records), sum(len(r.sampled) for r in ev.records)
    out += ["| kind | greedy | sampled |", "|---|---|---|"]
    for kind in FAILURE_KINDS:
        if counts_g[kind] or counts_s[kind]:
            out.append(
                f"| {FAILURE_TITLES[kind]} | {counts_g[kind]} / {n_greedy} | {counts_s[kind]} / {n_sampled} |"
            )
    by_kind: dict[str, list[tuple[Record, Episode]]] = {}
    pairs = [(rec, rec.greedy) for rec in ev.records] + [
        (rec, ep) for rec in ev.records for ep in rec.sampled
    ]
    for rec, ep in pairs:  # greedy failures first (deterministic), sampled ones after
        kind = failure_kind(rec.task, ep)
        if kind is not None:
            by_kind.setdefault(kind, []).append((rec, ep))
    for kind in FAILURE_KINDS:
        items = by_kind.get(kind, [])
        if not items:
            continue
        out += ["", f"### {FAILURE_TITLES[kind]} (greedy {counts_g[kind]}, sampled {counts_s[kind]})", ""]
        for rec, ep in items[:examples]:
            mode = "greedy" if ep is rec.greedy else "sampled"
            out.append(
                f"- `{map_text(rec.task, rec.problem)}` ({mode}, reward {ep.reward:+.2f}, "
                f"optimum {rec.optimum:.2f}): {explain_failure(rec.task, ep)}"
            )
            out += ["", "  ```", *[f"  {line}" for line in _transcript(rec.task, ep).split("\n")], "  ```"]
    if not by_kind:
        out += ["", "No failures."]
    return "\n".join(out) + "\n"


def pick_pictured(records: list[Record], n: int) -> list[Record]:
    """Up to ``n`` records to draw: one greedy failure of each kind, then successes, then the rest."""
    chosen: list[Record] = []
    seen: set[str] = set()
    for rec in records:
        kind = failure_kind(rec.task, rec.greedy)
        if kind is not None and kind not in seen:
            seen.add(kind)
            chosen.append(rec)
    chosen += [rec for rec in records if rec.greedy.success][:2]
    chosen += [rec for rec in records if rec not in chosen]
    return chosen[:n]


def write_episode_pictures(ev: Evaluation, n: int, path: str | Path) -> Path | None:
    """Draw ``n`` greedy FrozenLake episodes (a failure of each kind first) into ``path``; None otherwise."""
    if n < 1 or ev.figures["task"]["name"] != "frozenlake":
        return None
    from tinyzero.plots import plot_frozenlake_episodes  # matplotlib only when pictures are asked for

    items = []
    for rec in pick_pictured(ev.records, n):
        kind = failure_kind(rec.task, rec.greedy)
        outcome = "solved" if kind is None else kind
        slip = ", slippery" if rec.task.cfg.is_slippery else ""
        cells = episode_path(tuple(rec.problem), rec.greedy, rec.task.cfg)
        moves = sum(
            len(parse_actions(a, rec.task.cfg.max_actions_per_turn) or []) for a in rec.greedy.actions
        )
        stuck = sum(a == b for a, b in zip(cells, cells[1:]))
        turns = len(rec.greedy.turns)
        detail = f"{turns} turn{'s' * (turns != 1)}, {moves} move{'s' * (moves != 1)}"
        if stuck and not slip:
            detail += f" ({stuck} into the wall)"
        items.append(
            {
                "desc": tuple(rec.problem),
                "path": cells,
                "outcome": outcome,
                "caption": f"{'solved' if kind is None else FAILURE_TITLES[kind]}{slip}\n{detail}\n"
                f"reward {rec.greedy.reward:+.2f}, optimum {rec.optimum:.2f}",
            }
        )
    return plot_frozenlake_episodes(items, path, f"Greedy held-out episodes of {source_name(ev.figures)}")


def source_name(figures: dict) -> str:
    """What was evaluated, for picture titles: the run (or model directory) and the iteration."""
    src = figures["source"]
    name = Path(src["run_dir"]).name if src["run_dir"] else Path(src["path"]).name
    return name + (f" (iteration {src['iteration']})" if src["iteration"] is not None else "")
