"""Pictures, as PNG files: learning curves of one or more runs, and FrozenLake episodes on their maps.

    python evaluate.py --plot runs/fl-ragen runs/fl-grpo --out plots/
    python evaluate.py --checkpoint runs/fl-ragen --report eval.md --pictures 6   # eval_episodes.png

``draw_lake`` draws one map and its path; the animated GIFs (``tinyzero.evaluation.animation``) draw
their FrozenLake frames with it too, so a PNG and a GIF frame show a map the same way.
Matplotlib's object API (``Figure`` + the Agg canvas) is used instead of pyplot, so nothing here
touches global plotting state or needs a display.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from tinyzero.runs import read_metrics, run_info

# (metrics key, panel title, y label, a second key drawn dashed in the same colour)
CURVES = (
    ("reward/mean", "Training reward", "mean reward per episode", None),
    ("success", "Training success", "success rate (sampled)", None),
    (
        "eval/greedy_success",
        "Held-out success",
        "success rate (solid: greedy, dashed: sampled)",
        "eval/sampled_success",
    ),
    ("kl", "KL to the reference", "log π − log π_ref per trajectory", None),
    ("entropy", "Entropy", "nats per policy token", None),
    ("response_length", "Response length", "policy tokens per episode", None),
)
X_AXES = (
    ("iteration", "iteration", "learning_curves_iteration.png"),
    ("elapsed_s", "training wall-clock (s)", "learning_curves_wallclock.png"),
)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # nothing clipped when a title is taller than planned
    return path


def _smooth(ys: list[float], window: int) -> list[float]:
    """Centred moving average (shrinking at the ends), so the smoothed curve does not lag the raw one."""
    half = window // 2
    prefix = [0.0]
    for y in ys:
        prefix.append(prefix[-1] + y)
    out = []
    for i in range(len(ys)):
        lo, hi = max(0, i - half), min(len(ys), i + half + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def _series(rows: list[dict], x_key: str, y_key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for m in rows:
        x, y = m.get(x_key), m.get(y_key)
        if isinstance(x, int | float) and isinstance(y, int | float) and math.isfinite(y):
            xs.append(float(x))
            ys.append(float(y))
    return xs, ys


def plot_learning_curves(run_dirs: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Two PNGs (vs iteration, vs wall-clock), six panels each, one colour per run; returns their paths.

    Per-iteration training figures are noisy: they are drawn faintly, with a moving average on top.
    """
    runs = []
    for d in run_dirs:
        info = run_info(d)  # raises UserError if metrics.jsonl is missing
        label = f"{info['run']} ({info['algorithm'] or '?'}, {info['task'] or '?'})"
        runs.append((label, read_metrics(d)))
    written = []
    for x_key, x_label, filename in X_AXES:
        fig = Figure(figsize=(15, 8.5), layout="constrained")
        axes = fig.subplots(2, 3)
        for ax, (key, title, y_label, second) in zip(axes.flat, CURVES):
            drawn = False
            for i, (label, rows) in enumerate(runs):
                color = f"C{i % 10}"
                xs, ys = _series(rows, x_key, key)
                if not xs:
                    continue
                drawn = True
                if key.startswith("eval/"):
                    ax.plot(xs, ys, "o-", color=color, ms=4, label=label)
                    xs2, ys2 = _series(rows, x_key, second) if second else ([], [])
                    if xs2:
                        ax.plot(xs2, ys2, "s--", color=color, ms=3, alpha=0.7)
                else:
                    window = max(1, len(ys) // 20)
                    if window > 1:
                        ax.plot(xs, ys, color=color, alpha=0.25, lw=0.8)
                        ax.plot(xs, _smooth(ys, window), color=color, lw=1.8, label=label)
                    else:
                        ax.plot(xs, ys, ".-", color=color, lw=1.5, label=label)
            ax.set_title(title)
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(alpha=0.3)
            if key in ("success", "eval/greedy_success"):
                ax.set_ylim(-0.03, 1.03)
            if not drawn:
                ax.text(0.5, 0.5, f"no '{key}' logged", ha="center", va="center", transform=ax.transAxes)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        for ax in axes.flat[1:]:  # a run may lack the first panel's key: collect every label once
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3) or 1, frameon=False)
        fig.suptitle(
            f"Learning curves vs {x_label}\n"
            "(training panels: faint = every iteration, bold = moving average)",
            fontsize=13,
        )
        written.append(_save(fig, Path(out_dir) / filename))
    return written


# ---------------------------------------------------------------------------------------------- FrozenLake
_TILE = {"S": 0, "F": 1, "H": 2, "G": 3}
_TILE_COLORS = ListedColormap(["#c9e8c0", "#e3f1fb", "#23415e", "#f3c544"])
PATH_COLOR = "#e4572e"  # the start circle and the arrows of the moves taken
AGENT_COLOR = "#8e44ad"  # the player's disc in animated frames: no tile or mark uses purple
_END_MARK = {"solved": ("*", "#1b7f1b", 22), "hole": ("X", "#d62728", 14)}
_OTHER_END = ("s", "#ff7f0e", 11)  # stopped on the ice (out of turns, invalid moves, context full)


def draw_lake(
    ax: Axes,
    desc: tuple[str, ...] | list[str],
    cells: list[tuple[int, int]],
    end: str | None = None,
    agent: tuple[int, int] | None = None,
    agent_size: float = 16.0,
) -> None:
    """Draw one map (start, ice, holes, goal) on ``ax`` with the path ``cells`` (start first) as arrows.

    ``end``: the outcome (solved | hole | other) to mark on the last cell (green star, red X, orange
    square), None for no mark; ``agent``: a purple disc on that cell, ``agent_size`` points across.
    Why one function: the PNG pictures and the animated GIF (``tinyzero.evaluation.animation``) show
    the same map, so they draw it with the same code.
    """
    size = len(desc)
    grid = [[_TILE[ch] for ch in row] for row in desc]
    ax.imshow(grid, cmap=_TILE_COLORS, vmin=0, vmax=3)
    for r, row in enumerate(desc):
        for c, ch in enumerate(row):
            label = {"S": "start", "H": "hole", "G": "goal"}.get(ch)
            if label:  # in the cell's corner, clear of the arrows through its centre
                color = "white" if ch == "H" else "black"
                ax.text(c - 0.44, r - 0.42, label, ha="left", va="top", fontsize=7, color=color)
    for i in range(size + 1):  # cell borders drawn as lines: tick grids lose one axis under imshow
        ax.axhline(i - 0.5, color="#7f7f7f", lw=0.8)
        ax.axvline(i - 0.5, color="#7f7f7f", lw=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    crossed: dict[frozenset, int] = {}
    for (r0, c0), (r1, c1) in zip(cells, cells[1:]):
        if (r0, c0) == (r1, c1):
            continue
        # an edge crossed again (back and forth) is drawn beside the earlier arrow, not over it
        edge = frozenset(((r0, c0), (r1, c1)))
        off = 0.14 * crossed.get(edge, 0) * (1 if (r1, c1) > (r0, c0) else -1)
        crossed[edge] = crossed.get(edge, 0) + 1
        dx, dy = c1 - c0, r1 - r0
        ox, oy = -dy * off, dx * off
        ax.annotate(
            "",
            xy=(c1 + ox - 0.18 * dx, r1 + oy - 0.18 * dy),
            xytext=(c0 + ox + 0.18 * dx, r0 + oy + 0.18 * dy),
            arrowprops={"arrowstyle": "-|>", "color": PATH_COLOR, "lw": 2.2, "mutation_scale": 14},
        )
    if end is not None:
        r_end, c_end = cells[-1]
        marker, color, ms = _END_MARK.get(end, _OTHER_END)
        ax.plot([c_end], [r_end], marker=marker, color=color, ms=ms, mec="white", mew=1.2)
    ax.plot([cells[0][1]], [cells[0][0]], "o", color=PATH_COLOR, ms=8, mec="white", mew=1.2)
    if agent is not None:
        ax.plot([agent[1]], [agent[0]], "o", color=AGENT_COLOR, ms=agent_size, mec="white", mew=1.5)


def plot_frozenlake_episodes(episodes: list[dict], path: str | Path, title: str = "") -> Path:
    """Draw each episode's map (start, ice, holes, goal) and the path taken; returns ``path``.

    ``episodes``: dicts with ``desc`` (rows of S F H G), ``path`` (visited (row, col) cells, start
    first), ``outcome`` (solved | hole | out_of_turns | ...) and ``caption``.
    """
    n = max(1, len(episodes))
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols, 3.7 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(episodes) :]:
        ax.axis("off")
    for ax, ep in zip(axes.flat, episodes):
        draw_lake(ax, ep["desc"], ep["path"], end=ep["outcome"])
        ax.set_title(ep.get("caption", ""), fontsize=9)
    legend = (
        "orange circle: start · arrows: moves taken · green star: reached the goal · "
        "red X: fell in a hole · orange square: stopped on the ice"
    )
    fig.suptitle(title or "FrozenLake episodes", fontsize=12, y=1.09)  # above the 3-line panel titles
    fig.supxlabel(legend, fontsize=8)
    return _save(fig, Path(path))
