"""The walkthrough notebook (notebooks/walkthrough.py) runs top to bottom on the smoke budget, as Jupyter
runs it: the jupytext file is read into a notebook and executed cell by cell in a real kernel
(nbclient), so a cell that raises fails the test with the cell's traceback. Then its outputs are
checked: the sections in order, the figures, the hand computations that agree with the library, the
run directory, and a slide deck built from that run (scripts/build_deck.py --run).

Needs the notebook extra (``pip install -e ".[notebook]"``, which the dev extra includes); without it
the test skips, unless WALKTHROUGH_REQUIRED=1 (set by .ci/run) makes that a failure.

Run: OMP_NUM_THREADS=1 pytest tests/test_walkthrough.py -q      (~30 s)
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path

import pytest
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "walkthrough.py"


def need(module: str):
    """The module, or a skip (a failure where WALKTHROUGH_REQUIRED=1) naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        why = f'{module} is not installed: pip install -e ".[notebook]" (the dev extra includes it)'
        if os.environ.get("WALKTHROUGH_REQUIRED") == "1":
            pytest.fail(why)
        pytest.skip(why)


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_notebook_runs_top_to_bottom_on_the_smoke_budget(tmp_path: Path, monkeypatch) -> None:
    jupytext, nbclient, nbformat = need("jupytext"), need("nbclient"), need("nbformat")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits the environment
    nb = jupytext.read(NOTEBOOK)
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert params == [1], "the parameter cell (tag 'parameters') comes right after the title"
    assert re.search(r'^BUDGET = "smoke"', nb.cells[1].source, flags=re.M), "smoke is the default budget"
    # What papermill would inject: the runs and the caches go to this test's temporary directory.
    out, cache = tmp_path / "out", tmp_path / "cache"
    injected = f'BUDGET = "smoke"\nCACHE_DIR = {str(cache)!r}\nOUT_DIR = {str(out)!r}'
    nb.cells.insert(2, nbformat.v4.new_code_cell(injected))

    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()

    headings = [
        m.group(1)
        for c in nb.cells
        if c.cell_type == "markdown"
        for m in re.finditer(r"^## (\d)\.", c.source, flags=re.M)
    ]
    assert headings == ["1", "2", "3", "4", "5", "6", "7"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    printed = "\n".join(text_of(c) for c in code)
    for expected in (
        "optimal moves:",  # 1: the text environment, played
        "held-out greedy_success",  # 2: the base model's report
        "16 held-out maps, greedy:",  # 2: failure kinds from tinyzero.evaluation
        "estimate_v_star agrees",  # 3: V* by hand against the library (asserted in the cell)
        "stage 1: V* for 64 training maps",  # 3: the stage-1 table
        "astarpo.loss says",  # 4: every loss term, summed by hand (asserted in the cell)
        "KL/token",
        "trust region: KL rise",
        "3 iterations in",  # 5: the training run
        "history = -1 (the whole episode in context): 1 sequence",  # 6: the token layout
        "<bos>",
        "RAGEN:",
    ):
        assert expected in printed, f"missing output: {expected!r}"
    assert printed.count("astarpo.loss says") == 2  # before and after the update
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 4, f"expected the 4 figures (map, base episodes, V*(β), curves), got {len(images)}"

    figures = {p.name for p in (out / "figures").iterdir()}
    expected = {"optimal_episode.png", "base_greedy.png", "v_star_beta.png", "learning_curves_iteration.png"}
    assert expected <= figures
    run_dir = out / "runs" / "walkthrough"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert json.loads((run_dir / "summary.json").read_text())["iterations"] == 3

    # The deck's curves slide drawn from this real run (scripts/build_deck.py --run).
    need("markdown")
    deck = load_script("scripts/build_deck.py", "build_deck")
    index = deck.build(tmp_path / "deck", runs=[run_dir])
    assert (index.parent / "img" / "learning_curves_iteration.png").is_file()
    assert 'src="img/learning_curves_iteration.png"' in index.read_text()
