"""The import contracts in .importlinter (layers, no cycles, entry points), enforced by the test command.

`lint-imports` (import-linter, in the dev extra) runs in a subprocess; a broken contract fails the
test with lint-imports' own report, which names the offending import and line. The planted-import
tests copy the package to a temporary directory, add one import that would bring back a cycle this
repository removed, and check that the contracts catch it: they keep the contracts from going vacuous
(a layer renamed or dropped would otherwise pass everything). docs/architecture.md draws the layers.

Run: pytest tests/test_architecture.py -q        (~10 s)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# click's entry point, run by this interpreter: works wherever the venv keeps its scripts
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """Run lint-imports on the package under ``cwd`` (it puts ``cwd`` first on the import path)."""
    try:
        import importlinter  # noqa: F401
    except ImportError:
        pytest.fail("import-linter is missing: pip install -e '.[dev]' (or bash install.sh)")
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_contracts_are_kept():
    """Every contract in .importlinter holds for the code as it is."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("file", "planted", "reported"),
    [
        # evaluation <-> plots: plots draws, run reading lives in tinyzero.runs
        (
            "tinyzero/plots.py",
            "from tinyzero.evaluation import compare_runs",
            "tinyzero.plots -> tinyzero.evaluation",
        ),
        # checkpoint -> models.io -> models.hf -> checkpoint: export_hf lives in checkpoint.py
        (
            "tinyzero/models/hf.py",
            "from tinyzero.checkpoint import resolve_checkpoint",
            "tinyzero.models.hf -> tinyzero.checkpoint",
        ),
        # models -> pretrain -> models: load_hf_reference lives in pretrain.py
        (
            "tinyzero/models/io.py",
            "from tinyzero.pretrain import evaluate_base",
            "tinyzero.models.io -> tinyzero.pretrain",
        ),
        # inside the evaluation package: schema is its bottom
        (
            "tinyzero/evaluation/schema.py",
            "from tinyzero.evaluation import reports",
            ".schema -> .reports",
        ),
        # an algorithm reaching back into the trainer: it is handed its batch instead
        (
            "tinyzero/algorithms/astarpo.py",
            "from tinyzero.trainer import TinyZeroTrainer",
            "tinyzero.algorithms.astarpo -> tinyzero.trainer",
        ),
        # one algorithm importing another in a cycle (ragen uses astarpo's regression, not the reverse)
        (
            "tinyzero/algorithms/astarpo.py",
            "from tinyzero.algorithms import ragen_astarpo",
            ".ragen_astarpo -> .astarpo",
        ),
        # an entry point imported by the package
        ("tinyzero/rollout.py", "import train", "tinyzero.rollout -> train"),
    ],
)
def test_contracts_catch_a_planted_cycle(tmp_path: Path, file: str, planted: str, reported: str):
    shutil.copytree(ROOT / "tinyzero", tmp_path / "tinyzero", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    with (tmp_path / file).open("a") as f:
        f.write(f"\n{planted}  # planted by the test\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, f"the contracts let `{planted}` into {file} pass:\n{result.stdout}"
    assert reported in result.stdout, result.stdout
