"""Build the walkthrough's slide deck: notebooks/deck.md → build/deck/index.html, offline and self-contained.

    python scripts/build_deck.py                         # build/deck/index.html (open it in a browser)
    python scripts/build_deck.py --run runs/default      # the curves slide drawn from your own run(s)
    python scripts/build_deck.py --out /tmp/deck

The output is one HTML file with its own small viewer (CSS and JavaScript inline, nothing fetched from
the network) and an ``img/`` folder. Keys: → / space / PageDown next, ← / PageUp previous, Home, End;
``index.html#/3`` opens slide 3; ``index.html?print`` shows every slide one under the other (print to
PDF from there).

Everything on the slides that is a number or a picture comes from the repository when the deck is built,
not from the markdown: ``deck.md`` says where, with these lines (each alone on its line):

    @include FILE "Heading" table|code   the first table / every code block of FILE's section "Heading…"
    @frozenlake                           a held-out map as the model sees it, and its optimal path
    @layout                               a 3-turn episode as one token sequence, the trained tokens marked
    @curves                               learning curves of the --run directories (tinyzero.plots), else
                                          the README's figure of real runs (docs/img/frozenlake_astarpo_…)
    ```math … ```                         a formula, drawn by matplotlib's mathtext into an SVG
    {{lines:PATH}}                        the number of lines of PATH
    ![alt](docs/img/x.png)                a figure of the repository, copied next to the page

Slides are separated by a line ``---``; a slide starting with ``@class NAME`` gets that CSS class.
Markdown is Python-Markdown's (tables, fenced code, markdown inside ``<div markdown="1">``).
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOURCE = ROOT / "notebooks" / "deck.md"
DEFAULT_OUT = ROOT / "build" / "deck"
README_CURVES = ROOT / "docs" / "img" / "default_job_a339758_iteration.png"


class DeckError(Exception):
    """The deck cannot be built as written (a missing file, section or figure)."""


# ----------------------------------------------------------------------------------------- directives
def section_lines(path: Path, heading: str) -> list[str]:
    """The lines of ``path`` under the first heading whose text starts with ``heading``, up to the next
    heading of the same or a higher level."""
    lines = (ROOT / path).read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#+)\s+(.*)", line)
        if m and m.group(2).strip().lower().startswith(heading.lower()):
            level, body = len(m.group(1)), []
            for rest in lines[i + 1 :]:
                n = re.match(r"(#+)\s", rest)
                if n and len(n.group(1)) <= level:
                    break
                body.append(rest)
            return body
    raise DeckError(f"{path}: no section whose heading starts with {heading!r}")


def first_table(lines: list[str], where: str) -> str:
    """The first markdown table among ``lines`` (indented tables too, as in a list item), dedented."""
    rows: list[str] = []
    for line in lines:
        if line.strip().startswith("|"):
            rows.append(line.strip())
        elif rows:
            break
    if len(rows) < 3:
        raise DeckError(f"{where}: no table")
    return "\n".join(rows)


def code_blocks(lines: list[str], where: str) -> str:
    """Every fenced code block among ``lines``, fences included."""
    blocks = re.findall(r"^```.*?^```", "\n".join(lines), flags=re.S | re.M)
    if not blocks:
        raise DeckError(f"{where}: no code block")
    return "\n\n".join(blocks)


def include(args: str) -> str:
    m = re.fullmatch(r'(\S+)\s+"([^"]+)"\s+(table|code)', args.strip())
    if not m:
        raise DeckError(f'@include {args}: expected @include FILE "Heading" table|code')
    path, heading, kind = m.groups()
    where = f'{path} "{heading}"'
    lines = section_lines(Path(path), heading)
    return first_table(lines, where) if kind == "table" else code_blocks(lines, where)


def frozenlake_problems(n: int = 1):
    """configs/default.yaml's task and its first ``n`` held-out maps."""
    from tinyzero.config import load_config
    from tinyzero.environments import make_task

    task = make_task(load_config(ROOT / "configs" / "default.yaml", []).task)
    return task, task.problems("test")[:n]


def optimal_turns(task, problem) -> tuple[list[tuple[str, str]], list[tuple[int, int]], str]:
    """A shortest optimal path played in the text environment: ((observation, move) per turn, cells,
    outcome)."""
    from tinyzero.environments.frozenlake_env import ACTION_NAMES, optimal_policy

    policy = optimal_policy(problem, task.cfg.is_slippery, gamma=0.9)  # γ < 1: the shortest way
    size = len(problem)
    episode = task.episode(problem)
    cells = [divmod("".join(problem).index("S"), size)]
    turns, observation, reason = [], episode.prompt, "moving"
    while not episode.done:
        move = ACTION_NAMES[int(policy[cells[-1][0] * size + cells[-1][1]])]
        result = episode.step(move)
        turns.append((observation, move))
        observation, reason = result.observation, result.info["reason"]
        cells.append(divmod(int(episode.env.state), size))
    return turns, cells, reason


def frozenlake_block(img_dir: Path, n: int = 3) -> str:
    """The first held-out map as the policy sees it (text), beside pictures of the first ``n`` held-out
    maps with a shortest path to the goal (tinyzero.plots)."""
    from tinyzero.plots import plot_frozenlake_episodes

    task, problems = frozenlake_problems(n)
    pictured, first = [], None
    for problem in problems:
        turns, cells, reason = optimal_turns(task, problem)
        first = first or turns[0]
        caption = f"shortest path: {len(turns)} moves"
        pictured.append({"desc": problem, "path": cells, "outcome": reason, "caption": caption})
    plot_frozenlake_episodes(pictured, img_dir / "frozenlake_maps.png", title="Held-out maps")
    shown = html.escape(first[0].rstrip("\n"))
    return (
        '<div class="cols frozenlake"><div class="io"><p class="small">the policy reads</p>'
        f'<pre class="grid">{shown}</pre><p class="small">and writes</p><pre class="grid">{first[1]}</pre>'
        '</div><div class="maps"><img src="img/frozenlake_maps.png" alt="held-out FrozenLake maps and '
        'shortest paths"></div></div>'
    )


def layout_block() -> str:
    """Three turns of an optimal episode laid out by tinyzero.context as one sequence (history = −1)."""
    from tinyzero.context import Turn, training_sequences
    from tinyzero.models.tokenizer import CharTokenizer

    tok = CharTokenizer()
    task, [problem] = frozenlake_problems(1)
    turns = [Turn(obs, tok.encode(move, eos=True)) for obs, move in optimal_turns(task, problem)[0][:3]]
    [(ids, mask)] = training_sequences(tok, turns, history=-1)
    names = {tok.bos_id: "⟨bos⟩", tok.eos_id: "⟨eos⟩"}
    spans, inside = [], None
    for i, trained in zip(ids, mask):
        text = names.get(i) or tok.decode([i]).replace("\n", "⏎\n")
        if trained != inside:
            spans.append(f'</span><span class="{"agent" if trained else "obs"}">')
            inside = trained
        spans.append(html.escape(text))
    body = "".join(spans)[len("</span>") :] + "</span>"
    agent = sum(mask)
    return (
        f'<pre class="layout">{body}</pre><p class="small">{len(ids)} tokens, {agent} of them the '
        "agent's (highlighted: the only ones with a loss) — <code>training_sequences</code> in "
        "<code>tinyzero/context.py</code>, on a real 3-turn episode</p>"
    )


def curves_block(img_dir: Path, runs: list[Path]) -> str:
    if runs:
        from tinyzero.plots import plot_learning_curves

        path = plot_learning_curves(runs, img_dir)[0]
        names = ", ".join(p.name for p in runs)
        caption = f"your run{'s' if len(runs) > 1 else ''}: {html.escape(names)} (tinyzero.plots)"
    else:
        path = shutil.copy(README_CURVES, img_dir / README_CURVES.name)
        caption = "the README's figure: its run of configs/default.yaml (A*PO on FrozenLake, 2026-12-07)"
    image = f'<img class="wide" src="img/{Path(path).name}" alt="learning curves">'
    return f'{image}<p class="small">{caption}</p>'


def math_block(tex: str, img_dir: Path, n: int) -> str:
    """A formula drawn by matplotlib's mathtext as SVG (no TeX installation, no network)."""
    from matplotlib import mathtext, rc_context
    from matplotlib.font_manager import FontProperties

    name = f"math_{n}.svg"
    with rc_context({"mathtext.fontset": "cm", "svg.fonttype": "path"}):
        mathtext.math_to_image(f"${tex.strip()}$", img_dir / name, prop=FontProperties(size=24), format="svg")
    return f'<div class="math"><img src="img/{name}" alt="{html.escape(tex.strip())}"></div>'


def copy_images(text: str, img_dir: Path) -> str:
    """``![alt](path)`` of repository files → copies in img/, with the links rewritten."""

    def copy(m: re.Match) -> str:
        alt, src = m.groups()
        if re.match(r"[a-z]+:", src):
            raise DeckError(f"{src}: the deck must work offline, so images are repository files")
        path = ROOT / src
        if not path.is_file():
            raise DeckError(f"image {src} does not exist")
        shutil.copy(path, img_dir / path.name)
        return f"![{alt}](img/{path.name})"

    return re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", copy, text)


def count_lines(path: str) -> int:
    if not (ROOT / path).is_file():
        raise DeckError(f"{{{{lines:{path}}}}}: no such file")
    return len((ROOT / path).read_text().splitlines())


def expand(slide: str, img_dir: Path, runs: list[Path], counter: list[int]) -> str:
    """The slide's markdown with every directive replaced by what it stands for."""

    def maths(m: re.Match) -> str:
        counter[0] += 1
        return f"\n{math_block(m.group(1), img_dir, counter[0])}\n"

    slide = re.sub(r"^```math\n(.*?)^```", maths, slide, flags=re.S | re.M)
    slide = re.sub(r"\{\{lines:([^}]+)\}\}", lambda m: str(count_lines(m.group(1))), slide)
    out = []
    for line in slide.splitlines():
        word, _, args = line.strip().partition(" ")
        if word == "@include":
            out.append(include(args))
        elif word == "@frozenlake":
            out.append(f"\n{frozenlake_block(img_dir)}\n")
        elif word == "@layout":
            out.append(f"\n{layout_block()}\n")
        elif word == "@curves":
            out.append(f"\n{curves_block(img_dir, runs)}\n")
        elif word.startswith("@") and word != "@class":
            raise DeckError(f"unknown directive {word}")
        else:
            out.append(line)
    return copy_images("\n".join(out), img_dir)


# ----------------------------------------------------------------------------------------- the page
CSS = """
html, body { margin: 0; height: 100%; background: #1d2330; overflow: hidden;
  font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
.deck { position: absolute; left: 50%; top: 50%; width: 1280px; height: 720px; }
section.slide { position: absolute; inset: 0; box-sizing: border-box; padding: 40px 64px 44px;
  background: #fff; color: #1d2330; visibility: hidden; overflow: hidden; }
section.slide.active { visibility: visible; }
h1 { font-size: 52px; margin: 150px 0 16px; color: #23415e; }
h2 { font-size: 34px; margin: 0 0 18px; padding-bottom: 8px; color: #23415e;
  border-bottom: 3px solid #f3c544; }
p, li { font-size: 23px; line-height: 1.38; margin: 0 0 10px; }
ul { margin: 0 0 10px; padding-left: 28px; }
code { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 0.88em; background: #f1f3f7;
  padding: 1px 4px; border-radius: 4px; }
pre { background: #f1f3f7; padding: 12px 16px; border-radius: 6px; margin: 0 0 12px; font-size: 18px;
  line-height: 1.3; white-space: pre-wrap; }
pre code { background: none; padding: 0; font-size: inherit; }
table { border-collapse: collapse; font-size: 17px; margin: 0 0 10px; }
th, td { border-bottom: 1px solid #d5d9e2; padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
img { max-width: 100%; }
img.wide { display: block; max-height: 470px; margin: 0 auto; }
.math { margin: 4px 0 12px; }
.small, .small li { font-size: 17px; color: #55607a; }
.dense table { font-size: 13px; } .dense td, .dense th { padding: 3px 8px; } .dense p { font-size: 18px; }
.cols { display: flex; gap: 36px; align-items: flex-start; } .cols > div { flex: 1; }
.frozenlake .io { flex: 0 0 190px; } .frozenlake .maps { flex: 1; text-align: center; }
.frozenlake .maps img { max-height: 370px; }
pre.grid { font-size: 28px; line-height: 1.15; display: inline-block; padding: 8px 20px; }
pre.layout { font-size: 15px; line-height: 1.2; }
pre.layout .agent { background: #f3c544; font-weight: bold; }
pre.layout .obs { color: #55607a; }
.title h2 { border: none; font-size: 28px; color: #55607a; }
.footer { position: absolute; left: 64px; bottom: 14px; font-size: 14px; color: #8a93a6; }
.counter { position: absolute; right: 28px; bottom: 14px; font-size: 14px; color: #8a93a6; }
body.print { overflow: auto; background: #fff; }
body.print .deck { position: static; transform: none !important; width: auto; height: auto; }
body.print section.slide { position: relative; width: 1280px; height: 720px; visibility: visible;
  break-after: page; border-bottom: 1px dashed #ccc; }
"""

JS = """
(function () {
  var slides = Array.prototype.slice.call(document.querySelectorAll("section.slide"));
  var deck = document.querySelector(".deck");
  var current = 0;
  if (/[?&]print\\b/.test(location.search)) document.body.classList.add("print");
  function fit() {
    var s = Math.min(window.innerWidth / 1280, window.innerHeight / 720);
    deck.style.transform = "translate(-50%, -50%) scale(" + s + ")";
  }
  function fromHash() {
    var m = /^#\\/(\\d+)/.exec(location.hash);
    var i = m ? parseInt(m[1], 10) - 1 : 0;
    return Math.max(0, Math.min(slides.length - 1, i));
  }
  function show(i) {
    current = i;
    slides.forEach(function (s, k) { s.classList.toggle("active", k === i); });
    if (location.hash !== "#/" + (i + 1)) location.hash = "#/" + (i + 1);
  }
  function go(d) { show(Math.max(0, Math.min(slides.length - 1, current + d))); }
  document.addEventListener("keydown", function (e) {
    if (["ArrowRight", "PageDown", " ", "n"].indexOf(e.key) >= 0) { go(1); e.preventDefault(); }
    else if (["ArrowLeft", "PageUp", "Backspace", "p"].indexOf(e.key) >= 0) { go(-1); e.preventDefault(); }
    else if (e.key === "Home") show(0);
    else if (e.key === "End") show(slides.length - 1);
  });
  document.addEventListener("click", function (e) {
    if (e.target.closest("a, pre, code") || String(window.getSelection())) return;
    go(e.clientX > window.innerWidth / 2 ? 1 : -1);
  });
  window.addEventListener("hashchange", function () { show(fromHash()); });
  window.addEventListener("resize", fit);
  // What a test (or a curious reader) can read back: for every slide, whether its content overflows and
  // whether each image was found and decoded.
  window.addEventListener("load", function () {
    var report = slides.map(function (s, k) {
      return {
        slide: k + 1,
        overflow: s.scrollHeight > s.clientHeight + 1 || s.scrollWidth > s.clientWidth + 1,
        images: Array.prototype.map.call(s.querySelectorAll("img"), function (img) {
          return { src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0 };
        })
      };
    });
    document.body.setAttribute("data-check", JSON.stringify(report));
  });
  fit();
  show(fromHash());
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<div class="deck">
{slides}
</div>
<script>{js}</script>
</body>
</html>
"""


def split_slides(text: str) -> list[str]:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)  # comments in deck.md are notes for its editors
    return [s.strip() for s in re.split(r"^---\s*$", text, flags=re.M) if s.strip()]


def build(out: Path = DEFAULT_OUT, runs: list[Path] | None = None, source: Path = SOURCE) -> Path:
    """Write ``out/index.html`` and ``out/img/``; returns the page's path."""
    import markdown

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    img_dir = out / "img"
    img_dir.mkdir(parents=True)
    counter = [0]
    sections, title = [], "TinyZero-AStarPO"
    slides = split_slides(source.read_text())
    for n, slide in enumerate(slides, start=1):
        css_class = ""
        first, _, rest = slide.partition("\n")
        if first.startswith("@class "):
            css_class, slide = first.split(None, 1)[1].strip(), rest
        body = markdown.markdown(
            expand(slide, img_dir, [Path(r) for r in runs or []], counter),
            extensions=["tables", "fenced_code", "md_in_html"],
        )
        if n == 1:
            m = re.search(r"<h1>(.*?)</h1>", body)
            title = re.sub("<[^>]+>", "", m.group(1)) if m else title
        sections.append(
            f'<section class="slide {css_class}" id="slide-{n}">\n{body}\n'
            f'<div class="footer">TinyZero-AStarPO · walkthrough</div>'
            f'<div class="counter">{n} / {len(slides)}</div>\n</section>'
        )
    page = PAGE.format(title=html.escape(title), css=CSS, js=JS, slides="\n".join(sections))
    if re.search(r"""(src|href)=["']?(https?:)?//""", page):
        raise DeckError("the page links to the network: the deck must work offline")
    index = out / "index.html"
    index.write_text(page)
    return index


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/deck)")
    parser.add_argument("--run", type=Path, nargs="+", default=[], help="run directories: the curves slide")
    args = parser.parse_args()
    try:
        index = build(args.out, args.run)
    except DeckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {index} ({len(list((index.parent / 'img').iterdir()))} images); open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
