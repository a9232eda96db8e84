"""Animated GIFs of greedy episodes: FrozenLake (the agent moving on its map) and countdown_turns (the
numbers left after each operation), several episodes one after another in one file.

    python evaluate.py --checkpoint runs/default --episodes 6 --samples 1 --gif episodes.gif

Two steps, so that tests can check each on its own: ``gif_frames`` turns episodes into a list of frame
states (pure data: where the agent stands, the path so far, the numbers left, how it ended), and
``write_episode_gif`` draws one picture per state (the FrozenLake map with ``tinyzero.plots.draw_lake``,
the same code as the PNG pictures) and saves them with matplotlib's ``PillowWriter``.

Frames per episode: one at the start, one per move (FrozenLake: a turn of k moves is k frames, a turn
that does not parse is one frame where nothing moves; countdown_turns: one per turn), then
``HOLD_FRAMES`` copies of the last state marked SUCCESS / FAILURE (green / red background and a line
saying why). A progress bar along the bottom grows every frame: no two consecutive frames are equal,
so Pillow does not merge them and the GIF's frame count is the number of states.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyzero.environments.base import Task
from tinyzero.environments.countdown_turns import RESTART
from tinyzero.environments.frozenlake_env import ACTION_NAMES, parse_actions
from tinyzero.errors import UserError
from tinyzero.evaluation.episodes import Cell, Record, failure_kind, turn_cells
from tinyzero.evaluation.reports import source_name
from tinyzero.evaluation.running import Evaluation
from tinyzero.rollout import Episode

GIF_TASKS = ("frozenlake", "countdown_turns")
FPS = 2.5  # 400 ms a frame: a GIF stores centiseconds, so this duration is kept exactly
HOLD_FRAMES = 4  # the outcome stays on screen 1.6 s before the next episode
DPI = 80
LAKE_FIGSIZE = (4.5, 5.25)  # inches: 360 x 420 pixels at DPI (exact binary fractions, no rounding)
COUNTDOWN_FIGSIZE = (4.5, 3.75)  # 360 x 300 pixels
# Where the map sits in a FrozenLake frame (figure fractions: left, bottom, width, height): a square
# of 312 x 312 pixels, fixed so that a test can find each cell's centre in the GIF's pixels.
GRID_RECT = (24 / 360, 40 / 420, 312 / 360, 312 / 420)
PLAYING_BG = "#ffffff"
SUCCESS_BG, SUCCESS_FG = "#c8efba", "#1b7f1b"
FAILURE_BG, FAILURE_FG = "#f8c9c3", "#c0392b"
_PROGRESS = "#8c8c8c"

LAKE_ENDS = {
    "solved": "reached the goal",
    "hole": "fell in a hole",
    "out_of_turns": "out of turns",
    "invalid_action": "invalid move, then out of turns",
    "context_full": "context window full",
}
COUNTDOWN_ENDS = {
    "wrong_value": "dead end",
    "invalid_action": "invalid operation",
    "out_of_turns": "out of turns",
    "context_full": "context window full",
}


@dataclass(frozen=True)
class LakeFrame:
    """One picture of a FrozenLake episode: the map, where the agent stands, the path so far."""

    episode: int  # position of the episode in the GIF, from 0
    desc: tuple[str, ...]
    turn: int  # turns played (0: the start)
    max_turns: int
    agent: Cell
    path: tuple[Cell, ...]  # cells visited so far, start first (a move into the wall repeats a cell)
    action: str  # the move of this frame ("Down"), the turn's text when it did not parse, "" at the start
    note: str  # "into the wall", "not a move", ""
    end: str | None = None  # None while playing; on the held last frames "solved" or the failure kind

    @property
    def outcome(self) -> str | None:
        return None if self.end is None else "success" if self.end == "solved" else "failure"


@dataclass(frozen=True)
class CountdownFrame:
    """One picture of a countdown_turns episode: the numbers left and the operations written so far."""

    episode: int
    target: int
    turn: int
    max_turns: int
    numbers: tuple[int, ...]  # the numbers left after this frame's turn
    lines: tuple[str, ...]  # one per turn so far: "13*2 = 26", "restart", "'13*5' invalid"
    action: str  # this turn's text ("" at the start)
    valid: bool
    end: str | None = None  # as LakeFrame.end

    @property
    def outcome(self) -> str | None:
        return None if self.end is None else "success" if self.end == "solved" else "failure"


Frame = LakeFrame | CountdownFrame


def check_gif_task(name: str) -> None:
    """A one-line error (exit code 2) for a task without animated episodes."""
    if name not in GIF_TASKS:
        raise UserError(
            f"--gif: animated episodes exist for frozenlake and countdown_turns, not {name} "
            f"(its episodes are one answer each: see --report for them)"
        )


def lake_frames(task: Task, episode: Episode, index: int = 0, hold: int = HOLD_FRAMES) -> list[LakeFrame]:
    """The frames of one FrozenLake episode: the start, one per move, ``hold`` copies of the end."""
    desc = tuple(episode.problem)
    cfg = task.cfg
    start, groups = turn_cells(desc, episode, cfg)
    path = [start]
    frames = [LakeFrame(index, desc, 0, cfg.max_turns, start, (start,), "", "")]
    for t, (cells, text) in enumerate(zip(groups, episode.actions), 1):
        moves = parse_actions(text, cfg.max_actions_per_turn)
        if moves is None or not cells:  # nothing moved: an unparseable turn, or a slip into the wall
            note = "not a move" if moves is None else "did not move"
            frames.append(LakeFrame(index, desc, t, cfg.max_turns, path[-1], tuple(path), text, note))
            continue
        words = [ACTION_NAMES[m] for m in moves]
        for i, cell in enumerate(cells):
            # on slippery ice a cell is where the player ended up, not where a word pointed: show the turn
            word = words[i] if not cfg.is_slippery and i < len(words) else " ".join(words)
            note = "into the wall" if cell == path[-1] else ""
            path.append(cell)
            frames.append(LakeFrame(index, desc, t, cfg.max_turns, cell, tuple(path), word, note))
    end = failure_kind(task, episode) or "solved"
    return frames + [dataclasses.replace(frames[-1], end=end) for _ in range(hold)]


def countdown_frames(
    task: Task, episode: Episode, index: int = 0, hold: int = HOLD_FRAMES
) -> list[CountdownFrame]:
    """The frames of one countdown_turns episode: the start, one per turn, ``hold`` copies of the end.

    The numbers come from replaying the episode's texts in the task's own environment (its parser, no
    ``eval``), so they are exactly what the agent saw next.
    """
    q = episode.problem
    replay = task.episode(q)
    env = replay.env
    numbers = tuple(env.numbers)
    frames = [CountdownFrame(index, q.target, 0, task.max_turns, numbers, (), "", True)]
    lines: list[str] = []
    for t, text in enumerate(episode.actions, 1):
        result = replay.step(text) if not replay.done else None
        valid = result is not None and bool(result.info.get("format_ok"))
        after = tuple(env.numbers)
        shown = text.strip()
        if not valid:
            lines.append(f"{shown[:16]!r} invalid")
        elif shown.lower() == RESTART:
            lines.append("restart")
        else:
            lines.append(f"{shown} = {after[-1]}")  # the environment appends the result last
        frames.append(CountdownFrame(index, q.target, t, task.max_turns, after, tuple(lines), text, valid))
    end = failure_kind(task, episode) or "solved"
    return frames + [dataclasses.replace(frames[-1], end=end) for _ in range(hold)]


def gif_frames(items: list[tuple[Task, Episode]], hold: int = HOLD_FRAMES) -> list[Frame]:
    """Every frame of the GIF, episode after episode (``items``: (task, episode) pairs of one task)."""
    frames: list[Frame] = []
    for i, (task, episode) in enumerate(items):
        check_gif_task(task.name)
        make = lake_frames if task.name == "frozenlake" else countdown_frames
        frames += make(task, episode, i, hold)
    return frames


def _short(text: str, width: int = 24) -> str:
    """A model's text as one short quoted line (it may be long, multi-line garbage)."""
    r = repr(text)
    return r if len(r) <= width else r[: width - 2] + "…" + r[-1]


def _header(fig: Any, frame: Frame, count: int, label: str, what: str) -> None:
    """The lines above the picture: the source, which episode and turn, and what happened."""
    fig.text(0.5, 0.985, label, ha="center", va="top", fontsize=8, color="#555555")
    fig.text(
        0.5,
        0.94,
        f"{what} {frame.episode + 1} of {count} · turn {frame.turn} of {frame.max_turns}",
        ha="center",
        va="top",
        fontsize=11,
        fontweight="bold",
    )


def _status(fig: Any, frame: Frame, y: float, playing: str) -> None:
    """The line that says what this frame shows: the move, or SUCCESS / FAILURE and why."""
    if frame.end is None:
        fig.text(0.5, y, playing, ha="center", va="top", fontsize=10)
        return
    ok = frame.end == "solved"
    if isinstance(frame, LakeFrame):
        why = LAKE_ENDS.get(frame.end, frame.end)
        mark = "SUCCESS" if ok else "FAILURE"
    else:
        mark = "SOLVED" if ok else "FAILED"
        why = f"made {frame.target}" if ok else COUNTDOWN_ENDS.get(frame.end, frame.end)
        if frame.end == "wrong_value" and len(frame.numbers) == 1:
            why = f"dead end: {frame.numbers[0]} is not {frame.target}"
    fig.text(
        0.5,
        y,
        f"{mark}: {why}",
        ha="center",
        va="top",
        fontsize=11,
        fontweight="bold",
        color=SUCCESS_FG if ok else FAILURE_FG,
    )


def _draw_lake_frame(fig: Any, frame: LakeFrame, count: int, label: str) -> None:
    from tinyzero.plots import draw_lake

    ax = fig.add_axes(GRID_RECT)
    cell_pt = GRID_RECT[2] * LAKE_FIGSIZE[0] * 72 / len(frame.desc)  # a cell's width in points
    draw_lake(
        ax,
        frame.desc,
        list(frame.path),
        end=frame.end,
        agent=frame.agent if frame.end is None else None,
        agent_size=0.45 * cell_pt,
    )
    _header(fig, frame, count, label, "map")
    if frame.turn == 0:
        playing = "start"
    else:
        playing = f"wrote {_short(frame.action)}" + (f" ({frame.note})" if frame.note else "")
    _status(fig, frame, 0.885, playing)
    fig.text(
        0.5,
        0.07,
        "purple: the agent · arrows: its moves so far",
        ha="center",
        va="top",
        fontsize=7,
        color="#555555",
    )


def _draw_countdown_frame(fig: Any, frame: CountdownFrame, count: int, label: str) -> None:
    _header(fig, frame, count, label, "problem")
    playing = "start" if frame.turn == 0 else f"wrote {_short(frame.action)}"
    if frame.turn and not frame.valid:
        playing += " (invalid)"
    _status(fig, frame, 0.86, playing)
    fig.text(0.5, 0.76, f"target {frame.target}", ha="center", va="top", fontsize=11)
    fig.text(
        0.5,
        0.68,
        "  ".join(str(x) for x in frame.numbers),
        ha="center",
        va="top",
        fontsize=18,
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "#e3f1fb", "edgecolor": "#7f7f7f"},
    )
    fig.text(0.5, 0.525, "numbers left", ha="center", va="top", fontsize=7, color="#555555")
    for i, line in enumerate(frame.lines):
        fig.text(
            0.5,
            0.46 - 0.05 * i,
            f"{i + 1}. {line}",
            ha="center",
            va="top",
            fontsize=9,
            family="monospace",
            fontweight="bold" if i == len(frame.lines) - 1 else "normal",
            color=FAILURE_FG if line.endswith(" invalid") else "black",
        )


def write_episode_gif(
    items: list[tuple[Task, Episode]],
    path: str | Path,
    label: str = "",
    hold: int = HOLD_FRAMES,
    fps: float = FPS,
) -> Path:
    """Animate ``items`` ((task, episode) pairs, one task) one after another into the GIF ``path``.

    The same episodes always give the same bytes (no timestamps, a fixed size and palette order).
    """
    from matplotlib.animation import PillowWriter  # matplotlib only when a GIF is asked for
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    frames = gif_frames(items, hold)
    if not frames:
        raise UserError("--gif: no episodes to animate")
    lake = isinstance(frames[0], LakeFrame)
    fig = Figure(figsize=LAKE_FIGSIZE if lake else COUNTDOWN_FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)
    bar_height = 6 / (fig.get_figheight() * DPI)  # six pixels
    with writer.saving(fig, str(path), DPI):
        for i, frame in enumerate(frames):
            fig.clear()
            fig.set_facecolor({None: PLAYING_BG, "success": SUCCESS_BG}.get(frame.outcome, FAILURE_BG))
            if isinstance(frame, LakeFrame):
                _draw_lake_frame(fig, frame, len(items), label)
            else:
                _draw_countdown_frame(fig, frame, len(items), label)
            progress = Rectangle((0, 0), (i + 1) / len(frames), bar_height, color=_PROGRESS)
            fig.add_artist(progress)  # figure coordinates: add_artist's default transform
            writer.grab_frame()
    return path


def pick_animated(records: list[Record], n: int) -> list[Record]:
    """The first ``n`` held-out problems, in order (a fair sample, unlike the PNG's failures first);
    with several groups (map sizes, slipperiness) taken in turn from each group."""
    groups: dict[str, list[Record]] = {}
    for rec in records:
        groups.setdefault(rec.group, []).append(rec)
    chosen: list[Record] = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        chosen += [g[i] for g in groups.values() if i < len(g)]
    return chosen[:n]


def write_evaluation_gif(ev: Evaluation, n: int, path: str | Path) -> Path:
    """A GIF of ``n`` greedy episodes of an evaluation (``evaluate.py --gif``), titled by its source."""
    check_gif_task(ev.figures["task"]["name"])
    records = pick_animated(ev.records, n)
    return write_episode_gif([(rec.task, rec.greedy) for rec in records], path, source_name(ev.figures))
