"""The walkthrough's slide deck (notebooks/deck.md → scripts/build_deck.py → index.html) builds offline
with every directive expanded and every image present, and every slide renders in headless Chromium:
not blank, not the same picture as another slide (so ``#/N`` navigation works), every image decoded by
the browser, nothing overflowing the 1280×720 slide.

The browser test skips where no Chromium is installed (``apt-get install chromium``; .ci/run installs
it and sets WALKTHROUGH_REQUIRED=1, which turns the skip into a failure). CHROMIUM=/path picks a binary.

Run: pytest tests/test_deck.py -q      (~25 s with Chromium, ~5 s without)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "deck.md"
# A screenshot counts as blank below these (measured: real slides 0.11-0.19 grey-level std and 4-38 %
# of pixels off the background; a white page with one title line 0.036 and 0.3 %).
MIN_STD, MIN_INK = 0.06, 0.02


@pytest.fixture(scope="module")
def deck():
    pytest.importorskip("markdown", reason='Python-Markdown: pip install -e ".[notebook]"')
    return load_script("scripts/build_deck.py", "build_deck")


@pytest.fixture(scope="module")
def built(deck, tmp_path_factory) -> Path:
    return deck.build(tmp_path_factory.mktemp("deck") / "deck")


class Page(HTMLParser):
    """The slides, and every src/href of the built page."""

    def __init__(self) -> None:
        super().__init__()
        self.slides: list[list[str]] = []  # the img srcs of each slide
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "section" and "slide" in (a.get("class") or "").split():
            self.slides.append([])
        if tag == "img":
            self.slides[-1].append(a.get("src") or "")
        for key in ("src", "href"):
            if key in a:
                self.links.append((tag, key, a[key] or ""))


def parse(index: Path) -> Page:
    page = Page()
    page.feed(index.read_text())
    return page


def test_deck_builds_offline_with_every_slide_and_image(built: Path) -> None:
    text = built.read_text()
    page = parse(built)
    source = re.sub(r"<!--.*?-->", "", SOURCE.read_text(), flags=re.S)  # comments are notes, not slides
    sources = [s for s in re.split(r"^---\s*$", source, flags=re.M) if s.strip()]
    assert 10 <= len(page.slides) == len(sources) <= 12
    images = [src for slide in page.slides for src in slide]
    assert len(images) >= 4  # the maps, two equations, the learning curves
    for src in images:
        assert (built.parent / src).is_file(), f"<img src={src!r}> does not resolve to a file"
    # Offline and self-contained: no script or stylesheet files, nothing from the network.
    assert not [link for link in page.links if link[0] in ("script", "link")]
    assert not [link for link in page.links if re.match(r"(https?:)?//", link[2])]
    # Every directive was expanded (a stray one would show on a slide as text).
    for raw in ("@include", "@frozenlake", "@layout", "@curves", "```math", "{{lines:"):
        assert raw not in text
    # Numbers come from the repository at build time: the README's table, the commands, line counts.
    readme = (ROOT / "README.md").read_text()
    assert "bash install.sh &amp;&amp; .venv/bin/python -m pytest -q" in text
    assert "bash install.sh && .venv/bin/python -m pytest -q" in readme
    rloo_lines = len((ROOT / "tinyzero" / "algorithms" / "rloo.py").read_text().splitlines())
    assert f"({rloo_lines} lines)" in text
    assert 'class="agent"' in text  # the token layout marks the trained tokens


def test_deck_refuses_what_it_cannot_take_from_the_repository(deck, tmp_path: Path) -> None:
    for body, message in (
        ('## A\n\n@include README.md "No such heading" table\n', "No such heading"),
        ("## A\n\n![x](docs/img/no_such_figure.png)\n", "no_such_figure.png"),
        ("## A\n\n![x](https://example.org/x.png)\n", "offline"),
        ("## A\n\n@nonsense\n", "unknown directive"),
    ):
        source = tmp_path / "deck.md"
        source.write_text(body)
        with pytest.raises(deck.DeckError, match=re.escape(message)):
            deck.build(tmp_path / "out", source=source)


def chromium() -> str | None:
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def run_browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",  # one profile per process: parallel browsers do not share a lock
        "--window-size=1280,720",
        "--virtual-time-budget=5000",  # let the page's script and images finish before the capture
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def screenshot_figures(path: Path) -> tuple[float, float]:
    """(grey-level standard deviation, share of pixels off the most common colour) of a screenshot."""
    import numpy as np
    from matplotlib.image import imread

    rgb = imread(path)[..., :3]
    values, counts = np.unique((rgb * 255).round().astype(int).reshape(-1, 3), axis=0, return_counts=True)
    background = values[counts.argmax()]
    ink = float((np.abs(rgb * 255 - background).sum(-1) > 30).mean())
    return float(rgb.mean(-1).std()), ink


def test_every_slide_renders_in_headless_chromium(built: Path, tmp_path: Path) -> None:
    binary = chromium()
    if binary is None:
        why = "no Chromium to render the deck with (apt-get install chromium; CHROMIUM=/path)"
        if os.environ.get("WALKTHROUGH_REQUIRED") == "1":
            pytest.fail(why)
        pytest.skip(why)
    n = len(parse(built).slides)
    url = built.resolve().as_uri()

    def shoot(i: int) -> Path:
        shot = tmp_path / f"slide_{i}.png"
        result = run_browser(binary, tmp_path / f"profile_{i}", f"--screenshot={shot}", f"{url}#/{i}")
        assert shot.is_file(), f"slide {i}: no screenshot ({result.stderr[-500:]})"
        return shot

    with ThreadPoolExecutor(max_workers=2) as pool:
        shots = list(pool.map(shoot, range(1, n + 1)))
    digests = {}
    for i, shot in enumerate(shots, start=1):
        std, ink = screenshot_figures(shot)
        assert std > MIN_STD and ink > MIN_INK, f"slide {i} looks blank (std {std:.3f}, ink {ink:.3f})"
        digests.setdefault(hashlib.sha256(shot.read_bytes()).hexdigest(), []).append(i)
    same = [slides for slides in digests.values() if len(slides) > 1]
    assert not same, f"slides {same} render identically: #/N navigation does not work"

    # The page's own check after load, read back from the DOM: images decoded, nothing overflowing.
    dom = run_browser(binary, tmp_path / "profile_dom", "--dump-dom", url).stdout
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, "the viewer's script did not run (no data-check on <body>)"
    report = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(report) == n
    broken = [(r["slide"], im["src"]) for r in report for im in r["images"] if not im["ok"]]
    assert not broken, f"images the browser could not load: {broken}"
    overflowing = [r["slide"] for r in report if r["overflow"]]
    assert not overflowing, f"slides whose content does not fit 1280x720: {overflowing}"
