"""evaluate.py --gif and tinyzero/evaluation/animation.py: animated greedy episodes.

What is checked, each against something computed here and not by the code under test:
- the frame states of FrozenLake episodes (agent cell, path so far, how it ended) against a replay of
  the real environment and a small walker written in this file (one and several moves a turn, slippery);
- the GIF's pixels: the purple agent disc sits at the centre of the cell the replay says, on every
  frame; the held last frames of a success and of a failure have different marks (background, end
  marker) and no agent;
- the GIF's frame count: per episode 1 start frame + one per applied move (one for a turn that moved
  nothing) + HOLD_FRAMES, the moves counted by the environment (``info["moves"]``);
- countdown_turns: the numbers left after each operation, written out by hand, and the outcome marks;
- the command line on base models: a FrozenLake GIF (same bytes twice, under 1 MB for 6 episodes), a
  countdown_turns GIF, and a one-line error with exit code 2 for other tasks.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_gif.py -q        (~20 s on 2 CPU cores)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from tinyzero import evaluation as E
from tinyzero.config import load_config
from tinyzero.context import Turn
from tinyzero.environments import CountdownProblem, make_task
from tinyzero.environments.base import Task
from tinyzero.errors import UserError
from tinyzero.evaluation.animation import DPI, FAILURE_BG, GRID_RECT, LAKE_FIGSIZE, PLAYING_BG, SUCCESS_BG
from tinyzero.plots import AGENT_COLOR
from tinyzero.pretrain import ensure_base_model
from tinyzero.rollout import Episode

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
MAP = ("SFFF", "FHFH", "FFFH", "HFFG")  # Gymnasium's standard 4x4 map
STEP = {"Left": (0, -1), "Down": (1, 0), "Right": (0, 1), "Up": (-1, 0)}
HOLE_RGB, STAR_RGB, X_RGB = "#23415e", "#1b7f1b", "#d62728"  # plots.py's hole tile and end marks
HOLD = E.HOLD_FRAMES


def evaluate_main():
    from script_loader import load_script

    return load_script("evaluate.py", "evaluate_gif_cli").main


def task_of(*overrides: str) -> Task:
    return make_task(load_config(SMOKE, list(overrides)).task)


@dataclass
class Played:
    """An episode as rollout records it, plus what the environment itself said after each turn."""

    episode: Episode
    cells: list[tuple[int, int]] = field(default_factory=list)  # FrozenLake: the player after each turn
    moves: list[int] = field(default_factory=list)  # FrozenLake: moves the env applied each turn


def play(task: Task, problem: object, actions: list[str], seed: int = 0) -> Played:
    """Play ``actions`` in the task's real environment until it ends."""
    env = task.episode(problem, seed=seed)
    ep, obs = Episode(problem=problem), env.prompt
    out = Played(ep)
    for text in actions:
        result = env.step(text)
        ep.turns.append(Turn(obs, [1]))
        ep.actions.append(text)
        ep.reward += result.reward
        ep.success = bool(result.info.get("success"))
        ep.format_ok = ep.format_ok and bool(result.info.get("format_ok", True))
        ep.reason, ep.done, obs = result.info.get("reason", ""), result.done, result.observation
        if task.name == "frozenlake":
            out.cells.append(divmod(env.env.state, env.env.size))
            out.moves.append(result.info["moves"])
        if result.done:
            break
    return out


def walk(desc: tuple[str, ...], at: tuple[int, int], words: list[str]) -> list[tuple[int, int]]:
    """Where each word puts the player on non-slippery ice (a wall keeps it in place; a hole or the
    goal ends the turn): this file's own FrozenLake, to check the frames against."""
    n, out = len(desc), []
    for w in words:
        dr, dc = STEP[w.capitalize()]
        r, c = at[0] + dr, at[1] + dc
        at = (r, c) if 0 <= r < n and 0 <= c < n else at
        out.append(at)
        if desc[at[0]][at[1]] in "HG":
            break
    return out


def expected_agents(desc: tuple[str, ...], played: Played, hold: int) -> list[tuple[int, int]]:
    """The agent's cell on each frame of a non-slippery episode: start, each applied move, the end."""
    at, out = (0, 0), [(0, 0)]
    for text, moves, cell in zip(played.episode.actions, played.moves, played.cells):
        if moves == 0:  # the turn did not parse: one frame, nothing moved
            out.append(at)
            continue
        steps = walk(desc, at, [w for w in re.split(r"[\s,]+", text) if w])
        assert len(steps) == moves and steps[-1] == cell  # the walker agrees with Gymnasium
        out += steps
        at = cell
    return out + [at] * hold


def frame_count(task: Task, episodes: list[Episode], hold: int = HOLD) -> int:
    """Frames a GIF of ``episodes`` must have, from the environment's own move counts."""
    total = 0
    for ep in episodes:
        if task.name == "frozenlake":
            moves = play(task, ep.problem, ep.actions).moves
            total += 1 + sum(max(1, m) for m in moves) + hold
        else:
            total += 1 + len(ep.actions) + hold
    return total


# ---------------------------------------------------------------------------------------------- pixels
def rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def close(pixel: tuple[int, ...], hex_color: str, tol: int = 40) -> bool:
    return max(abs(a - b) for a, b in zip(pixel[:3], rgb(hex_color))) <= tol


def frames_of(path: Path) -> list[Image.Image]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        return [f.convert("RGB") for f in ImageSequence.Iterator(im)]


def centre(cell: tuple[int, int], n: int) -> tuple[int, int]:
    """Pixel at the centre of ``cell`` in a FrozenLake frame: the map fills GRID_RECT of the figure."""
    width, height = LAKE_FIGSIZE[0] * DPI, LAKE_FIGSIZE[1] * DPI
    left, bottom, w, h = GRID_RECT
    x = (left + w * (cell[1] + 0.5) / n) * width
    y = (1 - bottom - h + h * (cell[0] + 0.5) / n) * height  # image rows grow downward
    return round(x), round(y)


def agent_cells(img: Image.Image, n: int) -> list[tuple[int, int]]:
    """The cells whose centre pixel is the agent's purple."""
    return [(r, c) for r in range(n) for c in range(n) if close(img.getpixel(centre((r, c), n)), AGENT_COLOR)]


# ---------------------------------------------------------------------------------------------- frame states
def test_frames_put_the_agent_where_the_environment_does() -> None:
    task = task_of()  # smoke: 6 turns, one move a turn, not slippery
    cases = {
        "solved": play(task, MAP, ["Down", "Down", "Right", "Right", "Down", "Right"]),
        "hole": play(task, MAP, ["Right", "Down"]),
        "invalid_action": play(task, MAP, ["Left", "Jump", "Down", "Up", "Right", "Right"]),
        "out_of_turns": play(task, MAP, ["Down", "Up"] * 3),
    }
    for end, played in cases.items():
        frames = E.lake_frames(task, played.episode, index=2, hold=3)
        assert [f.agent for f in frames] == expected_agents(MAP, played, 3), end
        assert [f.end for f in frames] == [None] * (len(frames) - 3) + [end] * 3, end
        assert [f.outcome for f in frames[-3:]] == ["success" if end == "solved" else "failure"] * 3
        assert all(f.episode == 2 and f.desc == MAP for f in frames)
        assert [f.turn for f in frames[:-3]] == list(range(len(played.episode.actions) + 1))
        # the path so far: the start, then the cell after each turn that moved (one move a turn here)
        cells = expected_agents(MAP, played, 0)
        for t, f in enumerate(frames[:-3]):
            assert list(f.path) == [cells[0]] + [cells[j] for j in range(1, t + 1) if played.moves[j - 1]]
        assert frames[-1].path == frames[-4].path
    invalid = E.lake_frames(task, cases["invalid_action"].episode)
    assert invalid[2].action == "Jump" and invalid[2].note == "not a move"
    assert invalid[1].note == "into the wall" and invalid[1].agent == (0, 0)


def test_several_moves_a_turn_are_one_frame_each() -> None:
    task = task_of("task.max_actions_per_turn=3")
    solved = play(task, MAP, ["Down Down", "Right Right Down", "Right"])
    assert solved.episode.success and solved.moves == [2, 3, 1]
    hole = play(task, MAP, ["Right Down Right"])  # the hole ends the turn: its last word is dropped
    assert hole.episode.reason == "hole" and hole.moves == [2]
    for played in (solved, hole):
        frames = E.lake_frames(task, played.episode, hold=2)
        assert [f.agent for f in frames] == expected_agents(MAP, played, 2)
        assert len(frames) == 1 + sum(played.moves) + 2
    frames = E.lake_frames(task, solved.episode, hold=2)
    assert [f.action for f in frames[1:6]] == ["Down", "Down", "Right", "Right", "Down"]
    assert [f.turn for f in frames[:7]] == [0, 1, 1, 2, 2, 2, 3]


def test_slippery_frames_follow_the_observations() -> None:
    task = task_of("task.is_slippery=true", "task.max_turns=40")
    played = play(task, MAP, ["Down"] * 40, seed=3)
    ep = played.episode
    assert ep.reason in ("hole", "solved")
    frames = E.lake_frames(task, ep, hold=2)
    assert len(frames) == 1 + len(ep.actions) + 2  # one frame a turn (a slip into the wall moves nothing)
    after_turn = [f.agent for f in frames[1 : 1 + len(ep.actions)]]
    assert after_turn[:-1] == played.cells[:-1]  # where the environment put the player, turn by turn
    last = frames[-1].agent
    assert MAP[last[0]][last[1]] == {"hole": "H", "solved": "G"}[ep.reason]


def test_only_frozenlake_and_countdown_turns_animate() -> None:
    for name in ("countdown", "multiplication", "reverse"):
        task = task_of(f"task.name={name}")
        with pytest.raises(UserError, match="animated episodes exist for frozenlake and countdown_turns"):
            E.gif_frames([(task, Episode(problem=task.problems("test", 1)[0]))])


# ---------------------------------------------------------------------------------------------- GIF pixels
def test_gif_pixels_show_the_agent_and_mark_success_and_failure(tmp_path: Path) -> None:
    task = task_of()
    played = [
        play(task, MAP, ["Down", "Down", "Right", "Right", "Down", "Right"]),  # success
        play(task, MAP, ["Right", "Down"]),  # fell in a hole
        play(task, MAP, ["Left", "Jump", "Down", "Down", "Right", "Left"]),  # invalid turn, out of turns
    ]
    episodes = [p.episode for p in played]
    path = E.write_episode_gif([(task, ep) for ep in episodes], tmp_path / "lake.gif", "hand-made")
    frames = frames_of(path)
    assert len(frames) == frame_count(task, episodes) == (1 + 6 + HOLD) + (1 + 2 + HOLD) + (1 + 6 + HOLD)
    assert frames[0].size == (360, 420)
    with Image.open(path) as im:
        durations = [f.info["duration"] for f in ImageSequence.Iterator(im)]
    assert durations == [400] * len(frames)

    assert close(frames[0].getpixel(centre((1, 1), 4)), HOLE_RGB)  # the geometry: a hole where MAP has one
    expected = [cell for p in played for cell in expected_agents(MAP, p, HOLD)]
    ends = ["success", "failure", "failure"]
    i = 0
    for p, outcome in zip(played, ends):
        n_moving = len(expected_agents(MAP, p, 0))
        for k in range(n_moving + HOLD):
            img, corner = frames[i], frames[i].getpixel((3, 3))
            if k < n_moving:  # playing: the agent's disc on the replayed cell, and nowhere else
                assert agent_cells(img, 4) == [expected[i]], (i, k)
                assert close(corner, PLAYING_BG, 8), (i, corner)
            else:  # the outcome: no agent, the background says success or failure
                assert agent_cells(img, 4) == [], (i, k)
                assert close(corner, SUCCESS_BG if outcome == "success" else FAILURE_BG, 8), (i, corner)
            i += 1
    hold_success, hold_hole = frames[(1 + 6 + HOLD) - 1], frames[(1 + 6 + HOLD) + (1 + 2 + HOLD) - 1]
    assert close(hold_success.getpixel(centre((3, 3), 4)), STAR_RGB)  # green star on the goal
    assert close(hold_hole.getpixel(centre((1, 1), 4)), X_RGB)  # red X on the hole
    assert max(abs(a - b) for a, b in zip(rgb(SUCCESS_BG), rgb(FAILURE_BG))) > 30  # far beyond the 8 above


# ------------------------------------------------------------------------------------------- countdown_turns
def test_countdown_turns_frames_and_gif(tmp_path: Path) -> None:
    task = task_of("task.name=countdown_turns", "task.restart=true", "task.max_turns=6")
    q = CountdownProblem((13, 14, 2), 40)
    solved = play(task, q, ["13*2", "26+14"]).episode
    invalid = play(task, q, ["13+14", "27*2", "restart", "13*5"]).episode
    slow = play(task, q, ["14-2", "12+13", "restart", "13+14", "27+2", "restart"]).episode
    assert (solved.reason, invalid.reason, slow.reason) == ("solved", "invalid_action", "out_of_turns")
    by_hand = {  # the numbers left after each turn, worked out by hand
        id(solved): [(13, 14, 2), (14, 26), (40,)],
        id(invalid): [(13, 14, 2), (2, 27), (54,), (13, 14, 2), (13, 14, 2)],
        id(slow): [(13, 14, 2), (13, 12), (25,), (13, 14, 2), (2, 27), (29,), (13, 14, 2)],
    }
    ends = {id(solved): "solved", id(invalid): "invalid_action", id(slow): "out_of_turns"}
    for ep in (solved, invalid, slow):
        frames = E.countdown_frames(task, ep, hold=2)
        numbers = [tuple(sorted(f.numbers)) for f in frames]
        assert numbers == [tuple(sorted(x)) for x in by_hand[id(ep)] + [by_hand[id(ep)][-1]] * 2]
        assert [f.end for f in frames] == [None] * (len(frames) - 2) + [ends[id(ep)]] * 2
        assert all(f.target == 40 for f in frames)
    lines = E.countdown_frames(task, invalid, hold=1)[-1].lines
    assert lines == ("13+14 = 27", "27*2 = 54", "restart", "'13*5' invalid")
    assert [f.valid for f in E.countdown_frames(task, invalid, hold=0)] == [True, True, True, True, False]

    no_restart = task_of("task.name=countdown_turns")
    dead_end = play(no_restart, q, ["13+14", "27+2"]).episode
    assert E.countdown_frames(no_restart, dead_end, hold=1)[-1].end == "wrong_value"

    episodes = [solved, invalid, slow]
    path = E.write_episode_gif([(task, ep) for ep in episodes], tmp_path / "cd.gif", "hand-made")
    frames = frames_of(path)
    assert len(frames) == frame_count(task, episodes) == (1 + 2 + HOLD) + (1 + 4 + HOLD) + (1 + 6 + HOLD)
    corners = [f.getpixel((3, 3)) for f in frames]
    assert close(corners[0], PLAYING_BG, 8) and close(corners[2], PLAYING_BG, 8)
    assert all(close(c, SUCCESS_BG, 8) for c in corners[3 : 3 + HOLD])
    assert all(close(c, FAILURE_BG, 8) for c in corners[3 + HOLD + 5 : 3 + HOLD + 5 + HOLD])
    assert close(corners[-1], FAILURE_BG, 8)


def test_animated_records_take_groups_in_turn() -> None:
    groups = [("a", 0), ("a", 1), ("a", 2), ("b", 3), ("b", 4)]
    recs = [E.Record(g, None, i, 1.0, None, []) for g, i in groups]
    assert [r.problem for r in E.pick_animated(recs, 4)] == [0, 3, 1, 4]
    assert [r.problem for r in E.pick_animated(recs, 9)] == [0, 3, 1, 4, 2]


# ------------------------------------------------------------------------------------------ the command line
def base_args(cache_dir: Path, task: str) -> tuple[Path, list[str]]:
    """A smoke base model of ``task`` (pre-trained into the session cache on first use) and the
    evaluate.py arguments that load it."""
    extra = [f"pretrain.cache_dir={cache_dir}", "run.device=cpu", "run.threads=1"]
    base = ensure_base_model(load_config(SMOKE, [f"task.name={task}", *extra]), "cpu", progress=False)
    return base, ["--checkpoint", str(base), "--config", str(SMOKE), f"task.name={task}", *extra]


def test_cli_frozenlake_gif(cache_dir: Path, tmp_path: Path, capsys) -> None:
    main = evaluate_main()
    base, args = base_args(cache_dir, "frozenlake")
    common = [*args, "--episodes", "6", "--samples", "1", "--no-progress"]
    assert main([*common, "--gif", str(tmp_path / "a.gif")]) == 0  # --gif-episodes defaults to 6
    assert f"wrote {tmp_path / 'a.gif'}" in capsys.readouterr().out
    assert main([*common, "--gif", str(tmp_path / "b" / "b.gif"), "--gif-episodes", "6"]) == 0
    gif = (tmp_path / "a.gif").read_bytes()
    assert gif == (tmp_path / "b" / "b.gif").read_bytes()  # deterministic
    assert gif[:6] == b"GIF89a" and len(gif) < 1_000_000

    task = task_of(f"pretrain.cache_dir={cache_dir}")
    src = E.load_source(base, None, str(SMOKE), [f"pretrain.cache_dir={cache_dir}"], "cpu")
    greedy = [rec.greedy for rec in E.evaluate_source(src, problems=6, samples=1).records]
    frames = frames_of(tmp_path / "a.gif")
    assert len(frames) == frame_count(task, greedy)
    i = 0
    for ep in greedy:  # the agent's disc where the environment put it (the base model's own moves)
        played = play(task, ep.problem, ep.actions)
        if ep.reason == "context_full":
            i += 1 + sum(max(1, m) for m in played.moves) + HOLD
            continue
        n = len(ep.problem)
        for k, cell in enumerate(expected_agents(tuple(ep.problem), played, HOLD)):
            moving = k < len(expected_agents(tuple(ep.problem), played, 0))
            assert agent_cells(frames[i], n) == ([cell] if moving else []), (i, k)
            i += 1

    assert main([*common, "--gif", str(tmp_path / "c.gif"), "--gif-episodes", "2"]) == 0
    assert len(frames_of(tmp_path / "c.gif")) == frame_count(task, greedy[:2])
    with pytest.raises(UserError, match="--gif-episodes 0"):
        main([*common, "--gif", str(tmp_path / "d.gif"), "--gif-episodes", "0"])


def test_cli_countdown_turns_gif(cache_dir: Path, tmp_path: Path) -> None:
    main = evaluate_main()
    base, args = base_args(cache_dir, "countdown_turns")
    gif = tmp_path / "c.gif"
    assert main([*args, "--episodes", "3", "--samples", "1", "--no-progress", "--gif", str(gif)]) == 0
    src = E.load_source(base, None, str(SMOKE), ["task.name=countdown_turns"], "cpu")
    greedy = [rec.greedy for rec in E.evaluate_source(src, problems=3, samples=1).records]
    frames = frames_of(gif)
    assert len(frames) == sum(1 + len(ep.actions) + HOLD for ep in greedy) and frames[0].size == (360, 300)
    i = 0
    for ep in greedy:  # the held frames' background says how each episode ended
        i += 1 + len(ep.actions) + HOLD
        assert close(frames[i - 1].getpixel((3, 3)), SUCCESS_BG if ep.success else FAILURE_BG, 8)


def test_cli_other_tasks_are_a_one_line_error(cache_dir: Path, tmp_path: Path) -> None:
    _, args = base_args(cache_dir, "multiplication")
    gif = tmp_path / "m.gif"
    proc = subprocess.run(
        [sys.executable, "evaluate.py", *args, "--episodes", "2", "--samples", "1", "--gif", str(gif)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --gif: animated episodes exist for frozenlake and countdown_turns")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not gif.exists()  # refused before the evaluation, not after
